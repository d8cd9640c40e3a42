"""Evaluation metrics for bandwidth extension: SNR and log-spectral distance (LSD); loudness (ITU-R BS.1770).

Conventions follow the published super-resolution work (NU-Wave, AERO, AP-BWE) so
numbers are comparable with their tables:

* Every metric is computed **per item** over the last (time) axis: inputs
  ``(..., T)`` give outputs ``(...)``. Average over a test set yourself (the papers
  average per-utterance values, not pooled energies).
* ``snr`` is ``10 * log10(||y||^2 / ||y - y_hat||^2)`` in dB with ``y`` the target.
  No scale-invariance and no alignment search: a gain or delay error must show.
  The value is clipped to ``[-max_db, max_db]`` so it is always finite:

  - identical signals (zero error) give exactly ``+max_db``; this includes a silent
    target reconstructed as silence;
  - a silent target with a non-silent estimate would be ``-inf`` and gives
    ``-max_db``. Silent clips are a data problem; filter them before averaging
    rather than relying on this value.

* ``lsd`` uses a periodic Hann window, ``torch.stft(center=True, pad_mode="reflect")``
  with ``n_fft=2048`` and ``hop_length=512`` by default, the power spectrum
  ``|S|^2`` floored at ``eps=1e-8`` and ``log10``. Per frame it takes the root mean
  square over frequency bins of the difference of the log-power spectra, then the
  mean over frames. Its unit is therefore "log10 power" (not dB, not natural log).
* ``lsd_bands`` splits at ``cutoff_hz`` (the input's Nyquist frequency, 11025 Hz for
  22.05 kHz input): ``lsd_hf`` uses the bins strictly above the cutoff, ``lsd_lf``
  the bins at or below it.
* ``lsd_below`` (and ``lsd_bands`` given ``edge_hz``) keeps only the bins at or below the
  *reference's own* band edge, one per item: above an encoder's low-pass (an MP3 or Vorbis
  file cut at 13-19.5 kHz) the reference is empty because of the encoder, not the sound, so
  it is no truth there and a method is not scored against it.

Everything is evaluated in float32 with autocast disabled, whatever the input dtype,
so a metric does not depend on the precision a model was run at.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from audiosr.dsp import last_bin_at_or_below

__all__ = ["LSD_HOP", "LSD_N_FFT", "SNR_ALLOWANCE_DB", "SNR_PENALTY_PER_DB", "SNR_TRANSPARENT_DB", "lsd", "lsd_bands",
           "lsd_below", "quality", "selection_score", "snr", "snr_lost"]

LSD_N_FFT = 2048  # the published convention (NU-Wave, AERO, AP-BWE)
LSD_HOP = 512


def _check_pair(estimate: Tensor, target: Tensor) -> None:
    # Broadcasting would silently compare the wrong items and a length mismatch
    # hides a misalignment, so both are refused.
    if estimate.shape != target.shape:
        raise ValueError(
            f"estimate and target must have the same shape, got {tuple(estimate.shape)} "
            f"and {tuple(target.shape)}"
        )
    if estimate.dim() == 0:
        raise ValueError("inputs need a time axis, got scalars")


def snr(estimate: Tensor, target: Tensor, max_db: float = 100.0) -> Tensor:
    """Signal-to-noise ratio in dB, per item over the last axis.

    Args:
        estimate: ``(..., T)`` the reconstruction ``y_hat``.
        target: ``(..., T)`` the reference ``y``.
        max_db: clip the result to ``[-max_db, max_db]`` (must be positive). Zero
            error gives exactly ``max_db``; a silent target with a non-silent
            estimate gives ``-max_db``.

    Returns:
        ``(...)`` float32 SNR in dB, always finite.
    """
    _check_pair(estimate, target)
    if not max_db > 0:
        raise ValueError(f"max_db must be positive, got {max_db}")
    with torch.autocast(device_type=target.device.type, enabled=False):
        y = target.float()
        err = (y - estimate.float()).square().sum(dim=-1)
        energy = y.square().sum(dim=-1)
        # Flooring the error relative to the signal caps the ratio at max_db without
        # a division by zero whenever the target has energy.
        floor = energy * (10.0 ** (-max_db / 10.0))
        ratio = energy / torch.maximum(err, floor)
        # energy == 0 and err == 0 is 0/0; identical signals are defined as max_db.
        ratio = torch.where(err == 0, torch.ones_like(ratio), ratio)
        db = 10.0 * torch.log10(ratio)
        db = torch.where(err == 0, torch.full_like(db, max_db), db)
        return db.clamp(min=-max_db, max=max_db)


def _log_power(x: Tensor, n_fft: int, hop_length: int, eps: float) -> Tensor:
    """``(N, T)`` float32 -> ``(N, n_fft // 2 + 1, frames)`` log10 power spectrogram."""
    window = torch.hann_window(n_fft, periodic=True, device=x.device, dtype=torch.float32)
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()
    return torch.log10(power.clamp(min=eps))


def _log_power_pair(
    estimate: Tensor, target: Tensor, n_fft: int, hop_length: int, eps: float
) -> tuple[Tensor, tuple[int, ...]]:
    """Difference of log-power spectra ``(N, F, frames)`` and the batch shape ``(...)``."""
    _check_pair(estimate, target)
    if n_fft <= 0 or hop_length <= 0:
        raise ValueError(f"n_fft and hop_length must be positive, got {n_fft}, {hop_length}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    batch_shape = tuple(target.shape[:-1])
    length = target.shape[-1]
    # Both signals in one STFT call: half the kernel launches on GPU.
    both = torch.cat([estimate.reshape(-1, length), target.reshape(-1, length)]).float()
    log_est, log_ref = _log_power(both, n_fft, hop_length, eps).chunk(2, dim=0)
    return log_est - log_ref, batch_shape


def _lsd_from_diff(diff: Tensor, batch_shape: tuple[int, ...], bins: slice | None) -> Tensor:
    """``(N, F, frames)`` log-power difference -> ``(...)`` LSD over the selected bins."""
    if bins is not None:
        diff = diff[:, bins, :]
        if diff.shape[1] == 0:
            raise ValueError(f"bins={bins} selects no frequency bin")
    per_frame = diff.square().mean(dim=1).sqrt()
    return per_frame.mean(dim=-1).reshape(batch_shape)


def _last_bins(edge_hz: float | Tensor, batch_shape: tuple[int, ...], sample_rate: int, n_fft: int) -> Tensor:
    """``(N,)`` the last bin at or below each item's edge (``edge_hz`` broadcast to ``batch_shape``)."""
    edges = torch.as_tensor(edge_hz, dtype=torch.float64).expand(batch_shape).reshape(-1)
    if not bool(((edges > 0) & (edges <= sample_rate / 2)).all()):
        raise ValueError(f"edge_hz must lie in (0, sample_rate / 2 = {sample_rate / 2}], got {edges.tolist()}")
    # Exact per edge, as lsd_bands' cutoff: an edge on a bin keeps that bin.
    return torch.tensor([last_bin_at_or_below(float(e), sample_rate, n_fft) for e in edges])


def _lsd_up_to(diff: Tensor, batch_shape: tuple[int, ...], last_bins: Tensor, above: bool = False) -> Tensor:
    """``(N, F, frames)`` log-power difference -> ``(...)`` LSD over bins ``0..last_bins[n]`` of each item
    (``above``: over the bins after them)."""
    k = torch.arange(diff.shape[1], device=diff.device)
    keep = (k[None, :] <= last_bins.to(diff.device)[:, None])  # (N, F)
    keep = (~keep if above else keep).to(diff.dtype)
    per_frame = ((diff.square() * keep[..., None]).sum(dim=1) / keep.sum(dim=1)[:, None]).sqrt()
    return per_frame.mean(dim=-1).reshape(batch_shape)


def lsd(
    estimate: Tensor,
    target: Tensor,
    *,
    n_fft: int = LSD_N_FFT,
    hop_length: int = LSD_HOP,
    eps: float = 1e-8,
    bins: slice | None = None,
) -> Tensor:
    """Log-spectral distance, per item over the last axis.

    ``mean_frames sqrt(mean_bins (log10 P_hat - log10 P)^2)`` with ``P = max(|STFT|^2, eps)``.

    Args:
        estimate: ``(..., T)`` the reconstruction; ``T > n_fft // 2`` (reflect padding).
        target: ``(..., T)`` the reference.
        n_fft: FFT size and Hann window length.
        hop_length: STFT hop.
        eps: floor on the power spectrum so silence has a finite log.
        bins: restrict to these frequency bins of the ``n_fft // 2 + 1``
            (e.g. ``slice(513, None)`` for the top half at ``n_fft=2048``).

    Returns:
        ``(...)`` float32 LSD; 0 for identical inputs, symmetric in its arguments.
    """
    with torch.autocast(device_type=target.device.type, enabled=False):
        diff, batch_shape = _log_power_pair(estimate, target, n_fft, hop_length, eps)
        return _lsd_from_diff(diff, batch_shape, bins)


def lsd_below(
    estimate: Tensor,
    target: Tensor,
    sample_rate: int,
    edge_hz: float | Tensor,
    *,
    n_fft: int = LSD_N_FFT,
    hop_length: int = LSD_HOP,
    eps: float = 1e-8,
) -> Tensor:
    """LSD over the bins at or below the reference's own band edge, per item.

    :func:`lsd` with the mean over bins restricted to ``k * sample_rate / n_fft <= edge_hz``
    (the edge's own bin included, as ``lsd_lf`` includes the cutoff's); an edge at the
    Nyquist frequency keeps every bin and gives :func:`lsd`.

    Args:
        estimate: ``(..., T)`` the reconstruction at ``sample_rate``.
        target: ``(..., T)`` the reference at ``sample_rate``.
        sample_rate: rate of both signals in Hz.
        edge_hz: where the reference's content ends, ``0 < edge_hz <= sample_rate / 2``:
            one value, or ``(...)`` one per item (e.g. ``audiosr.band.content_edge`` of the
            target, or a corpus manifest's ``lowpass_edge_hz``).
        n_fft, hop_length, eps: as in :func:`lsd`.

    Returns:
        ``(...)`` float32 LSD below each item's edge.
    """
    with torch.autocast(device_type=target.device.type, enabled=False):
        diff, batch_shape = _log_power_pair(estimate, target, n_fft, hop_length, eps)
        return _lsd_up_to(diff, batch_shape, _last_bins(edge_hz, batch_shape, sample_rate, n_fft))


def lsd_bands(
    estimate: Tensor,
    target: Tensor,
    sample_rate: int,
    cutoff_hz: float,
    *,
    edge_hz: float | Tensor | None = None,
    n_fft: int = LSD_N_FFT,
    hop_length: int = LSD_HOP,
    eps: float = 1e-8,
) -> dict[str, Tensor]:
    """Full-band, high-band and low-band LSD (and, given ``edge_hz``, below-edge LSD) from a single STFT.

    Bin ``k`` has frequency ``k * sample_rate / n_fft``. ``lsd_hf`` averages over
    bins strictly above ``cutoff_hz``, ``lsd_lf`` over bins at or below it; at
    44.1 kHz, ``n_fft=2048`` and a cutoff of 11025 Hz that is bins 513..1024 and
    0..512. ``lsd_below_edge`` is :func:`lsd_below` at ``edge_hz``.

    Args:
        estimate: ``(..., T)`` the reconstruction at ``sample_rate``.
        target: ``(..., T)`` the reference at ``sample_rate``.
        sample_rate: rate of both signals in Hz.
        cutoff_hz: the band edge, ``0 < cutoff_hz < sample_rate / 2``; normally the
            Nyquist frequency of the low-resolution input; or ``(...)`` one per item (the band
            edge each input was found to have, for inputs at the target rate).
        edge_hz: the reference's own edge, one value or ``(...)`` per item, as in :func:`lsd_below`.
        n_fft, hop_length, eps: as in :func:`lsd`.

    Returns:
        ``{"lsd": (...), "lsd_hf": (...), "lsd_lf": (...)}`` float32 tensors, and
        ``"lsd_below_edge": (...)`` given ``edge_hz``.
    """
    cutoffs = torch.as_tensor(cutoff_hz, dtype=torch.float64)
    if not bool(((cutoffs > 0) & (cutoffs < sample_rate / 2)).all()):
        raise ValueError(
            f"cutoff_hz must lie strictly between 0 and sample_rate / 2 = {sample_rate / 2}, "
            f"got {cutoffs.tolist()}"
        )
    with torch.autocast(device_type=target.device.type, enabled=False):
        diff, batch_shape = _log_power_pair(estimate, target, n_fft, hop_length, eps)
        if cutoffs.dim() == 0:
            # Last bin with k * sample_rate / n_fft <= cutoff_hz; exact arithmetic so a cutoff
            # that falls on a bin (11025 Hz at 44.1 kHz) is not moved by float rounding.
            last_lf = last_bin_at_or_below(float(cutoffs), sample_rate, n_fft)
            split = slice(0, last_lf + 1), slice(last_lf + 1, None)
            high, low = _lsd_from_diff(diff, batch_shape, split[1]), _lsd_from_diff(diff, batch_shape, split[0])
        else:
            last = _last_bins(cutoffs, batch_shape, sample_rate, n_fft)
            high, low = _lsd_up_to(diff, batch_shape, last, above=True), _lsd_up_to(diff, batch_shape, last)
        values = {"lsd": _lsd_from_diff(diff, batch_shape, None), "lsd_hf": high, "lsd_lf": low}
        if edge_hz is not None:
            values["lsd_below_edge"] = _lsd_up_to(diff, batch_shape, _last_bins(edge_hz, batch_shape, sample_rate, n_fft))
        return values


# Checkpoint selection: LSD alone rewards any energy in the missing band (noise included),
# SNR alone rewards leaving it empty. The score is LSD plus this many LSD units per dB of
# SNR the model loses against its own rough input beyond SNR_ALLOWANCE_DB, so a checkpoint
# cannot buy LSD with noise. The allowance is what a band at the true level with a random
# phase costs (its error adds to the missing band's: twice the error, 3 dB): without it, a
# band at half the true magnitude (1 dB) would beat the true band on the score.
SNR_PENALTY_PER_DB = 0.5
SNR_ALLOWANCE_DB = 3.0
# Both SNRs count up to this: an error 60 dB under the signal is no loss anyone hears. An input with
# nothing missing (a model for any input keeps it bit for bit, or fills a sliver above a cliff near
# the top) would otherwise weigh tens of dB against a change nobody can hear.
SNR_TRANSPARENT_DB = 60.0


# Inputs at the target rate split LSD-HF from LSD-LF at their own band edge, at most this far under
# the Nyquist frequency: an input with nothing missing still has a top band to be scored on.
TOP_BAND_HZ = 1000.0


def quality(estimate: Tensor, target: Tensor, sample_rate: int, cutoff_hz: float | Tensor,
            edge_hz: float | Tensor | None = None) -> dict[str, Tensor]:
    """``snr``, ``lsd``, ``lsd_hf`` and ``lsd_lf`` per item (and ``lsd_below_edge``, given the target's
    own ``edge_hz``): what validation and ``audiosr test`` report."""
    values = lsd_bands(estimate, target, sample_rate, cutoff_hz, edge_hz=edge_hz)
    values["snr"] = snr(estimate, target)
    return values


def snr_lost(snr_value: Tensor | float, reference_snr: Tensor | float) -> Tensor:
    """dB of SNR lost against a reference, both counted up to ``SNR_TRANSPARENT_DB``."""
    capped = [torch.as_tensor(v, dtype=torch.float64).clamp(max=SNR_TRANSPARENT_DB) for v in (reference_snr, snr_value)]
    return capped[0] - capped[1]


def selection_score(lsd_value: Tensor, snr_value: Tensor, input_snr: Tensor) -> Tensor:
    """``lsd + 0.5 * max(0, min(input_snr, 60) - min(snr, 60) - 3)`` per item, lower is better: what ``best``
    checkpoints are chosen by."""
    lost = snr_lost(snr_value, input_snr).to(lsd_value.dtype)
    return lsd_value + SNR_PENALTY_PER_DB * (lost - SNR_ALLOWANCE_DB).clamp_min(0)


# Loudness (numpy): what the listening page matches its versions by.


def k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """ITU-R BS.1770's K-weighting at ``rate``: two biquads ``(b, a)``, a +4 dB shelf above ~1.7 kHz
    then a 38-Hz high-pass.

    The standard tabulates them at 48 kHz only; these are their analogue prototypes taken to
    ``rate`` by the bilinear transform (libebur128's constants), equal to the table at 48 kHz.
    """
    k = math.tan(math.pi * 1681.974450955533 / rate)
    q = 0.7071752369554196
    high = 10 ** (3.999843853973347 / 20)
    band = high ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (np.array([high + band * k / q + k * k, 2 * (k * k - high), high - band * k / q + k * k]) / a0,
             np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    k = math.tan(math.pi * 38.13547087602444 / rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = (np.array([1.0, -2.0, 1.0]), np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]))
    return [shelf, high_pass]


def loudness(signal: np.ndarray, rate: int) -> float:
    """Integrated loudness (LUFS) of ``signal`` ``(C, T)`` or ``(T,)``, as ITU-R BS.1770-4 defines it.

    K-weighted mean square in 400-ms blocks every 100 ms, summed over channels (each weighing 1:
    mono and stereo), blocks below -70 LUFS dropped, then those more than 10 LU below the rest;
    a clip shorter than a block is one block. ``-inf`` for silence. A full-scale 997-Hz sine
    reads -3.01.
    """
    from scipy.signal import lfilter

    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    for b, a in k_weighting(rate):
        x = lfilter(b, a, x, axis=-1)
    block, hop = round(0.4 * rate), round(0.1 * rate)
    if x.shape[-1] <= block:
        powers = np.square(x).mean(axis=-1).sum(keepdims=True)
    else:
        cumulative = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(np.square(x), axis=-1)], axis=-1)
        starts = np.arange(0, x.shape[-1] - block + 1, hop)
        powers = ((cumulative[:, starts + block] - cumulative[:, starts]) / block).sum(axis=0)
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10 * np.log10(powers)
        kept = powers[levels > -70.0]
        if not kept.size:
            return -math.inf
        relative = -0.691 + 10 * math.log10(kept.mean()) - 10.0
        return float(-0.691 + 10 * np.log10(powers[levels > max(-70.0, relative)].mean()))
