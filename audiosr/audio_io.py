"""Audio files: which paths count as audio, reading in blocks, writing safely.

One rule decides what an audio file is, for training corpora and for ``audiosr upsample``
alike (:func:`is_audio_name`): a name ending in one of :data:`AUDIO_EXTENSIONS` that is not
hidden. Whether the file can really be decoded is found out when it is read, and a file
that cannot is reported by name, never silently dropped.

A file shorter than its header says (a download or copy cut short) is found out by
:func:`declared_frames`: libsndfile itself quietly reads what is there. Every file audiosr
writes goes through :func:`atomic_output`, so a failed write (a full disk included, named
as such by :class:`DiskFullError`) never leaves a truncated file behind.
"""

from __future__ import annotations

import errno
import io
import os
import struct
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
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # hold samples beyond full scale; every other subtype clips at +-1
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


# Subtypes whose encoder throws away what it cannot hear or fit: an upsampled file written in one of
# them loses the band the model added (an MP3 encoder cuts near 16 kHz).
LOSSY_SUBTYPES = frozenset({"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III", "VORBIS", "OPUS", "GSM610", "ALAW",
                            "ULAW", "G721_32", "G723_24", "G723_40", "IMA_ADPCM", "MS_ADPCM", "VOX_ADPCM",
                            "NMS_ADPCM_16", "NMS_ADPCM_24", "NMS_ADPCM_32"})
CONTAINERS = ("auto", "same", "flac", "wav")  # the choices of `audiosr upsample --format`


def output_format(format: str, subtype: str, channels: int, rate: int, floating: bool = False,
                  container: str = "auto") -> tuple[str, str]:
    """Where an upsampled file goes: its format and subtype.

    ``container``: ``auto`` keeps the input's format and subtype where they can hold ``rate`` and
    lose nothing (a lossy input becomes FLAC, 24-bit); ``same`` keeps them wherever they can hold
    ``rate`` (a lossy input is encoded again); ``flac`` / ``wav`` force that container (the input's
    subtype where it can hold it, else 24-bit). Whatever cannot hold ``rate`` becomes FLAC.
    ``floating``: 32-bit float instead of any subtype that clips, in the chosen container where it
    has float samples, else WAV.
    """
    if container not in CONTAINERS:
        raise ValueError(f"unknown output container {container!r}; choose one of {', '.join(CONTAINERS)}")
    if container in ("flac", "wav"):
        format = container.upper()
    elif container == "auto" and subtype in LOSSY_SUBTYPES:
        format = "FLAC"
    if floating and subtype not in FLOAT_SUBTYPES:
        return (format, "FLOAT") if can_write(format, "FLOAT", rate, channels) else ("WAV", "FLOAT")
    if can_write(format, subtype, rate, channels):
        return format, subtype
    if format == "WAV":
        return "WAV", "PCM_24"
    return "FLAC", subtype if sf.check_format("FLAC", subtype) else "PCM_24"


SUFFIXES = {"FLAC": ".flac", "WAV": ".wav"}  # of the formats output_format may switch to


def declared_frames(path: str | Path, info: sf._SoundFileInfo | sf.SoundFile) -> int:
    """Frames the file's header promises: at least ``info.frames``, more if it was cut short.

    libsndfile counts a WAV's or AIFF's frames from the bytes actually there, so a file cut
    at a third reads as a shorter, complete file; their headers still say how long it was
    meant to be. Other formats report their header's count (MP3's Xing frame count: the
    reader then stops early) or fail to open when cut.
    """
    frames = info.frames
    if info.format in ("WAV", "WAVEX", "RF64", "AIFF"):
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 16)
        except OSError:
            return frames
        promised = _header_frames(head, info.format, info.channels, info.subtype)
        if promised is not None:
            frames = max(frames, promised)
    return frames


def short_read(declared: int, read: int, rate: int) -> str:
    """How a file cut short is described everywhere: both lengths, in frames and seconds."""
    return (f"shorter than its header says: {read} of {declared} frames "
            f"({read / rate:.2f} of {declared / rate:.2f} s) can be read")


_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                 "ULAW": 1, "ALAW": 1}


def _chunks(data: bytes, start: int, big_endian: bool) -> Iterator[tuple[bytes, int, int]]:
    """``(id, size, offset of the body)`` of the RIFF/AIFF chunks in ``data`` from ``start``."""
    order = ">" if big_endian else "<"
    while start + 8 <= len(data):
        name, size = data[start:start + 4], struct.unpack(order + "I", data[start + 4:start + 8])[0]
        yield name, size, start + 8
        start += 8 + size + (size & 1)


def _header_frames(head: bytes, format: str, channels: int, subtype: str) -> int | None:
    if format == "AIFF" and head[:4] == b"FORM":
        for name, _, body in _chunks(head, 12, big_endian=True):
            if name == b"COMM" and body + 6 <= len(head):
                return struct.unpack(">I", head[body + 2:body + 6])[0]
        return None
    width = _SAMPLE_BYTES.get(subtype)
    if width is None or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    for name, size, body in _chunks(head, 12, big_endian=False):
        if name == b"ds64" and body + 24 <= len(head):  # RF64: the 64-bit sizes live here
            return struct.unpack("<Q", head[body + 16:body + 24])[0] or None
        if name == b"data":
            # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back.
            return size // (width * channels) if size not in (0, 0xFFFFFFFF) else None
    return None


# A write that fails with less than this left on its drive is put down to a full disk:
# libsndfile and torch.save report one only as a generic error (a short write).
NEARLY_FULL_BYTES = 16 << 20


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # reading the umask means setting it: set it straight back


class DiskFullError(OSError):
    """A write failed because the drive (or the user's quota) is full; ``path`` is what was written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(errno.ENOSPC, f"no space left on device writing {self.path} (its drive is full)")

    def __str__(self) -> str:
        return self.strerror


def free_bytes(folder: str | Path) -> int:
    stat = os.statvfs(folder)
    # Root may use the blocks a filesystem reserves; anyone else may not.
    return (stat.f_bfree if os.geteuid() == 0 else stat.f_bavail) * stat.f_frsize


def _disk_full(error: BaseException, folder: Path) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(error, (OSError, RuntimeError)):  # libsndfile and torch raise RuntimeErrors
        return False
    try:
        return free_bytes(folder) < NEARLY_FULL_BYTES
    except OSError:
        return False


@contextmanager
def atomic_output(dst: str | Path) -> Iterator[str]:
    """A hidden file beside ``dst`` to write; renamed to ``dst`` only if the block succeeds.

    A failure or an interruption then never leaves a truncated file where a complete one
    is expected (an output a later run would skip as done, a checkpoint that will not load):
    ``dst`` is either the old file or the new one, whole. The data is flushed to disk
    before the rename. A write that fails on a full drive raises :class:`DiskFullError`
    naming ``dst`` (its cause: the writer's own error).
    """
    dst = Path(dst)
    with scratch_file(dst, ".partial") as partial:
        yield partial
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(partial, 0o666 & ~_UMASK)  # mkstemp makes it private; an output is not
        os.replace(partial, dst)


@contextmanager
def scratch_file(beside: str | Path, suffix: str) -> Iterator[str]:
    """A hidden, empty file in ``beside``'s folder, removed when the block ends, whatever happens.

    A failure on a full drive becomes :class:`DiskFullError` naming ``beside``; it is judged
    before the file is removed and frees its space again.
    """
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=beside.parent, prefix=f".{beside.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield path
    except Exception as error:
        if not isinstance(error, DiskFullError) and _disk_full(error, beside.parent):
            raise DiskFullError(beside) from error
        raise
    finally:
        if os.path.exists(path):
            os.remove(path)
