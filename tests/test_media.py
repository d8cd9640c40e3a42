"""Validation examples: which items, when, where they go; and what a real offline W&B run holds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch
from lightning.pytorch.loggers import WandbLogger

import audiosr.cli as cli
from audiosr.training.examples import AudioExamples
from audiosr.training.module import ValidationOutput
from audiosr.training.runs import git_commit
from wandb_offline import offline_env, offline_runs, read_offline_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The debug overlay, cut to two training steps with a validation after each (~20 s).
DEBUG_FIT = [
    "fit", "--config", str(CONFIGS / "unet.yaml"), "--config", str(CONFIGS / "overlays/debug.yaml"),
    "--trainer.max_steps", "2", "--trainer.val_check_interval", "1",
]
PNG = b"\x89PNG\r\n\x1a\n"
RATE, SOURCE_RATE = 44100, 22050


# ---------------------------------------------------------------- the callback alone


class RecordingWandbLogger(WandbLogger):
    """A real ``WandbLogger`` (so ``isinstance`` holds) that keeps what it is asked to log."""

    def __init__(self, save_dir: Path) -> None:
        super().__init__(save_dir=str(save_dir), offline=True)
        self.logged: list[tuple[int, dict]] = []

    def log_metrics(self, metrics, step=None) -> None:  # no wandb run is ever started
        self.logged.append((step, dict(metrics)))


def fake_trainer(run_dir: Path, loggers=(), rank: int = 0) -> SimpleNamespace:
    broadcasts = []
    strategy = SimpleNamespace(broadcast=lambda obj: broadcasts.append(obj) or obj)
    return SimpleNamespace(
        sanity_checking=False, is_global_zero=rank == 0, loggers=list(loggers), global_step=0,
        checkpoint_callback=SimpleNamespace(dirpath=str(run_dir / "checkpoints")), strategy=strategy,
        broadcasts=broadcasts,
    )


def batches(seed: int = 0, sizes=(2, 2), frames: int = RATE // 4) -> list[dict[str, torch.Tensor]]:
    """Validation batches ``{"input", "target"}`` ``(B, 1, T)`` plus the model's ``prediction``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for size in sizes:
        target = 0.2 * torch.randn(size, 1, frames, generator=gen).clamp(-0.9, 0.9)
        prediction = target + 0.02 * torch.randn(size, 1, frames, generator=gen)
        out.append({"input": 0.5 * target, "target": target, "prediction": prediction})
    return out


def validate(callback, trainer, module, data, step: int, sanity: bool = False) -> None:
    """One validation as Lightning runs it: epoch start, batch ends, epoch end."""
    trainer.global_step, trainer.sanity_checking = step, sanity
    callback.on_validation_epoch_start(trainer, module)
    for index, batch in enumerate(data):
        outputs = ValidationOutput(batch["prediction"])
        callback.on_validation_batch_end(trainer, module, outputs, batch, index)
    callback.on_validation_epoch_end(trainer, module)


MODULE = SimpleNamespace(spec=SimpleNamespace(source_rate=SOURCE_RATE, target_rate=RATE, cutoff_hz=SOURCE_RATE / 2))


def test_without_wandb_files_go_to_the_run_directory_every_n_validations(tmp_path):
    callback = AudioExamples(num_items=3, every_n_validations=2, max_seconds=0.1)
    trainer = fake_trainer(tmp_path / "run")
    data = batches()
    data[0]["target"][0, 0, 10] = 1.5  # out of range: clipped, not wrapped around
    validate(callback, trainer, MODULE, data, step=0, sanity=True)  # skipped and not counted
    for step in (10, 20, 30, 40):
        validate(callback, trainer, MODULE, data, step=step)

    examples = tmp_path / "run" / "examples"
    assert sorted(p.name for p in examples.iterdir()) == ["step0000010", "step0000030"]
    first = sorted(p.name for p in (examples / "step0000010").iterdir())
    # Three items from two batches of two; input and target only the first time.
    assert first == sorted(f"item{i}_{kind}" for i in range(3) for kind in ("input.wav", "output.wav", "target.wav", "spectrogram.png"))
    later = sorted(p.name for p in (examples / "step0000030").iterdir())
    assert later == sorted(f"item{i}_{kind}" for i in range(3) for kind in ("output.wav", "spectrogram.png"))

    # Item 2 is the first item of the second batch; a tenth of a second, 16-bit PCM.
    audio, rate = soundfile.read(examples / "step0000010" / "item2_target.wav", dtype="float32")
    assert rate == RATE and soundfile.info(examples / "step0000010" / "item2_target.wav").subtype == "PCM_16"
    np.testing.assert_allclose(audio, data[1]["target"][0, 0, : RATE // 10].numpy(), atol=1 / 32768)
    clipped, _ = soundfile.read(examples / "step0000010" / "item0_target.wav", dtype="float32")
    assert clipped[10] == pytest.approx(1.0, abs=1e-4) and clipped.max() <= 1.0
    output, _ = soundfile.read(examples / "step0000030" / "item1_output.wav", dtype="float32")
    np.testing.assert_allclose(output, data[0]["prediction"][1, 0, : RATE // 10].numpy(), atol=1 / 32768)
    for png in examples.rglob("*.png"):
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    assert callback.state_dict() == {"validations": 4}


def test_with_wandb_the_logger_gets_audio_and_images_and_no_files(tmp_path):
    logger = RecordingWandbLogger(tmp_path / "wandb")
    callback = AudioExamples(num_items=1)
    trainer = fake_trainer(tmp_path / "run", loggers=[logger])
    validate(callback, trainer, MODULE, batches(seed=0), step=5)
    validate(callback, trainer, MODULE, batches(seed=0), step=9)
    validate(callback, trainer, MODULE, batches(seed=1), step=13)  # other items: references again

    import wandb

    keys = {step: set() for step in (5, 9, 13)}
    for step, metrics in logger.logged:
        keys[step] |= set(metrics)
        for key, values in metrics.items():
            kind = wandb.Image if key.endswith("spectrogram") else wandb.Audio
            assert all(isinstance(v, kind) for v in values)
            assert len(values) == (2 if key.endswith("reference") else 1)
    each = {"val_examples/item0/output", "val_examples/item0/spectrogram"}
    references = {"val_examples/item0/reference"}
    assert keys == {5: each | references, 9: each, 13: each | references}
    assert not (tmp_path / "run").exists()


def test_only_rank_zero_logs_but_every_rank_joins_the_broadcast(tmp_path):
    callback = AudioExamples()
    trainer = fake_trainer(tmp_path / "run", rank=1)
    validate(callback, trainer, MODULE, batches(), step=2)
    assert len(trainer.broadcasts) == 1  # run_directory() was asked, as rank zero asks too
    assert not (tmp_path / "run").exists()


def test_arguments_are_checked_and_resumed_runs_keep_the_rhythm():
    for bad in ({"num_items": -1}, {"every_n_validations": 0}, {"max_seconds": 0.0}):
        with pytest.raises(ValueError):
            AudioExamples(**bad)
    callback = AudioExamples(every_n_validations=3)
    callback.load_state_dict({"validations": 7})
    assert callback.validations == 7 and not callback._due(SimpleNamespace(sanity_checking=False))


# ------------------------------------------------------------------ real training runs


@pytest.mark.slow
def test_offline_wandb_run_holds_losses_metrics_lr_examples_and_config(tmp_path):
    result = subprocess.run([sys.executable, "-m", "audiosr.cli", *DEBUG_FIT], cwd=tmp_path, env=offline_env(tmp_path),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (directory,) = offline_runs(tmp_path / "runs")
    run = read_offline_run(directory)

    losses = {f"{stage}/{part}" for stage in ("train", "val") for part in ("loss", "mse", "sc", "mag")}
    metrics = {"val/snr", "val/lsd", "val/lsd_hf", "val/rtr", "val/input_snr", "val/input_lsd"}
    assert losses | metrics <= run.history_keys
    assert any(key.startswith("lr-") for key in run.history_keys)  # LearningRateMonitor
    assert run.summary["val/lsd"] > 0

    # Two validations (global steps 1 and 2) of the two validation items the debug data has.
    audio, images = run.logged("audio"), run.logged("images/separated")
    for i in range(2):
        key = f"val_examples/item{i}"
        assert [(e["step"], e["captions"]) for e in audio[f"{key}/reference"]] == [(1, ["input", "target"])]
        assert [e["step"] for e in audio[f"{key}/output"]] == [1, 2]
        assert [e["step"] for e in images[f"{key}/spectrogram"]] == [1, 2]
        assert all(e["sampleRates"] == [RATE] and e["durations"] == [0.5] for e in audio[f"{key}/output"])
    files = directory / "files"
    wavs = [files / f["path"] for entries in audio.values() for e in entries for f in e["audio"]]
    pngs = [files / name for entries in images.values() for e in entries for name in e["filenames"]]
    assert len(wavs) == 8 and len(pngs) == 4
    assert {str(p.relative_to(files / "media")) for p in wavs + pngs} == {str(p) for p in run.media}
    for wav in wavs:
        assert soundfile.info(wav).samplerate == RATE and soundfile.info(wav).frames == RATE // 2
    for png in pngs:
        assert png.read_bytes()[:8] == PNG

    # SaveRunConfig: the commit (None outside a git checkout; "+dirty" may differ) and the resolved config.
    commit = git_commit()
    assert "git_commit" in run.config
    assert (run.config["git_commit"] or "").split("+")[0] == (commit or "").split("+")[0]
    assert run.config["data"]["batch_size"] == 2 and run.config["examples"]["num_items"] == 3
    assert not list((tmp_path / "runs").rglob("examples"))  # W&B got them: no duplicate files


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")  # pytest's own argv
def test_without_a_logger_training_writes_examples_into_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIOSR_CACHE", str(tmp_path / "cache"))
    cli.main([*DEBUG_FIT, "--trainer.logger", "false", "--examples.num_items", "1"])

    (examples,) = (tmp_path / "runs").rglob("examples")
    assert sorted(p.name for p in examples.iterdir()) == ["step0000001", "step0000002"]
    assert sorted(p.name for p in (examples / "step0000001").iterdir()) == [
        "item0_input.wav", "item0_output.wav", "item0_spectrogram.png", "item0_target.wav",
    ]
    assert sorted(p.name for p in (examples / "step0000002").iterdir()) == ["item0_output.wav", "item0_spectrogram.png"]
    first, _ = soundfile.read(examples / "step0000001" / "item0_output.wav")
    last, rate = soundfile.read(examples / "step0000002" / "item0_output.wav")
    assert rate == RATE and first.shape == last.shape == (RATE // 2,)
    assert not np.array_equal(first, last)  # the network trained in between
    assert not (tmp_path / "runs" / "wandb").exists()


@pytest.mark.slow
def test_offline_wandb_test_run_gets_the_listening_page_as_one_html(tmp_path):
    env = offline_env(tmp_path)
    fit = subprocess.run([sys.executable, "-m", "audiosr.cli", *DEBUG_FIT, "--trainer.logger", "false"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr[-3000:]
    tested = subprocess.run([sys.executable, "-m", "audiosr.cli", "test", *DEBUG_FIT[1:5], "--ckpt_path", "last"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert tested.returncode == 0, tested.stderr[-3000:]
    (directory,) = offline_runs(tmp_path / "runs")
    pages = read_offline_run(directory).logged("html-file")["test/report"]
    html = (directory / "files" / pages[0]["path"]).read_text()
    # The page W&B shows holds its players and figures itself: W&B serves no files beside it.
    assert html.count('src="data:audio/flac;base64,') == 2 * 7  # 7 versions per recording
    assert html.count('src="data:image/png;base64,') == 2 * 8  # their 7 panels and a colour scale
    assert not re.findall(r'src="(?!data:)', html)
