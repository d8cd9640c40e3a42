"""Aligned training pairs: the low-rate signal, the network's rough input and the target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from audiosr.band import content_edge
from audiosr.data.degradations import AnyBand, Degradation, Resample
from audiosr.data.on_device import keep_plan
from audiosr.dsp import nyquist, resample

# A target's own edge (an encoder's low-pass) is searched for from this far above the
# source Nyquist frequency up: below, the input carries whatever the target has.
TARGET_EDGE_FROM_HZ = 1000.0
# With the input at the target rate (a model for any input) the input's band may end anywhere, so
# the target's own edge is searched from this low up: a target that is itself band-limited (a file
# once upsampled, an encoder's cut) never teaches the model to leave a band empty.
ANY_BAND_EDGE_FROM_HZ = 3000.0
# What `PairMaker.input_bits` accepts: PCM word lengths, and 32 (or None) for float.
PCM_BITS = (8, 16, 24)
FLOAT_BITS = 32


def to_pcm(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` on the grid of ``bits``-bit PCM, as a file of that depth holds it: float32, same shape.

    Each sample rounds to the nearest multiple of ``2 ** -(bits - 1)`` (ties to even) and is
    clipped to ``[-1, 1 - 2 ** -(bits - 1)]``; no dither. That grid is what soundfile reads from
    a ``PCM_16`` file (``bits=16``: code / 32768). Writing one, libsndfile 1.2 truncates
    (``floor(x * 32768)``) instead of rounding: a steady half-step offset, not copied here.
    """
    if bits not in PCM_BITS:
        raise ValueError(f"bits must be one of {PCM_BITS}, got {bits}")
    steps = float(2 ** (bits - 1))
    codes = np.clip(np.round(np.asarray(x, dtype=np.float64) * steps), -steps, steps - 1)
    return (codes / steps).astype(np.float32)


def check_input_bits(bits: int | None) -> int | None:
    """``bits`` as :class:`PairMaker` keeps it: a PCM word length, or ``None`` for float (``32`` or ``None``)."""
    if bits is None or bits == FLOAT_BITS:
        return None
    if bits not in PCM_BITS:
        raise ValueError(f"input bits must be one of {PCM_BITS} (PCM) or {FLOAT_BITS} / null (float), got {bits}")
    return int(bits)


def make_pair(
    target: np.ndarray,
    target_rate: int,
    source_rate: int,
    lowpass_filter: str = "kaiser_best",
    input_filter: str = "kaiser_fast",
) -> tuple[np.ndarray, np.ndarray]:
    """Degrade ``target`` ``(..., T)`` to the source rate with a resampler and bring it back.

    Returns:
        ``(low, rough)``: the low-rate signal ``(..., ceil(T * source / target))`` and
        its ``input_filter`` upsampling ``(..., T)``, sample-aligned with ``target``.
    """
    low, _ = Resample(lowpass_filter)(target, source_rate, target_rate, np.random.default_rng(0))
    return low, resample(low, source_rate, target_rate, input_filter, target.shape[-1])


def target_edges(target: torch.Tensor, source_rate: int, target_rate: int) -> torch.Tensor:
    """``(..., T)`` -> ``(...)``: where each target's own content ends (Hz; ``target_rate / 2`` if it
    reaches the top), searched above the band its input carries anyway."""
    top = nyquist(target_rate)
    lowest = ANY_BAND_EDGE_FROM_HZ if source_rate == target_rate else \
        min(nyquist(source_rate) + TARGET_EDGE_FROM_HZ, top - 1)
    return content_edge(target, target_rate, lowest, top)


@dataclass(frozen=True)
class PairMaker:
    """Turns a target crop ``(1, T)`` into the item dict of :mod:`audiosr.data.datasets`.

    Besides the signals, ``edge_hz`` says where the target's own content ends (the cliff of
    an encoder's low-pass, or the target Nyquist frequency): the losses ignore what is above.

    Args:
        degradation: makes the low-rate signal (default: resampy ``kaiser_best``).
        input_filter: brings it back to the target rate as the network's input.
        input_bits: put the low-rate signal on the grid of this many bits (:func:`to_pcm`)
            after the degradation, as a user's 16-bit file would be; the network's input is
            made from that. ``None`` (or 32): float, as the degradation made it. The target
            is never quantised.
        on_device: leave what :class:`~audiosr.data.AnyBand` can do on the model's device undone and
            give each item a ``device_plan`` for it (:mod:`audiosr.data.on_device`); AnyBand only.
            The target's edge is found there too (``edge_hz`` is NaN until then).
    """

    source_rate: int
    target_rate: int
    input_filter: str = "kaiser_fast"
    degradation: Degradation = field(default_factory=Resample)
    input_bits: int | None = None
    on_device: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_bits", check_input_bits(self.input_bits))
        if self.on_device and not isinstance(self.degradation, AnyBand):
            raise ValueError(f"degradations on the device are AnyBand's; got {self.degradation.describe()}")
        if self.on_device and self.input_bits is not None:
            raise ValueError("input_bits would round the input before the device degrades it")

    def __call__(self, target: np.ndarray, rng: np.random.Generator | None = None,
                 prepared: Mapping[str, np.ndarray] | None = None, **extra) -> dict:
        rng = rng if rng is not None else np.random.default_rng(0)
        target = np.ascontiguousarray(target, dtype=np.float32)
        plan = None
        if isinstance(self.degradation, AnyBand):
            low, gain, plan = self.degradation.degrade(target, self.source_rate, self.target_rate, rng, prepared,
                                                       self.on_device)
        else:
            low, gain = self.degradation(target, self.source_rate, self.target_rate, rng)
        if self.on_device:
            # Every item of a batch carries a plan; one done here already asks for nothing more.
            extra["device_plan"] = torch.from_numpy(plan if plan is not None else keep_plan(gain))
        if self.input_bits is not None:
            low = to_pcm(low, self.input_bits)
        rough = resample(low, self.source_rate, self.target_rate, self.input_filter, target.shape[-1])
        if self.on_device:  # found batched on the device too (audiosr.data.on_device.target_edges)
            edge = torch.tensor(float("nan"))
        else:
            edge = target_edges(torch.from_numpy(target), self.source_rate, self.target_rate)
        return {
            "edge_hz": edge.reshape(-1)[0].float(),
            "input": torch.from_numpy(rough),
            "target": torch.from_numpy(target * np.float32(gain)),
            "low": torch.from_numpy(np.ascontiguousarray(low, dtype=np.float32)),
            **extra,
        }
