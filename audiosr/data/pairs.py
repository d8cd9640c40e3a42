"""How a low-rate signal and the network's input are made from a high-rate target."""

from __future__ import annotations

import numpy as np
import resampy

# resampy filters; "kaiser_best" is the default anti-aliasing low-pass for making the
# low-rate signal, "kaiser_fast" the study's rough upsampler for the network's input.
RESAMPY_FILTERS = ("kaiser_best", "kaiser_fast", "sinc_window")


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``length`` samples."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def resample(x: np.ndarray, rate_in: int, rate_out: int, filter: str, length: int | None = None) -> np.ndarray:
    """Resample the last axis of ``x`` with resampy (zero-phase, so sample-aligned).

    Args:
        x: float array ``(..., T)``.
        length: output length; defaults to resampy's ``floor(T * rate_out / rate_in)``.

    Returns:
        float32 array ``(..., length)``.
    """
    if filter not in RESAMPY_FILTERS:
        raise ValueError(f"unknown resampy filter {filter!r}; choose one of {RESAMPY_FILTERS}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if rate_in != rate_out:
        x = resampy.resample(x, rate_in, rate_out, filter=filter, axis=-1)
    if length is not None:
        x = fit_length(x, length)
    return x.astype(np.float32, copy=False)


def make_pair(
    target: np.ndarray,
    target_rate: int,
    source_rate: int,
    lowpass_filter: str = "kaiser_best",
    input_filter: str = "kaiser_fast",
) -> tuple[np.ndarray, np.ndarray]:
    """Degrade ``target`` ``(..., T)`` to the source rate and bring it back.

    Returns:
        ``(low, rough)``: the low-rate signal ``(..., ceil(T * source / target))`` and
        its ``input_filter`` upsampling ``(..., T)``, sample-aligned with ``target``.
    """
    n = target.shape[-1]
    low_length = -(-n * source_rate // target_rate)
    low = resample(target, target_rate, source_rate, lowpass_filter, low_length)
    rough = resample(low, source_rate, target_rate, input_filter, n)
    return low, rough
