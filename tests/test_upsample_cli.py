"""`audiosr upsample` end to end: outputs, formats, skipping, and one-line failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr.inference.command import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE, main
from audiosr.models.checkpoint import save_generator
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
    assert "c.opus: 16000 Hz input ends at 8.0 kHz, below the 8.8 kHz from which this model fills" in err
    # Opus cannot hold 44.1 kHz at all: that is the reason given, not its being lossy.
    assert "c.opus: OGG/OPUS cannot store 44100 Hz; writing FLAC/PCM_24 instead" in err
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
    return subprocess.Popen([sys.executable, "-m", "audiosr.inference.command", *map(str, args)],
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
    from audiosr.inference.upsampler import Upsampler
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


def gain_option_spectra(tmp_path: Path, option: str, gains: tuple, ckpt: Path | None = None) -> tuple[dict, np.ndarray, Path]:
    """A model (default: the shipped one) on 1 s of noise, once per value of ``option`` (``None``: not
    given): the outputs' power spectra by value, their frequencies, and the input file."""
    src = tmp_path / "noise.wav"
    rng = np.random.default_rng(0)
    sf.write(src, (0.2 * rng.standard_normal(SOURCE)).astype(np.float32), SOURCE, subtype="FLOAT")
    outputs = {}
    for gain in gains:
        out = tmp_path / f"out{gain}"
        model = [] if ckpt is None else ["--ckpt_path", str(ckpt)]
        assert main([str(src), "--output_dir", str(out), *model, *([] if gain is None else [option, str(gain)])]) == EXIT_OK
        outputs[gain] = np.abs(np.fft.rfft(sf.read(out / "noise.wav", dtype="float64")[0])) ** 2
    return outputs, np.fft.rfftfreq(2 * SOURCE, 1 / TARGET), src


def test_invented_gain_db_replaces_the_models_stored_level_of_the_band_above_the_edge(tmp_path, capsys):
    """The shipped model's weights with -3 dB stored in its stage: without the option the band above
    the edge is 3 dB under the 0-dB output; ``--invented_gain_db -6`` gives -6 dB (replaced, not -9)."""
    from audiosr.models.checkpoint import load_generator, save_generator
    from audiosr.pretrained import default_model_path

    generator = load_generator(default_model_path())
    generator.spec = generator.spec.with_stage(invented_gain_db=-3.0)
    ckpt = save_generator(tmp_path / "stored-3.pt", generator)
    outputs, freqs, src = gain_option_spectra(tmp_path, "--invented_gain_db", (None, 0.0, -6.0), ckpt)
    low, high = freqs < 9_000, freqs > 12_000

    def change_db(gain, band):
        return 10 * np.log10(outputs[gain][band].sum() / outputs[0.0][band].sum())

    assert outputs[0.0][high].sum() > 1e-4 * outputs[0.0][low].sum()  # the model does invent a band
    assert change_db(-6.0, high) == pytest.approx(-6.0, abs=0.1)  # the gain replaces the stored one, not adds
    assert change_db(-6.0, low) == pytest.approx(0.0, abs=0.01)
    assert change_db(None, high) == pytest.approx(-3.0, abs=0.1)  # without the option: the stored level
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(src), "--output_dir", str(tmp_path / "bad"), "--invented_gain_db", "3"])
    assert exit_.value.code == EXIT_USAGE and "must be between -60 and 0 dB" in capsys.readouterr().err


def test_level_ceiling_db_holds_the_band_above_the_edge_under_the_inputs_own_spectrum_or_not(tmp_path, capsys):
    # A recording whose spectrum falls steeply from 8 kHz (a chime, a clean voice): with the ceiling
    # (the shipped model's, or 0 dB given) the band above the edge is far quieter than without it
    # (off); below 9 kHz nothing changes.
    src = tmp_path / "steep.wav"
    rng = np.random.default_rng(1)
    n = 2 * SOURCE
    f = np.fft.rfftfreq(n, 1 / SOURCE)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * 10 ** (-25 * np.clip(f - 8000, 0, None) / 1000 / 20), n)
    sf.write(src, (0.3 * x / np.abs(x).max()).astype(np.float32), SOURCE, subtype="FLOAT")
    power = {}
    for ceiling in ("off", "0", "6"):
        out = tmp_path / f"out{ceiling}"
        assert main([str(src), "--output_dir", str(out), "--level_ceiling_db", ceiling]) == EXIT_OK
        power[ceiling] = np.abs(np.fft.rfft(sf.read(out / "steep.wav", dtype="float64")[0])) ** 2
    freqs = np.fft.rfftfreq(2 * n, 1 / TARGET)
    low, high = freqs < 9_000, freqs > 11_500

    def level_db(ceiling, band):
        return 10 * np.log10(power[ceiling][band].sum())

    assert level_db("0", high) < level_db("off", high) - 6
    assert level_db("0", high) < level_db("6", high) <= level_db("off", high) + 0.01
    assert abs(level_db("0", low) - level_db("off", low)) < 0.01
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(src), "--output_dir", str(tmp_path / "bad"), "--level_ceiling_db", "loud"])
    assert exit_.value.code == EXIT_USAGE and "expected a number, auto, LO,HI or off" in capsys.readouterr().err


# --- Nothing clipped, cut short or half-written in silence --------------------------------


def square_wave(path: Path, seconds: float = 1.0) -> Path:
    """A full-scale 16-bit square wave: band-limited anew, it overshoots full scale (Gibbs)."""
    t = np.arange(round(seconds * SOURCE)) / SOURCE
    sf.write(path, np.where(np.sin(2 * np.pi * 441 * t) >= 0, 1.0, -1.0), SOURCE, subtype="PCM_16")
    return path


def clipped_master(path: Path, seconds: float = 1.5) -> Path:
    """A loud master already clipped at full scale: flat tops everywhere."""
    rng = np.random.default_rng(3)
    n = round(seconds * SOURCE)
    music = sum(np.sin(2 * np.pi * f * np.arange(n) / SOURCE + rng.uniform(0, 6)) for f in (110, 220, 330, 1250, 3100))
    sf.write(path, np.clip(1.5 * music / 3 + 0.1 * rng.standard_normal(n), -1, 1), SOURCE, subtype="PCM_16")
    return path


def test_samples_beyond_full_scale_are_counted_named_and_handled_as_asked(ckpt, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    square_wave(folder / "square.wav")
    clipped_master(folder / "master.wav")
    tone(folder / "quiet.wav")

    # float: nothing is clipped, so the float outputs show what the others must report.
    assert upsample(ckpt, folder, "-o", tmp_path / "float", "--overload", "float") == EXIT_OK
    truth = {name: sf.read(tmp_path / "float" / name, dtype="float32")[0] for name in ("square.wav", "master.wav")}
    assert sf.info(tmp_path / "float" / "square.wav").subtype == "FLOAT"
    over = {name: int((np.abs(x) > 1).sum()) for name, x in truth.items()}
    peak = {name: float(np.abs(x).max()) for name, x in truth.items()}
    assert all(count > 100 for count in over.values()) and all(p > 1.05 for p in peak.values())
    capsys.readouterr()

    # clip (the default): each such file named with its count and peak, in the summary too.
    assert upsample(ckpt, folder, "-o", tmp_path / "clip") == EXIT_OK
    err = capsys.readouterr().err
    assert "3 written (2 beyond full scale, below)" in err
    for name in truth:
        line = f"  beyond full scale: {tmp_path / 'clip' / name}: {over[name]} output samples beyond full scale " \
               f"(peak {20 * np.log10(peak[name]):+.1f} dBFS) clipped"
        assert line in err, err
        clipped, _ = sf.read(tmp_path / "clip" / name, dtype="float32")
        assert sf.info(tmp_path / "clip" / name).subtype == "PCM_16"
        np.testing.assert_allclose(clipped, np.clip(truth[name], -1, 1), atol=2 / 32768)
    assert "quiet.wav" not in err.split(" written")[1]

    # scale: the whole file lowered so its peak sits at full scale, nothing clipped.
    assert upsample(ckpt, folder, "-o", tmp_path / "scale", "--overload", "scale") == EXIT_OK
    err = capsys.readouterr().err
    for name in truth:
        scaled, _ = sf.read(tmp_path / "scale" / name, dtype="float32")
        assert np.abs(scaled).max() <= 1.0 and (np.abs(scaled) >= 32766 / 32768).sum() <= 2
        np.testing.assert_allclose(scaled, truth[name] / peak[name], atol=2 / 32768)
        assert f"scaled by {-20 * np.log10(peak[name]):.1f} dB to fit" in err
    assert not list((tmp_path / "scale").glob(".*"))  # the float staging file is gone
    quiet, _ = sf.read(tmp_path / "scale" / "quiet.wav", dtype="float32")
    np.testing.assert_allclose(quiet, sf.read(tmp_path / "clip" / "quiet.wav", dtype="float32")[0])  # untouched


def test_the_python_api_returns_floats_and_clips_nothing(ckpt, tmp_path):
    from audiosr.inference.upsampler import Upsampler
    from audiosr.models.checkpoint import load_generator

    upsampler = Upsampler(load_generator(ckpt), device="cpu")
    x, _ = sf.read(square_wave(tmp_path / "square.wav"), dtype="float32")
    y = upsampler.upsample(x, SOURCE)
    assert y.dtype == np.float32 and np.abs(y).max() > 1.05
    report = upsampler.upsample_file(tmp_path / "square.wav", tmp_path / "out.wav")
    assert report.clipped == report.over == int((np.abs(y) > 1).sum()) and report.peak == pytest.approx(np.abs(y).max())


def cut_short(path: Path, keep: float = 1 / 3) -> Path:
    """Cut a file's bytes after its header, as an interrupted copy or download does."""
    data = path.read_bytes()
    path.write_bytes(data[:44 + round((len(data) - 44) * keep)])
    return path


def test_a_file_shorter_than_its_header_fails_naming_both_lengths_unless_kept(ckpt, tmp_path, capsys):
    cut = cut_short(tone(tmp_path / "in" / "cut.wav", seconds=3.0, subtype="PCM_16"))
    assert sf.info(cut).frames == 22050  # libsndfile itself quietly reads the third that is there
    out = tmp_path / "out"
    assert upsample(ckpt, cut, "-o", out) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"failed: {cut}: shorter than its header says: 22050 of 66150 frames (1.00 of 3.00 s)" in err
    assert not out.exists() or not list(out.iterdir())
    assert upsample(ckpt, cut, "-o", out, "--truncated", "keep") == EXIT_OK
    assert "22050 of 66150 frames" in capsys.readouterr().err and sf.info(out / "cut.wav").frames == 44100


@pytest.mark.parametrize("fmt", ["AIFF", "RF64", "MP3"])
def test_other_formats_cut_short_are_found_too(ckpt, tmp_path, fmt):
    from audiosr.inference.upsampler import AudioError, Upsampler
    from audiosr.models.checkpoint import load_generator

    suffix, subtype = {"AIFF": (".aiff", "PCM_16"), "RF64": (".wav", "PCM_16"), "MP3": (".mp3", "MPEG_LAYER_III")}[fmt]
    path = tone(tmp_path / f"in{suffix}", seconds=3.0, format=fmt, subtype=subtype)
    intact = sf.info(path).frames
    cut_short(path)
    upsampler = Upsampler(load_generator(ckpt), device="cpu")
    with pytest.raises(AudioError, match=rf"shorter than its header says: \d+ of {intact} frames"):
        upsampler.upsample_file(path, tmp_path / "out" / f"out{suffix}")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_full_disk_stops_the_run_and_leaves_no_partial_file(ckpt, tmp_path, capsys, monkeypatch):
    import errno

    folder = tmp_path / "in"
    for name in ("a.wav", "b.wav", "c.wav"):
        tone(folder / name)
    real_write = sf.SoundFile.write

    def write(self, data):  # the drive fills up while b.wav is written
        if ".b.wav." in self.name:  # its hidden partial file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    out = tmp_path / "out"
    assert upsample(ckpt, folder, "-o", out) == EXIT_STOPPED
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.wav"]  # no b.wav, no hidden partial file
    assert f"failed: {folder / 'b.wav'}: no space left on device writing {out / 'b.wav'}" in err
    assert f"stopped: no space left on device writing {out / 'b.wav'} (its drive is full); 1 file not processed" in err
    assert f"  not processed: {folder / 'c.wav'}" in err
    monkeypatch.setattr(sf.SoundFile, "write", real_write)
    assert upsample(ckpt, folder, "-o", out) == EXIT_OK  # after freeing space: a.wav is skipped, the rest done
    assert "2 written, 1 skipped" in capsys.readouterr().err


@pytest.fixture
def tiny_drive(tmp_path):
    """A 300 kB tmpfs: a real full disk (libsndfile then reports only a generic error)."""
    drive = tmp_path / "drive"
    drive.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(drive)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'mount failed'})")
    yield drive
    subprocess.run(["umount", str(drive)], check=True)


def test_a_real_full_disk_is_named_as_such(ckpt, tmp_path, tiny_drive, capsys):
    folder = tmp_path / "in"
    tone(folder / "a.wav", seconds=1.0, subtype="PCM_16")  # 88 kB out
    tone(folder / "b.wav", seconds=3.0, subtype="PCM_16")  # 265 kB out: does not fit
    tone(folder / "c.wav", seconds=1.0, subtype="PCM_16")
    assert upsample(ckpt, folder, "-o", tiny_drive) == EXIT_STOPPED
    err = capsys.readouterr().err
    assert sorted(p.name for p in tiny_drive.iterdir()) == ["a.wav"]
    assert f"stopped: no space left on device writing {tiny_drive / 'b.wav'}" in err and "not processed: " in err


def test_threads_are_the_cores_this_process_may_use_unless_set(tmp_path, capsys, monkeypatch):
    import os

    import torch

    from audiosr.inference.command import usable_cores

    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))
    # A container's quota caps it: cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us / cpu.cfs_period_us).
    from audiosr.inference.command import cgroup_quota

    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path / "v2") == 1 and usable_cores(tmp_path / "v2") == 1
    (tmp_path / "v1" / "cpu").mkdir(parents=True)
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("800000\n")
    (tmp_path / "v1" / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path / "v1") == 8
    (tmp_path / "v2" / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path / "v2") is None and cgroup_quota(tmp_path / "none") is None
    src = tmp_path / "a.wav"
    sf.write(src, np.zeros(SOURCE // 4, np.float32), SOURCE)
    before = torch.get_num_threads()
    try:
        assert main([str(src), "-o", str(tmp_path / "one"), "-v", "--threads", "1"]) == EXIT_OK
        assert torch.get_num_threads() == 1
        assert "audiosr upsample: 1 CPU thread\n" in capsys.readouterr().err
        monkeypatch.setattr("audiosr.inference.command.usable_cores", lambda: 3)
        assert main([str(src), "-o", str(tmp_path / "default"), "-v"]) == EXIT_OK
        assert torch.get_num_threads() == 3
        assert "3 CPU threads (the cores this process may use; --threads sets it)" in capsys.readouterr().err
        with pytest.raises(SystemExit) as refused:
            main([str(src), "-o", str(tmp_path / "bad"), "--threads", "0"])
        assert refused.value.code == EXIT_USAGE
        assert "--threads must be >= 1, got 0" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_a_lossy_input_is_written_lossless_unless_asked_so_the_added_band_survives(tmp_path, capsys):
    """An MP3 at 32 kHz: the shipped model fills above its own band; encoding the result as MP3 again
    (what ``--format same`` asks for) lets the encoder cut near 16 kHz, so most of that band is gone."""
    rng = np.random.default_rng(4)
    src = tmp_path / "in" / "noise.mp3"
    src.parent.mkdir()
    sf.write(src, (0.2 * rng.standard_normal(32000 * 2)).astype(np.float32), 32000, format="MP3",
             subtype="MPEG_LAYER_III")
    assert main([str(src), "-o", str(tmp_path / "auto")]) == EXIT_OK
    assert "noise.mp3: MP3/MPEG_LAYER_III is lossy: encoding it again would drop the band the model adds " \
           "(--format same keeps it); writing FLAC/PCM_24 instead" in capsys.readouterr().err
    assert main([str(src), "-o", str(tmp_path / "same"), "--format", "same"]) == EXIT_OK
    lossless, lossy = tmp_path / "auto" / "noise.flac", tmp_path / "same" / "noise.mp3"
    assert (sf.info(lossless).format, sf.info(lossy).format) == ("FLAC", "MP3")

    def top_band_db(path: Path) -> float:
        y = sf.read(path, dtype="float64")[0]
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / TARGET)
        return 10 * np.log10(spectrum[(freqs > 17_000) & (freqs < 20_000)].mean() / spectrum.mean())

    assert top_band_db(lossless) > top_band_db(lossy) + 20
    assert main([str(src), "-o", str(tmp_path / "wav"), "--format", "wav"]) == EXIT_OK
    assert sf.info(tmp_path / "wav" / "noise.wav").subtype == "PCM_24"
    capsys.readouterr()
    # Every change from what was asked is said: FLAC has no float samples.
    assert main([str(src), "-o", str(tmp_path / "float"), "--format", "flac", "--overload", "float"]) == EXIT_OK
    assert "noise.mp3: FLAC has no float samples (--overload float); writing WAV/FLOAT instead" in capsys.readouterr().err
