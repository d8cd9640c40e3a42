"""Upsample waveforms and audio files with a trained network; no Lightning Trainer.

    upsampler = Upsampler.from_checkpoint("best.ckpt", device="cpu")
    high = upsampler.upsample(low, 22050)             # (C, T) -> (C, 2 T) at 44.1 kHz
    upsampler.upsample_file("talk.wav", "out/talk.wav")

Input at the checkpoint's source rate goes straight to the rough upsampler; input at any
other rate below the target rate is first brought to the source rate with soxr (VHQ),
streamed like everything else. Input at or above the target rate is refused
(``RateError``). Files are read, upsampled and written block by block (see
``audiosr.windowing``), so memory does not grow with duration.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from audiosr.checkpoint import ModelSpec, load_network
from audiosr.models.base import SuperResolutionNetwork
from audiosr.windowing import DEFAULT_CONTEXT, DEFAULT_OVERLAP, DEFAULT_WINDOW, WindowPlan, upsample_blocks

logger = logging.getLogger(__name__)

READ_FRAMES = 65536  # frames per file read; any size works, this keeps reads cheap
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
# Suffixes soundfile cannot map to a format by itself.
SUFFIX_FORMATS = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG", "opus": "OGG", "snd": "AU", "wave": "WAV"}


class RateError(ValueError):
    """The input is already at or above the model's target rate."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def format_from_suffix(path: str | Path) -> str | None:
    """libsndfile major format for a file name (``"WAV"``, ``"FLAC"``, ...), if any."""
    suffix = Path(path).suffix.lower().lstrip(".")
    name = SUFFIX_FORMATS.get(suffix, suffix.upper())
    return name if name in sf.available_formats() else None


@lru_cache(maxsize=None)
def can_write(format: str, subtype: str | None, rate: int, channels: int) -> bool:
    """Whether libsndfile accepts this format/subtype at ``rate`` (e.g. Opus: not 44.1 kHz)."""
    try:
        with sf.SoundFile(io.BytesIO(), "w", rate, channels, subtype, format=format):
            return True
    except (sf.LibsndfileError, ValueError, TypeError):
        return False


def output_format(format: str, subtype: str, channels: int, rate: int) -> tuple[str, str]:
    """The input's format and subtype if they can hold ``rate``, else FLAC (lossless)."""
    if can_write(format, subtype, rate, channels):
        return format, subtype
    return "FLAC", subtype if sf.check_format("FLAC", subtype) else "PCM_24"


@contextmanager
def atomic_output(dst: Path) -> Iterator[str]:
    """A hidden file beside ``dst`` to write; renamed to ``dst`` only if the block succeeds.

    A failure or interruption then never leaves a truncated output that a later run
    would skip as already done.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield partial
        os.replace(partial, dst)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def read_blocks(reader: sf.SoundFile, frames: int = READ_FRAMES) -> Iterator[np.ndarray]:
    """Blocks ``(C, n)`` float32 of an open file, from its current position to the end."""
    while True:
        block = reader.read(frames, dtype="float32", always_2d=True)
        if not len(block):
            return
        yield block.T


def resample_stream(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int, channels: int) -> Iterator[np.ndarray]:
    """Stream ``(C, n)`` blocks through soxr VHQ; same samples as one whole-signal call."""
    stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="VHQ")
    for block in blocks:
        yield stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32)).T
    yield stream.resample_chunk(np.zeros((0, channels), np.float32), last=True).T


class Upsampler:
    """A network plus its ``ModelSpec``, run window by window.

    Args:
        window, overlap, context: window geometry in seconds (see ``audiosr.windowing``).
        batch_size: windows per network call; raise it on a GPU.
        notice: where one-line notices go (resampling the input, ...); default: logging.
    """

    def __init__(
        self,
        network: SuperResolutionNetwork,
        spec: ModelSpec,
        *,
        device: str | torch.device | None = None,
        window: float = DEFAULT_WINDOW,
        overlap: float = DEFAULT_OVERLAP,
        context: float = DEFAULT_CONTEXT,
        batch_size: int = 1,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device or default_device())
        self.network = network.to(self.device).eval()
        self.spec = spec
        self.batch_size = batch_size
        self.notice = notice or logger.info
        # A U-Net pads to, and only commutes with shifts by, multiples of 2**depth.
        align = 2 ** getattr(network, "depth", 0)
        self.plan = WindowPlan.from_seconds(
            spec.source_rate, spec.target_rate, spec.input_filter, window, overlap, context, align
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None, **kwargs) -> Upsampler:
        network, spec = load_network(path, map_location="cpu")
        return cls(network, spec, device=device, **kwargs)

    @property
    def target_rate(self) -> int:
        return self.spec.target_rate

    def check_rate(self, sample_rate: int) -> None:
        if sample_rate >= self.target_rate:
            raise RateError(
                f"sample rate {sample_rate} Hz is already at or above the model's target rate {self.target_rate} Hz"
            )

    @torch.inference_mode()
    def refine(self, segments: list[np.ndarray]) -> list[np.ndarray]:
        """Run the network on rough segments ``(C, L_i)``; channels and windows form the batch.

        Segments of equal length share one call; padding shorter ones instead would
        change the network's output near their ends.
        """
        refined: list[np.ndarray] = [np.empty(0)] * len(segments)
        by_length: dict[int, list[int]] = {}
        for i, segment in enumerate(segments):
            by_length.setdefault(segment.shape[-1], []).append(i)
        for indices in by_length.values():
            batch = torch.from_numpy(np.concatenate([segments[i] for i in indices]))
            out = self.network(batch.to(self.device).unsqueeze(1)).squeeze(1).float().cpu().numpy()
            for i, part in zip(indices, np.split(out, len(indices))):
                refined[i] = part
        return refined

    def stream(
        self, blocks: Iterable[np.ndarray], sample_rate: int, channels: int, name: str = "input"
    ) -> Iterator[np.ndarray]:
        """Upsample ``(C, n)`` blocks at ``sample_rate``; yields ``(C, m)`` at the target rate.

        Checks the rate now, not at the first block, so a refused input fails at once.
        """
        self.check_rate(sample_rate)
        source_rate = self.spec.source_rate
        if sample_rate != source_rate:
            self.notice(f"{name}: resampling {sample_rate} Hz to the model's {source_rate} Hz (soxr VHQ) first")
            blocks = resample_stream(blocks, sample_rate, source_rate, channels)
        return upsample_blocks(blocks, self.plan, self.refine, self.batch_size)

    def upsample(self, waveform: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """Upsample ``(T,)`` or ``(C, T)`` to float32 ``(T_out,)`` or ``(C, T_out)``.

        ``T_out = ceil(T' * target / source)`` where ``T'`` is ``T`` at the source rate.
        """
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim not in (1, 2):
            raise ValueError(f"waveform must be (T,) or (C, T), got shape {waveform.shape}")
        x = np.atleast_2d(waveform)
        parts = list(self.stream([x], sample_rate, x.shape[0]))
        out = np.concatenate(parts, axis=1) if parts else np.zeros((x.shape[0], 0), np.float32)
        return out[0] if waveform.ndim == 1 else out

    def upsample_file(
        self,
        src: str | Path,
        dst: str | Path,
        *,
        format: str | None = None,
        subtype: str | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        """Upsample ``src`` into ``dst`` at the target rate, streaming.

        Args:
            format: libsndfile format; default: from ``dst``'s suffix, else ``src``'s format.
            subtype: default: ``src``'s subtype where ``format`` allows it.
            on_progress: called with the seconds of output written after each block.

        ``dst`` appears only when complete (see ``atomic_output``).
        """
        src, dst = Path(src), Path(dst)
        with sf.SoundFile(src) as reader:
            self.check_rate(reader.samplerate)
            format = format or format_from_suffix(dst) or reader.format
            if subtype is None and sf.check_format(format, reader.subtype):
                subtype = reader.subtype
            if not can_write(format, subtype, self.target_rate, reader.channels):
                raise ValueError(f"{format}/{subtype} cannot store {reader.channels} channels at {self.target_rate} Hz")
            with atomic_output(dst) as partial, sf.SoundFile(
                partial, "w", self.target_rate, reader.channels, subtype, format=format
            ) as writer:
                # libsndfile wraps around, not clips, when float overflows an integer subtype.
                clip = writer.subtype not in FLOAT_SUBTYPES
                for block in self.stream(read_blocks(reader), reader.samplerate, reader.channels, str(src)):
                    writer.write(np.ascontiguousarray((np.clip(block, -1.0, 1.0) if clip else block).T))
                    if on_progress is not None:
                        on_progress(block.shape[1] / self.target_rate)
