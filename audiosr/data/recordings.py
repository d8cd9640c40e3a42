"""Recordings at the target rate: in memory, or on disk after a one-time check and conversion.

Every file is decoded once when a corpus is indexed. What cannot be used is skipped with
one warning naming the file and the reason (unreadable, not audio, empty, cut short of
what its header says, shorter than a crop, silent, NaN; length is judged first), so a bad file never crashes a loader worker or slips zeros into a
batch. Files at another rate are resampled once and cached; the verdict for each file is
cached too, keyed by path, size and modification time, so later runs start at once.

A ``MANIFEST.tsv`` in a file's folder or a folder above it (as ``build.sh`` writes one) may
give the file's band edge (``lowpass_edge_hz``: where its encoder cut it); the recording
carries it as ``manifest_edge_hz`` (see :func:`manifest_edges`).
"""

from __future__ import annotations


import csv
import hashlib
import json
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from audiosr.audio_io import atomic_output, declared_frames, short_read
from audiosr.dsp import PEAK, output_length, resample


class SkippedAudioWarning(UserWarning):
    """A file of a corpus cannot be used; the message names it and says why."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("AUDIOSR_CACHE", "~/.cache/audiosr")).expanduser()


class Recording(ABC):
    """A mono-or-multichannel recording at the target rate, peak-normalised on read.

    ``weight`` scales how often training crops come from it (crops are drawn in proportion
    to ``frames * channels * weight``): a corpus can balance its sources with it.
    ``manifest_edge_hz`` is where its content ends according to a manifest (an encoder's
    low-pass, Hz); ``None`` where none says (it is then measured where it is needed).
    """

    name: str
    frames: int
    channels: int
    weight: float = 1.0
    manifest_edge_hz: float | None = None

    @abstractmethod
    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` as float32 ``(channels, stop - start)``."""

    def at_own_level(self) -> Recording:
        """The same recording read at the level of its file (no normalising gain)."""
        return self


@dataclass
class ArrayRecording(Recording):
    name: str
    data: np.ndarray  # (C, T) float32
    weight: float = 1.0
    manifest_edge_hz: float | None = None

    @property
    def frames(self) -> int:
        return self.data.shape[-1]

    @property
    def channels(self) -> int:
        return self.data.shape[0]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.data[:, start:stop]


@dataclass
class FileRecording(Recording):
    name: str
    path: str
    frames: int
    channels: int
    gain: float
    weight: float = 1.0
    manifest_edge_hz: float | None = None

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        data, _ = sf.read(self.path, start=start, stop=stop, dtype="float32", always_2d=True)
        return data.T * np.float32(self.gain)

    def at_own_level(self) -> FileRecording:
        return replace(self, gain=1.0)


@dataclass
class _Verdict:
    """What indexing learned about one source file (cached as JSON)."""

    ok: bool
    reason: str = ""
    frames: int = 0
    channels: int = 0
    peak: float = 0.0
    path: str = ""  # the file to read at the target rate (the source or its cached copy)


def _check_and_convert(source: Path, sample_rate: int, cache_dir: Path) -> _Verdict:
    if source.stat().st_size == 0:
        return _Verdict(False, "empty file (0 bytes)")
    try:
        with sf.SoundFile(str(source)) as reader:
            declared = declared_frames(source, reader)
            data = reader.read(dtype="float32", always_2d=True)
            rate = reader.samplerate
    except Exception as error:  # soundfile raises several types for bad input
        return _Verdict(False, f"not readable as audio ({str(error).strip() or type(error).__name__})")
    if data.shape[0] == 0:
        return _Verdict(False, "no samples")
    if data.shape[0] < declared:
        return _Verdict(False, f"{short_read(declared, data.shape[0], rate)}; cut short?")
    # The length at the target rate is kept with every verdict: index_files judges it first.
    frames = output_length(data.shape[0], rate, sample_rate)
    if not np.isfinite(data).all():
        return _Verdict(False, "contains NaN or infinite samples", frames=frames)
    peak = float(np.abs(data).max())
    if peak == 0.0:
        return _Verdict(False, "silent (every sample is zero)", frames=frames)
    path = str(source)
    if rate != sample_rate:
        try:
            converted = resample(data.T, rate, sample_rate, "kaiser_best")
        except ValueError as error:  # resampy refuses a handful of samples
            return _Verdict(False, f"too short to resample ({data.shape[0]} samples: {error})", frames=frames)
        digest = hashlib.sha1(f"{source.resolve()}:{sample_rate}".encode()).hexdigest()[:16]
        cached = cache_dir / "converted" / f"{source.stem}-{digest}-{sample_rate}.flac"
        cached.parent.mkdir(parents=True, exist_ok=True)
        peak = float(np.abs(converted).max())
        # 24-bit FLAC: lossless to ~-144 dB and a third of float32's size; clip-safe
        # because the stored signal is scaled to the peak and the gain undoes it.
        scale = 1.0 / peak if peak > 1.0 else 1.0
        with atomic_output(cached) as partial:
            sf.write(partial, (converted * scale).T, sample_rate, subtype="PCM_24", format="FLAC")
        peak *= scale
        data = converted.T
        path = str(cached)
    return _Verdict(True, frames=data.shape[0], channels=data.shape[1], peak=peak, path=path)


class _VerdictCache:
    def __init__(self, cache_dir: Path, sample_rate: int) -> None:
        # v2: verdicts learned to look for files cut short and to keep every length.
        self.file = cache_dir / f"index-v2-{sample_rate}.json"
        self.entries: dict[str, dict] = {}
        if self.file.is_file():
            try:
                self.entries = json.loads(self.file.read_text())
            except json.JSONDecodeError:
                self.entries = {}

    @staticmethod
    def key(path: Path) -> str:
        stat = path.stat()
        return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def get(self, path: Path) -> _Verdict | None:
        entry = self.entries.get(self.key(path))
        if entry is None:
            return None
        verdict = _Verdict(**entry)
        if verdict.ok and not Path(verdict.path).is_file():
            return None
        return verdict

    def put(self, path: Path, verdict: _Verdict) -> None:
        self.entries[self.key(path)] = asdict(verdict)

    def save(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries))
        tmp.replace(self.file)


MANIFEST = "MANIFEST.tsv"
# The manifest's columns: the file, relative to the manifest's folder (build.sh writes `file`,
# the dev set `path`), and its band edge in Hz (empty: not known).
MANIFEST_FILE_COLUMNS = ("file", "path")
MANIFEST_EDGE_COLUMN = "lowpass_edge_hz"


def _read_manifest(manifest: Path) -> dict[Path, dict[str, str]]:
    """Resolved file path -> its row (every column, as written) of one manifest."""
    rows: dict[Path, dict[str, str]] = {}
    with manifest.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            name = next((row[c] for c in MANIFEST_FILE_COLUMNS if row.get(c)), None)
            if name is not None:
                rows[(manifest.parent / name).resolve()] = {k: (v or "") for k, v in row.items() if k is not None}
    return rows


def _manifest_listings(paths: Sequence[Path]) -> dict[Path, tuple[Path, dict[str, str]]]:
    """Resolved file path -> ``(manifest, row)`` of the nearest manifest that lists the file."""
    tables: dict[Path, dict[Path, dict[str, str]] | None] = {}

    def table(folder: Path) -> dict[Path, dict[str, str]] | None:
        if folder not in tables:
            manifest = folder / MANIFEST
            tables[folder] = _read_manifest(manifest) if manifest.is_file() else None
        return tables[folder]

    listings: dict[Path, tuple[Path, dict[str, str]]] = {}
    for path in paths:
        path = Path(path).resolve()
        for folder in path.parents:
            listed = table(folder)
            if listed is not None and path in listed:
                listings[path] = (folder / MANIFEST, listed[path])
                break
    return listings


def manifest_rows(paths: Sequence[Path]) -> dict[Path, dict[str, str]]:
    """Every column the manifest of each file gives it (``package``, ``category``, ``lowpass_edge_hz``, ...).

    The manifest is found as :func:`manifest_edges` finds it; files no manifest lists are left out.
    Values are the strings as written (empty where the row has none).
    """
    return {path: row for path, (_, row) in _manifest_listings(paths).items()}


def manifest_edges(paths: Sequence[Path]) -> dict[Path, float]:
    """The band edges (Hz) that manifests give for these files, by resolved path.

    A file's manifest is the nearest ``MANIFEST.tsv`` in its folder or a folder above it that
    lists it: a ``file`` or ``path`` column relative to the manifest's folder, and a
    ``lowpass_edge_hz`` column. Files no manifest lists, or listed with an empty edge, are left out.
    """
    edges: dict[Path, float] = {}
    for path, (manifest, row) in _manifest_listings(paths).items():
        value = row.get(MANIFEST_EDGE_COLUMN, "").strip()
        if not value:
            continue
        try:
            edges[path] = float(value)
        except ValueError:
            name = next(row[c] for c in MANIFEST_FILE_COLUMNS if row.get(c))
            raise ValueError(f"{manifest}: {MANIFEST_EDGE_COLUMN} of {name} is not a number: {value!r}") from None
    return edges


def index_files(
    paths: Sequence[Path],
    sample_rate: int,
    cache_dir: Path,
    min_frames: int = 1,
    warn: bool = True,
    description: str = "indexing audio",
    reported: set[str] | None = None,
) -> list[FileRecording]:
    """Check, convert and describe audio files.

    Args:
        paths: audio files (any rate and channel count soundfile can read).
        sample_rate: the rate recordings are wanted at; others are resampled once.
        min_frames: files shorter than this at ``sample_rate`` are skipped.
        warn: emit one ``SkippedAudioWarning`` per unusable file.
        reported: files already warned about (updated), so that a file shared by two
            splits is named once.

    Returns:
        The usable recordings, peak-normalised to ``PEAK`` on read, each with the band edge
        its manifest gives (:func:`manifest_edges`) as ``manifest_edge_hz``.
    """
    cache = _VerdictCache(Path(cache_dir), sample_rate)
    recordings: list[FileRecording] = []
    changed = False
    for path in tqdm(paths, desc=description, unit="file", disable=len(paths) < 50, leave=False):
        path = Path(path)
        verdict = None if path.is_file() else _Verdict(False, "does not exist")
        if verdict is None:
            verdict = cache.get(path)
        if verdict is None:
            verdict = _check_and_convert(path, sample_rate, Path(cache_dir))
            cache.put(path, verdict)
            changed = True
        # Length first: a one-sample file is too short, whether or not its sample is zero.
        if verdict.frames and verdict.frames < min_frames:
            seconds = verdict.frames / sample_rate
            verdict = _Verdict(
                False, f"too short: {verdict.frames} samples ({seconds:.2f} s) at {sample_rate} Hz, "
                       f"a crop needs {min_frames} ({min_frames / sample_rate:.2f} s)"
            )
        if not verdict.ok:
            if warn and (reported is None or str(path) not in reported):
                if reported is not None:
                    reported.add(str(path))
                warnings.warn(f"skipping {path}: {verdict.reason}", SkippedAudioWarning, stacklevel=2)
            continue
        recordings.append(
            FileRecording(
                name=str(path), path=verdict.path, frames=verdict.frames,
                channels=verdict.channels, gain=PEAK / verdict.peak,
            )
        )
    if changed:
        cache.save()
    edges = manifest_edges([Path(r.name) for r in recordings])
    return [replace(r, manifest_edge_hz=edges.get(Path(r.name).resolve())) for r in recordings]
