"""The generator: a network plus what surrounds it wherever it runs.

Training, validation, ``audiosr test``, ``audiosr upsample`` and the Python API all run
the same :class:`Generator`, so what is measured is what users get:

1. **Level normalisation.** Each item (each window at inference) is scaled to the training
   peak level before the network and scaled back after it. The network then never sees
   a level it was not trained on, its output follows the input's level (a recording at
   -40 dBFS is upsampled like the same recording at 0 dBFS), and digital silence in gives
   digital silence out, instead of the network's bias-driven noise floor.
2. **Known-band keeping.** Below ``keep_band[0] x`` the source Nyquist frequency the output
   *is* the input; above ``keep_band[1] x`` it is the network's; in between, a
   complementary linear-phase crossover (``y + h * (rough - y)``, ``h`` a Kaiser-windowed
   low-pass) blends the two. The network can then only add the missing band, never damage
   the band the input already has, and the loss sees exactly what users get.
3. **One precision.** :func:`inference_precision` runs the network in float32 unless a
   caller asks for bf16 / fp16; normalisation and band keeping always run in float32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from audiosr.dsp import PEAK, crossover_kernel, nyquist
from audiosr.models.base import SuperResolutionNetwork

Precision = Literal["32", "bf16", "16"]
# How tables name each precision.
PRECISION_NAMES: dict[str, str] = {"32": "fp32", "bf16": "bf16", "16": "fp16"}
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
# Peaks at or below this (-180 dBFS) count as digital silence: passed through unchanged.
SILENCE = 1e-9


@dataclass(frozen=True)
class ModelSpec:
    """What running a trained network needs besides its weights (stored in checkpoints).

    Args:
        network: ``{"class_path", "init_args"}`` of the network.
        source_rate, target_rate: the rates it was trained for (Hz).
        input_filter: the resampler that makes its rough input (see ``audiosr.dsp``).
        keep_band: ``(lo, hi)`` fractions of the source Nyquist frequency: the input is kept
            below ``lo``, the network fills above ``hi``; ``None`` turns band keeping off.
        normalise: scale every item to the training peak level around the network.
    """

    network: dict[str, Any]
    source_rate: int
    target_rate: int
    input_filter: str
    keep_band: tuple[float, float] | None = None
    normalise: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.keep_band is not None:
            lo, hi = (float(v) for v in self.keep_band)
            if not 0 < lo < hi <= 1:
                raise ValueError(f"keep_band must be (lo, hi) with 0 < lo < hi <= 1, got {self.keep_band}")
            object.__setattr__(self, "keep_band", (lo, hi))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["keep_band"] = list(self.keep_band) if self.keep_band is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("keep_band") is not None:
            known["keep_band"] = tuple(known["keep_band"])
        return cls(**known)

    @property
    def cutoff_hz(self) -> float:
        """The input's band edge: the source rate's Nyquist frequency."""
        return nyquist(self.source_rate)

    def describe(self) -> str:
        keep = (f"input kept below {self.keep_band[0] * self.cutoff_hz / 1000:.2f} kHz, network above "
                f"{self.keep_band[1] * self.cutoff_hz / 1000:.2f} kHz") if self.keep_band else "no band keeping"
        return (f"{self.network['class_path'].rsplit('.', 1)[-1]}, {self.source_rate} -> {self.target_rate} Hz, "
                f"input {self.input_filter}, {keep}, level normalisation {'on' if self.normalise else 'off'}")


def fir_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-phase FIR filtering of ``(B, 1, T)`` with an odd ``(K,)`` kernel, zeros outside.

    FFT convolution: a few hundred taps cost less than direct convolution on a CPU.
    """
    length, taps = x.shape[-1], kernel.shape[-1]
    size = 1 << (length + taps - 1 - 1).bit_length()
    spectrum = torch.fft.rfft(x.float(), size) * torch.fft.rfft(kernel.float(), size)
    full = torch.fft.irfft(spectrum, size)
    return full[..., taps // 2: taps // 2 + length]


def inference_precision(device: torch.device | str, precision: Precision = "32") -> AbstractContextManager:
    """The context the network runs in outside training: float32 unless asked otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    device_type = torch.device(device).type
    dtype = PRECISIONS[precision]
    if dtype is None:
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=dtype)


class Generator(nn.Module):
    """``network`` with level normalisation and known-band keeping (see the module docstring).

    Args:
        network: maps the rough signal ``(B, 1, T)`` to a full-band estimate.
        spec: rates, input filter, ``keep_band`` and ``normalise``.
    """

    def __init__(self, network: SuperResolutionNetwork, spec: ModelSpec) -> None:
        super().__init__()
        self.network = network
        self.spec = spec
        network.bind_rates(spec.source_rate, spec.target_rate)
        kernel = torch.zeros(0)
        if spec.keep_band is not None:
            lo, hi = spec.keep_band
            kernel = torch.from_numpy(crossover_kernel(lo * spec.cutoff_hz, hi * spec.cutoff_hz, spec.target_rate))
        # Not persistent: derived from the spec, so checkpoints hold only the network.
        self.register_buffer("crossover", kernel, persistent=False)

    @property
    def length_multiple(self) -> int:
        return self.network.length_multiple

    @property
    def receptive_field(self) -> int:
        return self.network.receptive_field + self.crossover.shape[-1] // 2

    def forward(self, rough: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` rough upsampled input -> ``(B, 1, T)`` output at the target rate."""
        if not self.spec.normalise:
            estimate = self.network(rough)
            with torch.autocast(rough.device.type, enabled=False):
                return self._keep_band(rough.float(), estimate.float())
        with torch.autocast(rough.device.type, enabled=False):
            level = rough.detach().float().abs().amax(dim=-1, keepdim=True)
            silent = level <= SILENCE
            scale = torch.where(silent, torch.ones_like(level), PEAK / level.clamp_min(SILENCE))
        estimate = self.network(rough * scale)
        with torch.autocast(rough.device.type, enabled=False):
            output = self._keep_band(rough.float(), estimate.float() / scale)
            return torch.where(silent, rough.float(), output)

    def _keep_band(self, rough: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        if self.crossover.numel() == 0:
            return estimate
        return estimate + fir_filter(rough - estimate, self.crossover)

    def extra_repr(self) -> str:
        return self.spec.describe()
