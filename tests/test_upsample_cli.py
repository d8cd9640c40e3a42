"""`audiosr upsample` end to end: outputs, formats, skipping, and one-line failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosr.checkpoint import ModelSpec, network_spec
from audiosr.models.unet import UNet
from audiosr.upsample import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

SOURCE, TARGET = 22050, 44100


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = UNet(channels=[4, 8, 8])
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)  # residual U-Net: make the residual non-zero
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    spec = ModelSpec(network=network_spec(net), source_rate=SOURCE, target_rate=TARGET, input_filter="kaiser_fast")
    state_dict = {"network." + k: v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state_dict, "audiosr": spec.to_dict()}, path)
    return path


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
        problems = [text for text in err.splitlines() if " written, " not in text]  # all but the summary
        assert len(problems) == 1 and line in problems[0], (name, err)
    assert sf.info(out / "mixed" / "good.wav").samplerate == TARGET  # the good file still ran
