"""Audio files: which paths count as audio, reading in blocks, writing safely.

One rule decides what an audio file is, for training corpora and for ``audiosr upsample``
alike (:func:`is_audio_name`): a name ending in one of :data:`AUDIO_EXTENSIONS` that is not
hidden. Whether the file can really be decoded is found out when it is read, and a file
that cannot is reported by name, never silently dropped.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

# What libsndfile reads, by file ending.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64".split()
)
READ_FRAMES = 65536  # frames per block read; any size works, this keeps reads cheap
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
# Suffixes soundfile cannot map to a format by itself.
SUFFIX_FORMATS = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG", "opus": "OGG", "snd": "AU", "wave": "WAV"}


def is_audio_name(path: Path, root: Path | None = None) -> bool:
    """Whether ``path`` is named like an audio file and is not hidden (below ``root``).

    Hidden names include macOS ``._x.wav`` resource forks, which are not audio.
    """
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return path.suffix.lower() in AUDIO_EXTENSIONS and not any(part.startswith(".") for part in parts)


def list_audio(folder: Path) -> list[Path]:
    """Audio-named entries below ``folder`` (recursive, sorted), folders excluded.

    Broken links and unreadable files are listed too: the caller reads them and reports.
    """
    return sorted(p for p in folder.rglob("*") if is_audio_name(p, folder) and not p.is_dir())


def find_audio(entries: Iterable[str | Path]) -> list[Path]:
    """Expand files, folders (recursive) and ``.txt`` lists of paths into audio files.

    Files inside folders are chosen by :func:`is_audio_name`; a file named directly, or in
    a list, is always kept, so that a mislabelled one is reported rather than ignored.
    """
    found: list[Path] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            found.extend(list_audio(path))
        elif path.suffix.lower() == ".txt" and path.is_file():
            base = path.parent
            for line in path.read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    item = Path(line.strip()).expanduser()
                    found.append(item if item.is_absolute() else base / item)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"audio source {path} does not exist")
    return found


def read_blocks(reader: sf.SoundFile, frames: int = READ_FRAMES) -> Iterator[np.ndarray]:
    """Blocks ``(C, n)`` float32 of an open file, from its current position to the end."""
    while True:
        block = reader.read(frames, dtype="float32", always_2d=True)
        if not len(block):
            return
        yield block.T


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
def atomic_output(dst: str | Path) -> Iterator[str]:
    """A hidden file beside ``dst`` to write; renamed to ``dst`` only if the block succeeds.

    A failure or an interruption then never leaves a truncated file where a complete one
    is expected (an output a later run would skip as done, a checkpoint that will not load):
    ``dst`` is either the old file or the new one, whole. The data is flushed to disk
    before the rename.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield partial
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, dst)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
