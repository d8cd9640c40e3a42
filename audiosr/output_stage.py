"""The output stage: what happens to the network's estimate before anyone hears it.

Training, validation, ``audiosr test``, ``audiosr upsample`` and the Python API all run the same
:class:`OutputStage`, held in the model's :class:`~audiosr.models.generator.ModelSpec`, so the
checkpoint validation chose is the behaviour shipped. It is stored once in every checkpoint and
read back from it; a caller overrides one field explicitly (``OutputStage.replace``). Every part
works relative to the input's own band edge, never at a fixed frequency:

1. **Known-band keeping** (``keep_band``). Below the edge the output *is* the input; above it
   the network's; a complementary linear-phase crossover (``y + h * (rough - y)``, ``h`` a
   Kaiser-windowed low-pass) blends the two. The network can then only add the missing band,
   never damage the band the input has, and the loss sees what users get. ``auto`` finds, per
   item (per window at inference), where the input's content really ends
   (:func:`audiosr.band.content_edge`: the -10 dB point of the cliff of whatever filter made it)
   and keeps the input up to ``EDGE_GUARD_HZ`` below it; ``(lo, hi)`` fractions of the source
   Nyquist frequency fix the crossover; ``None`` leaves the network's output everywhere. For a
   model whose input is at the output rate (a model for any input), an input in which no edge is
   found lacks nothing and is the output unchanged. With ``keep_to_last_cliff`` the input is kept
   up to its *last* cliff (:func:`audiosr.band.content_edge` ``last``), while the network is still
   told the first: a recording that falls steeply and carries on, quieter but level, up to the
   filter that made the input keeps that quieter band, and the network's level stays measured from
   the band under the fall.
2. **The level ceiling** (``level_ceiling_db``; ``None``: off). Outside training, the output above
   the edge is held under the input's own spectrum continued upwards
   (:func:`audiosr.band.level_ceiling`): the level just below the edge and the slope under it,
   followed for 1 kHz, then held. The network's guess is right on average and wrong on clean
   recordings whose spectrum falls steeply: there it would make a bump at the edge, or a band far
   louder than the input supports.
3. **The invented band's level** (``invented_gain_db``, 0 by default). Outside training, the
   output above the edge (a raised transition ``INVENTED_WIDTH_HZ`` wide from the edge up) is
   scaled by this gain. Its phase cannot be known from the input, and a band of the right level
   but unrelated phase doubles the error there; a band a few dB under the level the network
   predicts costs little log-spectral distance and bounds that loss. ``bench.default_model``
   calibrates it on the validation files. Training ignores it (the network would learn to undo it).

A new setting is one field here, validated in ``__post_init__``, and its use in ``__call__``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import torch
# torch and the filters load when the stage first runs: `audiosr upsample --help` and its option
# checks read the settings alone.

KeepBand = tuple[float, float] | Literal["auto", "off"] | None
Transform = Literal["fir", "stft"]
# `keep_band: auto`: by default the input is searched for its edge from this fraction of its
# Nyquist frequency up (`edge_search_from`; networks of one rate pair predict from 0.75 x, see
# audiosr.models.spectral), and kept up to EDGE_GUARD_HZ below the edge, the crossover spanning
# that guard. A model for any input (source rate = target rate) searches from far lower.
AUTO_LOWEST = 0.8
EDGE_GUARD_HZ = 300.0
# `invented_gain_db` reaches its full value this far above the edge (a raised transition from the edge).
INVENTED_WIDTH_HZ = 300.0
# `transform: stft`: a bin the keeping's response passes within this of 1 (its kernels' 80 dB ripple) is
# the input's own, untouched.
KEPT_RIPPLE = 1e-4
GAIN_RANGE_DB = (-60.0, 0.0)
CEILING_RANGE_DB = (-30.0, 30.0)


@dataclass(frozen=True)
class OutputStage:
    """The settings of the output stage (see the module docstring); validated on construction.

    Args:
        keep_band: ``(lo, hi)`` fractions of the source Nyquist frequency (the input is kept below
            ``lo``, the network fills above ``hi``), ``"auto"`` (up to the input's own edge, found
            per item) or ``None`` (no keeping).
        level_ceiling_db: outside training, hold the output above the edge under the input's own
            spectrum continued upwards, this many dB above it; ``None``: no ceiling.
        invented_gain_db: outside training, the gain (dB, at most 0) of the output above the edge.
    """

    keep_band: KeepBand = field(default=(0.8, 0.9), metadata={"help": (
        "where the input is kept: auto (up to its own band edge, found per window), LO,HI (fractions of the input's "
        "Nyquist frequency) or off (the network's output everywhere)")})
    level_ceiling_db: float | None = field(default=None, metadata={"help": (
        "hold the output above the input's edge under the input's own spectrum continued upwards, DB above it; "
        "off: no ceiling")})
    invented_gain_db: float = field(default=0.0, metadata={"help": (
        "level of the band above the input's edge, in dB (at most 0); lower is duller but never further from the input")})
    edge_search_from: float = field(default=AUTO_LOWEST, metadata={"help": (
        "keep_band auto: the input's edge is searched from this fraction of its Nyquist frequency up (a model "
        "for any input, whose input runs at the output rate, searches from about 0.14: 3 kHz at 44.1 kHz)")})
    transform: Transform = field(default="fir", metadata={"choices": ("fir", "stft"), "help": (
        "how the stage splits the band: fir (Kaiser FIR filters over each whole window) or stft (per bin of one "
        "short-time transform that keeping, the level ceiling and the band's gain share: cheaper)")})
    keep_to_last_cliff: bool = field(default=False, metadata={"help": (
        "keep_band auto: keep the input up to its last cliff, not its first (the network is still told the first): "
        "a recording that falls and carries on, quieter but level, up to its filter keeps that band")})
    complete_from_hz: float | None = field(default=None, metadata={"help": (
        "keep_band auto, input at the output rate: an input whose edge lies at or above this (Hz) lacks nothing "
        "anyone hears and is passed bit for bit (off: only one whose content reaches the Nyquist frequency)")})

    def __post_init__(self) -> None:
        keep = self.keep_band
        if isinstance(keep, (list, tuple)):
            lo, hi = (float(v) for v in keep)
            if not 0 < lo < hi <= 1:
                raise ValueError(f"keep_band must be (lo, hi) with 0 < lo < hi <= 1, got {keep}")
            object.__setattr__(self, "keep_band", (lo, hi))
        elif keep == "off":  # what a command line says for None
            object.__setattr__(self, "keep_band", None)
        elif keep not in ("auto", None):
            raise ValueError(f"keep_band must be (lo, hi), auto or off (null), got {keep!r}")
        if self.transform not in ("fir", "stft"):
            raise ValueError(f"transform must be fir or stft, got {self.transform!r}")
        if self.keep_to_last_cliff not in (True, False):
            raise ValueError(f"keep_to_last_cliff must be true or false, got {self.keep_to_last_cliff!r}")
        object.__setattr__(self, "keep_to_last_cliff", bool(self.keep_to_last_cliff))
        gain = float(self.invented_gain_db)
        if not GAIN_RANGE_DB[0] <= gain <= GAIN_RANGE_DB[1]:
            raise ValueError(f"invented_gain_db must be between {GAIN_RANGE_DB[0]:g} and {GAIN_RANGE_DB[1]:g} dB, "
                             f"got {self.invented_gain_db!r}")
        object.__setattr__(self, "invented_gain_db", gain)
        search = float(self.edge_search_from)
        if not 0 < search < 1:
            raise ValueError(f"edge_search_from must be a fraction of the input's Nyquist frequency in (0, 1), "
                             f"got {self.edge_search_from!r}")
        object.__setattr__(self, "edge_search_from", search)
        if self.complete_from_hz is not None:
            if not float(self.complete_from_hz) > 0:
                raise ValueError(f"complete_from_hz must be a frequency above 0 Hz (or null), got {self.complete_from_hz!r}")
            object.__setattr__(self, "complete_from_hz", float(self.complete_from_hz))
        if self.level_ceiling_db is not None:
            margin = float(self.level_ceiling_db)
            if not CEILING_RANGE_DB[0] <= margin <= CEILING_RANGE_DB[1]:
                raise ValueError(f"level_ceiling_db must be between {CEILING_RANGE_DB[0]:g} and "
                                 f"{CEILING_RANGE_DB[1]:g} dB (or null), got {self.level_ceiling_db!r}")
            object.__setattr__(self, "level_ceiling_db", margin)

    def replace(self, **changes: Any) -> OutputStage:
        """This stage with some fields changed (validated again); unknown names are an error."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"the output stage has no setting {', '.join(sorted(unknown))}; "
                             f"it has {', '.join(f.name for f in fields(self))}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.keep_band, tuple):
            data["keep_band"] = list(self.keep_band)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputStage:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def fills_from(self, source_nyquist: float) -> float:
        """The lowest frequency (Hz) from which the network's band can reach the output: an input
        whose content ends below it gets nothing from the network."""
        if self.keep_band == "auto":
            return self.edge_search_from * source_nyquist
        return self.keep_band[0] * source_nyquist if self.keep_band else 0.0

    def describe(self, source_nyquist: float) -> str:
        if self.keep_band == "auto":
            text = f"input kept up to {EDGE_GUARD_HZ:.0f} Hz below its own band edge (found per window), network above it"
        elif self.keep_band:
            lo, hi = self.keep_band
            text = f"input kept below {lo * source_nyquist / 1000:.2f} kHz, network above {hi * source_nyquist / 1000:.2f} kHz"
        else:
            text = "no band keeping"
        if self.level_ceiling_db is not None:
            text += f", held under the input's own spectrum continued upwards ({self.level_ceiling_db:+g} dB)"
        if self.invented_gain_db:
            text += f", band above the edge {self.invented_gain_db:+g} dB"
        if self.transform == "stft" and (self.keep_band or self.level_ceiling_db is not None or self.invented_gain_db):
            from audiosr.band import CEILING_N_FFT

            text += f" (per bin of {CEILING_N_FFT}-point frames)"
        return text

    def reach(self, rate: int, source_nyquist: float) -> int:
        """Samples each side that one output sample depends on, beyond the network's own reach
        (``source_nyquist``: what a fixed ``keep_band``'s fractions are fractions of)."""
        from audiosr.band import CEILING_HOP, CEILING_N_FFT, CEILING_REACH, kernel_taps

        if self.transform == "stft":
            # Every part acts on the frames an output sample lies in (half a frame each side), which
            # were made from half a frame more; the ceiling's reference reaches its frames each side.
            reach = CEILING_N_FFT if self.keep_band or self.invented_gain_db else 0
            if self.level_ceiling_db is not None:
                reach = CEILING_N_FFT + CEILING_HOP * (CEILING_REACH + 1)
            return reach
        if self.keep_band == "auto":
            reach = kernel_taps(rate, EDGE_GUARD_HZ) // 2
        elif self.keep_band:
            lo, hi = (fraction * source_nyquist for fraction in self.keep_band)
            reach = _crossover(lo, hi, rate).shape[-1] // 2
        else:
            reach = 0
        if self.invented_gain_db:
            reach += kernel_taps(rate, INVENTED_WIDTH_HZ) // 2
        if self.level_ceiling_db is not None:  # a frame's reach, and the reference's frames each side
            reach += CEILING_N_FFT + CEILING_HOP * (CEILING_REACH + 1)
        return reach

    def edges(self, rough: torch.Tensor, rate: int, source_nyquist: float, last: bool = False) -> torch.Tensor:
        """``(B, 1, T)`` -> ``(B,)``: where each item's content ends (Hz), as this stage sees it (``last``:
        at its last cliff, see :func:`audiosr.band.content_edge`)."""
        import torch

        from audiosr.band import content_edge

        batch = rough.shape[0]
        if self.keep_band == "auto":
            return content_edge(rough[:, 0], rate, self.edge_search_from * source_nyquist, source_nyquist, last=last)
        edge = self.keep_band[1] * source_nyquist if self.keep_band else source_nyquist
        return torch.full((batch,), float(edge), device=rough.device)

    def kept_edges(self, rough: torch.Tensor, rate: int, source_nyquist: float,
                   edges: torch.Tensor | None) -> torch.Tensor | None:
        """``(B,)``: up to where the stage keeps each item's input and above where it acts, given the
        ``edges`` the network was told: those, or with ``keep_to_last_cliff`` each item's last cliff
        where it lies higher."""
        import torch

        if self.keep_band == "auto" and self.keep_to_last_cliff and edges is not None:
            return torch.maximum(edges, self.edges(rough, rate, source_nyquist, last=True))
        return edges

    def complete_from(self, source_nyquist: float) -> float:
        """The edge (Hz) from which an input at the output rate lacks nothing."""
        return source_nyquist if self.complete_from_hz is None else min(self.complete_from_hz, source_nyquist)

    def complete(self, edges: torch.Tensor, source_nyquist: float) -> torch.Tensor:
        """``(B,)`` bool: which items' band lacks nothing (:meth:`complete_from`)."""
        return edges >= self.complete_from(source_nyquist)

    def __call__(self, rough: torch.Tensor, estimate: torch.Tensor, rate: int, source_nyquist: float,
                 training: bool, edges: torch.Tensor | None = None) -> torch.Tensor:
        """The output ``(B, 1, T)`` float32 from the rough input and the network's estimate (both float32).

        ``edges`` ``(B,)``: each item's band edge (Hz) where the caller knows it (the channels of one
        recording share one), instead of what :meth:`edges` finds.
        """
        import torch

        ceiling = self.level_ceiling_db is not None and not training
        gain = bool(self.invented_gain_db) and not training
        if edges is None and (self.keep_band == "auto" or ceiling or gain):
            edges = self.edges(rough, rate, source_nyquist)
        kept_to = self.kept_edges(rough, rate, source_nyquist, edges)
        if not (self.keep_band is not None or ceiling or gain):
            output = estimate
        elif self.transform == "stft":
            output = self._in_frames(rough, estimate, rate, source_nyquist, kept_to, ceiling, gain)
        else:
            output = self._with_filters(rough, estimate, rate, source_nyquist, kept_to, ceiling, gain)
        if self.keep_band == "auto" and source_nyquist >= rate / 2:
            # An input at the output rate whose content reaches the top (no edge found), or as near
            # it as complete_from_hz, lacks nothing: it is the output, bit for bit, whatever the
            # settings above.
            output = torch.where(self.complete(edges, source_nyquist).reshape(-1, 1, 1), rough, output)
        return output

    def _with_filters(self, rough: torch.Tensor, estimate: torch.Tensor, rate: int, source_nyquist: float,
                      edges: torch.Tensor | None, ceiling: bool, gain: bool) -> torch.Tensor:
        """``transform: fir``: keeping and the gain as FIR filters over the whole window, the ceiling on
        frames of its own."""
        import torch

        from audiosr.band import filter_each, level_ceiling, lowpass_kernels

        if self.keep_band == "auto":
            kernels = lowpass_kernels(edges - EDGE_GUARD_HZ / 2, rate, EDGE_GUARD_HZ)
            output = estimate + filter_each(rough - estimate, kernels)
        elif self.keep_band:
            kernel = torch.from_numpy(_crossover(self.keep_band[0] * source_nyquist, self.keep_band[1] * source_nyquist,
                                                 rate)).to(rough.device)
            output = estimate + filter_each(rough - estimate, kernel)
        else:
            output = estimate
        if ceiling:
            output = level_ceiling(output, rough, edges, rate, self.level_ceiling_db)
        if gain:
            below = _mirrored_lowpass(output, lowpass_kernels(edges + INVENTED_WIDTH_HZ / 2, rate, INVENTED_WIDTH_HZ))
            output = output + (10.0 ** (self.invented_gain_db / 20.0) - 1.0) * (output - below)
        return output

    def _in_frames(self, rough: torch.Tensor, estimate: torch.Tensor, rate: int, source_nyquist: float,
                   edges: torch.Tensor | None, ceiling: bool, gain: bool) -> torch.Tensor:
        """``transform: stft``: keeping, the ceiling and the gain as weights on the bins of one pair of
        short-time transforms (the ceiling's frames), from the kernels' own frequency responses.

        Below where any of them acts (the keeping's pass band, within its kernel's ripple) the output's
        bins are the input's, untouched: only the bins above are weighed.
        """
        import torch

        from audiosr.band import CEILING_FADE_HZ, CEILING_HOP, CEILING_N_FFT, CEILING_NEAR_HZ, ceiling_gain, \
            fir_response, lowpass_response
        from audiosr.frames import istft, stft

        batch, length = rough.shape[0], rough.shape[-1]
        # The ends mirrored, not zeros: a step into silence has a band above the edge, and a gain there
        # would leave part of it as a click at every start and end.
        reference = stft(rough.reshape(batch, length), CEILING_N_FFT, CEILING_HOP, mirrored=True)
        spectrum = stft(estimate.reshape(batch, length), CEILING_N_FFT, CEILING_HOP, mirrored=True)
        bins = reference.shape[1]
        if self.keep_band == "auto":
            kept = lowpass_response(edges - EDGE_GUARD_HZ / 2, rate, EDGE_GUARD_HZ, CEILING_N_FFT)
        elif self.keep_band:
            kernel = _crossover(self.keep_band[0] * source_nyquist, self.keep_band[1] * source_nyquist, rate)
            kept = fir_response(torch.from_numpy(kernel).to(rough.device)[None], CEILING_N_FFT)
        else:
            kept = torch.zeros(1, bins, device=rough.device)
        acting = (kept < 1.0 - KEPT_RIPPLE).any(dim=0)
        first = int(acting.float().argmax()) if bool(acting.any()) else bins
        if ceiling:  # it lowers bins from its fade's start, spread a little lower by its smoothing
            start_hz = float(edges.min()) - CEILING_NEAR_HZ[1] - CEILING_FADE_HZ
            first = min(first, max(0, int(start_hz * CEILING_N_FFT / rate)))
        # Real arithmetic on the complex bins' (re, im) pairs: a real weight would otherwise be made complex.
        # Frame by frame (the transform's memory order, frames outer), so the inverse's FFTs run over
        # contiguous frames.
        by_frame, reference_by_frame = spectrum.transpose(1, 2), reference.transpose(1, 2)
        mixed = torch.lerp(torch.view_as_real(by_frame[..., first:]), torch.view_as_real(reference_by_frame[..., first:]),
                           kept[:, None, first:, None])
        output = torch.cat([reference_by_frame[..., :first], torch.view_as_complex(mixed)], dim=-1).transpose(1, 2)
        if ceiling or gain:  # outside training only: in place
            level = torch.ones(1, bins - first, 1, device=rough.device)
            if ceiling:
                level = ceiling_gain(output, reference, edges, rate, self.level_ceiling_db, first)
            if gain:
                below = lowpass_response(edges + INVENTED_WIDTH_HZ / 2, rate, INVENTED_WIDTH_HZ, CEILING_N_FFT)
                level = level * (1.0 + (10.0 ** (self.invented_gain_db / 20.0) - 1.0) * (1.0 - below[:, first:]))[..., None]
            torch.view_as_real(output)[:, first:].mul_(level[..., None])
        return istft(output, CEILING_N_FFT, CEILING_HOP, length).reshape(rough.shape)


@functools.lru_cache(maxsize=16)
def _crossover(lo_hz: float, hi_hz: float, rate: int) -> np.ndarray:
    import numpy as np

    from audiosr.dsp import crossover_kernel

    return crossover_kernel(lo_hz, hi_hz, rate).astype(np.float32)


def _mirrored_lowpass(output: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``output`` low-passed by one kernel per item, its ends mirrored.

    Zeros outside would make a click of every start and end whose high-passed part a gain then
    changes at all frequencies.
    """
    import torch

    from audiosr.band import filter_each

    half, length = kernels.shape[-1] // 2, output.shape[-1]
    if length <= half:
        return filter_each(output, kernels)
    padded = torch.nn.functional.pad(output, (half, half), mode="reflect")
    return filter_each(padded, kernels)[..., half: half + length]


def stage_from_legacy(data: dict[str, Any]) -> OutputStage:
    """The stage of a spec written before the stage had a name (flat ``keep_band``, ... fields).

    ``top_band_gain_db`` (a further gain above a fixed 16 kHz) is not carried over: it made a step
    in every output's spectrum, and it won only where references were empty because an encoder cut them.
    """
    keep = data.get("keep_band")
    return OutputStage(keep_band=tuple(keep) if isinstance(keep, list) else keep,
                       level_ceiling_db=data.get("level_ceiling_db"),
                       invented_gain_db=data.get("invented_gain_db", 0.0) or 0.0)



TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on"), ("false", "no", "off")


def parse_setting(text: str, name: str | None = None) -> Any:
    """A stage setting as typed on a command line: a number, ``auto``, ``LO,HI`` or ``off``; for the
    setting ``name``, a choice of words (``transform``: ``fir`` or ``stft``) or ``true`` / ``false``."""
    word = text.strip().lower()
    setting = OutputStage.__dataclass_fields__.get(name) if name else None
    if setting is not None and setting.type == "bool":
        if word in TRUE_WORDS + FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError(f"expected true or false, got {text!r}")
    if setting is not None and setting.metadata.get("choices"):
        if word in setting.metadata["choices"]:
            return word
        raise ValueError(f"expected {' or '.join(setting.metadata['choices'])}, got {text!r}")
    if word in ("off", "none", "null"):
        return None
    if word == "auto":
        return "auto"
    parts = word.strip("[]()").split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected a number, auto, LO,HI or off, got {text!r}") from None
    return numbers[0] if len(numbers) == 1 else tuple(numbers)
