"""Upsample waveforms and audio files with a trained generator; no Lightning, no Trainer.

    upsampler = Upsampler.from_checkpoint()                # the model shipped with audiosr
    upsampler = Upsampler.from_checkpoint("best.ckpt", device="cpu")
    high = upsampler.upsample(low, 22050)                  # (C, T) -> (C, 2 T) at 44.1 kHz
    upsampler.upsample_file("talk.wav", "out/talk.wav")

Input at the model's source rate goes straight to the rough upsampler. Input at another
rate below the target rate is brought to the source rate first (soxr VHQ); when it lies
*above* the source rate, its own content up to its own Nyquist frequency is kept and the
model only fills the band above it. Input at or above the target rate is refused
(``RateError``), except by a model for any input (``ModelSpec.any_input``): it takes every
rate, brings the input to the target rate (soxr VHQ) and fills above the edge it finds in each
window; an input whose content already reaches the top is left as it is, and said so. Files are read, upsampled and written block by block (see
``audiosr.inference.windowing``), so memory does not grow with duration. Samples that are NaN or
infinite fail the input (``AudioError``) unless ``nonfinite="zero"`` asks for them to be
replaced by zeros; an output is never written from them.
"""

from __future__ import annotations

import itertools
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import torch

from audiosr.audio_io import (
    FLOAT_SUBTYPES,
    atomic_output,
    can_write,
    declared_frames,
    format_from_suffix,
    read_blocks,
    scratch_file,
    short_read,
)
from audiosr.dsp import crossover_kernel, crossover_stream, fit_stream, nyquist, output_length, resample_stream
from audiosr.inference.stereo import stereo_reach
from audiosr.inference.windowing import DEFAULT_OVERLAP, DEFAULT_WINDOW, WindowPlan, refine_in_windows
from audiosr.models.checkpoint import load_generator
from audiosr.models.generator import Generator, Precision, inference_precision
from audiosr.output_stage import OutputStage

logger = logging.getLogger(__name__)

NonFinite = Literal["error", "zero"]
# Input between the source and target rates is kept below OWN_BAND[0] x its own Nyquist
# frequency and handed to the model above OWN_BAND[1] x (soxr VHQ is flat to about 0.94 x).
OWN_BAND = (0.88, 0.96)


# A 2-D waveform's channel axis is the shorter one and holds at most this many channels.
MAX_CHANNELS = 64


def channels_first(waveform: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(T,)``, ``(C, T)`` or ``(T, C)`` -> ``((C, T), whether it was (T, C))``; a shape that says neither is refused."""
    if waveform.ndim == 1:
        return waveform[None], False
    if waveform.ndim == 2:
        rows, columns = waveform.shape
        if rows <= MAX_CHANNELS and (columns >= rows or columns == 0):
            return waveform, False
        if columns <= MAX_CHANNELS and rows > MAX_CHANNELS:
            return np.ascontiguousarray(waveform.T), True
    raise ValueError(f"waveform of shape {waveform.shape}: expected (T,), (C, T) or (T, C) as soundfile.read returns "
                     f"it, with at most {MAX_CHANNELS} channels and more samples than channels")


class RateError(ValueError):
    """The input is already at or above the model's target rate."""


class AudioError(ValueError):
    """The input's samples cannot be upsampled as they are (NaN or infinite, empty)."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_checkpoint() -> Path:
    """The small default model that ships inside the package (see its MODEL_CARD.md)."""
    from audiosr.pretrained import default_model_path

    return default_model_path()


class Upsampler:
    """A trained :class:`Generator`, run window by window.

    Args:
        device: torch device (default: cuda if available, else cpu).
        window, overlap: window geometry in seconds (see ``audiosr.inference.windowing``).
        context: seconds of extra, discarded input each side of a window; default: the
            generator's receptive field, so windowing changes nothing but memory.
        batch_size: windows per network call; raise it on a GPU.
        workers: CPU windows refined at once, each on its own thread with one torch thread (the
            calling process's torch threads are set to one while they run, then restored). On a
            CPU, the operations on one window are too small to keep several cores busy; separate
            windows are not. Give it the cores this process may use (``audiosr upsample`` does).
        precision: ``"32"`` (default), ``"bf16"`` or ``"16"``: the network's precision,
            the same flag as ``audiosr test --model.init_args.precision``.
        nonfinite: what NaN / infinite input samples do: ``"error"`` fails the input,
            ``"zero"`` replaces them with zeros (one notice says how many).
        output_stage: settings of the model's output stage to change, by name
            (``{"invented_gain_db": -3}``, ``{"level_ceiling_db": None}``; see
            ``audiosr.output_stage.OutputStage``), or a whole ``OutputStage``; the model's
            own stage otherwise (``spec.stage``, as stored in its checkpoint).
        shared_stereo: the channels of a recording share one band edge and one invented band,
            related as their inputs are below the edge (``audiosr.inference.stereo``; default);
            ``False``: each channel is upsampled on its own.
        notice: where one-line notices go (resampling the input, ...); default: logging.
    """

    def __init__(
        self,
        generator: Generator,
        *,
        device: str | torch.device | None = None,
        window: float = DEFAULT_WINDOW,
        overlap: float = DEFAULT_OVERLAP,
        context: float | None = None,
        batch_size: int = 1,
        workers: int = 1,
        precision: Precision = "32",
        nonfinite: NonFinite = "error",
        output_stage: OutputStage | Mapping[str, Any] | None = None,
        shared_stereo: bool = True,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if nonfinite not in ("error", "zero"):
            raise ValueError(f"nonfinite must be 'error' or 'zero', got {nonfinite!r}")
        inference_precision("cpu", precision)  # validates the name
        if output_stage:  # a new wrapper around the same network: the caller's is unchanged
            stage = output_stage if isinstance(output_stage, OutputStage) else generator.spec.stage.replace(**output_stage)
            generator = Generator(generator.network, replace(generator.spec, stage=stage))
        self.device = torch.device(device or default_device())
        self.generator = generator.to(self.device).eval()
        self.spec = generator.spec
        self.batch_size = batch_size
        self.workers = workers if self.device.type == "cpu" else 1
        self.precision = precision
        self.nonfinite = nonfinite
        self.notice = notice or logger.info
        self.shared_stereo = shared_stereo and self.spec.stage.keep_band is not None  # an edge to share above
        # A model for any input counts the windows it found nothing missing in (the "nothing added" notice).
        self.windows_seen = self.windows_complete = 0
        spec = self.spec
        reach = generator.receptive_field + (stereo_reach(spec.target_rate) if self.shared_stereo else 0)
        context_samples = reach if context is None else round(context * spec.target_rate)
        self.plan = WindowPlan(
            spec.source_rate, spec.target_rate, spec.input_filter, round(window * spec.target_rate),
            round(overlap * spec.target_rate), context_samples, generator.length_multiple,
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device | None = None, **kwargs) -> Upsampler:
        """Load a checkpoint (a training checkpoint or a generator file); default: the shipped model."""
        return cls(load_generator(path if path is not None else default_checkpoint()), device=device, **kwargs)

    @property
    def target_rate(self) -> int:
        return self.spec.target_rate

    def check_rate(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise RateError(f"sample rate {sample_rate} Hz is not a rate")
        if self.spec.any_input:
            return
        if sample_rate >= self.target_rate:
            raise RateError(
                f"sample rate {sample_rate} Hz is already at or above the model's target rate {self.target_rate} Hz"
            )

    def refine(self, segments: list[np.ndarray]) -> list[np.ndarray]:
        """Run the generator on rough segments ``(C, L_i)``; channels and windows form the batch.

        Segments of equal length share one call; padding shorter ones instead would
        change the network's output near their ends. The channels of a segment share one band
        edge and one invented band (``audiosr.inference.stereo``) unless ``shared_stereo`` is off.
        With ``workers`` above one, each segment is refined on a thread of its own.
        """
        if self.workers == 1 or len(segments) == 1:
            refined, seen, complete = self._refine(segments)
        else:
            # A pool per call (a thread costs far less than a window): nothing outlives the call, and a
            # window that fails cancels those not started before torch's threads are restored.
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            pool = ThreadPoolExecutor(min(self.workers, len(segments)), thread_name_prefix="audiosr-window")
            try:
                results = list(pool.map(lambda segment: self._refine([segment]), segments))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                torch.set_num_threads(before)
            refined = [r[0][0] for r in results]
            seen, complete = sum(r[1] for r in results), sum(r[2] for r in results)
        self.windows_seen += seen
        self.windows_complete += complete
        return refined

    @torch.inference_mode()
    def _refine(self, segments: list[np.ndarray]) -> tuple[list[np.ndarray], int, int]:
        """:meth:`refine` on one thread; also the windows seen, and of those the ones that lacked nothing."""
        refined: list[np.ndarray] = [np.empty(0)] * len(segments)
        seen = complete = 0
        by_length: dict[int, list[int]] = {}
        for i, segment in enumerate(segments):
            by_length.setdefault(segment.shape[-1], []).append(i)
        for indices in by_length.values():
            batch = torch.from_numpy(np.concatenate([segments[i] for i in indices])).to(self.device).unsqueeze(1)
            channels = [segments[i].shape[0] for i in indices]
            shared = self._shared_edges(batch, channels)
            edges = shared
            if self.spec.any_input:
                edges = edges if edges is not None else self.generator.band_edges(batch)
                complete += int(self.spec.stage.complete(edges, nyquist(self.target_rate)).sum())
                seen += len(edges)
            with inference_precision(self.device, self.precision):
                out = self.generator(batch, edges)
            out = out.squeeze(1).float()
            if shared is not None:
                # Shared above where the stage stopped keeping the input: never over a channel's own band.
                kept = self.spec.stage.kept_edges(batch, self.spec.target_rate, self.spec.cutoff_hz, shared)
                out = self._share_bands(out, batch[:, 0].float(), self._highest(kept, channels), channels)
            out = out.cpu().numpy()
            if not np.isfinite(out).all():
                raise AudioError("the network produced NaN or infinite samples; nothing was written")
            for i, part in zip(indices, np.split(out, np.cumsum(channels)[:-1])):
                refined[i] = part
        return refined, seen, complete

    def _shared_edges(self, batch: torch.Tensor, channels: list[int]) -> torch.Tensor | None:
        """One band edge per segment for all its channels: the loudest channel's. None where nothing is
        shared (mono only, sharing off, or a stage without an edge)."""
        if not self.shared_stereo or max(channels) < 2:
            return None
        found = self.generator.band_edges(batch)
        power = batch[:, 0].float().square().mean(dim=-1)
        edges, start = torch.empty_like(found), 0
        for count in channels:
            rows = slice(start, start + count)
            edges[rows] = found[rows][torch.argmax(power[rows])]
            start += count
        return edges

    @staticmethod
    def _highest(edges: torch.Tensor, channels: list[int]) -> torch.Tensor:
        """Each segment's highest edge over its channels, for all of them."""
        highest, start = torch.empty_like(edges), 0
        for count in channels:
            highest[start: start + count] = edges[start: start + count].max()
            start += count
        return highest

    def _share_bands(self, out: torch.Tensor, rough: torch.Tensor, edges: torch.Tensor,
                     channels: list[int]) -> torch.Tensor:
        from audiosr.inference.stereo import share_band

        start = 0
        for count in channels:
            rows = slice(start, start + count)
            if count > 1 and float(edges[start]) < nyquist(self.target_rate):  # at the top: nothing invented
                out[rows] = share_band(out[rows], rough[rows], float(edges[start]), self.target_rate)
            start += count
        return out

    def _checked(self, blocks: Iterable[np.ndarray], name: str) -> Iterator[np.ndarray]:
        """Blocks as float32, with NaN / infinite samples refused or zeroed (``nonfinite``)."""
        offset = repaired = 0
        for block in blocks:
            block = np.asarray(block, dtype=np.float32)
            bad = ~np.isfinite(block)
            if bad.any():
                if self.nonfinite == "error":
                    channel, index = np.argwhere(bad)[0]
                    raise AudioError(
                        f"contains NaN or infinite samples (first at sample {offset + index}, channel {channel}); "
                        "repair the file, or ask for them to be zeroed (--nonfinite zero)"
                    )
                repaired += int(bad.sum())
                block = np.where(bad, np.float32(0), block)
            offset += block.shape[-1]
            yield block
        if repaired:
            self.notice(f"{name}: {repaired} NaN or infinite samples replaced with zeros")
        if offset == 0:
            raise AudioError("empty: no samples to upsample")

    def stream(
        self, blocks: Iterable[np.ndarray], sample_rate: int, channels: int, name: str = "input"
    ) -> Iterator[np.ndarray]:
        """Upsample ``(C, n)`` blocks at ``sample_rate``; yields ``(C, m)`` at the target rate.

        Checks the rate now, not at the first block, so a refused input fails at once.
        """
        self.check_rate(sample_rate)
        source_rate, target_rate = self.spec.source_rate, self.target_rate
        blocks = self._checked(blocks, name)
        if sample_rate == source_rate:
            return self._windows(blocks, name)
        length = 0

        def counted(source: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal length
            for block in source:
                length += block.shape[-1]
                yield block

        def out_length() -> int:
            # Resampling rounds lengths; the output has ceil(T * target / rate) samples.
            return output_length(length, sample_rate, target_rate)

        def model(low: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            brought = resample_stream(low, sample_rate, source_rate, channels)
            return fit_stream(self._windows(brought, name), out_length)

        if sample_rate < source_rate or self.spec.any_input:
            fills_from = self.spec.stage.fills_from(nyquist(source_rate))
            if nyquist(sample_rate) < fills_from:  # nothing of its band reaches where the network works
                self.notice(f"{name}: {sample_rate} Hz input ends at {nyquist(sample_rate) / 1000:.1f} kHz, below the "
                            f"{fills_from / 1000:.1f} kHz from which this model fills: resampled to {target_rate} Hz "
                            "(soxr VHQ), nothing added")
                return fit_stream(resample_stream(counted(blocks), sample_rate, target_rate, channels), out_length)
            lost = f"; its content above {nyquist(source_rate) / 1000:g} kHz is not kept" if sample_rate > source_rate else ""
            self.notice(f"{name}: resampling {sample_rate} Hz to the model's {source_rate} Hz (soxr VHQ) first{lost}")
            return model(counted(blocks))
        # Between the source and the target rate the input's band is real content, kept: the
        # model runs on the input brought down to the band it was trained on, and a crossover
        # below the input's own Nyquist frequency hands over from the input (brought up with
        # soxr VHQ, flat to about 94 % of its Nyquist frequency) to the model.
        lo, hi = (fraction * nyquist(sample_rate) for fraction in OWN_BAND)
        self.notice(f"{name}: {sample_rate} Hz input keeps its own content up to {lo / 1000:.1f} kHz; "
                    f"the model fills above {hi / 1000:.1f} kHz")
        for_model, own = itertools.tee(counted(blocks))
        direct = fit_stream(resample_stream(own, sample_rate, target_rate, channels), out_length)
        return crossover_stream(model(for_model), direct, crossover_kernel(lo, hi, target_rate))

    def _windows(self, rough: Iterable[np.ndarray], name: str) -> Iterator[np.ndarray]:
        """The network over ``rough`` at the source rate, window by window; for a model for any input, one line
        at the end when no window lacked anything (its content reached the top everywhere)."""
        windows = refine_in_windows(rough, self.plan, self.refine, max(self.batch_size, self.workers))
        if not self.spec.any_input:
            return windows

        def told() -> Iterator[np.ndarray]:
            self.windows_seen = self.windows_complete = 0
            yield from windows
            if self.windows_seen and self.windows_complete == self.windows_seen:
                top = self.spec.stage.complete_from(nyquist(self.target_rate))
                self.notice(f"{name}: its content already reaches {top / 1000:g} kHz: nothing added")

        return told()

    def upsample(self, waveform: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """Upsample ``(T,)``, ``(C, T)`` or ``(T, C)`` to float32 in the same layout at the target rate.

        ``(T, C)`` is how ``soundfile.read`` returns a multichannel file. A 2-D array is read as
        ``(C, T)`` when its first axis holds at most ``MAX_CHANNELS`` and is not the longer one, as
        ``(T, C)`` when its second axis holds at most ``MAX_CHANNELS`` and the first more; any other
        shape is refused (pass ``x.T`` or ``x[None]``).
        ``T_out = ceil(T * target_rate / sample_rate)``. Nothing is clipped: samples may exceed
        1.0 (a loud input's invented band adds level); what to do with them is the caller's
        choice (``upsample_file``'s ``overload``).
        """
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        waveform = np.asarray(waveform, dtype=np.float32)
        x, frames_first = channels_first(waveform)
        parts = list(self.stream([x], sample_rate, x.shape[0]))
        out = np.concatenate(parts, axis=1)
        expected = output_length(x.shape[-1], sample_rate, self.target_rate)
        assert out.shape[-1] == expected, (out.shape, expected)
        if waveform.ndim == 1:
            return out[0]
        return np.ascontiguousarray(out.T) if frames_first else out

    def upsample_file(
        self,
        src: str | Path,
        dst: str | Path,
        *,
        format: str | None = None,
        subtype: str | None = None,
        overload: Overload = "clip",
        truncated: Truncated = "error",
        overwrite: bool = False,
        on_progress: Callable[[float], None] | None = None,
    ) -> FileReport:
        """Upsample ``src`` into ``dst`` at the target rate, streaming; returns what was written.

        Args:
            format: libsndfile format; default: from ``dst``'s suffix, else ``src``'s format.
            subtype: default: ``src``'s subtype where ``format`` allows it.
            overload: output samples beyond full scale, in a subtype that cannot hold them
                (any but float): ``"clip"`` them (counted in the report), ``"scale"`` the
                whole file down so its peak is at full scale (the output is staged as
                float beside ``dst`` first, then written), or ``"float"``: write 32-bit
                float samples, which hold them as they are (``format`` must have them).
            truncated: a file shorter than its header says: ``"error"`` fails it (before
                any work where the header tells), ``"keep"`` upsamples what can be read.
            overwrite: replace ``dst`` if it exists (default: refuse, like ``audiosr upsample``
                without ``--overwrite``).
            on_progress: called with the seconds of output computed after each block.

        ``dst`` appears only when complete and valid (see ``atomic_output``): an input that
        fails half-way (NaN samples, a decoding error, a full disk) leaves nothing behind.
        """
        if overload not in OVERLOADS:
            raise ValueError(f"overload must be one of {', '.join(OVERLOADS)}, got {overload!r}")
        if truncated not in ("error", "keep"):
            raise ValueError(f"truncated must be 'error' or 'keep', got {truncated!r}")
        src, dst = Path(src), Path(dst)
        if dst.exists() and not overwrite:
            raise FileExistsError(f"{dst} exists; pass overwrite=True to replace it")
        with sf.SoundFile(src) as reader:
            self.check_rate(reader.samplerate)
            rate, channels = reader.samplerate, reader.channels
            declared = declared_frames(src, reader)
            if truncated == "error" and declared > reader.frames:
                raise AudioError(short_read_message(declared, reader.frames, rate))
            format = format or format_from_suffix(dst) or reader.format
            chosen = subtype
            if subtype is None:  # the source's, where the output can hold it (an MP3's cannot go into a WAV)
                subtype = reader.subtype if can_write(format, reader.subtype, self.target_rate, channels) \
                    else sf.default_subtype(format)
            if overload == "float" and subtype not in FLOAT_SUBTYPES:
                subtype = "FLOAT"
            if not can_write(format, subtype, self.target_rate, channels):
                choice = "choose another subtype=" if chosen else "choose format= (or another file suffix) or subtype="
                raise ValueError(f"{dst}: {format}/{subtype} cannot store {channels} channels at {self.target_rate} Hz; "
                                 f"{choice}")
            frames_read = 0

            def counted() -> Iterator[np.ndarray]:
                nonlocal frames_read
                for block in read_blocks(reader):
                    frames_read += block.shape[-1]
                    yield block

            def blocks() -> Iterator[np.ndarray]:
                for block in self.stream(counted(), rate, channels, str(src)):
                    yield block
                    if on_progress is not None:
                        on_progress(block.shape[1] / self.target_rate)
                # MP3 promises its frame count in a header, and a cut file stops early.
                if frames_read < declared and truncated == "error":
                    raise AudioError(short_read_message(declared, frames_read, rate))

            meter = _Meter()
            with atomic_output(dst) as partial:
                if overload == "clip" or subtype in FLOAT_SUBTYPES:
                    gain = 1.0
                    with sf.SoundFile(partial, "w", self.target_rate, channels, subtype, format=format) as writer:
                        for block in meter.measured(blocks()):
                            writer.write(_fitted(block, subtype))
                else:  # scale: the peak is known only at the end, so the output is staged as float
                    with scratch_file(dst, ".float.partial") as staged:
                        with sf.SoundFile(staged, "w", self.target_rate, channels, "FLOAT", format="RF64") as stage:
                            for block in meter.measured(blocks()):
                                stage.write(np.ascontiguousarray(block.T))
                        gain = min(1.0, 1.0 / meter.peak) if meter.peak > 0 else 1.0
                        with sf.SoundFile(staged) as stage, sf.SoundFile(
                            partial, "w", self.target_rate, channels, subtype, format=format
                        ) as writer:
                            for block in read_blocks(stage):
                                writer.write(_fitted(block * np.float32(gain), subtype))
        if frames_read < declared:
            self.notice(f"{src}: {short_read_message(declared, frames_read, rate, kept=True)}")
        clipped = meter.over if subtype not in FLOAT_SUBTYPES and overload == "clip" else 0
        return FileReport(dst, format, subtype, frames_read, declared, meter.frames, meter.peak,
                          meter.over, clipped, gain)


OVERLOADS = ("clip", "scale", "float")
Overload = Literal["clip", "scale", "float"]
Truncated = Literal["error", "keep"]


@dataclass(frozen=True)
class FileReport:
    """What :meth:`Upsampler.upsample_file` wrote. Levels are linear, 1.0 = full scale."""

    path: Path
    format: str
    subtype: str
    frames_read: int  # input frames decoded
    frames_declared: int  # what the input's header promised (more than read: it was cut short)
    frames: int  # output frames written
    peak: float  # the output's largest magnitude before clipping or scaling
    over: int  # output samples beyond full scale before clipping or scaling
    clipped: int  # of those, clipped in the file (overload "clip", a subtype that is not float)
    gain: float  # applied to the whole file (below 1 only for overload "scale")

    @property
    def truncated(self) -> bool:
        return self.frames_read < self.frames_declared


class _Meter:
    """Peak and count of samples beyond full scale of the blocks passing through."""

    def __init__(self) -> None:
        self.peak, self.over, self.frames = 0.0, 0, 0

    def measured(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            if block.size:
                magnitude = np.abs(block)
                self.peak = max(self.peak, float(magnitude.max()))
                self.over += int(np.count_nonzero(magnitude > 1.0))
            self.frames += block.shape[-1]
            yield block


def _fitted(block: np.ndarray, subtype: str) -> np.ndarray:
    """``(C, n)`` -> ``(n, C)`` for libsndfile, clipped to full scale unless ``subtype`` is float.

    libsndfile wraps around, not clips, when a float overflows an integer subtype.
    """
    return np.ascontiguousarray((block if subtype in FLOAT_SUBTYPES else np.clip(block, -1.0, 1.0)).T)




def dbfs(level: float) -> str:
    return f"{20 * math.log10(level):+.1f} dBFS" if level > 0 else "-inf dBFS"


def overload_message(report: FileReport) -> str:
    """One line on samples beyond full scale, and what became of them."""
    what = f"{report.over} output samples beyond full scale (peak {dbfs(report.peak)})"
    if report.clipped:
        return f"{what} clipped (--overload scale lowers the file to fit, --overload float keeps them)"
    if report.gain < 1.0:
        return f"{what}: the file was scaled by {20 * math.log10(report.gain):.1f} dB to fit"
    return f"{what}, kept as they are ({report.subtype} samples)"


def short_read_message(declared: int, read: int, rate: int, kept: bool = False) -> str:
    what = short_read(declared, read, rate)
    if kept:
        return f"{what}; upsampled what is there (--truncated keep)"
    return f"{what}; nothing written (--truncated keep upsamples what is there)"
