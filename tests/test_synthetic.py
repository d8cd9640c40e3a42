"""The built-in synthetic corpus: deterministic, band-limited, and with a real high band."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from audiosr.data import synthetic
from audiosr.data.synthetic import PEAK, corpus_seed, synthesize


def band_share_db(x: np.ndarray, sample_rate: int, low: float, high: float | None = None) -> float:
    """Energy of ``x`` between ``low`` and ``high`` Hz (default: Nyquist) over its total, in dB."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / sample_rate)
    band = (freqs > low) & (freqs <= (high if high is not None else np.inf))
    return float(10 * np.log10(power[band].sum() / power.sum()))


def centroid_hz(x: np.ndarray, sample_rate: int) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    return float((power * np.fft.rfftfreq(x.size, 1 / sample_rate)).sum() / power.sum())


def sha256(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()


def test_same_seed_gives_a_bit_identical_clip_and_other_seeds_differ():
    clip = synthesize(5, 44100, 1.0)
    np.random.seed(0)  # the global generator must play no part
    assert np.array_equal(clip, synthesize(5, 44100, 1.0))
    assert not np.allclose(clip, synthesize(6, 44100, 1.0))


@pytest.mark.slow
def test_a_fresh_interpreter_with_another_hash_seed_makes_the_same_clip():
    # Loads the module file alone: importing the package would pull in torch and Lightning.
    script = (
        "import hashlib, importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('synthetic_copy', sys.argv[1])\n"
        "module = sys.modules['synthetic_copy'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(hashlib.sha256(module.synthesize(11, 22050, 0.5).tobytes()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script, synthetic.__file__], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == sha256(synthesize(11, 22050, 0.5))


def test_corpus_seeds_are_stable_and_the_splits_never_share_one():
    # Pinned: changing these values would silently change every split's clips.
    assert [corpus_seed(split, 7) for split in ("train", "val", "test")] == [1_000_000_007, 2_000_000_007, 3_000_000_007]
    seeds = {split: {corpus_seed(split, index) for index in range(1000)} for split in ("train", "val", "test")}
    assert all(len(s) == 1000 for s in seeds.values())
    assert not (seeds["train"] & seeds["val"] or seeds["train"] & seeds["test"] or seeds["val"] & seeds["test"])


def test_unknown_splits_and_out_of_range_indices_are_rejected():
    with pytest.raises(ValueError, match="split"):
        corpus_seed("validation", 0)
    with pytest.raises(ValueError, match="index"):
        corpus_seed("train", -1)


@pytest.mark.parametrize("sample_rate,seconds", [(44100, 4.0), (22050, 1.0), (48000, 0.5), (16000, 0.3), (44100, 0.05)])
def test_clip_has_the_promised_length_dtype_and_peak(sample_rate, seconds):
    clip = synthesize(corpus_seed("train", 3), sample_rate, seconds)
    assert clip.shape == (round(seconds * sample_rate),)
    assert clip.dtype == np.float32
    assert np.isfinite(clip).all()
    assert 0.5 < np.abs(clip).max() <= 1.0
    assert np.isclose(np.abs(clip).max(), PEAK, rtol=1e-5)


def test_the_high_band_holds_a_meaningful_share_of_the_energy():
    clips = [synthesize(corpus_seed("train", index)) for index in range(8)]
    shares = [band_share_db(clip, 44100, 11025) for clip in clips]
    # Over 300 train clips the share above 11.025 kHz measured -40 to -5 dB (median -18 dB;
    # these eight: -38 to -14 dB, -22 dB pooled). The noise floor alone puts at most about
    # -50 dB there, so even the lower bound means real content for a model to restore; the
    # upper bounds keep the low band dominant, as in recorded audio.
    assert all(-45 < share < -3 for share in shares), shares
    pooled = band_share_db(np.concatenate(clips), 44100, 11025)
    assert -30 < pooled < -10, pooled


def test_a_lower_rate_clip_fills_its_band_and_nothing_lies_above_the_taper():
    clips = [synthesize(corpus_seed("train", index), 22050, 2.0) for index in range(6)]
    # Content reaches the top of the band: these clips put -54 to -19 dB of their energy
    # (-31 dB pooled) in 9.5-10.3 kHz, where the noise floor alone would give < -60 dB.
    assert band_share_db(np.concatenate(clips), 22050, 9500, 10300) > -40
    for clip in clips:
        # ... but stops short of Nyquist: measured below -90 dB above 0.485 * rate, where
        # an aliased partial or an unsmoothed click shows at -60 dB or more.
        assert band_share_db(clip, 22050, 0.485 * 22050) < -70


def test_clips_differ_in_brightness():
    clips = [synthesize(corpus_seed("train", index), 44100, 2.0) for index in range(8)]
    centroids = [centroid_hz(clip, 44100) for clip in clips]
    shares = [band_share_db(clip, 44100, 11025) for clip in clips]
    assert max(centroids) > 2 * min(centroids), centroids
    assert max(shares) - min(shares) > 10, shares


def test_every_sound_kind_occurs_in_the_first_clips():
    kinds = set()
    for index in range(10):
        events = synthetic._schedule(np.random.default_rng([corpus_seed("train", index), 0]), 4.0)
        kinds |= {kind for kind, _, _ in events}
    assert kinds == set(range(len(synthetic._SOUND_KINDS)))


def test_a_seed_makes_the_same_events_at_every_sample_rate():
    def loudness_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
        hop = sample_rate // 20
        frames = x[: x.size // hop * hop].astype(np.float64).reshape(-1, hop)
        return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)

    seed = corpus_seed("val", 2)
    high, low = synthesize(seed, 44100, 2.0), synthesize(seed, 22050, 2.0)
    assert np.corrcoef(loudness_db(high, 44100), loudness_db(low, 22050))[0, 1] > 0.95


@pytest.mark.parametrize("harmonic", [2, 64, 127, 240])
def test_the_fast_harmonic_path_matches_direct_sines(harmonic):
    # The sine recurrence of the fast path drifts in float32; the restarts bound the drift.
    sample_rate, n = 44100, 22050
    frames = -(-n // synthetic._HOP)
    times = np.arange(frames + 1) * synthetic._HOP / sample_rate
    f0 = 80 * (1 + 0.01 * np.sin(2 * np.pi * 5 * times))
    amps = np.zeros((260, frames + 1))
    amps[harmonic - 1] = 1.0
    fast = synthetic._partial_bank(f0, amps, sample_rate, n)
    direct = synthetic._partial_bank(f0, amps, sample_rate, n, np.arange(1.0, 261), np.zeros(260))
    assert np.abs(direct).max() > 0.99
    assert np.abs(fast - direct).max() < 3e-4
