"""Training degradations: every filter is zero-phase, cuts where it says, and is reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from audiosr.data import Lowpass, RandomLowpass, Resample
from audiosr.data.pairs import PairMaker
from audiosr.dsp import output_length, resample

SOURCE, TARGET = 22050, 44100


def noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((1, round(seconds * TARGET)))).astype(np.float32)


def band_energy(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x[0])) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / rate)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].mean())


def lag(a: np.ndarray, b: np.ndarray, max_lag: int = 20) -> int:
    scores = [np.dot(a[max_lag + k: len(a) - max_lag + k], b[max_lag: len(b) - max_lag]) for k in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


@pytest.mark.parametrize("kind", ["butter", "cheby1", "cheby2", "bessel", "ellip"])
def test_each_filter_family_passes_the_band_cuts_above_and_keeps_alignment(kind):
    x = noise()
    low, gain = Lowpass(kind, order=8, cutoff=0.9)(x, SOURCE, TARGET, np.random.default_rng(0))
    assert gain == 1.0 and low.shape == (1, output_length(x.shape[-1], TARGET, SOURCE))
    back = resample(low, SOURCE, TARGET, "soxr_vhq", x.shape[-1])
    passband = band_energy(back, TARGET, 500, 6000) / band_energy(x, TARGET, 500, 6000)
    assert 0.8 < passband < 1.25  # within about 1 dB
    assert band_energy(back, TARGET, 11_500, 20_000) < 1e-4 * band_energy(x, TARGET, 11_500, 20_000)
    assert lag(back[0], x[0]) == 0  # zero-phase: no delay


def test_a_lower_corner_removes_more_of_the_top_of_the_band():
    x = noise()
    rng = np.random.default_rng(0)
    high = resample(Lowpass("butter", 6, 0.98)(x, SOURCE, TARGET, rng)[0], SOURCE, TARGET, "soxr_vhq", x.shape[-1])
    low = resample(Lowpass("butter", 6, 0.8)(x, SOURCE, TARGET, rng)[0], SOURCE, TARGET, "soxr_vhq", x.shape[-1])
    assert band_energy(low, TARGET, 9500, 10_500) < 0.1 * band_energy(high, TARGET, 9500, 10_500)


def test_random_degradations_are_reproducible_varied_and_scale_the_target_alike():
    x = noise(0.5)
    random = RandomLowpass()
    drawn = {random.draw(np.random.default_rng(seed)).describe() for seed in range(40)}
    assert len(drawn) > 20 and any(d.startswith("resample") for d in drawn) and any("ellip" in d for d in drawn)
    first = PairMaker(SOURCE, TARGET, "soxr_vhq", random)(x, np.random.default_rng(5))
    again = PairMaker(SOURCE, TARGET, "soxr_vhq", random)(x, np.random.default_rng(5))
    assert all(np.array_equal(first[k].numpy(), again[k].numpy()) for k in ("input", "target", "low"))
    gain = float(first["target"].abs().max() / np.abs(x).max())
    assert 10 ** (-12 / 20) - 1e-6 <= gain <= 1.0 + 1e-6
    # The rough input follows the target's gain: below the band edge they agree.
    low_band = [band_energy(first[k].numpy(), TARGET, 200, 7000) for k in ("input", "target")]
    assert 0.8 < low_band[0] / low_band[1] < 1.25


def test_the_standard_degradation_is_resampy_kaiser_best():
    x = noise(0.5)
    low, gain = Resample()(x, SOURCE, TARGET, np.random.default_rng(0))
    np.testing.assert_array_equal(low, resample(x, TARGET, SOURCE, "kaiser_best", low.shape[-1]))
    assert gain == 1.0


def test_bad_parameters_are_refused_when_configured():
    with pytest.raises(ValueError):
        Lowpass(cutoff=1.5)
    with pytest.raises(ValueError):
        Resample("linear-ish")
    with pytest.raises(ValueError):
        RandomLowpass(resamplers=["nope"])


def music(seconds: float = 3.0, rate: int = TARGET) -> np.ndarray:
    from audiosr.data.synthetic import synthesize

    return synthesize(5, rate, seconds)[None].astype(np.float32)


@pytest.mark.parametrize("codec, rate, kbps", [("mp3", SOURCE, 64), ("mp3", SOURCE, 24), ("vorbis", SOURCE, 64),
                                               ("opus", 24000, 48), ("mp3", TARGET, 32)])
def test_a_codec_round_trip_is_real_aligned_and_as_long(codec, rate, kbps):
    """Encoded and decoded by libsndfile: lossy (not the input), yet sample-aligned with it and as long,
    also where LAME resamples inside (about 32 kbps and less) and leaves a delay libsndfile does not trim."""
    from audiosr.data.degradations import round_trip

    x = music(rate=rate)
    y = round_trip(x, rate, codec, kbps)
    assert y.shape == x.shape and y.dtype == np.float32
    assert lag(y[0], x[0], max_lag=2000) == 0
    error_db = 10 * np.log10(np.sum((x - y) ** 2) / np.sum(x ** 2))
    assert -60 < error_db < -3, error_db  # changed, but the same recording


def test_opus_at_44_1_khz_goes_through_48_khz_and_comes_back_aligned():
    """Opus has no 44.1 kHz: a Codec at that rate (a model for any input) takes the signal to 48 kHz and back."""
    from audiosr.data import Codec

    x = music(rate=TARGET)
    y, gain = Codec("opus", 64, "soxr_vhq")(x, TARGET, TARGET, np.random.default_rng(0))
    assert gain == 1.0 and y.shape == x.shape and y.dtype == np.float32
    assert lag(y[0], x[0], max_lag=2000) == 0
    error_db = 10 * np.log10(np.sum((x - y) ** 2) / np.sum(x ** 2))
    assert -60 < error_db < -3, error_db


def test_a_lower_bitrate_cuts_the_band_lower_and_the_codec_is_a_test_degradation():
    import torch

    from audiosr.band import content_edge
    from audiosr.data import Codec

    target = music()
    edges = {}
    for kbps in (24, 96):
        low, gain = Codec("mp3", kbps)(target, SOURCE, TARGET, np.random.default_rng(0))
        assert gain == 1.0 and low.shape == (1, output_length(target.shape[-1], TARGET, SOURCE))
        edges[kbps] = float(content_edge(torch.from_numpy(low), SOURCE, 2000.0, SOURCE / 2))
    assert edges[24] < edges[96] - 1000, edges  # the encoder's low-pass moves down with the bitrate
    assert "mp3 at 24 kbps" in Codec("mp3", 24).describe()


def test_codec_settings_it_cannot_meet_are_refused_with_what_it_can():
    from audiosr.data import Codec
    from audiosr.data.degradations import round_trip

    with pytest.raises(ValueError, match="codec must be one of mp3, vorbis, opus"):
        Codec("aac")
    with pytest.raises(ValueError, match="opus cannot encode 1 channel"):
        round_trip(music(0.5, SOURCE), SOURCE, "opus", 64)  # Opus has no 22.05 kHz
    with pytest.raises(ValueError, match=r"vorbis at 44100 Hz \(1 channel\(s\)\) encodes between about \d+ and \d+ kbps"):
        round_trip(music(0.5), TARGET, "vorbis", 16)
