"""The generator: a network plus what surrounds it wherever it runs.

Training, validation, ``audiosr test``, ``audiosr upsample`` and the Python API all run
the same :class:`Generator`, so what is measured is what users get:

1. **Level normalisation.** Each item (each window at inference) is scaled to the training
   peak level before the network and scaled back after it. The network then never sees
   a level it was not trained on, its output follows the input's level (a recording at
   -40 dBFS is upsampled like the same recording at 0 dBFS), and digital silence in gives
   digital silence out, instead of the network's bias-driven noise floor.
   ``normalise: envelope`` scales by a smooth envelope of the input instead (its local
   peak over about 60 ms, never below the signal): every passage is seen at full level, so
   a quiet passage gets the band its own content asks for, whatever loud audio sits in the
   same window; the gain varies at a few Hz, far below any band it could smear.
2. **The output stage** (:class:`audiosr.output_stage.OutputStage`, ``spec.stage``): keeping
   the input's own band, the level ceiling and the invented band's level, all relative to the
   input's edge; it lives in the spec, so it is stored in every checkpoint and read back from it.
3. **One precision.** :func:`inference_precision` runs the network in float32 unless a
   caller asks for bf16 / fp16; normalisation and the output stage always run in float32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from audiosr.dsp import PEAK, nyquist
from audiosr.models.base import SuperResolutionNetwork
from audiosr.output_stage import (  # noqa: F401  (AUTO_LOWEST, EDGE_GUARD_HZ: re-exported)
    AUTO_LOWEST, EDGE_GUARD_HZ, KeepBand, OutputStage, stage_from_legacy,
)

Precision = Literal["32", "bf16", "16"]
# How tables name each precision.
PRECISION_NAMES: dict[str, str] = {"32": "fp32", "bf16": "bf16", "16": "fp16"}
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
# Peaks at or below this (-180 dBFS) count as digital silence: passed through unchanged.
SILENCE = 1e-9
# `normalise: envelope`: the envelope is the peak of blocks of ENVELOPE_BLOCK samples, the
# maximum over ENVELOPE_REACH blocks each side, averaged over ENVELOPE_SMOOTH blocks each
# side, then interpolated: never below |x|, smooth at a few Hz (about 64 ms reach at 44.1 kHz).
ENVELOPE_BLOCK, ENVELOPE_REACH, ENVELOPE_SMOOTH = 256, 6, 4
# Below this (-100 dBFS) a passage is not raised further: it is noise floor at most.
ENVELOPE_FLOOR = 1e-5
Normalise = bool | Literal["peak", "envelope"]


@dataclass(frozen=True)
class ModelSpec:
    """What running a trained network needs besides its weights (stored in checkpoints).

    Args:
        network: ``{"class_path", "init_args"}`` of the network.
        source_rate, target_rate: the rates it was trained for (Hz).
        input_filter: the resampler that makes its rough input (see ``audiosr.dsp``).
        normalise: ``"peak"`` (or ``True``): scale every item to the training peak level
            around the network; ``"envelope"``: by a smooth envelope; ``False``: off.
        stage: what happens after the network (:class:`audiosr.output_stage.OutputStage`).
    """

    network: dict[str, Any]
    source_rate: int
    target_rate: int
    input_filter: str
    normalise: Normalise = False
    stage: OutputStage = field(default_factory=OutputStage)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        normalise = {True: "peak", False: "off"}.get(self.normalise, self.normalise)  # type: ignore[call-overload]
        if normalise not in ("off", "peak", "envelope"):
            raise ValueError(f"normalise must be true, false, peak or envelope, got {self.normalise!r}")
        object.__setattr__(self, "normalise", normalise)
        if isinstance(self.stage, dict):
            object.__setattr__(self, "stage", OutputStage.from_dict(self.stage))
        if not isinstance(self.stage, OutputStage):
            raise ValueError(f"stage must be an OutputStage, got {self.stage!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage"] = self.stage.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "stage" not in data:  # written before the output stage had a name
            known["stage"] = stage_from_legacy(data)
        return cls(**known)

    @property
    def any_input(self) -> bool:
        """A model for any input: it takes its input at the target rate, whatever band the input has
        (files at other rates are brought there first), and fills above the edge it finds."""
        return self.source_rate == self.target_rate

    @property
    def cutoff_hz(self) -> float:
        """The input's band edge: the source rate's Nyquist frequency."""
        return nyquist(self.source_rate)

    @property
    def keep_band(self) -> KeepBand:
        return self.stage.keep_band

    def with_stage(self, **changes: Any) -> ModelSpec:
        """This spec with some output-stage settings changed (validated by the stage)."""
        return replace(self, stage=self.stage.replace(**changes))

    def describe(self) -> str:
        level = {"off": "off", "peak": "on (peak)", "envelope": "on (envelope)"}[str(self.normalise)]
        rates = f"any input -> {self.target_rate} Hz" if self.any_input else f"{self.source_rate} -> {self.target_rate} Hz"
        return (f"{self.network['class_path'].rsplit('.', 1)[-1]}, {rates}, "
                f"input {self.input_filter}, {self.stage.describe(self.cutoff_hz)}, level normalisation {level}")


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
    """``network`` with level normalisation and the output stage (see the module docstring).

    Args:
        network: maps the rough signal ``(B, 1, T)`` to a full-band estimate.
        spec: rates, input filter, ``normalise`` and the output ``stage``. Assigning a new spec
            (``generator.spec = spec.with_stage(...)``) changes the behaviour at once: nothing is
            derived from it and kept.
    """

    def __init__(self, network: SuperResolutionNetwork, spec: ModelSpec) -> None:
        super().__init__()
        self.network = network
        self.spec = spec
        network.bind_rates(spec.source_rate, spec.target_rate)
        if network.needs_edges and spec.stage.keep_band != "auto":
            raise ValueError(f"{type(network).__name__} is told each input's band edge, which the output stage finds "
                             f"with keep_band: auto (got {spec.stage.keep_band!r})")

    @property
    def length_multiple(self) -> int:
        return self.network.length_multiple

    @property
    def receptive_field(self) -> int:
        reach = self.network.receptive_field + self.spec.stage.reach(self.spec.target_rate, nyquist(self.spec.source_rate))
        if self.spec.normalise == "envelope":
            reach += ENVELOPE_BLOCK * (ENVELOPE_REACH + ENVELOPE_SMOOTH + 1)
        return reach

    def level_scale(self, rough: torch.Tensor) -> torch.Tensor:
        """The gain the network's input gets: ``(B, 1, 1)`` (peak), ``(B, 1, T)`` (envelope) or ones.

        Training scales its loss's pair by the same gain, so the loss sees what the network sees.
        """
        with torch.no_grad(), torch.autocast(rough.device.type, enabled=False):
            x = rough.detach().float().abs()
            if self.spec.normalise == "off":
                return torch.ones_like(x[..., :1])
            if self.spec.normalise == "peak":
                level = x.amax(dim=-1, keepdim=True)
                return torch.where(level <= SILENCE, torch.ones_like(level), PEAK / level.clamp_min(SILENCE))
            return PEAK / envelope(x).clamp_min(ENVELOPE_FLOOR)

    def forward(self, rough: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 1, T)`` rough upsampled input -> ``(B, 1, T)`` output at the target rate.

        ``edges`` ``(B,)``: the band edges (Hz) the output stage (and a network for any band) works
        from, where the caller has chosen them (one for all channels of a recording); default: found
        per item.
        """
        if edges is None and self.network.needs_edges:
            edges = self.band_edges(rough)
        inputs = (edges,) if self.network.needs_edges else ()
        if self.spec.normalise == "off":
            estimate = self.network(rough, *inputs)
            with torch.autocast(rough.device.type, enabled=False):
                return self._stage(rough.float(), estimate.float(), edges)
        scale = self.level_scale(rough)
        estimate = self.network(rough * scale, *inputs)
        with torch.autocast(rough.device.type, enabled=False):
            output = self._stage(rough.float(), estimate.float() / scale, edges)
            silent = rough.detach().abs().amax(dim=-1, keepdim=True) <= SILENCE
            return torch.where(silent, rough.float(), output)

    def band_edges(self, rough: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` -> ``(B,)``: where each item's content ends (Hz), as the output stage finds it."""
        return self.spec.stage.edges(rough, self.spec.target_rate, self.spec.cutoff_hz)

    def _stage(self, rough: torch.Tensor, estimate: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        return self.spec.stage(rough, estimate, self.spec.target_rate, self.spec.cutoff_hz, self.training, edges)

    def extra_repr(self) -> str:
        return self.spec.describe()


def envelope(magnitude: torch.Tensor) -> torch.Tensor:
    """``|x|`` ``(B, C, T)`` -> a smooth envelope ``(B, C, T)`` that is never below it (see the constants)."""
    length = magnitude.shape[-1]
    blocks = -(-length // ENVELOPE_BLOCK)
    padded = torch.nn.functional.pad(magnitude, (0, blocks * ENVELOPE_BLOCK - length))
    peaks = padded.reshape(*magnitude.shape[:-1], blocks, ENVELOPE_BLOCK).amax(dim=-1)
    flat = peaks.reshape(-1, 1, blocks)
    reach = torch.nn.functional.max_pool1d(flat, 2 * ENVELOPE_REACH + 1, 1, ENVELOPE_REACH)
    # Averaging over at most ENVELOPE_SMOOTH < ENVELOPE_REACH blocks each side, and interpolating
    # between neighbouring blocks, mixes only maxima whose reach covers the sample: never below it.
    padded_reach = torch.nn.functional.pad(reach, (ENVELOPE_SMOOTH, ENVELOPE_SMOOTH), mode="replicate")
    smooth = torch.nn.functional.avg_pool1d(padded_reach, 2 * ENVELOPE_SMOOTH + 1, 1)
    centres = (torch.arange(length, device=magnitude.device, dtype=torch.float32) + 0.5) / ENVELOPE_BLOCK - 0.5
    smooth = torch.nn.functional.pad(smooth, (1, 1), mode="replicate")[:, 0]
    position = centres.clamp(-1, blocks) + 1
    left = position.floor().long().clamp(max=blocks)
    weight = position - left
    values = smooth[:, left] * (1 - weight) + smooth[:, (left + 1).clamp(max=blocks + 1)] * weight
    return values.reshape(magnitude.shape)
