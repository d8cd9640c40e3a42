"""Shards: a corpus written once at the target rate as tar files, streamed back for training.

A folder of recordings on one disk is decoded (and, at another rate, converted) crop by crop. A
corpus of hundreds of hours trained on several machines is instead written once, by
``audiosr shards write``, as shards that each process streams from a local disk or from object
storage, reading its own part only.

**What a shard folder holds.** ``index.json`` (the rate, the chunk length, the ``codecs`` its items
were coded with, every shard with its number of items) and ``shard-000000.tar``, ... in the
WebDataset layout: one item per chunk of a recording, ``<key>.flac`` (the chunk at its file's own
level, every channel) and ``<key>.json`` (``source``, ``start`` frame, the ``gain`` that brings it to
the level :class:`~audiosr.data.recordings.FileRecording` reads it at, and every column its
``MANIFEST.tsv`` gives: package, category, lowpass_edge_hz, ...). Keys number the items of the
whole corpus in the order written; the files are written in an order shuffled by ``seed``, so that
every shard mixes the corpus's sources.

**Codec round trips, made once.** A real codec round trip (:class:`~audiosr.data.degradations.Codec`)
runs on the CPU only, and costs more than the rest of a training item together. Written with
``codecs`` (``--codecs mp3:64,vorbis:96,...``, or ``any-band``: :class:`~audiosr.data.AnyBand`'s
list), every item also holds ``<key>.coded.flac``: its chunk at the training level (``gain``
applied, as :meth:`ShardReader.decode` gives it), each channel on its own (training crops are one
channel), coded with one setting drawn from ``(seed, key)`` with the very ``Codec(codec, kbps,
"soxr_vhq")`` a training item would use; its json says which (``coded``: ``"mp3:64"``) and
``coded_gain``, the factor that brings the stored codes back to that level (1 unless the decoded
signal went above full scale). It is stored on the 24-bit grid (a rounding at -144 dB) and read back
as ``meta["prepared"] = {"mp3:64": (C, T)}``; a training crop gets the same channel and window of
it, handed to the pair maker as ``prepared``, which uses it whenever its degradation draws that
codec round trip. Shards written without codecs have neither, and read as before.

**Why 24-bit FLAC chunks.** Every recording the corpus checks hand out is on the 24-bit grid
already (16- and 24-bit files at the target rate, and the 24-bit FLAC copies other rates are
converted into), so chunks read back bit for bit, at about half the size of float32; a float file at
the target rate is rounded at -144 dB. Chunks of ``chunk_seconds`` rather than whole recordings
bound what one item, a shuffle window and a crop cost to read; the last piece of a recording
shorter than ``min_seconds`` joins the chunk before it.

**An epoch.** Every item gives one training crop per epoch: a ``segment_seconds`` window of one
channel, both drawn from ``(seed, epoch, key)``. The shards are put in an order drawn from
``(seed, epoch)``; the items in that order are cut into one contiguous block per process (so each
reads about ``1 / world_size`` of the shards), ``items // (world_size * batch_size)`` batches each,
the few items left over waiting for the next epoch's order. Inside its block a process shuffles
windows of ``shuffle_items`` items and reads its batches in streams, one per loader worker,
each a run of consecutive batches. The loader hands the workers' batches out in turn, so after any
number of batches it is known which of each stream's batches are gone: that position (the epoch
and what is left of every stream) is the same on every process, and is what the data module saves
in ``last.ckpt``; a run resumed with ``--ckpt_path last`` reads the rest of the epoch, each batch
once, with any number of workers.

**Why WebDataset and not LitData.** LitData 0.2.76 (``litdata.optimize``, ``StreamingDataset``,
``StreamingDataLoader``) would add eight packages to the lock, about 31 MB of wheels: itself,
torchvision (a third compiled package that loads only beside the torch it was built for, as
torchaudio), boto3 with botocore, s3transfer and jmespath, obstore and tifffile. Its loader counts
a batch as used when it leaves the loader, which Lightning's prefetching puts a batch ahead of
training, and its resume has had a history of bugs. WebDataset 1.0.2 adds two pure-Python packages
(itself and braceexpand, 81 kB): the tar layout other audio tools read, its writer, and ``gopen``,
which opens paths, ``file://``, ``http(s)://`` (curl), ``gs://`` (gsutil) and any command through
``pipe:`` (``s3://`` here goes through ``aws s3 cp``). The exact per-process split and the
mid-epoch position are this module's own: a few pure functions, tested.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, IterableDataset, default_collate, get_worker_info

from audiosr.audio_io import atomic_output, find_audio
from audiosr.data.degradations import OPUS_RATES, AnyBand, Codec, _codec_setting, encoder_setting
from audiosr.data.pairs import PairMaker
from audiosr.data.recordings import SkippedAudioWarning, default_cache_dir, index_files, manifest_rows

INDEX = "index.json"
FORMAT = "audiosr-shards"
VERSION = 1
# Codes of 24-bit PCM: a sample x is stored as round(x * 2**23); a chunk above full scale is scaled to
# fit first, and the factor kept with it (`flac24`, the item's `gain`).
FULL_SCALE = 2 ** 23


class ShardError(OSError):
    """A shard folder or one of its shards cannot be read; the message names it."""


# --- where shards are ---------------------------------------------------------------------------

def _is_url(location: str) -> bool:
    return len(urlparse(location).scheme) > 1  # not a drive letter


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if _is_url(root) else str(Path(root).expanduser() / name)


def _open(url: str):
    """A binary stream of ``url``: a path or any URL WebDataset's ``gopen`` opens (``s3://`` through ``aws``)."""
    from webdataset.gopen import gopen

    if urlparse(url).scheme == "s3":
        url = f"pipe:aws s3 cp {url} -"
    return gopen(url, "rb")


def read_index(root: str) -> dict[str, Any]:
    """The ``index.json`` of the shard folder or URL prefix ``root``."""
    url = _join(root, INDEX)
    try:
        with _open(url) as stream:
            index = json.loads(stream.read())
    except Exception as error:
        raise ShardError(f"{url}: not a readable shard index ({error}); `audiosr shards write` makes one") from error
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ShardError(f"{url}: not an {FORMAT} v{VERSION} index")
    return index


# --- writing ------------------------------------------------------------------------------------

def chunk_bounds(frames: int, chunk_frames: int, min_frames: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each chunk of a recording of ``frames``: ``chunk_frames`` each, the last
    piece joining the one before it when shorter than ``min_frames``."""
    bounds = [(start, min(start + chunk_frames, frames)) for start in range(0, frames, chunk_frames)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_frames:
        bounds[-2:] = [(bounds[-2][0], frames)]
    return bounds


def flac24(audio: np.ndarray, rate: int) -> tuple[bytes, float]:
    """``audio`` ``(C, T)`` as 24-bit FLAC, and the factor it was scaled by to fit (1 unless above full scale).

    Samples are rounded to the nearest 24-bit code, so audio on that grid is stored exactly.
    """
    peak = float(np.abs(audio).max())
    limit = (FULL_SCALE - 1) / FULL_SCALE
    level = 1.0 if peak <= limit else limit / peak
    codes = np.round(audio.astype(np.float64) * (level * FULL_SCALE)).astype(np.int32)
    buffer = io.BytesIO()
    # soundfile hands int32 to libsndfile, which keeps the top 24 bits: shift the codes up.
    sf.write(buffer, (codes << 8).T, rate, format="FLAC", subtype="PCM_24")
    return buffer.getvalue(), level


def _read_flac(data: bytes) -> np.ndarray:
    """A stored FLAC stream as ``(C, T)`` float32 (24-bit codes / 2**23: exact in float32)."""
    audio, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.T


# What `codecs` may name instead of settings: AnyBand's own list.
ANY_BAND = "any-band"


def codec_settings(codecs: Sequence[str], rate: int) -> list[str]:
    """``codecs`` (settings ``"mp3:64"``, or ``"any-band"``: :class:`~audiosr.data.AnyBand`'s list)
    as ``CODEC:KBPS`` strings in the form a pair maker's ``prepared`` names them (``"mp3:64"``),
    each checked now: its syntax, and that its encoder reaches that bitrate at ``rate`` for one
    channel (the error names the setting)."""
    settings: list[str] = []
    for text in codecs:
        if str(text).strip() == ANY_BAND:
            pairs = list(AnyBand().codecs)
        else:
            pairs = [_codec_setting(str(text).strip())]
        for codec, kbps in pairs:
            setting = f"{codec}:{kbps:g}"
            at = OPUS_RATES[-1] if codec == "opus" and rate not in OPUS_RATES else rate  # as Codec codes it
            try:
                encoder_setting(codec, at, 1, kbps)
            except ValueError as error:
                raise ValueError(f"codecs: {setting!r} cannot be used at {rate} Hz ({error})") from None
            if setting not in settings:
                settings.append(setting)
    return settings


def code_chunk(chunk: np.ndarray, rate: int, setting: str, rng: np.random.Generator) -> np.ndarray:
    """``chunk`` ``(C, T)`` at the training level round-tripped through ``setting`` (``"mp3:64"``)
    as a one-channel training crop is (:class:`~audiosr.data.degradations.Codec` with soxr VHQ,
    what :class:`~audiosr.data.AnyBand` runs), each channel on its own: ``(C, T)`` float32."""
    codec, kbps = _codec_setting(setting)
    degradation = Codec(codec, kbps, "soxr_vhq")
    return np.concatenate([degradation(chunk[c:c + 1], rate, rate, rng)[0] for c in range(chunk.shape[0])])


class _ShardFiles:
    """Shards written one after another into a folder, each renamed into place once it holds ``limit`` bytes."""

    def __init__(self, folder: Path, limit: float) -> None:
        self.folder, self.limit = folder, limit
        self.written: list[dict[str, Any]] = []
        self._open: tuple[ExitStack, Any, dict[str, Any]] | None = None

    def write(self, sample: dict[str, Any], size: int) -> None:
        from webdataset import TarWriter

        if self._open is None:
            name = f"shard-{len(self.written):06d}.tar"
            files = ExitStack()
            partial = files.enter_context(atomic_output(self.folder / name))
            self._open = (files, TarWriter(partial, encoder=False, mtime=0), {"name": name, "items": 0, "bytes": 0})
        _, writer, entry = self._open
        writer.write(sample)
        entry["items"] += 1
        entry["bytes"] += size
        if entry["bytes"] >= self.limit:
            self.finish()

    def finish(self) -> None:
        if self._open is not None:
            files, writer, entry = self._open
            self._open = None
            writer.close()
            files.close()
            self.written.append(entry)

    def abandon(self) -> None:
        """Drop the shard being written (its scratch file goes with it)."""
        if self._open is not None:
            files, writer, _ = self._open
            self._open = None
            with suppress(Exception):
                writer.close()
            with suppress(Exception):
                files.__exit__(RuntimeError, RuntimeError("abandoned"), None)


def write_shards(
    sources: Sequence[str],
    output: str | Path,
    target_rate: int,
    chunk_seconds: float = 4.0,
    min_seconds: float = 1.0,
    shard_mb: float = 256.0,
    seed: int = 0,
    skip_unusable: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    codecs: Sequence[str] = (),
) -> dict[str, Any]:
    """Write the recordings of ``sources`` at ``target_rate`` as shards in the folder ``output``.

    Args:
        sources: folders (recursive), audio files and ``.txt`` lists of paths, as
            :class:`~audiosr.data.AudioFolders` reads them.
        chunk_seconds / min_seconds: the length of an item, and of the shortest one (recordings
            shorter than ``min_seconds`` are unusable); training crops can be at most ``min_seconds``.
        shard_mb: a shard is closed once it holds this many megabytes.
        seed: the order the files are written in.
        skip_unusable: leave out, with a warning, what the corpus checks refuse (unreadable, silent,
            too short, ...) instead of stopping with an error that names every such file.
        codecs: codec settings (``"mp3:64"``, ``"vorbis:96"``, ``"opus:32"``, or ``"any-band"`` for
            :class:`~audiosr.data.AnyBand`'s list): every item also holds its chunk round-tripped
            through one of them, drawn from ``(seed, key)`` (see the module's docstring). A chunk
            the codec fails on stops the writing with an error that names its file and the
            setting, rather than leave that item without one (the codecs here code even a few
            milliseconds; a failure is a broken encoder, not a short chunk).

    Returns:
        The index, also written to ``output/index.json`` (last: a folder without it is unfinished).
        ``output`` must not hold shards already; to train from object storage, copy the folder
        there with the storage's own tool.
    """
    from tqdm import tqdm

    output = Path(output).expanduser()
    if (output / INDEX).exists() or any(output.glob("shard-*.tar")):
        raise FileExistsError(f"{output} already holds shards; write to an empty or new folder")
    files = find_audio(sources)
    if not files:
        raise FileNotFoundError(f"no audio files found in {list(sources)}")
    chunk_frames, min_frames = round(chunk_seconds * target_rate), round(min_seconds * target_rate)
    if not 0 < min_frames <= chunk_frames:
        raise ValueError(f"need 0 < min_seconds <= chunk_seconds, got {min_seconds} and {chunk_seconds}")
    settings = codec_settings(codecs, target_rate)  # before hours of writing
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedAudioWarning)
        recordings = index_files(files, target_rate, cache, min_frames, True, "checking audio")
    refused = [str(w.message).removeprefix("skipping ") for w in caught if issubclass(w.category, SkippedAudioWarning)]
    if refused and not skip_unusable:
        raise ValueError(f"{len(refused)} of {len(files)} input files cannot be used (--skip_unusable leaves them "
                         "out):\n  " + "\n  ".join(refused))
    for line in refused:
        warnings.warn(f"skipping {line}", SkippedAudioWarning, stacklevel=2)
    if not recordings:
        raise ValueError(f"none of the {len(files)} input files is usable")
    rows = manifest_rows([Path(r.name) for r in recordings])

    output.mkdir(parents=True, exist_ok=True)
    shards = _ShardFiles(output, shard_mb * 1e6)
    key = shortest = 0
    columns: set[str] = set()
    try:
        for position in tqdm(np.random.default_rng(seed).permutation(len(recordings)), desc="writing shards",
                             unit="file", disable=not progress):
            recording = recordings[position]
            try:
                audio = recording.at_own_level().read()
            except Exception as error:  # changed or removed since it was checked
                raise ValueError(f"{recording.name}: cannot be read ({error})") from error
            row = rows.get(Path(recording.name).resolve(), {})
            columns.update(row)
            for start, stop in chunk_bounds(recording.frames, chunk_frames, min_frames):
                flac, level = flac24(audio[:, start:stop], target_rate)
                meta = {"source": recording.name, "start": start, "frames": stop - start,
                        "channels": recording.channels, "gain": recording.gain / level, "manifest": row}
                sample = {"__key__": f"{key:09d}", "flac": flac}
                if settings:
                    # The chunk exactly as ShardReader.decode gives it to training, then coded.
                    chunk = _read_flac(flac) * np.float32(meta["gain"])
                    rng = np.random.default_rng([seed, key])
                    setting = settings[int(rng.integers(len(settings)))]
                    try:
                        coded = code_chunk(chunk, target_rate, setting, rng)
                    except Exception as error:
                        raise ValueError(f"{recording.name}: the chunk at frame {start} cannot be coded as "
                                         f"{setting} ({error})") from error
                    sample["coded.flac"], coded_level = flac24(coded, target_rate)
                    meta.update(coded=setting, coded_gain=1.0 / coded_level)
                sample["json"] = json.dumps(meta).encode()
                shards.write(sample, len(flac) + len(sample.get("coded.flac", b"")))
                key += 1
                shortest = stop - start if shortest == 0 else min(shortest, stop - start)
        shards.finish()
    except BaseException:
        shards.abandon()
        raise
    index = {"format": FORMAT, "version": VERSION, "sample_rate": target_rate, "chunk_frames": chunk_frames,
             "shortest_item_frames": shortest, "items": key, "seed": seed, "sources": [str(s) for s in sources],
             "manifest_columns": sorted(columns), "codecs": settings, "shards": shards.written}
    with atomic_output(output / INDEX) as partial:
        Path(partial).write_text(json.dumps(index, indent=1))
    return index


# --- reading ------------------------------------------------------------------------------------

class ShardReader:
    """Reads the items of a shard folder by key, streaming each shard forward; it reopens a shard only to go back.

    Asked for keys in the order they lie in the shards, it reads each shard it needs once.
    """

    def __init__(self, root: str, index: dict[str, Any]) -> None:
        self.root = root
        self.names = [s["name"] for s in index["shards"]]
        self.counts = np.array([s["items"] for s in index["shards"]], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self._shard, self._next, self._samples, self._stream = -1, 0, iter(()), None

    def locate(self, key: int) -> tuple[int, int]:
        """``(shard, position in it)`` of the item ``key``."""
        shard = int(np.searchsorted(self.offsets, key, side="right")) - 1
        return shard, int(key - self.offsets[shard])

    def url(self, key: int) -> str:
        return _join(self.root, self.names[self.locate(key)[0]])

    def read(self, key: int) -> dict[str, Any]:
        """The item ``key`` as stored: ``{"__key__", "flac": bytes, "json": bytes}``, and ``"coded.flac"``
        in shards written with codecs."""
        shard, position = self.locate(key)
        if shard != self._shard or position < self._next:
            self._start(shard)
        url = self.url(key)
        while True:
            try:
                sample = next(self._samples)
            except StopIteration:
                raise ShardError(f"shard {url} ends after {self._next} items; {INDEX} says "
                                 f"{self.counts[shard]}: it is truncated or from another corpus") from None
            except Exception as error:
                raise ShardError(f"shard {url} cannot be read ({error})") from error
            self._next += 1
            if self._next - 1 == position:
                if sample.get("__key__") != f"{key:09d}":
                    raise ShardError(f"shard {url}: item {position} is {sample.get('__key__')!r} where {INDEX} "
                                     f"says {key:09d}: the shard is from another corpus")
                return sample

    def decode(self, key: int, sample: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """The item ``key`` read as ``sample``: its audio ``(C, T)`` float32 at the corpus level, and its metadata.

        An item written with codecs also has ``meta["prepared"]``: ``{setting: (C, T) float32}``,
        its coded chunk at the same level (``coded_gain`` applied).
        """
        try:
            meta = json.loads(sample["json"])
            audio = _read_flac(sample["flac"]) * np.float32(meta["gain"])
            if "coded" in meta:
                coded = _read_flac(sample["coded.flac"]) * np.float32(meta["coded_gain"])
                if coded.shape != audio.shape:
                    raise ValueError(f"its coded stream is {coded.shape}, its audio {audio.shape}")
                meta["prepared"] = {meta["coded"]: coded}
        except Exception as error:
            raise ShardError(f"shard {self.url(key)}: item {key:09d} is corrupt ({error})") from error
        return audio, meta

    def _start(self, shard: int) -> None:
        from webdataset.tariterators import group_by_keys, tar_file_expander

        self.close()
        url = _join(self.root, self.names[shard])
        try:
            self._stream = _open(url)
        except Exception as error:
            raise ShardError(f"shard {url} cannot be opened ({error})") from error
        self._shard, self._next = shard, 0
        self._samples = group_by_keys(tar_file_expander([{"url": url, "stream": self._stream}], handler=_reraise),
                                      handler=_reraise)

    def close(self) -> None:
        if self._stream is not None:
            with suppress(Exception):  # a pipe stopped early may complain
                self._stream.close()
            self._stream = None

    def __iter__(self) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        """Every item in the order written: ``(audio (C, T), metadata)``."""
        return (self.decode(key, self.read(key)) for key in range(int(self.offsets[-1])))


def _reraise(error: Exception) -> bool:
    raise error


# --- the epoch plan (pure functions of the index, the seed and the epoch: the same on every process) ---

def shard_order(shards: int, seed: int, epoch: int) -> np.ndarray:
    """The order the shards are read in, in ``epoch``."""
    return np.random.default_rng([seed, epoch]).permutation(shards)


def rank_batches(counts: Sequence[int], seed: int, epoch: int, rank: int, world_size: int,
                 batch_size: int, shuffle_items: int) -> np.ndarray:
    """The keys of the batches process ``rank`` trains on in ``epoch``: ``(batches, batch_size)``.

    The items of the shards in :func:`shard_order`, cut into ``world_size`` contiguous blocks of
    ``items // (world_size * batch_size)`` batches; each block shuffled in windows of
    ``shuffle_items`` (rounded down to whole batches, at least one).
    """
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    batches = int(counts.sum()) // (world_size * batch_size)
    if batches == 0:
        raise ValueError(f"the shards hold {int(counts.sum())} items: fewer than one batch of {batch_size} "
                         f"for each of {world_size} processes")
    keys = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in shard_order(len(counts), seed, epoch)])
    size = batches * batch_size
    block = keys[rank * size:(rank + 1) * size].copy()
    window = shuffle_window(shuffle_items, batch_size) * batch_size
    for number, start in enumerate(range(0, size, window)):
        part = block[start:start + window]
        block[start:start + window] = part[np.random.default_rng([seed, epoch, rank, number]).permutation(len(part))]
    return block.reshape(batches, batch_size)


def shuffle_window(shuffle_items: int, batch_size: int) -> int:
    """Batches per shuffle window."""
    return max(1, shuffle_items // batch_size)


Stream = list[list[int]]  # runs [start, stop) of batch numbers, read in this order


def _numbers(stream: Stream) -> list[int]:
    return [b for start, stop in stream for b in range(start, stop)]


def _runs(numbers: Sequence[int]) -> Stream:
    runs: Stream = []
    for b in numbers:
        if runs and runs[-1][1] == b:
            runs[-1][1] += 1
        else:
            runs.append([b, b + 1])
    return runs


def split_streams(streams: Sequence[Stream], count: int) -> list[Stream]:
    """The batches of ``streams``, in order, cut into ``count`` streams of consecutive batches, the
    first ones a batch longer where it does not divide evenly."""
    numbers = [b for stream in streams for b in _numbers(stream)]
    sizes = [len(numbers) // count + (1 if i < len(numbers) % count else 0) for i in range(count)]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return [_runs(numbers[bounds[i]:bounds[i + 1]]) for i in range(count)]


def taken_by_turns(lengths: Sequence[int], taken: int) -> list[int]:
    """How many batches of each stream are gone after ``taken``, the streams handing out one batch each in turn.

    That is how a ``DataLoader`` hands out its workers' batches: worker 0, 1, ..., 0, 1, ..., passing
    over the workers that are done.
    """
    low, high = 0, max(lengths, default=0)
    while low < high:  # the most whole turns r with sum(min(length, r)) <= taken
        middle = (low + high + 1) // 2
        if sum(min(n, middle) for n in lengths) <= taken:
            low = middle
        else:
            high = middle - 1
    gone = [min(n, low) for n in lengths]
    left = taken - sum(gone)
    for i, n in enumerate(lengths):
        if left and n > low:
            gone[i] += 1
            left -= 1
    return gone


# --- the training stream and its loader ---------------------------------------------------------

class ShardStream(IterableDataset):
    """The training batches of one process, made from shards; iterated through :class:`ShardLoader`.

    A batch is the collated items of :class:`~audiosr.data.pairs.PairMaker` plus ``key``: the item
    each crop was cut from. ``len`` is the number of batches of an epoch; ``epoch`` and
    ``streams`` (one per loader worker) say which of them an iteration reads.
    """

    def __init__(self, root: str, segment_frames: int, batch_size: int, make: PairMaker, seed: int = 0,
                 shuffle_items: int = 256, rank: int = 0, world_size: int = 1) -> None:
        self.root = root
        self.index = read_index(root)
        if self.index["sample_rate"] != make.target_rate:
            raise ValueError(f"{root} holds audio at {self.index['sample_rate']} Hz; the data's target rate is "
                             f"{make.target_rate} Hz: write shards at that rate")
        if segment_frames > self.index["shortest_item_frames"]:
            raise ValueError(f"training crops of {segment_frames} samples are longer than the shortest item of "
                             f"{root} ({self.index['shortest_item_frames']}): lower segment_seconds or write the "
                             "shards with a larger min_seconds")
        self.segment_frames = segment_frames
        self.batch_size = batch_size
        self.make = make
        self.seed = seed
        self.shuffle_items = shuffle_items
        self.rank, self.world_size = rank, world_size
        self.counts = [s["items"] for s in self.index["shards"]]
        if len(self) == 0:
            raise ValueError(f"{root} holds {sum(self.counts)} items: fewer than one batch of {batch_size} for each "
                             f"of {world_size} processes")
        self.epoch = 0
        self.streams: list[Stream] = [[[0, len(self)]]]

    def __len__(self) -> int:
        return sum(self.counts) // (self.world_size * self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        workers = worker.num_workers if worker else 1
        if len(self.streams) != workers:
            raise RuntimeError(f"{len(self.streams)} streams for {workers} loader workers: iterate through ShardLoader")
        batches = rank_batches(self.counts, self.seed, self.epoch, self.rank, self.world_size, self.batch_size,
                               self.shuffle_items)
        place = {int(s): i for i, s in enumerate(shard_order(len(self.counts), self.seed, self.epoch))}
        reader = ShardReader(self.root, self.index)
        window = shuffle_window(self.shuffle_items, self.batch_size)
        try:  # a pass stopped early (max_steps, an error) closes its stream too: a pipe: URL is a process
            # A window's items are read together, in the order they lie in the shards.
            for _, group in groupby(_numbers(self.streams[worker.id if worker else 0]), key=lambda b: b // window):
                group = list(group)
                keys = sorted({int(k) for b in group for k in batches[b]},
                              key=lambda k: (place[reader.locate(k)[0]], k))
                stored = {k: reader.read(k) for k in keys}
                for b in group:
                    yield default_collate([self._crop(int(k), *reader.decode(int(k), stored.pop(int(k))))
                                           for k in batches[b]])
        finally:
            reader.close()

    def _crop(self, key: int, audio: np.ndarray, meta: dict[str, Any]) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, key])
        channel = int(rng.integers(audio.shape[0]))
        start = int(rng.integers(audio.shape[1] - self.segment_frames + 1))
        window = (slice(channel, channel + 1), slice(start, start + self.segment_frames))
        # Coded versions of the item (shards written with codecs): the same channel and window.
        prepared = {setting: version[window] for setting, version in meta.get("prepared", {}).items()}
        item = self.make(audio[window], rng, prepared=prepared) if prepared else self.make(audio[window], rng)
        item["key"] = torch.tensor(key)
        return item


class ShardLoader(DataLoader):
    """Loads a :class:`ShardStream`, one stream per worker, and knows where it is in the epoch.

    ``taken`` counts the batches used in the current pass: the loader counts those it hands out or,
    with ``counts_itself=False``, whoever uses them counts (the data module counts those that reach
    the training step, a batch behind the loader under Lightning's prefetching). :meth:`position`
    is where a new loader given it starts. Each pass starts where the last one was left; once every
    batch of an epoch is used, the next pass reads the next epoch.
    """

    def __init__(self, stream: ShardStream, num_workers: int = 0, position: dict[str, Any] | None = None,
                 counts_itself: bool = True, **kwargs: Any) -> None:
        super().__init__(stream, batch_size=None, num_workers=num_workers, persistent_workers=False, **kwargs)
        self.counts_itself = counts_itself
        self.taken = 0
        self._start: dict[str, Any] = {"epoch": 0, "streams": None}
        self._pass: list[Stream] | None = None
        if position:
            self._start = {"epoch": int(position["epoch"]), "streams": position["streams"]}
            if position.get("batches") != len(stream):
                warnings.warn(f"the saved loader position is for {position.get('batches')} batches an epoch, this run "
                              f"has {len(stream)} (other shards, batch size or number of processes): epoch "
                              f"{position['epoch']} starts again from its first batch", stacklevel=2)
                self._start["streams"] = None

    def position(self) -> dict[str, Any]:
        """The epoch and its batches not used yet, per stream (plain lists and numbers: it goes into checkpoints)."""
        position = dict(self._start)
        if self._pass is not None:
            gone = taken_by_turns([len(_numbers(s)) for s in self._pass], self.taken)
            left = [_runs(_numbers(s)[n:]) for s, n in zip(self._pass, gone)]
            position = {"epoch": position["epoch"], "streams": left} if any(left) else \
                {"epoch": position["epoch"] + 1, "streams": None}
        return {**position, "batches": len(self.dataset)}

    def __iter__(self) -> Iterator[dict]:
        position = self.position()
        self._start = {"epoch": position["epoch"], "streams": position["streams"]}
        self.taken = 0
        workers = max(1, self.num_workers)
        streams = position["streams"] or [[[0, len(self.dataset)]]]
        self._pass = streams if position["streams"] and len(streams) == workers else split_streams(streams, workers)
        self.dataset.epoch, self.dataset.streams = position["epoch"], self._pass
        return self._handed_out()

    def _handed_out(self) -> Iterator[dict]:
        for batch in super().__iter__():
            if self.counts_itself:
                self.taken += 1
            yield batch


# --- the command --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``audiosr shards write``: a corpus as shards."""
    parser = argparse.ArgumentParser(
        prog="audiosr shards", description="Write a corpus once as shards at the target rate, to train from "
        "(configs/data/shards.yaml).")
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write recordings as shards",
                                description="Write recordings as shards at the target rate.")
    write.add_argument("--train", nargs="+", required=True, metavar="SOURCE",
                       help="folders (recursive), audio files or .txt lists of paths; MANIFEST.tsv columns are kept")
    write.add_argument("--output", required=True, help="an empty or new folder for index.json and the shards")
    write.add_argument("--target_rate", type=int, required=True, help="the training target rate (Hz)")
    write.add_argument("--chunk_seconds", type=float, default=4.0, help="length of an item (default: 4)")
    write.add_argument("--min_seconds", type=float, default=1.0,
                       help="the shortest item, and the longest training crop (default: 1)")
    write.add_argument("--shard_mb", type=float, default=256.0, help="megabytes per shard (default: 256)")
    write.add_argument("--seed", type=int, default=0, help="the order the files are written in (default: 0)")
    write.add_argument("--skip_unusable", action="store_true",
                       help="leave out files the corpus checks refuse, with a warning, instead of stopping")
    write.add_argument("--cache_dir", default=None, help="converted files and file checks (default: $AUDIOSR_CACHE)")
    write.add_argument("--codecs", default="", metavar="CODEC:KBPS,...",
                       help="also store each chunk round-tripped through one of these codec settings, drawn per "
                       "item (e.g. mp3:64,vorbis:96,opus:32; any-band: AnyBand's list), for a model for any "
                       "input to train on without coding on the fly (default: none)")
    args = parser.parse_args(argv)
    try:
        codecs = [c for c in args.codecs.split(",") if c.strip()]
        index = write_shards(args.train, args.output, args.target_rate, args.chunk_seconds, args.min_seconds,
                             args.shard_mb, args.seed, args.skip_unusable, args.cache_dir, codecs=codecs)
    except (OSError, ValueError) as error:
        print(f"audiosr shards: error: {error}", file=sys.stderr)
        return 1
    megabytes = sum(s["bytes"] for s in index["shards"]) / 1e6
    coded = f", each also coded ({', '.join(index['codecs'])})" if index["codecs"] else ""
    print(f"{index['items']} items in {len(index['shards'])} shards ({megabytes:.1f} MB) at "
          f"{index['sample_rate']} Hz{coded}: {args.output}")
    return 0
