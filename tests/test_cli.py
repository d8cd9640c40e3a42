"""`audiosr` end to end in subprocesses: fit, resume, config handling, DDP, bad data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import CONFIGS, run_audiosr, write_audio
from test_data import make_bad_folder

pytestmark = pytest.mark.slow

DEBUG = ["--config", str(CONFIGS / "unet.yaml"), "--config", str(CONFIGS / "debug.yaml")]


def checkpoints(root: Path, name: str) -> list[Path]:
    return sorted(root.rglob(name))


def test_fit_then_resume_from_last(tmp_path, cli_env):
    first = run_audiosr(["fit", *DEBUG], tmp_path, cli_env)
    assert first.returncode == 0, first.stderr[-3000:]
    # The reference config asks for 16-mixed; without a GPU it says so once and goes on.
    assert "no GPU found, falling back: precision 16-mixed -> 32-true" in first.stderr
    assert "last validation: snr" in first.stdout and "lsd" in first.stdout and "rtr" in first.stdout
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    state = torch.load(last, weights_only=False)
    assert state["global_step"] == 4
    # The model got its rates from the data module (one source of truth).
    assert state["audiosr"]["source_rate"] == 22050 and state["audiosr"]["target_rate"] == 44100
    saved = yaml.safe_load((last.parent.parent / "fit-config.yaml").read_text())
    assert saved["model"]["network"]["init_args"]["channels"] == [4, 8, 8]
    assert saved["data"]["source_rate"] == 22050

    second = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "6", "--ckpt_path", "last"], tmp_path, cli_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"--ckpt_path last -> {last.relative_to(tmp_path)}" in second.stderr
    newest = max(checkpoints(tmp_path / "runs", "last.ckpt"), key=lambda p: p.stat().st_mtime)
    resumed = torch.load(newest, weights_only=False)
    assert resumed["global_step"] == 6  # continued from 4, not restarted from 0
    assert resumed["optimizer_states"][0]["state"], "optimizer state restored and advanced"

    # `audiosr test` on the same config: one table, written beside the test run's files.
    tested = run_audiosr(["test", *DEBUG, "--ckpt_path", "best"], tmp_path, cli_env)
    assert tested.returncode == 0, tested.stderr[-3000:]
    for row in ("audiosr UNet", "kaiser_fast (model input)", "kaiser_best", "soxr_vhq", "linear"):
        assert f"| {row} " in tested.stdout
    (report,) = (tmp_path / "runs").rglob("comparison.json")
    content = json.loads(report.read_text())
    assert [r["method"] for r in content["rows"]][0] == "audiosr UNet"
    assert all(r["n"] == 2 and r["rtr"] > 0 for r in content["rows"])  # debug config: 2 test clips
    assert content["metadata"]["checkpoint"].endswith(".ckpt") and content["metadata"]["config"]["data"]
    assert "synthetic" in content["metadata"]["data"]
    assert (report.parent / "comparison.md").is_file() and (report.parent / "comparison.csv").is_file()
    assert (report.parent / "spectrograms.png").read_bytes()[:4] == b"\x89PNG"


def test_last_without_any_run_fails_loudly(tmp_path, cli_env):
    result = run_audiosr(["fit", *DEBUG, "--ckpt_path", "last"], tmp_path, cli_env)
    assert result.returncode != 0
    assert "no last*.ckpt under" in result.stderr


def test_test_requires_a_checkpoint(tmp_path, cli_env):
    result = run_audiosr(["test", *DEBUG], tmp_path, cli_env)
    assert result.returncode != 0
    assert "needs --ckpt_path" in result.stderr


def test_help_and_composed_print_config(tmp_path, cli_env):
    help_text = run_audiosr(["--help"], tmp_path, cli_env)
    assert help_text.returncode == 0 and "fit" in help_text.stdout and "audiosr upsample" in help_text.stdout
    upsample_help = run_audiosr(["upsample", "--help"], tmp_path, cli_env)
    assert upsample_help.returncode == 0 and "--ckpt_path" in upsample_help.stdout
    printed = run_audiosr(["fit", *DEBUG, "--print_config"], tmp_path, cli_env)
    assert printed.returncode == 0, printed.stderr
    config = yaml.safe_load(printed.stdout)
    assert config["trainer"]["max_steps"] == 4  # the overlay wins
    assert config["trainer"]["gradient_clip_val"] == 10.0  # the recipe stays
    assert config["model"]["optimizer"]["init_args"]["lr"] == 1e-4


def test_two_process_ddp_on_cpu(tmp_path, cli_env):
    result = run_audiosr(
        ["fit", *DEBUG, "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
         "--trainer.logger", "false"],
        tmp_path, cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    assert torch.load(last, weights_only=False)["global_step"] == 4


def test_fit_on_a_folder_with_bad_files(tmp_path, cli_env):
    folder = tmp_path / "audio"
    expected = make_bad_folder(folder)
    for i in range(2):
        write_audio(folder / "val" / f"v{i}.flac", 44100, 1.0, seed=10 + i)
    result = run_audiosr(
        ["fit", *DEBUG, "--data.corpus", "audiosr.data.AudioFolders",
         "--data.corpus.train", f"[{folder}]", "--data.corpus.val", f"[{folder / 'val'}]",
         "--data.num_workers", "2", "--trainer.logger", "false"],
        tmp_path, cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name, reason in expected.items():
        lines = [line for line in result.stderr.splitlines() if f"skipping {folder / name}" in line]
        assert len(lines) == 1, (name, result.stderr[-3000:])
        assert reason in lines[0]
