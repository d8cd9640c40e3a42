"""The data module: aligned pairs at several rates, bad files, conversion cache, VCTK split."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosr.data import VCTK, AudioFolders, AudioPairDataModule, SyntheticCorpus
from audiosr.data.pairs import make_pair
from audiosr.data.recordings import SkippedAudioWarning, index_files
from audiosr.data.synthetic import synthesize

from conftest import write_audio


def peak_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 50) -> int:
    lags = range(-max_lag, max_lag + 1)
    scores = [np.dot(a[max_lag + lag : len(a) - max_lag + lag], b[max_lag : len(b) - max_lag]) for lag in lags]
    return list(lags)[int(np.argmax(scores))]


@pytest.mark.parametrize("source_rate,target_rate", [(22050, 44100), (16000, 48000), (24000, 48000), (11025, 44100)])
def test_pairs_are_sample_aligned(source_rate, target_rate):
    target = synthesize(7, target_rate, 1.0)
    low, rough = make_pair(target, target_rate, source_rate)
    assert rough.shape == target.shape
    assert low.shape[-1] == -(-target.size * source_rate // target_rate)
    assert peak_lag(rough, target) == 0
    # The low-rate signal itself is aligned: its naive upsampling peaks at lag 0 too.
    upsampled = np.interp(np.arange(target.size) / target_rate, np.arange(low.size) / source_rate, low)
    assert peak_lag(upsampled, target) == 0


def test_pair_input_lacks_the_high_band_but_keeps_the_low_band():
    target = synthesize(3, 44100, 1.0)
    _, rough = make_pair(target, 44100, 22050)
    spectrum = lambda x: np.abs(np.fft.rfft(x)) ** 2  # noqa: E731
    freqs = np.fft.rfftfreq(target.size, 1 / 44100)
    high, low = freqs > 12000, freqs < 8000
    assert spectrum(rough)[high].sum() < 1e-4 * spectrum(target)[high].sum()
    assert np.isclose(spectrum(rough)[low].sum(), spectrum(target)[low].sum(), rtol=0.05)


def test_synthetic_batches_have_the_promised_shapes(tmp_path):
    data = AudioPairDataModule(SyntheticCorpus(4, 2, 2, clip_seconds=1.0), segment_seconds=0.5,
                               batch_size=2, num_workers=0, train_items_per_epoch=4, cache_dir=str(tmp_path))
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["input"].shape == batch["target"].shape == (2, 1, 22050)
    assert batch["low"].shape == (2, 1, 11025)
    assert torch.isfinite(batch["input"]).all() and batch["target"].abs().amax(-1).min() > 0
    val = next(iter(data.val_dataloader()))
    again = next(iter(data.val_dataloader()))
    assert torch.equal(val["target"], again["target"])  # validation items never change


def test_rates_are_validated():
    with pytest.raises(ValueError, match="source_rate <= target_rate"):
        AudioPairDataModule(source_rate=44100, target_rate=22050)
    with pytest.raises(ValueError, match="input_filter"):
        AudioPairDataModule(input_filter="cubic")


def make_bad_folder(root: Path) -> dict[str, str]:
    """Good files plus one of each kind of bad file; returns bad name -> expected reason."""
    for i in range(3):
        write_audio(root / f"good{i}.wav", 44100, 1.5, seed=i)
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(40)))
    (root / "empty.flac").write_bytes(b"")
    write_audio(root / "short.wav", 44100, 0.2)
    (root / "picture.flac").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    sf.write(str(root / "nan.wav"), np.full(44100, np.nan, dtype=np.float32), 44100, subtype="FLOAT")
    (root / "notes.txt.bak").write_text("not audio, not an audio extension: ignored")
    sf.write(str(root / "one_sample.wav"), np.full(1, 0.5, dtype=np.float32), 44100, subtype="FLOAT")
    sf.write(str(root / "one_sample_48k.wav"), np.full(1, 0.5, dtype=np.float32), 48000, subtype="FLOAT")
    write_audio(root / "cut.wav", 44100, 1.5, seed=9)
    data = (root / "cut.wav").read_bytes()
    (root / "cut.wav").write_bytes(data[:44 + (len(data) - 44) // 3])  # an interrupted copy: 0.5 s left
    return {
        "corrupt.wav": "not readable as audio",
        "empty.flac": "empty file",
        "short.wav": "too short",
        "one_sample.wav": "too short: 1 samples",  # not "silent": its sample is 0.5
        "one_sample_48k.wav": "too short",  # resampy refuses to resample it
        "cut.wav": "shorter than its header says: 22050 of 66150 frames (0.50 of 1.50 s)",
        "picture.flac": "not readable as audio",
        "nan.wav": "NaN",
    }


def test_bad_files_are_named_once_with_the_reason_and_never_reach_a_batch(tmp_path):
    folder = tmp_path / "train"
    expected = make_bad_folder(folder)
    corpus = AudioFolders(train=[str(folder)], val=[str(folder)])  # test defaults to val
    data = AudioPairDataModule(corpus, segment_seconds=1.0, batch_size=4, num_workers=2,
                               train_items_per_epoch=16, cache_dir=str(tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.prepare_data()
        data.setup("fit")
    messages = [str(w.message) for w in caught if issubclass(w.category, SkippedAudioWarning)]
    for name, reason in expected.items():
        named = [m for m in messages if name in m]
        assert len(named) == 1, (name, messages)
        assert reason in named[0]
    assert len(messages) == len(expected)
    for batch in data.train_dataloader():  # workers read only good files
        assert torch.isfinite(batch["target"]).all()
        assert (batch["target"].abs().amax(-1) > 0.1).all()


def test_conversion_happens_once_and_is_cached(tmp_path, monkeypatch):
    source = write_audio(tmp_path / "a48k.flac", 48000, 1.0)
    cache = tmp_path / "cache"
    (first,) = index_files([source], 44100, cache)
    assert first.frames == 44100 and Path(first.path).parent == cache / "converted"
    reference = first.read()

    import audiosr.data.recordings as recordings

    monkeypatch.setattr(recordings, "_check_and_convert", lambda *a: pytest.fail("converted twice"))
    (second,) = index_files([source], 44100, cache)
    assert np.array_equal(second.read(), reference)
    assert abs(np.abs(reference).max() - recordings.PEAK) < 1e-3  # peak-normalised on read


def test_stereo_files_give_one_item_per_channel_for_evaluation(tmp_path):
    folder = tmp_path / "stereo"
    write_audio(folder / "s.wav", 44100, 1.2, channels=2)
    data = AudioPairDataModule(AudioFolders([str(folder)], [str(folder)]), segment_seconds=1.0,
                               num_workers=0, cache_dir=str(tmp_path / "cache"))
    data.prepare_data()
    data.setup("test")
    items = [data.datasets["test"][i] for i in range(len(data.datasets["test"]))]
    assert [item["name"] for item in items] == [f"{folder / 's.wav'}#ch0", f"{folder / 's.wav'}#ch1"]
    assert not torch.allclose(items[0]["target"], items[1]["target"])


@pytest.mark.parametrize("source_rate,target_rate,frames", [(22050, 44100, 44101), (16000, 44100, 44100 + 440)])
def test_whole_test_recordings_line_up_with_every_method(tmp_path, source_rate, target_rate, frames):
    from audiosr.evaluation.comparison import BASELINES

    sf.write(str(tmp_path / "odd.wav"), np.random.default_rng(0).uniform(-0.5, 0.5, frames), target_rate)
    data = AudioPairDataModule(AudioFolders([str(tmp_path)], [str(tmp_path)]), source_rate=source_rate,
                               target_rate=target_rate, segment_seconds=0.5, num_workers=0, cache_dir=str(tmp_path / "c"))
    data.setup("test")
    item = data.datasets["test"][0]
    target, low = item["target"].numpy(), item["low"].numpy()
    assert frames - target.shape[-1] < target_rate // np.gcd(source_rate, target_rate)
    for method in BASELINES.values():
        assert method(low, source_rate, target_rate).shape == target.shape


def make_vctk(root: Path, speakers: list[str], utterances: int = 3) -> None:
    for s_index, speaker in enumerate(speakers):
        for u in range(1, utterances + 1):
            for mic in ("mic1", "mic2"):
                write_audio(root / "wav48_silence_trimmed" / speaker / f"{speaker}_{u:03d}_{mic}.flac",
                            48000, 0.6, seed=s_index * 10 + u)


def test_vctk_split_follows_published_systems(tmp_path):
    speakers = [f"p{n}" for n in (225, 226, 227, 228, 280, 315, 360, 361, 362, 363)]
    make_vctk(tmp_path / "vctk", speakers)
    corpus = VCTK(str(tmp_path / "vctk"), held_out_speakers=3, val_utterances=2)
    train, held_out = corpus.speakers()
    assert train == ["p225", "p226", "p227", "p228", "p360"]
    assert held_out == ["p361", "p362", "p363"]
    test_files = corpus.files("test")
    assert len(test_files) == 9 and all(f.name.endswith("_mic1.flac") for f in test_files)
    # Validation: the last 2 utterances of every training speaker, kept out of training and test.
    val_files, train_files = corpus.files("val"), corpus.files("train")
    assert len(val_files) == 10 and {f.name[-14:] for f in val_files} == {"_002_mic1.flac", "_003_mic1.flac"}
    assert not set(val_files) & set(test_files) and not set(val_files) & set(train_files)
    assert len(train_files) == 5 and all(f.name.endswith("_001_mic1.flac") for f in train_files)
    data = AudioPairDataModule(corpus, segment_seconds=0.5, num_workers=0, cache_dir=str(tmp_path / "cache"))
    data.prepare_data()
    data.setup("fit")
    item = data.datasets["val"][0]
    assert item["target"].shape == (1, 22050)  # converted from 48 kHz to the target rate


def test_vctk_missing_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        VCTK(str(tmp_path / "nowhere")).files("train")


def test_training_crops_depend_on_the_index_only_and_every_epoch_brings_new_ones(tmp_path):
    def crops(num_workers: int, epochs: int = 2) -> list[list[bytes]]:
        data = AudioPairDataModule(SyntheticCorpus(4, 2, 2, clip_seconds=1.0), segment_seconds=0.25, batch_size=2,
                                   num_workers=num_workers, train_items_per_epoch=4, cache_dir=str(tmp_path))
        data.setup("fit")
        loader = data.train_dataloader()
        return [[t.numpy().tobytes() for batch in loader for t in batch["target"]] for _ in range(epochs)]

    in_process, workers = crops(0), crops(2)
    assert in_process == workers  # the same crops whatever the number of loader workers
    assert not set(in_process[0]) & set(in_process[1])  # epoch 2 is not epoch 1 again


def test_a_resumed_data_module_continues_with_the_next_epochs_crops(tmp_path):
    def module():
        data = AudioPairDataModule(SyntheticCorpus(4, 2, 2, clip_seconds=1.0), segment_seconds=0.25, batch_size=2,
                                   num_workers=0, train_items_per_epoch=4, cache_dir=str(tmp_path))
        data.setup("fit")
        return data

    first = module()
    list(first.train_dataloader())  # epoch 1
    saved = first.state_dict()
    epoch2 = [t.numpy().tobytes() for b in first.train_dataloader() for t in b["target"]]
    resumed = module()
    resumed.load_state_dict(saved)
    assert [t.numpy().tobytes() for b in resumed.train_dataloader() for t in b["target"]] == epoch2


def test_train_shares_balance_the_sources_whatever_their_length(tmp_path):
    """Two sources, one with 9x the audio of the other: with equal shares, crops come half from each."""
    import soundfile as sf

    from audiosr.data.corpora import AudioFolders
    from audiosr.data.datamodule import AudioPairDataModule

    rng = np.random.default_rng(0)
    for folder, files in (("long", 9), ("short", 1)):
        (tmp_path / folder).mkdir()
        for index in range(files):
            sf.write(tmp_path / folder / f"{index}.wav", 0.1 * rng.standard_normal(44100).astype(np.float32), 44100)
    sources = [str(tmp_path / "long"), str(tmp_path / "short")]

    def share_of_short(shares):
        data = AudioPairDataModule(AudioFolders(sources, sources, train_shares=shares), segment_seconds=0.25,
                                   num_workers=0, train_items_per_epoch=400, cache_dir=str(tmp_path / "cache"))
        data.setup("fit")
        crops = data.datasets["train"]
        picks = [min(int(np.searchsorted(crops.cumulative, np.random.default_rng([0, i]).random(3)[0])),
                     len(crops.recordings) - 1) for i in range(len(crops))]
        return np.mean(["short" in crops.recordings[p].name for p in picks])

    assert abs(share_of_short(None) - 0.1) < 0.05  # by length
    assert abs(share_of_short([1.0, 1.0]) - 0.5) < 0.08  # by share
    with pytest.raises(ValueError, match="one positive share per train source"):
        AudioFolders(sources, sources, train_shares=[1.0])


def test_test_inputs_are_16_bit_by_default_and_float_on_request(tmp_path):
    def test_item(**options):
        data = AudioPairDataModule(SyntheticCorpus(1, 1, 1, clip_seconds=1.0), segment_seconds=0.5, num_workers=0,
                                   cache_dir=str(tmp_path), **options)
        data.setup("test")
        return data, data.datasets["test"][0]

    data, item = test_item()
    codes = item["low"].double() * 32768
    assert torch.equal(codes, codes.round()) and codes.abs().max() > 1000  # every sample on the 16-bit grid
    assert codes.min() >= -32768 and codes.max() <= 32767
    target = item["target"].double() * 32768
    assert not torch.equal(target, target.round())  # the target stays as read
    assert "16-bit PCM" in data.describe() and data.test_input == "16-bit PCM (rounded, no dither)"
    for float_input in (None, 32):
        data, plain = test_item(test_input_bits=float_input)
        codes = plain["low"].double() * 32768
        assert not torch.equal(codes, codes.round()) and data.test_input.startswith("float32")
        # The same signal, only not rounded: at most half a step apart.
        assert (plain["low"] - item["low"]).abs().max() <= 0.5 / 32768 + 1e-9
        assert torch.equal(plain["target"], item["target"])
    # Training and validation inputs are never quantised.
    data.setup("fit")
    val = data.datasets["val"][0]["low"].double() * 32768
    assert not torch.equal(val, val.round())
    with pytest.raises(ValueError, match="test_input_bits"):
        AudioPairDataModule(test_input_bits=12)


def test_to_pcm_rounds_to_the_nearest_step_and_clips():
    from audiosr.data.pairs import to_pcm

    step = 2.0 ** -15
    x = np.array([0.4 * step, 0.6 * step, -1.7 * step, 1.0, -1.5, 0.25], dtype=np.float32)
    assert to_pcm(x, 16).tolist() == [0.0, step, -2 * step, 1 - step, -1.0, 0.25]
    assert to_pcm(x, 16).dtype == np.float32


@pytest.mark.parametrize("column", ["file", "path"])  # build.sh's manifest, the dev set's
def test_a_manifest_above_the_files_gives_each_test_recording_its_edge(tmp_path, column):
    root = tmp_path / "corpus"
    for name in ("music/cut.wav", "music/unknown.wav", "speech/unlisted.wav"):
        write_audio(root / name, 44100, 0.5)
    (root / "MANIFEST.tsv").write_text(f"{column}\tcategory\tlowpass_edge_hz\n"
                                       "music/cut.wav\tmusic\t15500\nmusic/unknown.wav\tmusic\t\n")
    listed = tmp_path / "test.txt"  # a list file, as bench/default_model.py passes the test split
    listed.write_text("".join(f"{root / n}\n" for n in ("music/cut.wav", "music/unknown.wav", "speech/unlisted.wav")))
    data = AudioPairDataModule(AudioFolders([str(root)], [str(root)], [str(listed)]), segment_seconds=0.25,
                               num_workers=0, cache_dir=str(tmp_path / "cache"))
    data.setup("test")
    edges = {Path(item["name"]).name: item["ref_edge_hz"].item() for item in data.datasets["test"]}
    assert edges["cut.wav"] == 15500.0
    assert np.isnan(edges["unknown.wav"]) and np.isnan(edges["unlisted.wav"])  # measured by the comparison
