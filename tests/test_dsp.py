"""Signal tools: lengths, zero-phase resampling, and the margin the windowing engine reads around a window."""

from __future__ import annotations

import numpy as np
import pytest

from audiosr.dsp import RESAMPLERS, output_length, rate_ratio, resample, resample_margin


def test_lengths_and_ratios_by_hand():
    assert rate_ratio(22050, 44100) == (2, 1) and rate_ratio(16000, 44100) == (441, 160)
    assert output_length(3, 22050, 44100) == 6 and output_length(5, 44100, 22050) == 3  # ceil
    assert output_length(0, 22050, 44100) == 0


@pytest.mark.parametrize("method", RESAMPLERS)
def test_resampling_is_zero_phase(method):
    rate = 22050
    t = np.arange(rate // 2) / rate
    x = (np.sin(2 * np.pi * 1000 * t) * np.hanning(t.size)).astype(np.float32)
    y = resample(x, rate, 2 * rate, method)
    # Output sample 2j sits at the time of input sample j: the even samples are the input.
    lags = np.arange(-8, 9)
    correlation = [float(np.dot(np.roll(y, -lag)[::2], x)) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0
    np.testing.assert_allclose(y[::2], x, atol=2e-3)


@pytest.mark.parametrize("method", RESAMPLERS)
@pytest.mark.parametrize("rates", [(22050, 44100), (44100, 22050), (16000, 44100)])
def test_a_window_read_with_the_margin_resamples_like_the_whole_signal(method, rates):
    rate_in, rate_out = rates
    p, q = rate_ratio(rate_in, rate_out)
    x = np.random.default_rng(0).standard_normal(3 * rate_in // 10).astype(np.float32) * 0.3
    whole = resample(x, rate_in, rate_out, method)
    start, end = whole.size // 3, 2 * whole.size // 3  # output samples wanted

    def window(margin: int) -> np.ndarray:
        low_start = max(0, (start * q // p - margin) // q * q)  # a whole number of ratio periods
        low_end = output_length(end, rate_out, rate_in) + margin
        part = resample(x[low_start:low_end], rate_in, rate_out, method)
        offset = low_start * p // q
        return part[start - offset:end - offset]

    margin = resample_margin(method, rate_in, rate_out)
    np.testing.assert_allclose(window(margin), whole[start:end], atol=2e-5)
    # The test can tell: too small a margin changes the window's samples.
    assert np.abs(window(2) - whole[start:end]).max() > 1e-3


def test_best_lag_finds_a_known_delay_either_way_and_its_correlation():
    from audiosr.dsp import best_lag

    x = np.random.default_rng(2).standard_normal(5000)
    later = np.concatenate([np.zeros(37), x[:-37]])
    assert best_lag(later, x, 100) == (37, pytest.approx(np.corrcoef(later[37:], x[:-37])[0, 1], abs=0.01))
    assert best_lag(x, later, 100)[0] == -37
    assert best_lag(later, x, 20)[0] != 37  # out of reach is not found
    assert best_lag(x, x, 0) == (0, pytest.approx(1.0))
    assert best_lag(np.zeros(100), x[:100], 10)[1] == 0.0  # silence: no correlation
