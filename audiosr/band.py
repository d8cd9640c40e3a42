"""Where a signal's content ends, and filters that split a band there (torch, batched).

Real low-rate audio was made by some low-pass filter: a resampler's (flat to 90-98 % of
the Nyquist frequency, then a cliff), an encoder's (Ogg Vorbis and MP3 cut at 13-21 kHz
at 44.1 kHz) or a gentler one. Above that cliff the signal says nothing; below it, it
*is* the recording. :func:`content_edge` finds the cliff from the signal itself, so that

* the ``Generator`` keeps the input up to where the input has content, and lets the
  network fill only above (``keep_band: auto``), per item and per inference window;
* training ignores what a target cannot tell: above the edge of an encoder's low-pass
  the target is empty because of the encoder, not because the recording is
  (``audiosr.training.module``).

The detector looks for a *cliff*, not for low energy: a bin counts as the edge when the
smoothed long-term spectrum there is ``drop_db`` below the mean level of the band just
under it, and from ``confirm_hz`` higher up to the top of the spectrum it stays ``confirm_db``
below (a stopband); the edge is the last bin before it still within ``EDGE_DB`` of that level:
about the filter's -10 dB point, so that its transition band, real signal though attenuated,
is kept (replacing it costs SNR; leaving it a few dB low costs a little LSD). Natural spectra
fall gradually (a few dB per kHz, 20 for a chime's steepest), and where they dip, a tone's
fall or a gap between formants, they come back; every filter that makes low-rate audio falls
tens of dB in a few hundred Hz and stays down. Where no cliff is found, the edge is the top
of the searched range.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The analysis of `content_edge`: long-term power spectrum with 2048-point frames (21.5 Hz
# bins at 44.1 kHz), smoothed over about 100 Hz.
EDGE_N_FFT = 2048
SMOOTH_HZ = 100.0
# The reference level is the mean power between these distances below a candidate bin.
REFERENCE_HZ = (860.0, 215.0)
DROP_DB = 10.0
CONFIRM_DB = 30.0
CONFIRM_HZ = 300.0
# The edge is the last bin before the cliff still within this of the band below it.
EDGE_DB = 10.0
# Power at or below this (relative to full scale, per bin) is no content at all.
FLOOR_DB = -150.0
# `content_edge(last=True)`: a further cliff needs this much band between it and the one under it,
# its level spanning at most PLATEAU_FALL_DB; at most MAX_CLIFFS cliffs are followed.
PLATEAU_HZ = 200.0
PLATEAU_FALL_DB = 10.0
MAX_CLIFFS = 3


def mean_power(x: torch.Tensor, n_fft: int = EDGE_N_FFT) -> torch.Tensor:
    """``(..., T)`` -> ``(..., n_fft // 2 + 1)``: mean power spectrum over Hann frames (float32)."""
    shape, length = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, length).float()
    if length < n_fft:
        flat = F.pad(flat, (0, n_fft - length))
    window = torch.hann_window(n_fft, periodic=True, device=x.device)
    spec = torch.stft(flat, n_fft, n_fft // 2, window=window, center=False, return_complex=True)
    power = (spec.real.square() + spec.imag.square()).mean(dim=-1) / window.square().sum()
    return power.reshape(*shape, n_fft // 2 + 1)


def content_edge(
    x: torch.Tensor,
    rate: int,
    lowest_hz: float,
    highest_hz: float,
    drop_db: float = DROP_DB,
    confirm_db: float = CONFIRM_DB,
    confirm_hz: float = CONFIRM_HZ,
    last: bool = False,
) -> torch.Tensor:
    """The frequency (Hz) where each signal's content ends: ``(..., T)`` -> ``(...)`` float32.

    Searches ``[lowest_hz, highest_hz]`` for the first cliff (see the module docstring), or with
    ``last`` the last one; returns ``highest_hz`` where there is none (content runs to the top, or
    the whole range is empty: then nothing is lost either way).

    The first cliff is where the loud part of a recording ends; the last, where anything of it
    ends. They differ on a recording that falls steeply and carries on, quieter but level, up to
    the filter that made the input (crickets over a hiss, in an 8 kHz file). With ``last``, above
    each cliff found the search goes on with the band under a candidate measured above that cliff
    only (from ``confirm_hz`` over it): a further cliff counts when at least ``PLATEAU_HZ`` of band
    lies between, and that band's level spans at most ``PLATEAU_FALL_DB`` (a plateau). A gentle
    filter's roll-off keeps falling, so it is no plateau and its cliff stays where it was.
    """
    if not 0 < lowest_hz < highest_hz <= rate / 2:
        raise ValueError(f"need 0 < lowest_hz < highest_hz <= rate / 2, got {lowest_hz}, {highest_hz} at {rate} Hz")
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        power = mean_power(x)
        shape, bins = power.shape[:-1], power.shape[-1]
        power = power.reshape(-1, 1, bins)
        rows = power.shape[0]
        bin_hz = rate / EDGE_N_FFT
        smooth = max(1, round(SMOOTH_HZ / bin_hz)) | 1
        power = F.avg_pool1d(F.pad(power, (smooth // 2, smooth // 2), mode="replicate"), smooth, 1)[:, 0]
        tiny = 10 ** (FLOOR_DB / 10)
        level = 10 * torch.log10(power + tiny)
        far, near = (max(1, round(hz / bin_hz)) for hz in REFERENCE_HZ)
        cumulative = F.pad(power.cumsum(dim=-1), (far + 1, 0))
        k = torch.arange(bins, device=x.device)
        # The loudest bin from `confirm_hz` above on: a filter's stopband stays down to the top of
        # the spectrum, while a natural spectrum that dips (a tone's fall, a formant gap) comes back.
        ahead = max(1, round(confirm_hz / bin_hz))
        loudest_above = level.flip(-1).cummax(dim=-1).values.flip(-1)
        later = loudest_above[:, (k + ahead).clamp(max=bins - 1)]
        first, top = math.ceil(lowest_hz / bin_hz), min(bins - 1, math.floor(highest_hz / bin_hz))
        in_range = (k >= first) & (k <= top)
        upper = ((k - near + 1).clamp(min=0) + far + 1).expand(rows, -1)

        def cliff_above(floor: torch.Tensor, need: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """The first cliff whose reference band (bins [k - far, k - near]) starts at ``floor`` (B,) or
            above and holds ``need`` bins or more: (found, the cliff's bin, the edge's bin)."""
            # Mean power over the reference band from a cumulative sum, for every k.
            lower = torch.maximum(k - far, floor[:, None]).clamp(min=0) + far + 1
            count = upper - lower
            reference = 10 * torch.log10(
                (cumulative.gather(1, upper) - cumulative.gather(1, lower.clamp(max=upper))) / count.clamp(min=1) + tiny)
            cliff = (level < reference - drop_db) & (later < reference - confirm_db) & (reference > FLOOR_DB + confirm_db)
            cliff &= in_range
            if need:  # a plateau: `need` bins or more under the cliff, their level within PLATEAU_FALL_DB
                cliff &= count >= need
                above = k >= floor[:, None]
                highest = torch.where(above, level, torch.full_like(level, -math.inf)).cummax(dim=-1).values
                lowest = torch.where(above, level, torch.full_like(level, math.inf)).cummin(dim=-1).values
                under = (k - near).clamp(min=0)
                cliff &= (highest[:, under] - lowest[:, under]) <= PLATEAU_FALL_DB
            found = cliff.any(dim=-1)
            index = torch.where(cliff, k, torch.full_like(k, bins - 1)).amin(dim=-1)
            # Back from the cliff to where the level is still within EDGE_DB of the band below it:
            # a gentle filter's edge sits below its cliff (resampy kaiser_fast: ~200 Hz).
            at_cliff = reference.gather(1, index[:, None])
            before = ((k <= index[:, None]) & (k >= torch.maximum(index - far, floor)[:, None])
                      & (level >= at_cliff - EDGE_DB))
            start = torch.where(before, k, torch.full_like(k, -1)).amax(dim=-1)
            return found, index, torch.where(start >= 0, start, index)

        found, cliff, index = cliff_above(torch.zeros(rows, dtype=torch.long, device=x.device), 0)
        if last:
            gap, need = ahead, max(1, round(PLATEAU_HZ / bin_hz))
            for _ in range(MAX_CLIFFS - 1):
                further, next_cliff, next_index = cliff_above(cliff + gap, need)
                further &= found
                if not bool(further.any()):
                    break
                cliff, index = torch.where(further, next_cliff, cliff), torch.where(further, next_index, index)
        edge = torch.where(found, index.float() * bin_hz, torch.full_like(index, 0).float() + highest_hz)
        return edge.reshape(shape)


def lowpass_kernels(cutoff_hz: torch.Tensor, rate: int, width_hz: float, attenuation_db: float = 80.0) -> torch.Tensor:
    """Zero-phase Kaiser-windowed low-passes, one per cut-off: ``(N,)`` Hz -> ``(N, K)``, ``K`` odd.

    Each passes below ``cutoff - width / 2`` and stops above ``cutoff + width / 2``; its
    taps sum to one, so ``y + h * (x - y)`` is ``x`` below the band and ``y`` above it
    (the same design as ``audiosr.dsp.crossover_kernel``, batched).
    """
    width = 2 * math.pi * width_hz / rate
    a = attenuation_db
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    taps = math.ceil((a - 8) / (2.285 * width)) | 1
    n = torch.arange(taps, device=cutoff_hz.device, dtype=torch.float32) - taps // 2
    fc = (cutoff_hz.float() / rate).reshape(-1, 1)  # cycles per sample
    window = torch.kaiser_window(taps, periodic=False, beta=beta, device=cutoff_hz.device)
    kernels = 2 * fc * torch.sinc(2 * fc * n) * window
    return kernels / kernels.sum(dim=-1, keepdim=True)


def lowpass_response(cutoff_hz: torch.Tensor, rate: int, width_hz: float, n_fft: int) -> torch.Tensor:
    """:func:`lowpass_kernels`' frequency responses at the bins of ``n_fft``-point frames: ``(N,)`` Hz ->
    ``(N, n_fft // 2 + 1)`` real (zero-phase: the kernels are symmetric)."""
    return fir_response(lowpass_kernels(cutoff_hz, rate, width_hz), n_fft)


def fir_response(kernels: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Zero-phase (symmetric, odd) kernels ``(N, K)`` -> their frequency responses at the bins of
    ``n_fft``-point frames ``(N, n_fft // 2 + 1)``, real."""
    taps = kernels.shape[-1]
    over = -(-taps // n_fft)  # a transform at least as long as the kernel, a multiple of n_fft
    size = over * n_fft
    centred = torch.roll(F.pad(kernels.float(), (0, size - taps)), -(taps // 2), dims=-1)
    return torch.fft.rfft(centred, size)[..., ::over].real


def kernel_taps(rate: int, width_hz: float, attenuation_db: float = 80.0) -> int:
    """The length of :func:`lowpass_kernels` for this width (what a receptive field adds)."""
    return lowpass_kernels(torch.tensor([rate / 4]), rate, width_hz, attenuation_db).shape[-1]


def filter_each(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Zero-phase FIR filtering of ``(B, C, T)`` with one odd kernel per item ``(B, K)`` (or one ``(K,)``).

    FFT convolution with zeros outside the signal: a few hundred taps cost less than direct
    convolution on a CPU. The transform length is the smallest of only small prime factors that
    holds the linear convolution: often far below the next power of two.
    """
    from scipy.fft import next_fast_len

    length, taps = x.shape[-1], kernels.shape[-1]
    size = next_fast_len(length + taps - 1, real=True)
    kernel_spectrum = torch.fft.rfft(kernels.float(), size)
    if kernel_spectrum.dim() == 2:
        kernel_spectrum = kernel_spectrum.unsqueeze(1)
    full = torch.fft.irfft(torch.fft.rfft(x.float(), size) * kernel_spectrum, size)
    return full[..., taps // 2: taps // 2 + length]


# `level_ceiling`: the input's level and slope just below its edge, in two bands (distances below
# the edge, Hz), per STFT frame; the slope is followed this far above the nearer band, then held.
CEILING_N_FFT, CEILING_HOP = 1024, 256
CEILING_NEAR_HZ = (600.0, 300.0)
CEILING_FAR_HZ = (1500.0, 600.0)
CEILING_SPAN_HZ = 1000.0
# The slope counts down to this (dB per kHz; steeper is taken as this), never up.
CEILING_STEEPEST_DB_PER_KHZ = -40.0
# The output's level is compared in a sliding band this wide, over three frames; the input's
# reference is the loudest of CEILING_REACH frames each side (a transient keeps its band).
CEILING_BAND_HZ = 500.0
CEILING_REACH = 2
CEILING_FADE_HZ = 200.0


def level_ceiling(output: torch.Tensor, rough: torch.Tensor, edge_hz: torch.Tensor, rate: int,
                  margin_db: float) -> torch.Tensor:
    """Lower the output above each item's edge where it is louder than the input's own spectrum allows.

    ``output``, ``rough``: ``(B, 1, T)``; ``edge_hz``: ``(B,)``. The waveform form of
    :func:`ceiling_gain` (see there): both signals' frames, the gain, and back.
    """
    from audiosr.frames import istft, stft

    with torch.no_grad(), torch.autocast(output.device.type, enabled=False):
        batch, length = output.shape[0], output.shape[-1]
        full = stft(output.reshape(batch, length).float(), CEILING_N_FFT, CEILING_HOP)
        reference = stft(rough.reshape(batch, length).float(), CEILING_N_FFT, CEILING_HOP)
        limited = full * ceiling_gain(full, reference, edge_hz, rate, margin_db)
        return istft(limited, CEILING_N_FFT, CEILING_HOP, length).reshape(output.shape)


def ceiling_gain(spectrum: torch.Tensor, reference: torch.Tensor, edge_hz: torch.Tensor, rate: int,
                 margin_db: float, from_bin: int = 0) -> torch.Tensor:
    """The gain ``(B, F - from_bin, N)`` (at most 1) that holds ``spectrum`` under the input's own spectrum
    continued, on the bins from ``from_bin`` up.

    ``spectrum``, ``reference``: the output's and the input's frames (``CEILING_N_FFT``, ``CEILING_HOP``,
    :func:`audiosr.frames.stft`); ``edge_hz``: ``(B,)``. Per frame, the input's power
    density just below its edge (``CEILING_NEAR_HZ``) and the slope from the band under that
    (``CEILING_FAR_HZ``, never rising) set a ceiling that continues the input's spectrum upwards
    for ``CEILING_SPAN_HZ`` and stays level beyond, ``margin_db`` above it, and never under the
    input's own level at the same frequency and time (a tone right at the edge). Above the reference
    band (from ``CEILING_NEAR_HZ[1]`` below the edge: the crossover, where a ``Generator`` blends
    the input into the network's output, is included), each bin of the output whose local level
    (``CEILING_BAND_HZ``, three frames) is over the ceiling is scaled down to it, phase kept;
    below, the gain is 1. Why: a band the network invents louder than the recording's own
    falloff supports costs SNR where the recording is clean (a bump at the band edge, or a loud
    band above a spectrum that falls steeply), and nothing in the input argues for it.
    """
    with torch.no_grad(), torch.autocast(spectrum.device.type, enabled=False):
        batch = spectrum.shape[0]
        # Only bins from under the lowest reference band up take part (the rest keep gain 1).
        bin_hz = rate / CEILING_N_FFT
        first = max(0, math.floor((float(edge_hz.min()) - CEILING_FAR_HZ[0] - CEILING_BAND_HZ) / bin_hz))
        output, reference = spectrum[:, first:], reference[:, first:]
        hz = (first + torch.arange(output.shape[1], device=output.device, dtype=torch.float32)) * bin_hz
        edge = edge_hz.float().reshape(batch, 1)
        power = reference.real.square() + reference.imag.square()
        tiny = 10 ** (FLOOR_DB / 10)

        def band_db(lo_below: float, hi_below: float) -> torch.Tensor:
            inside = ((hz >= edge - lo_below) & (hz < edge - hi_below)).float()  # (B, F)
            density = torch.einsum("bf,bfn->bn", inside, power) / inside.sum(dim=1, keepdim=True).clamp_min(1)
            density = F.max_pool1d(density[:, None], 2 * CEILING_REACH + 1, 1, CEILING_REACH)[:, 0]
            return 10 * torch.log10(density + tiny)  # (B, N)

        near, far = band_db(*CEILING_NEAR_HZ), band_db(*CEILING_FAR_HZ)
        near_centre = edge - sum(CEILING_NEAR_HZ) / 2  # (B, 1)
        distance_khz = (sum(CEILING_FAR_HZ) - sum(CEILING_NEAR_HZ)) / 2000
        slope = ((near - far) / distance_khz).clamp(CEILING_STEEPEST_DB_PER_KHZ, 0.0)  # (B, N)
        above = ((hz - near_centre).clamp(0, CEILING_SPAN_HZ) / 1000)[..., None]  # (B, F, 1)
        ceiling_db = near[:, None] + slope[:, None] * above + margin_db  # (B, F, N)
        width = max(1, round(CEILING_BAND_HZ * CEILING_N_FFT / rate)) | 1

        def local(p: torch.Tensor) -> torch.Tensor:
            return _box_mean(_box_mean(p, 1, width), 2, 3)

        # Never under the input's own level where it has one (a tone right at its edge is the recording).
        allowed = torch.maximum(torch.exp(ceiling_db * (math.log(10) / 10)), local(power))
        out_power = output.real.square() + output.imag.square()
        gain = (allowed / local(out_power).clamp_min(tiny)).clamp(max=1.0).sqrt()
        # From the top of the reference band up, faded in over CEILING_FADE_HZ; the gain smoothed over
        # bins and frames: a step in it across bins would spread, through the frames' overlap-add,
        # into the band below.
        start = (edge - CEILING_NEAR_HZ[1])[..., None]
        fade = ((hz[None, :, None] - start) / CEILING_FADE_HZ).clamp(0, 1)
        gain = 1 - fade * (1 - gain)
        smooth = max(1, round(CEILING_FADE_HZ * CEILING_N_FFT / rate / 2)) | 1
        gain = _box_mean(_box_mean(gain, 1, smooth), 2, 3)
        if from_bin >= first:
            return gain[:, from_bin - first:]
        return F.pad(gain, (0, 0, first - from_bin, 0), value=1.0)


def _box_mean(x: torch.Tensor, dim: int, width: int) -> torch.Tensor:
    """The mean over ``width`` (odd) neighbours along ``dim``, over those that exist at the ends.

    From a cumulative sum, read at shifted slices: pooling layers cost several times more on a
    CPU for these shapes.
    """
    half, n = width // 2, x.shape[dim]
    if half == 0:
        return x
    cumulative = x.cumsum(dim)
    # total[i] = cumulative[min(i + half, n - 1)] - cumulative[i - half - 1] (zero below index 0).
    total = torch.empty_like(cumulative)
    reach = min(half, n)
    total.narrow(dim, 0, n - reach).copy_(cumulative.narrow(dim, reach, n - reach))
    total.narrow(dim, n - reach, reach).copy_(cumulative.narrow(dim, n - 1, 1).expand_as(total.narrow(dim, n - reach, reach)))
    behind = min(half + 1, n)
    total.narrow(dim, behind, n - behind).sub_(cumulative.narrow(dim, 0, n - behind))
    i = torch.arange(n, device=x.device)
    count = ((i + half).clamp(max=n - 1) - (i - half - 1).clamp(min=-1)).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = n
    return total / count.reshape(shape)
