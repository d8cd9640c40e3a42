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
2. **Known-band keeping.** Below ``keep_band[0] x`` the source Nyquist frequency the output
   *is* the input; above ``keep_band[1] x`` it is the network's; in between, a
   complementary linear-phase crossover (``y + h * (rough - y)``, ``h`` a Kaiser-windowed
   low-pass) blends the two. The network can then only add the missing band, never damage
   the band the input already has, and the loss sees exactly what users get.
   ``keep_band: auto`` finds, per item (per window at inference), where the input's content
   really ends (``audiosr.band.content_edge``: the -10 dB point of the cliff of whatever filter
   made it, 10.2 kHz for resampy ``kaiser_best``, 10.5 kHz for soxr VHQ) and keeps the input up to
   ``EDGE_GUARD_HZ`` below it; the network fills above the edge.
3. **The invented band's level at inference** (``invented_gain_db``, 0 by default). Outside
   training, the output above the input's Nyquist frequency (the band no input at that rate
   can have, from ``INVENTED_WIDTH_HZ`` below it) is scaled by this gain. Its phase cannot
   be known from the input, and a band of the right level but unrelated phase doubles the
   error there (an SNR 3 dB worse than an empty band's where that band dominates the
   error); a band a few dB under the level the network predicts costs little log-spectral
   distance and bounds that loss. Between the input's own edge and its Nyquist frequency
   the gain does not apply: that band is partly the input's own (attenuated), and a gain there
   moved it 0.55 dB in ``tests/test_pretrained.py``'s test of the kept band. Training ignores the gain (the network would learn to undo it); ``val/score``
   and everything after training include it.
   **The top band's level** (``top_band_gain_db``, 0 by default) is a second gain on top of it
   above ``TOP_BAND_HZ`` (16 kHz): many real recordings have nothing there (lossy encoders cut
   at 13-21 kHz, microphones and converters roll off), and nothing in a 22.05 kHz input tells
   which. Training masks the loss above each file's own edge, so the network learns the level of
   the recordings that have that band; this gain is where the level all recordings call for is
   set (``bench.default_model`` calibrates it on the validation files, like the gain above).
4. **The level ceiling** (``level_ceiling_db``; ``None``: off). Outside training, the output
   above the input's edge is held under the input's own spectrum continued upwards
   (``audiosr.band.level_ceiling``: frame by frame, the level just below the edge and the slope
   under it, followed for 1 kHz, then held; never under the input's own level there). The
   network's guess is right on average and wrong on clean recordings whose spectrum falls
   steeply: there it made a bump at the edge, or a band 10-30 dB above the target's, and lost up
   to 18 dB of SNR against ``kaiser_best``; the input says nothing that supports such a band.
5. **One precision.** :func:`inference_precision` runs the network in float32 unless a
   caller asks for bf16 / fp16; normalisation and band keeping always run in float32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from audiosr.band import CEILING_HOP, CEILING_N_FFT, CEILING_REACH, content_edge, filter_each, kernel_taps, level_ceiling, lowpass_kernels
from audiosr.dsp import PEAK, crossover_kernel, nyquist
from audiosr.models.base import SuperResolutionNetwork

Precision = Literal["32", "bf16", "16"]
# How tables name each precision.
PRECISION_NAMES: dict[str, str] = {"32": "fp32", "bf16": "bf16", "16": "fp16"}
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
# Peaks at or below this (-180 dBFS) count as digital silence: passed through unchanged.
SILENCE = 1e-9
# `keep_band: auto`: the input is searched for its edge from this fraction of its Nyquist
# frequency up (networks predict from 0.75 x, see audiosr.models.spectral), and kept up to
# EDGE_GUARD_HZ below the edge, the crossover spanning that guard.
AUTO_LOWEST = 0.8
EDGE_GUARD_HZ = 300.0
# `invented_gain_db` scales the output from INVENTED_WIDTH_HZ below the input's Nyquist
# frequency up (a raised transition over that width, full gain above the Nyquist frequency).
INVENTED_WIDTH_HZ = 300.0
# `top_band_gain_db` scales the output above TOP_BAND_HZ, on top of `invented_gain_db` (a raised
# transition TOP_BAND_WIDTH_HZ wide, centred on it).
TOP_BAND_HZ, TOP_BAND_WIDTH_HZ = 16_000.0, 1_000.0
# `normalise: envelope`: the envelope is the peak of blocks of ENVELOPE_BLOCK samples, the
# maximum over ENVELOPE_REACH blocks each side, averaged over ENVELOPE_SMOOTH blocks each
# side, then interpolated: never below |x|, smooth at a few Hz (about 64 ms reach at 44.1 kHz).
ENVELOPE_BLOCK, ENVELOPE_REACH, ENVELOPE_SMOOTH = 256, 6, 4
# Below this (-100 dBFS) a passage is not raised further: it is noise floor at most.
ENVELOPE_FLOOR = 1e-5
KeepBand = tuple[float, float] | Literal["auto"] | None
Normalise = bool | Literal["peak", "envelope"]


@dataclass(frozen=True)
class ModelSpec:
    """What running a trained network needs besides its weights (stored in checkpoints).

    Args:
        network: ``{"class_path", "init_args"}`` of the network.
        source_rate, target_rate: the rates it was trained for (Hz).
        input_filter: the resampler that makes its rough input (see ``audiosr.dsp``).
        keep_band: ``(lo, hi)`` fractions of the source Nyquist frequency: the input is kept
            below ``lo``, the network fills above ``hi``; ``"auto"``: up to the input's own
            edge, found per item; ``None`` turns band keeping off.
        normalise: ``"peak"`` (or ``True``): scale every item to the training peak level
            around the network; ``"envelope"``: by a smooth envelope; ``False``: off.
        invented_gain_db: outside training, the gain (dB, at most 0) of the output above the
            input's Nyquist frequency, the band the network invents (see the module docstring).
        top_band_gain_db: outside training, a further gain (dB, at most 0) of the output above
            ``TOP_BAND_HZ`` (see the module docstring).
        level_ceiling_db: outside training, the output above the input's edge is held under the
            input's own spectrum continued upwards, this many dB above it
            (``audiosr.band.level_ceiling``); ``None``: no ceiling.
    """

    network: dict[str, Any]
    source_rate: int
    target_rate: int
    input_filter: str
    keep_band: KeepBand = None
    normalise: Normalise = False
    invented_gain_db: float = 0.0
    level_ceiling_db: float | None = None
    top_band_gain_db: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        normalise = {True: "peak", False: "off"}.get(self.normalise, self.normalise)  # type: ignore[call-overload]
        if normalise not in ("off", "peak", "envelope"):
            raise ValueError(f"normalise must be true, false, peak or envelope, got {self.normalise!r}")
        object.__setattr__(self, "normalise", normalise)
        for name in ("invented_gain_db", "top_band_gain_db"):
            gain = float(getattr(self, name))
            if not -60.0 <= gain <= 0.0:
                raise ValueError(f"{name} must be between -60 and 0 dB, got {getattr(self, name)!r}")
            object.__setattr__(self, name, gain)
        if self.level_ceiling_db is not None:
            margin = float(self.level_ceiling_db)
            if not -30.0 <= margin <= 30.0:
                raise ValueError(f"level_ceiling_db must be between -30 and 30 dB (or null), got {self.level_ceiling_db!r}")
            object.__setattr__(self, "level_ceiling_db", margin)
        if self.keep_band == "auto":
            return
        if isinstance(self.keep_band, str):
            raise ValueError(f"keep_band must be (lo, hi), auto or null, got {self.keep_band!r}")
        if self.keep_band is not None:
            lo, hi = (float(v) for v in self.keep_band)
            if not 0 < lo < hi <= 1:
                raise ValueError(f"keep_band must be (lo, hi) with 0 < lo < hi <= 1, got {self.keep_band}")
            object.__setattr__(self, "keep_band", (lo, hi))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.keep_band, tuple):
            data["keep_band"] = list(self.keep_band)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("keep_band"), list):
            known["keep_band"] = tuple(known["keep_band"])
        return cls(**known)

    @property
    def cutoff_hz(self) -> float:
        """The input's band edge: the source rate's Nyquist frequency."""
        return nyquist(self.source_rate)

    def describe(self) -> str:
        if self.keep_band == "auto":
            keep = (f"input kept up to {EDGE_GUARD_HZ:.0f} Hz below its own band edge (found per window), "
                    "network above it")
        elif self.keep_band:
            keep = (f"input kept below {self.keep_band[0] * self.cutoff_hz / 1000:.2f} kHz, network above "
                    f"{self.keep_band[1] * self.cutoff_hz / 1000:.2f} kHz")
        else:
            keep = "no band keeping"
        level = {"off": "off", "peak": "on (peak)", "envelope": "on (envelope)"}[str(self.normalise)]
        gain = f", invented band {self.invented_gain_db:+g} dB" if self.invented_gain_db else ""
        if self.top_band_gain_db:
            gain += f", {self.top_band_gain_db:+g} dB more above {TOP_BAND_HZ / 1000:g} kHz"
        if self.level_ceiling_db is not None:
            gain += f", held under the input's own spectrum continued upwards ({self.level_ceiling_db:+g} dB)"
        return (f"{self.network['class_path'].rsplit('.', 1)[-1]}, {self.source_rate} -> {self.target_rate} Hz, "
                f"input {self.input_filter}, {keep}{gain}, level normalisation {level}")


def fir_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-phase FIR filtering of ``(B, 1, T)`` with an odd ``(K,)`` kernel, zeros outside.

    FFT convolution: a few hundred taps cost less than direct convolution on a CPU.
    """
    return filter_each(x, kernel)


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
        if isinstance(spec.keep_band, tuple):
            lo, hi = spec.keep_band
            kernel = torch.from_numpy(crossover_kernel(lo * spec.cutoff_hz, hi * spec.cutoff_hz, spec.target_rate))
        # Not persistent: derived from the spec, so checkpoints hold only the network.
        self.register_buffer("crossover", kernel, persistent=False)
        invented = torch.zeros(0)
        if spec.invented_gain_db:
            nyq = spec.cutoff_hz
            invented = torch.from_numpy(crossover_kernel(nyq - INVENTED_WIDTH_HZ, nyq, spec.target_rate))
        self.register_buffer("invented_crossover", invented, persistent=False)
        top = torch.zeros(0)
        if spec.top_band_gain_db:
            lo, hi = TOP_BAND_HZ - TOP_BAND_WIDTH_HZ / 2, TOP_BAND_HZ + TOP_BAND_WIDTH_HZ / 2
            if not (spec.cutoff_hz <= lo and hi < nyquist(spec.target_rate)):
                raise ValueError(f"top_band_gain_db needs {lo:g}-{hi:g} Hz between the input's Nyquist frequency "
                                 f"({spec.cutoff_hz:g} Hz) and the output's ({nyquist(spec.target_rate):g} Hz)")
            top = torch.from_numpy(crossover_kernel(lo, hi, spec.target_rate))
        self.register_buffer("top_crossover", top, persistent=False)

    @property
    def length_multiple(self) -> int:
        return self.network.length_multiple

    @property
    def receptive_field(self) -> int:
        reach = self.network.receptive_field
        if self.spec.keep_band == "auto":
            reach += kernel_taps(self.spec.target_rate, EDGE_GUARD_HZ) // 2
        else:
            reach += self.crossover.shape[-1] // 2
        reach += self.invented_crossover.shape[-1] // 2 + self.top_crossover.shape[-1] // 2
        if self.spec.normalise == "envelope":
            reach += ENVELOPE_BLOCK * (ENVELOPE_REACH + ENVELOPE_SMOOTH + 1)
        if self.spec.level_ceiling_db is not None:  # a frame's reach, and the reference's frames each side
            reach += CEILING_N_FFT + CEILING_HOP * (CEILING_REACH + 1)
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

    def forward(self, rough: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` rough upsampled input -> ``(B, 1, T)`` output at the target rate."""
        if self.spec.normalise == "off":
            estimate = self.network(rough)
            with torch.autocast(rough.device.type, enabled=False):
                return self._keep_band(rough.float(), estimate.float())
        scale = self.level_scale(rough)
        estimate = self.network(rough * scale)
        with torch.autocast(rough.device.type, enabled=False):
            output = self._keep_band(rough.float(), estimate.float() / scale)
            silent = rough.detach().abs().amax(dim=-1, keepdim=True) <= SILENCE
            return torch.where(silent, rough.float(), output)

    def band_edges(self, rough: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` -> ``(B,)``: where each item's content ends (Hz), for ``keep_band: auto``."""
        nyq = self.spec.cutoff_hz
        return content_edge(rough[:, 0], self.spec.target_rate, AUTO_LOWEST * nyq, nyq)

    def _keep_band(self, rough: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        ceiling = self.spec.level_ceiling_db is not None and not self.training
        edges = self.band_edges(rough) if self.spec.keep_band == "auto" or ceiling else None
        if self.spec.keep_band == "auto":
            kernels = lowpass_kernels(edges - EDGE_GUARD_HZ / 2, self.spec.target_rate, EDGE_GUARD_HZ)
            output = estimate + filter_each(rough - estimate, kernels)
        elif self.crossover.numel() == 0:
            output = estimate
        else:
            output = estimate + fir_filter(rough - estimate, self.crossover)
        if ceiling:
            output = level_ceiling(output, rough, edges, self.spec.target_rate, self.spec.level_ceiling_db)
        if self.training:
            return output
        # The kept band lies below the input's Nyquist frequency, so only invented content is scaled.
        output = _scale_above(output, self.invented_crossover, self.spec.invented_gain_db)
        return _scale_above(output, self.top_crossover, self.spec.top_band_gain_db)

    def extra_repr(self) -> str:
        return self.spec.describe()


def _scale_above(output: torch.Tensor, lowpass: torch.Tensor, gain_db: float) -> torch.Tensor:
    """``output`` with its part above the low-pass ``lowpass`` (a crossover kernel; empty: none) scaled by ``gain_db``.

    Mirrored ends: zeros outside would make a click of every start and end whose high-passed
    part the gain then changes at all frequencies.
    """
    if lowpass.numel() == 0:
        return output
    half, length = lowpass.shape[-1] // 2, output.shape[-1]
    padded = torch.nn.functional.pad(output, (half, half), mode="reflect") if length > half else output
    below = fir_filter(padded, lowpass)
    below = below[..., half: half + length] if length > half else below
    return output + (10.0 ** (gain_db / 20.0) - 1.0) * (output - below)


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
