"""Stereo that stays stereo: the band invented above the edge keeps the channels' relations.

The material is generated (``bench.stereo``): one bright source with noise as two channels related
one way each, made 22.05 kHz and 16-bit like users' files, upsampled by the shipped model.
"""

from __future__ import annotations

import numpy as np
import pytest

from audiosr.inference.upsampler import Upsampler
from bench.stereo import LOW_RATE, band_db, cases, coherence, fold_down_notch_db, low_16bit, source


@pytest.fixture(scope="module")
def shipped():
    return Upsampler.from_checkpoint(device="cpu", notice=lambda _: None)


@pytest.fixture(scope="module")
def apart():
    return Upsampler.from_checkpoint(device="cpu", notice=lambda _: None, shared_stereo=False)


@pytest.mark.parametrize("case", ["right = left delayed 3 samples", "right = left delayed 30 samples",
                                  "right = left at -6 dB (pan)"])
def test_the_invented_band_keeps_delay_level_and_coherence_of_the_pair(case, shipped, apart):
    full = cases()[case]
    low = low_16bit(full)
    out = shipped.upsample(low, LOW_RATE)
    assert coherence(out) >= 0.8 * coherence(full) and coherence(out) >= 0.8
    assert abs((band_db(out[1]) - band_db(out[0])) - (band_db(full[1]) - band_db(full[0]))) < 1.0
    assert fold_down_notch_db(out) >= fold_down_notch_db(full) - 1.5  # (L + R) / 2: no deeper notch
    if "delayed" in case:  # channels upsampled on their own lose the image there: the check can see it
        assert coherence(apart.upsample(low, LOW_RATE)) < 0.5


def test_a_partly_coherent_pair_stays_partly_coherent(shipped, apart):
    full = cases()["right = 0.7 left + 0.7 another source"]
    low = low_16bit(full)
    shared, alone = coherence(shipped.upsample(low, LOW_RATE)), coherence(apart.upsample(low, LOW_RATE))
    assert abs(shared - coherence(full)) < abs(alone - coherence(full))
    assert shared < 0.95  # not made one source


def test_mono_is_untouched_and_a_silent_side_stays_silent(shipped, apart):
    x = low_16bit(source(2.0)[None])[0]
    np.testing.assert_array_equal(shipped.upsample(x, LOW_RATE), apart.upsample(x, LOW_RATE))
    out = shipped.upsample(np.stack([x, np.zeros_like(x)]), LOW_RATE)
    assert not out[1].any()  # digital silence in, digital silence out
    np.testing.assert_allclose(out[0], apart.upsample(x, LOW_RATE), atol=1e-6)  # the loud side is its own


def test_a_side_band_limited_lower_shares_the_loudest_sides_edge_and_gets_no_band_above_it(shipped):
    """One edge for all channels: the loudest channel's. A quieter side whose own band ends lower
    has nothing just below that edge, so it is given nothing above it."""
    from audiosr.dsp import resample

    full = source(3.0)
    narrow = resample(resample(full, 44100, 16000, "kaiser_best"), 16000, 44100, "kaiser_best")[: full.size]
    low = low_16bit(np.stack([full, 0.5 * narrow]))
    out = shipped.upsample(low, LOW_RATE)

    def top_band(x: np.ndarray) -> float:  # dB against the side's own 2-7 kHz
        return band_db(x, (12000.0, 16000.0)) - band_db(x, (2000.0, 7000.0))

    assert top_band(out[0]) > -30  # the loud side gets its band
    assert top_band(out[1]) < top_band(out[0]) - 30  # the narrow side, nothing
