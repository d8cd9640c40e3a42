"""Degradations run batched on the model's device, in the training step instead of the loader.

A model for any input is trained on inputs whose band was cut in every way users' files are
(:class:`~audiosr.data.AnyBand`). In a loader process those cuts cost most of an item's time:
resampy and soxr to a lower rate and back, zero-phase IIR filters, a codec round trip. Of these,
everything but the codec is linear filtering and rounding, which a GPU does for a whole batch in a
few milliseconds. So with ``AudioPairDataModule(degrade_on_device=True)`` the loader only *draws*
each item's degradation (the same draws, in the same order, as on the CPU) and writes it down as a
plan: a row of numbers (:func:`plan_of`). After the batch reaches the device, the data module's
``on_after_batch_transfer`` carries the plans out (:func:`apply_plans`). A codec round trip cannot
run there: it is made in the loader as before, or, from shards written with ``--codecs``, read
ready-made.

How each step is done on the device, and how it differs from the loader's:

* **zero-phase IIR low-pass** (scipy's ``sosfiltfilt`` in the loader): the spectrum is multiplied by
  ``|H|^2`` of the second-order sections, evaluated in float64, on an FFT long enough that nothing
  wraps around; the ends are extended by odd reflection as ``sosfiltfilt`` does, over a longer
  stretch (:data:`EDGE_PAD`), so the two agree away from the ends to float32 precision;
* **a resampler** to a lower rate and back: ``torchaudio.functional.resample`` with a Kaiser-windowed
  sinc whose power response follows the CPU resampler's it stands for to within a few dB down to
  -70 dB (:data:`KERNELS`; resampy and soxr cannot run on a GPU). The network is trained on the band edge and its shape, not on one resampler's ripple, so this is a
  change of the training distribution's details, not of its kinds;
* **16-bit rounding** at the low rate, as a file of that depth holds it (``to_pcm``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from audiosr.dsp import nyquist

# What a plan row asks for.
KEEP, LOWPASS, LOW_RATE = 0, 1, 2
# The most second-order sections of one IIR low-pass (order 16).
MAX_SECTIONS = 8
# Row layout: op, gain, rate, down resampler, back resampler, bits, sections, then the sections'
# (b0, b1, b2, a0, a1, a2) each, identity sections after the used ones.
HEADER = 7
PLAN_SIZE = HEADER + 6 * MAX_SECTIONS
IDENTITY_SECTION = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
# Kaiser-windowed sinc per resampler name: (zero crossings each side, rolloff, beta), fitted so that
# the power response of a resampling to 16 kHz stays within 3 dB of the CPU resampler's (4.4 dB for
# kaiser_fast) from 0.75 x Nyquist to where it falls below -70 dB (a grid search over the three:
# resampy's own kaiser_best parameters, given to torchaudio, put its edge 2 % higher).
KERNELS = {
    "kaiser_best": (64, 0.925, 18.0),
    "kaiser_fast": (24, 0.845, 20.0),
    "soxr_vhq": (96, 0.955, 12.0),
    "soxr_hq": (96, 0.955, 14.77),
}
RESAMPLER_CODES = {name: code for code, name in enumerate(KERNELS)}
# Samples of odd reflection added at each end before the FFT low-pass (sosfiltfilt adds a few dozen;
# a long one keeps a sharp filter's ringing from wrapping around).
EDGE_PAD = 4096


def plan_of(degradation, source_rate: int, target_rate: int, gain: float) -> np.ndarray:
    """The plan row of one of :class:`~audiosr.data.AnyBand`'s non-codec degradations.

    ``LowRate`` (a lower rate and back, after its own ``Lowpass`` or ``Resample``), ``Lowpass`` at the
    target rate, and ``Resample`` between equal rates (nothing lost) are what it draws.
    """
    from audiosr.data.degradations import Lowpass, LowRate, Resample, _design

    row = keep_plan(gain)

    def sections(filter_: Lowpass, cutoff_of: int) -> None:
        sos = _design(filter_.kind, filter_.order, filter_.cutoff * nyquist(cutoff_of), target_rate,
                      filter_.ripple_db, filter_.stop_db)
        if len(sos) > MAX_SECTIONS:
            raise ValueError(f"an IIR low-pass of order {filter_.order} has more than {MAX_SECTIONS} sections")
        row[6] = len(sos)
        row[HEADER:HEADER + sos.size] = sos.reshape(-1)

    if isinstance(degradation, LowRate):
        row[0], row[2], row[5] = LOW_RATE, degradation.rate, degradation.bits or 0
        made_by = degradation.made_by
        if isinstance(made_by, Lowpass):
            sections(made_by, degradation.rate)
            row[3] = _code(made_by.resampler)
        elif isinstance(made_by, Resample):
            row[3] = _code(made_by.method)
        else:
            raise ValueError(f"cannot run {made_by.describe()} on the device")
        row[4] = _code(degradation.back)
    elif isinstance(degradation, Lowpass):
        if source_rate != target_rate:
            raise ValueError("a Lowpass runs on the device only between equal rates")
        row[0] = LOWPASS
        sections(degradation, source_rate)
    elif isinstance(degradation, Resample) and source_rate == target_rate:
        row[0] = KEEP
    else:
        raise ValueError(f"cannot run {degradation.describe()} on the device")
    return row


def keep_plan(gain: float = 1.0) -> np.ndarray:
    """The plan row that leaves an item as it is (one the loader degraded already)."""
    row = np.zeros(PLAN_SIZE, dtype=np.float64)
    row[0], row[1] = KEEP, gain
    row[HEADER:] = np.tile(IDENTITY_SECTION, MAX_SECTIONS)
    return row


def _code(resampler: str) -> int:
    if resampler not in RESAMPLER_CODES:
        raise ValueError(f"resampler {resampler!r} has no device kernel; device kernels: {', '.join(KERNELS)}")
    return RESAMPLER_CODES[resampler]


def apply_plans(x: torch.Tensor, plans: torch.Tensor, rate: int) -> torch.Tensor:
    """Carry out ``plans`` ``(B, PLAN_SIZE)`` on ``x`` ``(B, C, T)`` (the targets times each row's gain), at
    ``rate``: the batch's inputs, on ``x``'s device, in ``x``'s dtype."""
    if plans.shape != (x.shape[0], PLAN_SIZE):
        raise ValueError(f"plans of shape {tuple(plans.shape)} for a batch of {x.shape[0]}: need ({x.shape[0]}, "
                         f"{PLAN_SIZE})")
    plans = plans.to(device=x.device, dtype=torch.float64)
    out = x.clone()
    filtered = torch.nonzero(plans[:, 6] > 0).flatten()
    if filtered.numel():
        out[filtered] = zero_phase_lowpass(out[filtered], plans[filtered, HEADER:].reshape(-1, MAX_SECTIONS, 6))
    low_rate = plans[:, 0] == LOW_RATE
    groups = torch.unique(plans[low_rate][:, [2, 3, 4, 5]], dim=0) if low_rate.any() else []
    for rate_code in groups:
        low, down, back, bits = (int(v) for v in rate_code.tolist())
        members = torch.nonzero(low_rate & (plans[:, [2, 3, 4, 5]] == rate_code).all(dim=1)).flatten()
        y = resample_with(out[members], rate, low, list(KERNELS)[down])
        if bits:
            gain = plans[members, 1].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
            y = to_grid(y / gain, bits) * gain
        out[members] = resample_with(y, low, rate, list(KERNELS)[back])[..., :x.shape[-1]]
    return out


def resample_with(x: torch.Tensor, rate_in: int, rate_out: int, resampler: str) -> torch.Tensor:
    """``x`` from ``rate_in`` to ``rate_out`` with the device kernel that stands for ``resampler``;
    ``ceil(T * rate_out / rate_in)`` samples, as :func:`audiosr.dsp.resample` gives, zero-padded if short."""
    width, rolloff, beta = KERNELS[resampler]
    y = x.clone() if rate_in == rate_out else _torchaudio_resample(x, rate_in, rate_out, width, rolloff, beta)
    length = -(-x.shape[-1] * rate_out // rate_in)
    if y.shape[-1] < length:
        y = torch.nn.functional.pad(y, (0, length - y.shape[-1]))
    return y[..., :length]


def _torchaudio_resample(x, rate_in, rate_out, width, rolloff, beta):
    return _resampler(rate_in, rate_out, width, rolloff, beta, x.device, x.dtype)(x)


@functools.lru_cache(maxsize=64)
def _resampler(rate_in, rate_out, width, rolloff, beta, device, dtype):
    """torchaudio's resampler, its kernel made once per pair of rates and device (the functional
    form makes it anew at every call, longer than the resampling itself)."""
    import torchaudio.transforms as T

    return T.Resample(rate_in, rate_out, resampling_method="sinc_interp_kaiser", lowpass_filter_width=width,
                      rolloff=rolloff, beta=beta, dtype=dtype).to(device)


def to_grid(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` on the grid of ``bits``-bit PCM: rounded (ties to even), clipped, as :func:`~audiosr.data.pairs.to_pcm`."""
    steps = float(2 ** (bits - 1))
    return torch.clamp(torch.round(x * steps), -steps, steps - 1) / steps


def zero_phase_lowpass(x: torch.Tensor, sections: torch.Tensor) -> torch.Tensor:
    """Forward-backward IIR filtering of ``x`` ``(B, C, T)``, each item by its own second-order
    ``sections`` ``(B, S, 6)``: the spectrum times ``|H|^2``, after odd reflection at both ends."""
    length = x.shape[-1]
    pad = min(EDGE_PAD, length - 1)
    first, last = x[..., :1], x[..., -1:]
    extended = torch.cat([2 * first - x[..., 1:pad + 1].flip(-1), x, 2 * last - x[..., -pad - 1:-1].flip(-1)], dim=-1)
    n = _fast_length(extended.shape[-1] + 2 * EDGE_PAD)
    spectrum = torch.fft.rfft(extended.double(), n=n)
    power = squared_response(sections, n).to(spectrum.device)
    filtered = torch.fft.irfft(spectrum * power.unsqueeze(1), n=n)
    return filtered[..., pad:pad + length].to(x.dtype)


def squared_response(sections: torch.Tensor, n: int) -> torch.Tensor:
    """``|H(e^{jw})|^2`` of each item's sections ``(B, S, 6)`` at the ``n // 2 + 1`` bins of an ``n``-point
    FFT, float64 ``(B, n // 2 + 1)``."""
    sections = sections.double()
    w = 2 * torch.pi * torch.arange(n // 2 + 1, dtype=torch.float64, device=sections.device) / n
    z1, z2 = torch.exp(-1j * w), torch.exp(-2j * w)  # (F,)
    b0, b1, b2, a0, a1, a2 = (sections[..., i, None] for i in range(6))  # each (B, S, 1)
    numerator = b0 + b1 * z1 + b2 * z2
    denominator = a0 + a1 * z1 + a2 * z2
    return (numerator.abs() ** 2 / denominator.abs() ** 2).prod(dim=1)


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c at least ``n`` (FFTs are fast there)."""
    best = 1 << (n - 1).bit_length()
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best
