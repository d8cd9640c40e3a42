"""`audiosr upsample` end to end: outputs, formats, skipping, and one-line failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr.checkpoint import save_generator
from audiosr.upsample import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from conftest import tiny_generator

SOURCE, TARGET = 22050, 44100


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    generator = tiny_generator(keep_band=(0.8, 0.9), normalise=True)
    return save_generator(tmp_path_factory.mktemp("ckpt") / "tiny.pt", generator)


def tone(path: Path, rate: int = SOURCE, seconds: float = 0.5, channels: int = 1, **kwargs) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * 300 * (c + 1) * t) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, **kwargs)
    return path


def upsample(ckpt: Path, *args: str | Path) -> int:
    return main(["--ckpt_path", str(ckpt), *map(str, args)])


def test_folders_and_files_keep_format_layout_and_channels(ckpt, tmp_path, capsys):
    tone(tmp_path / "in" / "a.wav", subtype="PCM_16")
    tone(tmp_path / "in" / "deep" / "b.flac", channels=2, subtype="PCM_24")
    tone(tmp_path / "in" / "c.opus", rate=16_000, format="OGG", subtype="OPUS")  # Opus has no 44.1 kHz
    tone(tmp_path / "in" / ".hidden" / "skip.wav")
    (tmp_path / "in" / "notes.txt").write_text("not audio, not an input")
    tone(tmp_path / "single.wav", seconds=0.2, subtype="FLOAT")
    out = tmp_path / "out"

    assert upsample(ckpt, tmp_path / "in", tmp_path / "single.wav", "--output_dir", out) == EXIT_OK
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.wav", "c.flac", "deep/b.flac", "single.wav"]
    expected = {"a.wav": ("WAV", "PCM_16", 1, 0.5), "deep/b.flac": ("FLAC", "PCM_24", 2, 0.5),
                "c.flac": ("FLAC", "PCM_24", 1, 0.5), "single.wav": ("WAV", "FLOAT", 1, 0.2)}
    for name, (fmt, subtype, channels, seconds) in expected.items():
        info = sf.info(out / name)
        assert (info.format, info.subtype, info.channels, info.samplerate) == (fmt, subtype, channels, TARGET)
        assert info.frames == round(seconds * TARGET)
    err = capsys.readouterr().err
    assert "resampling 16000 Hz to the model's 22050 Hz" in err and "writing FLAC instead" in err
    assert "4 written, 0 skipped" in err and "0 failed" in err


def test_existing_outputs_are_skipped_unless_overwrite(ckpt, tmp_path, capsys):
    src = tone(tmp_path / "a.wav")
    out = tmp_path / "out"
    assert upsample(ckpt, src, "-o", out) == EXIT_OK
    (out / "a.wav").write_bytes(b"old")
    assert upsample(ckpt, src, "-o", out) == EXIT_OK
    assert (out / "a.wav").read_bytes() == b"old"
    assert "0 written, 1 skipped" in capsys.readouterr().err
    assert upsample(ckpt, src, "-o", out, "--overwrite") == EXIT_OK
    assert sf.info(out / "a.wav").samplerate == TARGET


def test_an_input_is_never_overwritten(ckpt, tmp_path, capsys):
    src = tone(tmp_path / "a.wav")
    before = src.read_bytes()
    assert upsample(ckpt, tmp_path, "-o", tmp_path, "--overwrite") == EXIT_FAILED
    assert src.read_bytes() == before
    assert "would replace the input" in capsys.readouterr().err


def test_passthrough_copies_files_at_or_above_the_target_rate(ckpt, tmp_path, capsys):
    high = tone(tmp_path / "in" / "high.wav", rate=48_000)
    low = tone(tmp_path / "in" / "low.wav")
    assert upsample(ckpt, high, low, "-o", tmp_path / "out", "--passthrough") == EXIT_OK
    assert (tmp_path / "out" / "high.wav").read_bytes() == high.read_bytes()
    assert sf.info(tmp_path / "out" / "low.wav").samplerate == TARGET
    assert "2 written (1 copied unchanged)" in capsys.readouterr().err


def run_cli(*args: str | Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "audiosr.upsample", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_failures_give_one_line_and_the_documented_exit_status(ckpt, tmp_path):
    good = tone(tmp_path / "good.wav")
    not_audio = tmp_path / "not_audio.wav"
    not_audio.write_text("just text")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no audio here")
    high = tone(tmp_path / "high.wav", rate=TARGET)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    out = tmp_path / "out"
    # name: (arguments, exit status, what the one line says)
    cases = {
        "missing path": ([tmp_path / "missing.wav", "-o", out], EXIT_USAGE, "missing.wav: no such file"),
        "no audio in folder": ([tmp_path / "empty", "-o", out], EXIT_USAGE, "empty: no audio files"),
        "unwritable output": ([good, "-o", a_file / "sub"], EXIT_USAGE, "a_file/sub: cannot write"),
        "bad checkpoint": ([good, "-o", out, "--ckpt_path", not_audio], EXIT_USAGE, "not a usable audiosr checkpoint"),
        "rate above target": ([high, "-o", out / "high"], EXIT_FAILED, "44100 Hz is already at or above"),
        "not audio": ([not_audio, good, "-o", out / "mixed"], EXIT_FAILED, "not_audio.wav: not a readable audio"),
    }
    # Started together: each pays the interpreter and torch start-up, in parallel.
    runs = {name: run_cli("--ckpt_path", ckpt, *args) for name, (args, _, _) in cases.items()}
    for name, (_, status, line) in cases.items():
        _, err = runs[name].communicate(timeout=120)
        assert runs[name].returncode == status, (name, err)
        assert "Traceback" not in err, name
        # One line per problem; the summary repeats each failed file, indented.
        problems = [text for text in err.splitlines() if " written, " not in text and not text.startswith("  failed:")]
        assert len(problems) == 1 and line in problems[0], (name, err)
    assert sf.info(out / "mixed" / "good.wav").samplerate == TARGET  # the good file still ran


def test_hostile_files_never_give_a_corrupt_output(ckpt, tmp_path, capsys):
    folder = tmp_path / "in"
    good = tone(folder / "good.wav")
    nan = np.full((2000, 1), 0.1, np.float32)
    nan[700] = np.nan
    sf.write(folder / "nan.wav", nan, SOURCE, subtype="FLOAT")
    inf = np.full((2000, 1), 0.1, np.float32)
    inf[5] = np.inf
    sf.write(folder / "inf.wav", inf, SOURCE, subtype="FLOAT")
    sf.write(folder / "one_sample.wav", np.full((1, 1), 0.5, np.float32), SOURCE, subtype="FLOAT")
    sf.write(folder / "empty.wav", np.zeros((0, 1), np.float32), SOURCE)
    sf.write(folder / "silence.wav", np.zeros((SOURCE, 1), np.float32), SOURCE, subtype="FLOAT")
    (folder / "broken.wav").symlink_to(tmp_path / "nowhere.wav")
    out = tmp_path / "out"

    assert upsample(ckpt, folder, "-o", out) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "3 written, 0 skipped (output exists; --overwrite replaces), 4 failed" in err
    failed = {line.split(": ", 2)[1]: line.split(": ", 2)[2] for line in err.splitlines() if line.startswith("  failed:")}
    assert set(failed) == {str(folder / n) for n in ("nan.wav", "inf.wav", "empty.wav", "broken.wav")}
    assert "NaN or infinite samples (first at sample 700" in failed[str(folder / "nan.wav")]
    assert "first at sample 5" in failed[str(folder / "inf.wav")]
    assert "empty" in failed[str(folder / "empty.wav")]
    assert "broken link" in failed[str(folder / "broken.wav")]
    assert sorted(p.name for p in out.iterdir()) == ["good.wav", "one_sample.wav", "silence.wav"]  # nothing partial
    assert sf.info(out / "one_sample.wav").frames == 2
    silence, _ = sf.read(out / "silence.wav", dtype="float32")
    assert np.abs(silence).max() <= 1e-5
    assert sf.info(out / "good.wav").frames == 2 * sf.info(good).frames

    # Asked to, NaN and infinite samples become zeros, and the files are upsampled.
    assert upsample(ckpt, folder / "nan.wav", folder / "inf.wav", "-o", out, "--nonfinite", "zero") == EXIT_OK
    repaired, _ = sf.read(out / "nan.wav", dtype="float32")
    assert np.isfinite(repaired).all() and len(repaired) == 4000
    assert "1 NaN or infinite samples replaced with zeros" in capsys.readouterr().err


def test_the_shipped_model_is_the_default(tmp_path, capsys):
    from audiosr.inference import Upsampler
    from audiosr.pretrained import default_model_path, model_card_path

    assert default_model_path().stat().st_size <= 5 * 2**20 and model_card_path().is_file()
    assert "attribution" in model_card_path().read_text().lower()
    src = tone(tmp_path / "a.wav", seconds=1.0)
    assert main([str(src), "--output_dir", str(tmp_path / "out")]) == EXIT_OK
    assert "using the default model shipped with audiosr" in capsys.readouterr().err
    written, rate = sf.read(tmp_path / "out" / "a.wav", dtype="float32")
    assert rate == TARGET and written.shape == (2 * SOURCE,)
    direct = Upsampler.from_checkpoint(device="cpu").upsample(sf.read(src, dtype="float32")[0], SOURCE)
    np.testing.assert_allclose(written, direct, atol=1 / 2**15)  # the same, up to 16-bit rounding
