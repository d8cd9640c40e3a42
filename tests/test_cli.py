"""`audiosr` end to end: fit, resume, checkpoints, config handling, DDP, bad data; in subprocesses, as a user runs
it, except refusals that stop before any training (in this process: a subprocess spends seconds importing Lightning)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import CONFIGS, cli_environment, run_audiosr, write_audio
from crop_recorder import crops
from test_data import make_bad_folder

pytestmark = pytest.mark.slow

DEBUG = ["--config", str(CONFIGS / "unet.yaml"), "--config", str(CONFIGS / "overlays/debug.yaml")]
TESTS = Path(__file__).resolve().parent


def checkpoints(root: Path, name: str) -> list[Path]:
    return sorted(root.rglob(name))


def step_of(path: Path) -> int:
    return torch.load(path, weights_only=False)["global_step"]


@pytest.fixture(scope="module")
def fitted_two_steps(tmp_path_factory) -> Path:
    """One `audiosr fit` of two steps (no logger) in a folder of its own, fitted once per module
    (per test worker): the tests that only need a trained run to test or refuse copy it."""
    root = tmp_path_factory.mktemp("fitted-two-steps")
    result = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "2", "--trainer.logger", "false"], root,
                         cli_environment(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.fixture
def two_step_run(fitted_two_steps: Path, tmp_path: Path) -> Path:
    """``tmp_path`` holding a copy of that run's folder (``runs/``), as if it had been fitted there."""
    shutil.copytree(fitted_two_steps / "runs", tmp_path / "runs")
    return tmp_path


def test_fit_then_resume_from_last_in_the_same_run(tmp_path, cli_env):
    first = run_audiosr(["fit", *DEBUG], tmp_path, cli_env)
    assert first.returncode == 0, first.stderr[-3000:]
    # The reference config asks for 16-mixed; without a GPU it says so once and goes on.
    assert "no GPU found, falling back: precision 16-mixed -> 32-true" in first.stderr
    assert "last validation: score" in first.stdout and "lsd" in first.stdout and "rtr" in first.stdout
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    run_dir = last.parent.parent
    assert run_dir.parent == tmp_path / "runs" / "unet"  # the family is the first config's name
    state = torch.load(last, weights_only=False)
    assert state["global_step"] == 4
    # The model got its rates from the data module (one source of truth).
    assert state["audiosr"]["source_rate"] == 22050 and state["audiosr"]["target_rate"] == 44100
    saved = yaml.safe_load((run_dir / "fit-config.yaml").read_text())
    assert saved["model"]["init_args"]["network"]["init_args"]["channels"] == [4, 8, 8]
    assert saved["data"]["source_rate"] == 22050
    best_score = state["callbacks"][next(k for k in state["callbacks"] if k.startswith("RunCheckpoint"))]["best_model_score"]

    second = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "6", "--ckpt_path", "last"], tmp_path, cli_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"--ckpt_path last -> {last.relative_to(tmp_path)} (step 4)" in second.stderr
    assert "dirpath has changed" not in second.stderr + second.stdout
    # Resumed in place: the same run folder, its best score kept, one best file.
    assert checkpoints(tmp_path / "runs", "last.ckpt") == [last]
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == 6  # continued from 4, not restarted from 0
    assert resumed["optimizer_states"][0]["state"], "optimizer state restored and advanced"
    callback = resumed["callbacks"][next(k for k in resumed["callbacks"] if k.startswith("RunCheckpoint"))]
    assert callback["best_model_score"] <= best_score
    assert len(list((run_dir / "checkpoints").glob("best*.ckpt"))) == 1

    # `audiosr test` on the same config: one table, written into the tested run's folder.
    # `make quickstart`'s way: the shipped model beside the tested one, each named once.
    tested = run_audiosr(["test", *DEBUG, "--ckpt_path", "best", "--report.models", "{shipped model: default}"],
                         tmp_path, cli_env)
    assert tested.returncode == 0, tested.stderr[-3000:]
    for row in ("audiosr UNet", "shipped model", "kaiser_fast (model input)", "kaiser_best", "soxr_vhq", "linear"):
        assert f"| {row} " in tested.stdout
    assert "'audiosr UNet' is the model under test" in tested.stdout
    assert "'shipped model' is the model shipped with audiosr" in tested.stdout
    report = run_dir / "test" / "comparison.json"
    content = json.loads(report.read_text())
    assert [r["method"] for r in content["rows"]][:2] == ["audiosr UNet", "shipped model"]
    assert all(r["n"] == 2 and r["rtr"] > 0 for r in content["rows"])  # debug config: 2 test clips
    assert content["rows"][0]["precision"] == "fp32" and content["metadata"]["precision"] == "fp32"
    assert content["metadata"]["checkpoint"].endswith(".ckpt") and content["metadata"]["config"]["data"]
    assert "synthetic" in content["metadata"]["data"]
    # The LSD below each reference's own edge, its edge per item, and the intervals against kaiser_best.
    assert "| LSD ↓ " in tested.stdout and "| LSD < ref edge ↓ " in tested.stdout
    assert "SNR − kaiser_best (dB)" in tested.stdout and "95 % bootstrap interval" in tested.stdout
    assert all(0 < r["lsd_below_edge"] <= 1.5 * r["lsd"] for r in content["rows"])
    assert all(0 < i["ref_edge_hz"] <= 22050 for items in content["items"].values() for i in items)
    by_method = {r["method"]: r for r in content["rows"]}
    assert by_method["kaiser_best"]["snr_vs_kaiser_best_ci"] is None
    for key in ("snr_vs_kaiser_best_ci", "lsd_vs_kaiser_best_ci", "lsd_below_edge_vs_kaiser_best_ci"):
        low, high = by_method["audiosr UNet"][key]
        assert low <= high
    # Every method got a 16-bit low-rate input, and the report says so.
    assert content["metadata"]["test_input"] == "16-bit PCM (rounded, no dither)"
    assert "16-bit PCM" in content["caption"] and "16-bit PCM" in content["metadata"]["data"]
    assert (report.parent / "comparison.md").is_file() and (report.parent / "comparison.csv").is_file()
    assert (report.parent / "spectrograms.png").read_bytes()[:4] == b"\x89PNG"
    # The listening page: both test clips (fewer than 8), each with its low-rate input, the
    # model, every classical method and the target; every file it links is beside it.
    page = (report.parent / "report.html").read_text()
    assert f"listening report: {report.parent / 'report.html'}" in tested.stdout
    # One player per recording; 8 versions (input, model, shipped model, 4 classical methods, target): 7 to switch to.
    assert page.count("<audio controls") == 2 and page.count("data-src=") == 2 * 7 and page.count("model vs kaiser_best") == 2
    assert all((report.parent / src).is_file() for src in re.findall(r'src="([^"]+)"', page))


def test_last_holds_the_last_step_when_validation_never_improves(tmp_path, cli_env):
    # The network's own input never changes, so its LSD never improves after the first validation.
    result = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "6", "--checkpoint.monitor", "val/input_lsd",
                          "--trainer.logger", "false"], tmp_path, cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    (best,) = checkpoints(tmp_path / "runs", "best*.ckpt")
    assert best.name == "best-step=2.ckpt" and step_of(last) == 6
    assert "last: " in result.stdout and "(step 6)" in result.stdout
    assert not list(last.parent.glob(".*partial"))  # atomic writes leave nothing behind

    # Without a logger too, a second run never shares the first one's checkpoint folder.
    again = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "2", "--trainer.logger", "false"], tmp_path, cli_env)
    assert again.returncode == 0, again.stderr[-3000:]
    lasts = checkpoints(tmp_path / "runs", "last.ckpt")
    assert len(lasts) == 2 and lasts[0].parent != lasts[1].parent and step_of(last) == 6


def test_sigterm_saves_the_current_step_and_last_resumes_it(tmp_path, cli_env):
    args = [sys.executable, "-m", "audiosr.cli", "fit", *DEBUG, "--trainer.max_steps", "100000",
            "--trainer.val_check_interval", "100000", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.callbacks+=crop_recorder.CropRecorder", f"--trainer.callbacks.directory={tmp_path / 'crops'}"]
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([str(TESTS), cli_env.get("PYTHONPATH", "")])}
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record = tmp_path / "crops" / "rank0.txt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not record.is_file() or len(record.read_text().splitlines()) < 6):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM at step" in err
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    step = step_of(last)
    assert 3 <= step < 100000

    resumed = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", str(step + 2), "--trainer.logger", "false",
                           "--ckpt_path", "last"], tmp_path, cli_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"(step {step})" in resumed.stderr
    assert step_of(last) == step + 2


@pytest.mark.parametrize("target", ["weights", "gradients"])
def test_a_diverging_fit_stops_and_keeps_the_last_good_state(tmp_path, cli_env, target):
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([str(TESTS), cli_env.get("PYTHONPATH", "")])}
    result = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "8", "--trainer.logger", "false",
                          "--trainer.callbacks+=poison.Poison", "--trainer.callbacks.step=3",
                          f"--trainer.callbacks.target={target}"], tmp_path, env)
    assert result.returncode == 1, result.stderr[-3000:]
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    expected = "non-finite loss (total=nan" if target == "weights" else "non-finite gradients in the generator"
    assert f"audiosr: training diverged at step 3: {expected}" in result.stderr
    assert f"last good state: {last} (step 2); resume it with --ckpt_path last" in result.stderr
    assert "Traceback" not in result.stderr
    state = torch.load(last, weights_only=False)
    assert state["global_step"] == 2  # the validation at step 2 wrote it; nothing after
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    if target == "weights":  # a resumed run that diverges before it saves names the same last.ckpt
        again = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "8", "--trainer.logger", "false", "--ckpt_path",
                             "last", "--trainer.callbacks+=poison.Poison", "--trainer.callbacks.step=3"], tmp_path, env)
        assert again.returncode == 1 and f"last good state: {last} (step 2)" in again.stderr, again.stderr[-3000:]


def test_checkpoint_lookup_stays_in_its_family_and_mismatches_are_refused(two_step_run, cli_env):
    tmp_path = two_step_run
    other = run_audiosr(["test", *DEBUG, "--experiment", "another", "--ckpt_path", "last"], tmp_path, cli_env)
    assert other.returncode == 2 and "no last.ckpt in the runs of" in other.stderr and "another" in other.stderr
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    wrong = run_audiosr(["test", *DEBUG, "--data.source_rate", "16000", "--ckpt_path", str(last)], tmp_path, cli_env)
    assert wrong.returncode == 2
    (line,) = [text for text in wrong.stderr.splitlines() if "error" in text]
    assert "was trained for source_rate 22050 (config: 16000)" in line and "Traceback" not in wrong.stderr


def test_a_generator_file_is_tested_with_its_own_output_stage_and_cannot_be_resumed(two_step_run, cli_env):
    """`audiosr test --ckpt_path default.pt`: the shipped kind of file, compared with resampling. The
    stage stored in the file (-3 dB, not the config's 0) is the one that runs; a setting on the command
    line replaces it, it does not add to it: the file with 0 dB from the command line scores exactly as
    the training checkpoint at the config's 0 dB does."""
    from audiosr.models.checkpoint import load_generator, save_generator

    tmp_path = two_step_run
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    generator = load_generator(last)
    generator.spec = generator.spec.with_stage(invented_gain_db=-3.0)
    weights = save_generator(tmp_path / "generator.pt", generator, extra={"trained_steps": 2})

    def model_row(ckpt: Path, gain: str | None = None) -> tuple[dict, str]:
        override = ["--model.init_args.output_stage.invented_gain_db", gain] if gain else []
        tested = run_audiosr(["test", *DEBUG, "--trainer.logger", "false", "--report.visqol", "false",
                              "--ckpt_path", str(ckpt), *override], tmp_path, cli_env)
        assert tested.returncode == 0, tested.stderr[-3000:]
        report = max(tmp_path.rglob("comparison.json"), key=lambda p: p.stat().st_mtime_ns)
        assert json.loads(report.read_text())["metadata"]["checkpoint"] == str(ckpt)
        return json.loads(report.read_text())["rows"][0], tested.stderr

    (as_trained, _), (from_file, said) = model_row(last), model_row(weights)
    assert from_file["method"] == as_trained["method"] == "audiosr UNet"
    assert "output stage of generator.pt: " in said and "band above the edge -3 dB" in said
    assert from_file["lsd"] != pytest.approx(as_trained["lsd"], abs=1e-6)  # -3 dB ran, not the config's 0
    file_at_zero, said = model_row(weights, "0")
    assert "invented_gain_db from the command line" in said and "band above the edge" not in said
    assert file_at_zero["snr"] == pytest.approx(as_trained["snr"], abs=1e-6)
    assert file_at_zero["lsd"] == pytest.approx(as_trained["lsd"], abs=1e-6)
    resumed = run_audiosr(["fit", *DEBUG, "--ckpt_path", str(weights)], tmp_path, cli_env)
    assert resumed.returncode == 2 and "is a generator file (weights only" in resumed.stderr
    assert "Traceback" not in resumed.stderr


def run_in_process(args: list[str], folder: Path, monkeypatch, capsys) -> tuple[int, str]:
    """``audiosr ARGS`` in this process (for refusals, which stop before any training): its exit
    code and what it wrote to stderr. A subprocess would spend most of its time importing Lightning."""
    from audiosr.cli import main

    monkeypatch.chdir(folder)
    for name, value in cli_environment(folder).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        main(args)
    return stopped.value.code, capsys.readouterr().err


def test_last_without_any_run_fails_loudly(tmp_path, monkeypatch, capsys):
    code, err = run_in_process(["fit", *DEBUG, "--ckpt_path", "last"], tmp_path, monkeypatch, capsys)
    assert code == 2
    assert "no last.ckpt in the runs of" in err


def test_test_requires_a_checkpoint(tmp_path, monkeypatch, capsys):
    code, err = run_in_process(["test", *DEBUG], tmp_path, monkeypatch, capsys)
    assert code not in (0, None)
    assert "needs --ckpt_path" in err


def test_help_and_composed_print_config(tmp_path, cli_env):
    help_text = run_audiosr(["--help"], tmp_path, cli_env)
    commands = [line.split()[0] for line in help_text.stdout.splitlines() if line.startswith("  ")]
    assert help_text.returncode == 0 and commands == ["upsample", "fit", "validate", "test", "shards"]  # the main job first
    fit_help = run_audiosr(["fit", "--help"], tmp_path, cli_env)
    assert fit_help.returncode == 0 and "--config" in fit_help.stdout
    upsample_help = run_audiosr(["upsample", "--help"], tmp_path, cli_env)
    assert upsample_help.returncode == 0 and "--ckpt_path" in upsample_help.stdout
    printed = run_audiosr(["fit", *DEBUG, "--print_config"], tmp_path, cli_env)
    assert printed.returncode == 0, printed.stderr
    config = yaml.safe_load(printed.stdout)
    assert config["trainer"]["max_steps"] == 4  # the overlay wins
    assert config["trainer"]["gradient_clip_val"] == 10.0  # the recipe stays
    assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 1e-4
    assert config["model"]["init_args"]["loss"]["init_args"]["weights"] == {"mrstft": 1.0, "mse": 100.0}


@pytest.mark.parametrize("argv", [["upsample", "--help"], ["--help"], []])
def test_help_loads_neither_torch_nor_lightning(tmp_path, argv):
    code = ("import sys; from audiosr.cli import main\n"
            f"try: main({argv!r})\nexcept SystemExit as exit_: print('exit', exit_.code)\n"
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr
    assert f"exit {2 if not argv else 0}" in result.stdout  # bare `audiosr`: the commands, as a usage error
    if not argv:
        assert "upsample  restore the top band" in result.stderr


def test_predict_is_not_offered_and_says_what_does_its_job():
    code = "from audiosr.cli import main\nmain(['predict', '--ckpt_path', 'last.ckpt'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "predict is not offered" in result.stderr and "audiosr upsample" in result.stderr


def test_the_cli_can_be_built_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from audiosr.training.cli import AudioSRCLI

    cli = AudioSRCLI(args=[*DEBUG], run=False)
    assert cli.model.spec.source_rate == 22050 and cli.trainer.max_steps == 4


def test_two_process_ddp_every_rank_sees_other_crops(tmp_path, cli_env):
    # In-process loading was the case where every rank drew the same crops; that crops do
    # not depend on the number of workers is tested in test_data.py.
    num_workers = 0
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([str(TESTS), cli_env.get("PYTHONPATH", "")])}
    result = run_audiosr(
        ["fit", *DEBUG, "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
         "--trainer.logger", "false", "--data.num_workers", str(num_workers),
         "--trainer.callbacks+=crop_recorder.CropRecorder", f"--trainer.callbacks.directory={tmp_path / 'crops'}"],
        tmp_path, env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    assert step_of(last) == 4
    rank0, rank1 = crops(tmp_path / "crops", 0), crops(tmp_path / "crops", 1)
    assert len(rank0) == len(rank1) == 8  # 4 steps x batch 2 on each process
    assert not set(rank0) & set(rank1)  # no crop trained twice in a step
    assert len(set(rank0)) == 8  # and no crop repeated within a process


def test_test_on_two_processes_builds_one_table(two_step_run, cli_env):
    tmp_path = two_step_run
    tested = run_audiosr(["test", *DEBUG, "--ckpt_path", "last", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                          "--trainer.strategy", "ddp", "--trainer.logger", "false", "--data.corpus.init_args.test_clips", "3"],
                         tmp_path, cli_env)
    assert tested.returncode == 0, tested.stderr[-3000:]
    # Printed once, by rank zero: one row in the table, one in the intervals against kaiser_best under it.
    assert tested.stdout.count("| audiosr UNet ") == 2 and tested.stdout.count("LSD < ref edge ↓") == 1
    (report,) = (tmp_path / "runs").rglob("comparison.json")
    rows = json.loads(report.read_text())["rows"]
    assert all(r["n"] == 3 for r in rows)  # every clip once, although DDP pads 3 clips to 4


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
        assert reason in lines[0] and lines[0].startswith("audiosr: skipping")
    assert "warnings.warn" not in result.stderr  # one line per file, no source line after it


@pytest.mark.slow
def test_a_failed_checkpoint_write_keeps_last_and_stops_fit_with_one_line(tmp_path, cli_env):
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([str(TESTS), cli_env.get("PYTHONPATH", "")])}
    result = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "8", "--trainer.logger", "false",
                          "--trainer.callbacks+=full_disk.FullDisk", "--trainer.callbacks.step=3"], tmp_path, env)
    assert result.returncode == 1, result.stderr[-3000:]
    (last,) = checkpoints(tmp_path / "runs", "last.ckpt")
    assert step_of(last) == 2  # the validation at step 2 wrote it; the write at step 4 failed half-way
    assert not list(last.parent.glob(".*"))  # no partial file left behind
    (line,) = [text for text in result.stderr.splitlines() if "error" in text]
    assert line == (f"audiosr: error: could not write checkpoint best-step=4.ckpt in {last.parent} (no space left "
                    f"on device); training stopped at step 4; {last} (step 2) is intact; resume from it with "
                    "--ckpt_path last")
    assert "Traceback" not in result.stderr
    resumed = run_audiosr(["fit", *DEBUG, "--trainer.max_steps", "4", "--trainer.logger", "false", "--ckpt_path",
                           "last"], tmp_path, env)
    assert resumed.returncode == 0 and step_of(last) == 4, resumed.stderr[-3000:]
