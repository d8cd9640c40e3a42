"""Shards: written once, read back bit for bit, each process its own part, resumable mid-epoch."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import CONFIGS, run_audiosr, write_audio

from audiosr.data.degradations import Resample
from audiosr.data.pairs import PairMaker
from audiosr.data.recordings import SkippedAudioWarning, index_files
from audiosr.data.shards import (
    ShardError, ShardLoader, ShardReader, ShardStream, chunk_bounds, flac24, rank_batches, read_index,
    split_streams, taken_by_turns, write_shards,
)

TESTS = Path(__file__).parent
RATE = 16000
SEGMENT = 4000  # 0.25 s
MANIFEST_HEADER = "file\tpackage\tcategory\tlowpass_edge_hz\n"


def write_corpus(folder: Path) -> Path:
    """Seven recordings: mono and stereo, 16- and 24-bit, one at another rate; a manifest for some."""
    for i in range(6):
        write_audio(folder / f"take{i}.wav", RATE, 0.8 + 0.25 * i, seed=i, channels=1 + i % 2,
                    subtype="PCM_24" if i % 3 == 0 else "PCM_16")
    write_audio(folder / "other" / "at44k.wav", 44100, 1.1, seed=11)
    (folder / "MANIFEST.tsv").write_text(MANIFEST_HEADER + "take0.wav\tpkg-a\tspeech\t7000\n"
                                         "take1.wav\tpkg-b\tmusic\t\n")
    return folder


def write(folder: Path, out: Path, **options) -> dict:
    options = {"chunk_seconds": 0.5, "min_seconds": 0.25, "shard_mb": 0.03, "cache_dir": out.parent / "cache",
               "progress": False, **options}
    return write_shards([str(folder)], out, RATE, **options)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(audio folder, shard folder, index)."""
    root = tmp_path_factory.mktemp("shards")
    audio = write_corpus(root / "audio")
    return audio, root / "shards", write(audio, root / "shards")


def stream(shards: Path | str, rank: int = 0, world_size: int = 1, batch_size: int = 2) -> ShardStream:
    make = PairMaker(8000, RATE, "soxr_vhq", Resample("soxr_vhq"))
    return ShardStream(str(shards), SEGMENT, batch_size, make, seed=0, shuffle_items=6, rank=rank,
                       world_size=world_size)


def keys_of(batches) -> list[int]:
    return [int(k) for batch in batches for k in batch["key"]]


# --- writing and reading back ---------------------------------------------------------------------

def test_written_shards_read_back_identical_with_their_manifest_columns(corpus):
    audio, shards, index = corpus
    assert len(index["shards"]) > 3 and index["items"] == sum(s["items"] for s in index["shards"])
    assert read_index(str(shards)) == index
    expected = {r.name: r for r in index_files(sorted(audio.rglob("*.wav")), RATE, shards.parent / "cache")}
    pieces: dict[str, list] = {}
    for samples, meta in ShardReader(str(shards), index):
        pieces.setdefault(meta["source"], []).append((meta["start"], samples, meta))
    assert pieces.keys() == expected.keys()
    for name, parts in pieces.items():
        parts.sort(key=lambda p: p[0])
        whole = np.concatenate([samples for _, samples, _ in parts], axis=1)
        # Bit for bit what the corpus checks hand out (at 44.1 kHz: their converted 24-bit copy).
        assert whole.dtype == np.float32 and np.array_equal(whole, expected[name].read()), name
    take0, take1 = (pieces[str(audio / f"take{i}.wav")][0][2]["manifest"] for i in (0, 1))
    assert take0 == {"file": "take0.wav", "package": "pkg-a", "category": "speech", "lowpass_edge_hz": "7000"}
    assert take1["category"] == "music" and take1["lowpass_edge_hz"] == ""
    assert pieces[str(audio / "take2.wav")][0][2]["manifest"] == {}
    assert index["manifest_columns"] == ["category", "file", "lowpass_edge_hz", "package"]


def test_chunks_cover_a_recording_and_a_short_last_piece_joins_the_one_before():
    assert chunk_bounds(10, 4, 3) == [(0, 4), (4, 10)]
    assert chunk_bounds(11, 4, 3) == [(0, 4), (4, 8), (8, 11)]
    assert chunk_bounds(3, 4, 3) == [(0, 3)]


def test_flac24_keeps_the_24_bit_grid_exactly_and_scales_only_what_is_above_full_scale():
    grid = np.round(np.random.default_rng(0).uniform(-1, 1, (2, 500)) * 2 ** 23).clip(-2 ** 23, 2 ** 23 - 1) / 2 ** 23
    data, level = flac24(grid.astype(np.float32), RATE)
    back, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert level == 1.0 and np.array_equal(back.T, grid.astype(np.float32))
    loud = np.array([[0.5, -1.75, 1.2]], dtype=np.float32)
    data, level = flac24(loud, RATE)
    back, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert level < 1 and np.allclose(back.T / level, loud, atol=1e-6)


def test_a_bad_input_file_is_named_unless_skipped(tmp_path):
    audio = tmp_path / "audio"
    write_audio(audio / "good.wav", RATE, 1.0)
    (audio / "broken.wav").write_bytes(b"RIFF this is not audio")
    with pytest.raises(ValueError, match=r"broken\.wav: not readable as audio"):
        write(audio, tmp_path / "shards")
    assert not (tmp_path / "shards" / "index.json").exists()
    with pytest.warns(SkippedAudioWarning, match="broken.wav"):
        index = write(audio, tmp_path / "shards", skip_unusable=True)
    assert index["items"] == 2
    with pytest.raises(FileExistsError, match="already holds shards"):
        write(audio, tmp_path / "shards")


# --- each process its own part, every crop once an epoch --------------------------------------------

@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_processes_see_every_item_once_an_epoch_and_none_twice(corpus, num_workers):
    _, shards, index = corpus
    seen = {}
    for rank in (0, 1):
        loader = ShardLoader(stream(shards, rank, 2), num_workers=num_workers)
        seen[rank] = [keys_of(loader), keys_of(loader)]  # two epochs
        assert all(len(epoch) == len(loader) * 2 for epoch in seen[rank])
    for epoch in (0, 1):
        rank0, rank1 = set(seen[0][epoch]), set(seen[1][epoch])
        assert len(rank0) == len(seen[0][epoch]) and len(rank1) == len(seen[1][epoch])  # none twice in a process
        assert not rank0 & rank1  # nor on both
        # Every item, but for the few that do not fill a batch on each process (items % 4).
        assert len(rank0 | rank1) == index["items"] - index["items"] % 4
    assert seen[0][0] != seen[0][1]  # another order (and another part of the shards) the next epoch


def test_a_processs_part_is_a_contiguous_run_of_the_epochs_shards_shuffled_in_windows(corpus):
    _, _, index = corpus
    counts = [s["items"] for s in index["shards"]]
    parts = [rank_batches(counts, 0, 3, rank, 2, 2, 6) for rank in (0, 1)]
    assert parts[0].shape == parts[1].shape == (sum(counts) // 4, 2)
    assert not set(parts[0].ravel()) & set(parts[1].ravel())
    assert np.array_equal(rank_batches(counts, 0, 3, 0, 2, 2, 6), parts[0])  # the same on every process


def test_the_workers_batches_come_out_in_turns_as_taken_by_turns_counts():
    assert taken_by_turns([3, 3, 2], 5) == [2, 2, 1]
    assert taken_by_turns([1, 4, 2], 6) == [1, 3, 2]
    assert taken_by_turns([1, 4, 2], 7) == [1, 4, 2]
    assert split_streams([[[0, 7]]], 3) == [[[0, 3]], [[3, 5]], [[5, 7]]]
    assert split_streams([[[2, 4]], [[6, 7]]], 2) == [[[2, 4]], [[6, 7]]]


# --- killed and resumed -----------------------------------------------------------------------------

@pytest.mark.parametrize("before, after", [(0, 0), (2, 2), (2, 1), (1, 2)])
def test_a_loader_rebuilt_from_its_position_continues_where_it_stopped(corpus, before, after):
    _, shards, _ = corpus
    whole = keys_of(ShardLoader(stream(shards), num_workers=before))
    first = ShardLoader(stream(shards), num_workers=before)
    batches = iter(first)
    done = keys_of(next(batches) for _ in range(5))
    position = json.loads(json.dumps(first.position()))  # as a checkpoint keeps it
    del batches  # killed
    resumed = ShardLoader(stream(shards), num_workers=after, position=position)
    rest = keys_of(resumed)
    assert len(done) + len(rest) == len(whole) and set(done + rest) == set(whole)  # each once
    if before == after == 0:
        assert done + rest == whole  # one stream: the very same order
    assert resumed.position() == {"epoch": 1, "streams": None, "batches": len(resumed)}  # next: a new epoch


def test_a_position_for_another_setup_restarts_its_epoch_with_a_warning(corpus):
    _, shards, _ = corpus
    loader = ShardLoader(stream(shards), num_workers=0)
    batches = iter(loader)
    next(batches)
    with pytest.warns(UserWarning, match="starts again from its first batch"):
        other = ShardLoader(stream(shards, batch_size=3), position=loader.position())
    assert len(keys_of(other)) == len(other) * 3


# --- missing and corrupt shards ---------------------------------------------------------------------

def test_a_missing_truncated_or_corrupt_shard_is_named(corpus, tmp_path):
    audio, _, _ = corpus
    index = write(audio, tmp_path / "shards")
    names = [s["name"] for s in index["shards"]]
    shards = tmp_path / "shards"

    def first_error(num_workers=0) -> str:
        with pytest.raises(Exception) as error:
            for _ in ShardLoader(stream(shards), num_workers=num_workers):
                pass
        return str(error.value)

    (shards / names[1]).rename(tmp_path / "aside.tar")
    assert f"shard {shards / names[1]} cannot be opened" in first_error()
    assert names[1] in first_error(num_workers=2)  # raised in a worker, still named
    (tmp_path / "aside.tar").rename(shards / names[1])
    data = (shards / names[2]).read_bytes()
    (shards / names[2]).write_bytes(data[:len(data) // 2])
    assert f"shard {shards / names[2]}" in first_error()
    flac = data.index(b"fLaC")
    (shards / names[2]).write_bytes(data[:flac] + b"\0" * 64 + data[flac + 64:])
    assert f"shard {shards / names[2]}: item" in first_error() and "is corrupt" in first_error()
    (shards / "index.json").unlink()
    with pytest.raises(ShardError, match="index.json: not a readable shard index"):
        stream(shards)


def test_shards_are_read_from_file_urls(corpus):
    _, shards, _ = corpus
    by_path, by_url = (ShardLoader(stream(root)) for root in (shards, shards.as_uri()))
    assert keys_of(islice(by_url, 4)) == keys_of(islice(by_path, 4))


# --- the preset, the command, a two-process fit ----------------------------------------------------

def test_the_preset_trains_the_magphase_recipe_from_shards():
    from test_configs import build

    cli = build("magphase.yaml", "data/shards.yaml")
    data = cli.datamodule
    preset = yaml.safe_load((CONFIGS / "data" / "shards.yaml").read_text())["data"]
    assert data.train_shards == preset["train_shards"] and data.shuffle_items == preset["shuffle_items"]
    assert (data.batch_size, data.source_rate, data.target_rate) == (16, 22050, 44100)  # the recipe's
    assert type(data.degradations["train"]).__name__ == "RandomLowpass"
    assert type(data.corpus).__name__ == "AudioFolders"


@pytest.mark.slow
def test_the_shards_command_writes_a_corpus_and_names_a_bad_file(tmp_path, cli_env):
    audio = write_corpus(tmp_path / "audio")
    written = run_audiosr(["shards", "write", "--train", str(audio), "--output", str(tmp_path / "shards"),
                           "--target_rate", str(RATE), "--chunk_seconds", "0.5", "--min_seconds", "0.25"],
                          tmp_path, cli_env)
    assert written.returncode == 0, written.stderr[-3000:]
    index = read_index(str(tmp_path / "shards"))
    assert f"{index['items']} items in 1 shards" in written.stdout and "writing shards" in written.stderr
    (audio / "broken.wav").write_bytes(b"not audio at all")
    refused = run_audiosr(["shards", "write", "--train", str(audio), "--output", str(tmp_path / "more"),
                           "--target_rate", str(RATE)], tmp_path, cli_env)
    assert refused.returncode == 1 and "broken.wav: not readable as audio" in refused.stderr
    assert "--skip_unusable" in refused.stderr


@pytest.mark.slow
def test_a_two_process_fit_killed_and_resumed_trains_on_every_item_once(corpus, tmp_path):
    from shard_fit import BATCH_SIZE, SHUFFLE_ITEMS

    _, shards, index = corpus
    out = tmp_path / "run"
    epoch = index["items"] // (2 * BATCH_SIZE)

    def fit(*args: str) -> None:
        done = subprocess.run([sys.executable, str(TESTS / "shard_fit.py"), str(shards), str(out), "--devices", "2",
                               *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    fit("--max_steps", "3", "--every", "3")  # stopped after 3 steps: last.ckpt holds step 3
    fit("--max_steps", str(epoch), "--every", "100", "--resume", str(out / "checkpoints" / "last.ckpt"))
    counts = [s["items"] for s in index["shards"]]
    for rank in (0, 1):
        lines = (out / f"rank{rank}.txt").read_text().split("\n")[:-1]
        keys = [int(k) for line in lines for k in line.split()]
        assert len(lines) == epoch and len(set(keys)) == len(keys)  # resumed: no batch again, none lost
        assert set(keys) == set(rank_batches(counts, 0, 0, rank, 2, BATCH_SIZE, SHUFFLE_ITEMS).ravel())
