"""Shards: written once, read back bit for bit, each process its own part, resumable mid-epoch."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import CONFIGS, run_audiosr, write_audio

from audiosr.data import shards as shards_module
from audiosr.data.degradations import AnyBand, Codec, Resample
from audiosr.data.pairs import PairMaker
from audiosr.data.recordings import SkippedAudioWarning, index_files
from audiosr.data.shards import (
    ShardError, ShardLoader, ShardReader, ShardStream, chunk_bounds, codec_settings, flac24, main, rank_batches,
    read_index, split_streams, taken_by_turns, write_shards,
)
from audiosr.dsp import best_lag

TESTS = Path(__file__).parent
RATE = 16000
SEGMENT = 4000  # 0.25 s
CODECS = ["mp3:64", "vorbis:64", "opus:32"]  # each reaches its bitrate at 16 kHz
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


@pytest.fixture(scope="module")
def coded_corpus(corpus, tmp_path_factory) -> tuple[Path, dict]:
    """(shard folder, index): the corpus written with CODECS."""
    audio, _, _ = corpus
    out = tmp_path_factory.mktemp("coded") / "shards"
    return out, write(audio, out, codecs=CODECS)


NOT_GIVEN = object()


@dataclass(frozen=True)
class SpyMaker(PairMaker):
    """A pair maker that keeps what each crop hands it: ``(target, prepared)``."""

    calls: list = field(default_factory=list)

    def __call__(self, target, rng=None, prepared=NOT_GIVEN):
        self.calls.append((np.array(target), prepared))
        return {"target": torch.from_numpy(np.array(target))}


def stream(shards: Path | str, rank: int = 0, world_size: int = 1, batch_size: int = 2,
           make: PairMaker | None = None) -> ShardStream:
    make = make or PairMaker(8000, RATE, "soxr_vhq", Resample("soxr_vhq"))
    return ShardStream(str(shards), SEGMENT, batch_size, make, seed=0, shuffle_items=6, rank=rank,
                       world_size=world_size)


def spied_epoch(shards: Path) -> list[tuple[int, np.ndarray, object]]:
    """``(key, target crop, prepared)`` of every crop of epoch 0, through one loader worker."""
    spy = SpyMaker(RATE, RATE, "soxr_vhq", Resample("soxr_vhq"))
    keys = keys_of(ShardLoader(stream(shards, make=spy)))
    assert len(keys) == len(spy.calls)
    return [(key, target, prepared) for key, (target, prepared) in zip(keys, spy.calls)]


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


# --- codec round trips, made when the shards are written --------------------------------------------

def test_written_with_codecs_every_item_holds_its_chunk_coded_as_codec_codes_it(coded_corpus):
    shards, index = coded_corpus
    assert index["codecs"] == CODECS and read_index(str(shards))["codecs"] == CODECS
    drawn = []
    for key, (audio, meta) in enumerate(ShardReader(str(shards), index)):
        setting = meta["coded"]
        # One setting per item, drawn from (seed, key): written again, the same.
        assert setting == CODECS[int(np.random.default_rng([0, key]).integers(len(CODECS)))]
        assert meta["prepared"].keys() == {setting}
        coded = meta["prepared"][setting]
        assert coded.dtype == np.float32 and coded.shape == audio.shape
        # What Codec gives for this chunk at the training level, channel by channel (as a crop is coded),
        # up to the 24-bit rounding it is stored with (half a code, times coded_gain: 1 unless the decoded
        # signal went above full scale) and, with a coded_gain, float32's rounding of the product (below 2 ** -24
        # for samples below 2).
        codec, kbps = setting.split(":")
        direct = np.concatenate([Codec(codec, float(kbps), "soxr_vhq")(audio[c:c + 1], RATE, RATE, None)[0]
                                 for c in range(audio.shape[0])])
        error = 2.0 ** -24 * (1.0 if meta["coded_gain"] == 1 else meta["coded_gain"] + 2.0)
        assert np.abs(coded - direct).max() <= error, (key, setting)
        for c in range(audio.shape[0]):
            lag, correlation = best_lag(coded[c], audio[c], 200)
            assert lag == 0 and correlation > 0.8, (key, setting, c)
        drawn.append(setting)
    assert sorted(set(drawn)) == sorted(CODECS)


def crop_window(key: int, audio: np.ndarray, epoch: int = 0) -> tuple[slice, slice]:
    """The channel and window of the crop of item ``key`` in ``epoch``: drawn first, as they always were."""
    rng = np.random.default_rng([0, epoch, key])
    channel = int(rng.integers(audio.shape[0]))
    start = int(rng.integers(audio.shape[1] - SEGMENT + 1))
    return slice(channel, channel + 1), slice(start, start + SEGMENT)


def test_a_crop_hands_the_pair_maker_the_same_window_of_its_coded_chunk(coded_corpus):
    shards, index = coded_corpus
    items = dict(enumerate(ShardReader(str(shards), index)))
    for key, target, prepared in spied_epoch(shards):
        audio, meta = items[key]
        window = crop_window(key, audio)
        assert np.array_equal(target, audio[window])
        assert prepared.keys() == {meta["coded"]}
        assert np.array_equal(prepared[meta["coded"]], meta["prepared"][meta["coded"]][window])


def test_any_band_trains_on_the_coded_crop_without_encoding(coded_corpus, monkeypatch):
    shards, index = coded_corpus
    items = dict(enumerate(ShardReader(str(shards), index)))

    def encoding(*args, **kwargs):
        raise AssertionError("a codec ran while training")

    monkeypatch.setattr(Codec, "__call__", encoding)
    codec_only = AnyBand(weights=(0, 0, 1, 0), gain_db=(0.0, 0.0))
    batches = ShardLoader(stream(shards, make=PairMaker(RATE, RATE, "soxr_vhq", codec_only)))
    for batch in islice(batches, 3):
        for key, low in zip(batch["key"].tolist(), batch["low"].numpy()):
            audio, meta = items[key]
            assert np.array_equal(low, meta["prepared"][meta["coded"]][crop_window(key, audio)])


def test_shards_written_without_codecs_are_as_before_and_read_as_before(corpus, tmp_path):
    _, shards, index = corpus
    assert index["codecs"] == []
    reader = ShardReader(str(shards), index)
    for key in range(index["items"]):
        sample = reader.read(key)
        assert set(sample) - {"__url__", "__local_path__"} == {"__key__", "flac", "json"}
        meta = json.loads(sample["json"])
        assert set(meta) == {"source", "start", "frames", "channels", "gain", "manifest"}
        assert "prepared" not in reader.decode(key, sample)[1]
    reader.close()
    # Shards written before codecs (no "codecs" in their index): the pair maker is called as it always was.
    old = tmp_path / "old"
    shutil.copytree(shards, old)
    old_index = json.loads((old / "index.json").read_text())
    del old_index["codecs"]
    (old / "index.json").write_text(json.dumps(old_index))
    calls = spied_epoch(old)
    assert calls and all(prepared is NOT_GIVEN for _, _, prepared in calls)


def test_codec_settings_are_checked_before_anything_is_written(corpus, tmp_path, monkeypatch, capsys):
    audio, _, _ = corpus
    with pytest.raises(ValueError, match=r"codecs: 'flac:12' is not CODEC:KBPS"):
        write(audio, tmp_path / "bad", codecs=["mp3:64", "flac:12"])
    with pytest.raises(ValueError, match=r"codecs: 'vorbis:128' cannot be used at 16000 Hz"):
        write(audio, tmp_path / "bad", codecs=["vorbis:128"])  # Vorbis at 16 kHz stays below it
    assert not (tmp_path / "bad").exists()
    code = main(["write", "--train", str(audio), "--output", str(tmp_path / "bad"), "--target_rate", str(RATE),
                 "--codecs", "mp3:64,mp3-64"])
    assert code == 1 and "'mp3-64' is not CODEC:KBPS" in capsys.readouterr().err
    # any-band is AnyBand's own list; settings are named as a pair maker's `prepared` names them, once each.
    monkeypatch.setattr(shards_module, "encoder_setting", lambda *args: (0.5, None))
    expected = [f"{codec}:{kbps:g}" for codec, kbps in AnyBand().codecs]
    assert codec_settings(["any-band"], 44100) == expected
    assert codec_settings(["mp3:64.0", " opus:32", "any-band"], 44100)[:2] == ["mp3:64", "opus:32"]
    assert len(codec_settings(["mp3:64.0", "any-band"], 44100)) == len(expected)


def test_a_chunk_the_codec_fails_on_is_named_with_its_setting(tmp_path, monkeypatch):
    audio = tmp_path / "audio"
    write_audio(audio / "only.wav", RATE, 1.0)

    def fails(chunk, rate, setting, rng):
        raise ValueError("the encoder gave up")

    monkeypatch.setattr(shards_module, "code_chunk", fails)
    with pytest.raises(ValueError, match=r"only\.wav: the chunk at frame 0 cannot be coded as mp3:64 "
                                         r"\(the encoder gave up\)"):
        write(audio, tmp_path / "shards", codecs=["mp3:64"])
    assert not (tmp_path / "shards" / "index.json").exists() and not list((tmp_path / "shards").glob("*.tar"))


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
