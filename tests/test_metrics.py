"""SNR and LSD: conventions, hand computations and band splitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiosr.evaluation.metrics import lsd, lsd_bands, lsd_below, snr

SR = 44100
N_FFT = 2048
CUTOFF = 11025.0


def _bin_cosine(k: int, length: int, amplitude: float) -> torch.Tensor:
    """A cosine exactly on STFT bin ``k`` of ``N_FFT``.

    With ``length = N_FFT * m + 1`` the reflect padding of ``center=True`` continues
    the cosine exactly at both ends, so every frame sees a whole number of periods
    and the Hann window puts its energy in bins ``k - 1 .. k + 1`` only: no leakage
    across the band edge that would blur what a band test measures.
    """
    n = torch.arange(length, dtype=torch.float64)
    return (amplitude * torch.cos(2 * math.pi * k * n / N_FFT)).float()


def _numpy_lsd(est: np.ndarray, ref: np.ndarray, n_fft: int, hop: int, eps: float, bins: int | None = None) -> float:
    """LSD written out the way torch.stft(center=True, pad_mode="reflect") frames; over the first ``bins`` bins."""

    def log_power(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
        n_frames = 1 + len(x) // hop
        frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
        return np.log10(np.maximum(power, eps))

    diff = (log_power(est) - log_power(ref))[:, :bins]  # (frames, bins)
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=-1))))


# --- SNR -------------------------------------------------------------------------


def test_snr_identical_signals_hit_the_cap() -> None:
    y = torch.randn(3, 4000)
    assert torch.equal(snr(y, y), torch.full((3,), 100.0))
    assert torch.equal(snr(y, y, max_db=60.0), torch.full((3,), 60.0))
    # Below the cap's resolution the error is floored, not reported as > max_db.
    assert snr(y + 1e-9 * torch.randn_like(y), y).max() <= 100.0


def test_snr_silent_target_is_finite_and_documented() -> None:
    silence = torch.zeros(2, 1000)
    assert torch.equal(snr(silence, silence), torch.full((2,), 100.0))
    noise = torch.randn(2, 1000)
    assert torch.equal(snr(noise, silence), torch.full((2,), -100.0))


@pytest.mark.parametrize("target_db", [0.0, 20.0, 35.0])
def test_snr_measures_noise_added_at_a_known_ratio(target_db: float) -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(2, 22050, generator=gen, dtype=torch.float64)
    noise = torch.randn(2, 22050, generator=gen, dtype=torch.float64)
    # Scale each item's noise so that ||y||^2 / ||n||^2 is exactly 10^(target_db / 10).
    scale = torch.sqrt(y.square().sum(-1) / (noise.square().sum(-1) * 10 ** (target_db / 10)))
    estimate = (y + scale[:, None] * noise).float()
    measured = snr(estimate, y.float())
    assert measured.dtype == torch.float32
    torch.testing.assert_close(measured, torch.full((2,), target_db), atol=0.1, rtol=0)


def test_snr_matches_numpy_hand_computation() -> None:
    rng = np.random.default_rng(1)
    y = rng.standard_normal(257).astype(np.float32)
    y_hat = (0.9 * y + 0.05 * rng.standard_normal(257)).astype(np.float32)
    y64, e64 = y.astype(np.float64), y_hat.astype(np.float64)
    expected = 10 * np.log10(np.sum(y64**2) / np.sum((y64 - e64) ** 2))
    got = snr(torch.from_numpy(y_hat), torch.from_numpy(y))
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, abs=1e-4)


def test_snr_exposes_gain_and_delay_errors() -> None:
    y = torch.randn(1, 16000, generator=torch.Generator().manual_seed(2))
    # A gain of 0.5 leaves an error of 0.5 * y: 10 * log10(4) dB, nothing hides it.
    assert snr(0.5 * y, y).item() == pytest.approx(10 * math.log10(4), abs=1e-4)
    # A 3-sample delay of white noise is about as bad as no estimate at all (-3 dB).
    delayed = torch.roll(y, shifts=3, dims=-1)
    assert snr(delayed, y).item() < 0.0


def test_snr_batch_shape_and_per_item_values() -> None:
    gen = torch.Generator().manual_seed(3)
    y = torch.randn(4, 1, 3000, generator=gen)
    y_hat = y + torch.linspace(0.01, 1.0, 4)[:, None, None] * torch.randn(4, 1, 3000, generator=gen)
    batched = snr(y_hat, y)
    assert batched.shape == (4, 1)
    for i in range(4):
        torch.testing.assert_close(batched[i, 0], snr(y_hat[i, 0], y[i, 0]))
    # More noise, lower SNR: items are not mixed up.
    assert torch.all(batched[1:, 0] < batched[:-1, 0])


def test_snr_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        snr(torch.zeros(2, 100), torch.zeros(1, 100))


# --- LSD -------------------------------------------------------------------------


def test_lsd_identical_signals_is_zero() -> None:
    y = torch.randn(2, 1, 8192)
    assert torch.all(lsd(y, y) < 1e-6)
    bands = lsd_bands(y, y, SR, CUTOFF)
    for value in bands.values():
        assert torch.all(value < 1e-6)


def test_lsd_is_symmetric() -> None:
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(3, 6000, generator=gen)
    b = a + 0.3 * torch.randn(3, 6000, generator=gen)
    forward, backward = lsd(a, b), lsd(b, a)
    assert torch.all(forward > 0.05)
    torch.testing.assert_close(forward, backward, rtol=1e-6, atol=0)


@pytest.mark.parametrize("n_fft,hop", [(256, 64), (128, 50)])
def test_lsd_matches_numpy_hand_computation(n_fft: int, hop: int) -> None:
    rng = np.random.default_rng(5)
    ref = rng.standard_normal(1000).astype(np.float32)
    est = (ref + 0.5 * rng.standard_normal(1000)).astype(np.float32)
    expected = _numpy_lsd(est, ref, n_fft, hop, eps=1e-8)
    got = lsd(torch.from_numpy(est), torch.from_numpy(ref), n_fft=n_fft, hop_length=hop)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_lsd_eps_floors_silence() -> None:
    silence = torch.zeros(4096)
    tone = _bin_cosine(100, 4096, 0.5)
    # Silence vs silence is exactly zero; silence vs a tone is large but finite.
    assert lsd(silence, silence).item() == 0.0
    assert math.isfinite(lsd(silence, tone).item())


def test_lsd_batch_shape_and_per_item_values() -> None:
    gen = torch.Generator().manual_seed(6)
    y = torch.randn(3, 1, 5000, generator=gen)
    noise_level = torch.tensor([0.01, 0.1, 1.0])[:, None, None]
    y_hat = y + noise_level * torch.randn(3, 1, 5000, generator=gen)
    batched = lsd(y_hat, y)
    assert batched.shape == (3, 1)
    for i in range(3):
        torch.testing.assert_close(batched[i, 0], lsd(y_hat[i, 0], y[i, 0]), rtol=1e-5, atol=1e-6)
    assert torch.all(batched[1:, 0] > batched[:-1, 0])


def test_lsd_bands_split_at_the_cutoff_bin() -> None:
    gen = torch.Generator().manual_seed(7)
    y = torch.randn(2, 8192, generator=gen)
    y_hat = y + 0.2 * torch.randn(2, 8192, generator=gen)
    bands = lsd_bands(y_hat, y, SR, CUTOFF)
    assert set(bands) == {"lsd", "lsd_hf", "lsd_lf"}
    # 11025 Hz is exactly bin 512 at 44.1 kHz / 2048: it belongs to the low band.
    torch.testing.assert_close(bands["lsd"], lsd(y_hat, y))
    torch.testing.assert_close(bands["lsd_lf"], lsd(y_hat, y, bins=slice(0, 513)))
    torch.testing.assert_close(bands["lsd_hf"], lsd(y_hat, y, bins=slice(513, None)))
    for value in bands.values():
        assert value.shape == (2,)


def test_lsd_hf_ignores_a_low_band_difference() -> None:
    length = N_FFT * 4 + 1
    high = _bin_cosine(700, length, 0.3)  # ~15.1 kHz
    target = _bin_cosine(46, length, 0.5) + high  # ~990 Hz
    estimate = _bin_cosine(46, length, 0.1) + high
    bands = lsd_bands(estimate, target, SR, CUTOFF)
    assert bands["lsd_hf"].item() < 1e-4
    assert bands["lsd_lf"].item() > 0.05


def test_lsd_lf_ignores_a_high_band_difference() -> None:
    length = N_FFT * 4 + 1
    low = _bin_cosine(46, length, 0.5)
    target = low + _bin_cosine(700, length, 0.3)
    estimate = low + _bin_cosine(700, length, 0.05)
    bands = lsd_bands(estimate, target, SR, CUTOFF)
    assert bands["lsd_lf"].item() < 1e-4
    assert bands["lsd_hf"].item() > 0.05


def _band_noise(n: int, low_hz: float, high_hz: float, seed: int) -> np.ndarray:
    """White noise ``(n,)`` float32 with only the FFT bins in ``[low_hz, high_hz]`` kept, peak 0.5."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    x = np.fft.irfft(spectrum, n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def test_lsd_below_the_reference_edge_matches_numpy_and_ignores_an_invented_band_above_it() -> None:
    # The reference: an encoder's cut at 16 kHz. Both estimates differ from it below the edge
    # alike; the second also invents a band above 18 kHz (tones on bins, which leak nowhere,
    # see _bin_cosine), where the reference is empty.
    n = N_FFT * 8 + 1
    reference = _band_noise(n, 0, 16000, seed=1)
    estimate = reference + 0.3 * _band_noise(n, 0, 16000, seed=2)
    invented = estimate + sum(_bin_cosine(k, n, 0.05) for k in range(840, 1021, 10)).numpy()
    below, whole = [], []
    for x in (estimate, invented):
        # 16 kHz at 44.1 kHz / 2048: bins 0..743 (743 * 44100 / 2048 = 15998 Hz).
        expected = _numpy_lsd(x, reference, N_FFT, 512, 1e-8, bins=744)
        got = lsd_below(torch.from_numpy(x), torch.from_numpy(reference), SR, 16000.0)
        assert got.shape == () and got.item() == pytest.approx(expected, rel=1e-4)
        below.append(got.item())
        whole.append(lsd(torch.from_numpy(x), torch.from_numpy(reference)).item())
    assert below[1] == pytest.approx(below[0], abs=1e-5)
    assert whole[1] > whole[0] + 1.0  # the whole band counts the invented band against the estimate


def test_lsd_below_takes_one_edge_per_item_and_the_nyquist_edge_is_the_whole_band() -> None:
    gen = torch.Generator().manual_seed(9)
    y = torch.randn(3, 8192, generator=gen)
    y_hat = y + 0.2 * torch.randn(3, 8192, generator=gen)
    edges = torch.tensor([8000.0, 16000.0, SR / 2])
    each = lsd_below(y_hat, y, SR, edges)
    assert each.shape == (3,)
    for i, edge in enumerate(edges.tolist()):
        torch.testing.assert_close(each[i], lsd(y_hat[i], y[i], bins=slice(0, math.floor(edge * N_FFT / SR) + 1)))
    torch.testing.assert_close(each[2], lsd(y_hat[2], y[2]))
    bands = lsd_bands(y_hat, y, SR, CUTOFF, edge_hz=edges)  # the same from lsd_bands' single STFT
    torch.testing.assert_close(bands["lsd_below_edge"], each)
    for wrong in (0.0, SR / 2 + 1):
        with pytest.raises(ValueError, match="edge_hz"):
            lsd_below(y_hat, y, SR, wrong)


def test_lsd_bands_rejects_a_cutoff_outside_the_spectrum() -> None:
    y = torch.zeros(4096)
    with pytest.raises(ValueError, match="cutoff_hz"):
        lsd_bands(y, y, SR, SR / 2)


def test_metrics_run_in_float32_under_autocast_and_for_other_dtypes() -> None:
    gen = torch.Generator().manual_seed(8)
    y = torch.randn(2, 4096, generator=gen)
    y_hat = y + 0.1 * torch.randn(2, 4096, generator=gen)
    plain_lsd, plain_snr = lsd(y_hat, y), snr(y_hat, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto_lsd, auto_snr = lsd(y_hat, y), snr(y_hat, y)
    assert auto_lsd.dtype == auto_snr.dtype == torch.float32
    torch.testing.assert_close(auto_lsd, plain_lsd, rtol=1e-6, atol=0)
    torch.testing.assert_close(auto_snr, plain_snr, rtol=1e-6, atol=0)
    assert lsd(y_hat.double(), y.double()).dtype == torch.float32


def test_validation_quality_scores_below_each_targets_own_edge_when_given():
    """``quality`` (what ``val/score`` is built from) with per-item edges: an item whose target an encoder
    cut at 16 kHz is not charged for a band above it; a full-band item (edge at Nyquist) is the whole LSD."""
    from audiosr.evaluation.metrics import lsd_below, quality

    rate = 44100
    rng = np.random.default_rng(3)
    target = torch.from_numpy(rng.standard_normal((2, 1, rate)).astype(np.float32))
    estimate = target + 0.3 * torch.from_numpy(rng.standard_normal((2, 1, rate)).astype(np.float32))
    edges = torch.tensor([[16_000.0], [rate / 2]])
    values = quality(estimate, target, rate, 11_025.0, edges)
    assert values["lsd_below_edge"].shape == values["lsd"].shape == (2, 1)
    assert float(values["lsd_below_edge"][1, 0]) == pytest.approx(float(values["lsd"][1, 0]), rel=1e-6)
    assert float(values["lsd_below_edge"][0, 0]) == pytest.approx(float(lsd_below(estimate[0], target[0], rate, 16_000.0)[0]),
                                                                   rel=1e-6)
    assert "lsd_below_edge" not in quality(estimate, target, rate, 11_025.0)
