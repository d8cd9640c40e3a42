"""What W&B gets: a fit and the tests of its checkpoints as linked runs, configs W&B can filter,
and test summaries of flat scalars that runs sort by."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from audiosr.evaluation.comparison import Row, scalars
from audiosr.training.runs import wandb_identity
from conftest import CONFIGS
from wandb_offline import offline_env, offline_runs, read_offline_run

RECIPE = ["--config", str(CONFIGS / "unet.yaml"), "--config", str(CONFIGS / "overlays/debug.yaml")]


def row(method: str, snr: float, lsd: float, below: float, **more) -> Row:
    return Row(method, 4, snr, lsd, below, lsd_hf=2 * lsd, lsd_lf=lsd / 2, **more)


def test_the_table_becomes_scalars_per_method_and_the_models_against_kaiser_best():
    intervals = {"snr_vs_kaiser_best_ci": [0.1, 0.9], "lsd_vs_kaiser_best_ci": [0.4, 0.6],
                 "lsd_below_edge_vs_kaiser_best_ci": [0.45, 0.55]}
    rows = [
        row("audiosr UNet", 20.5, 1.2, 1.0, visqol=3.1, worse=25.0, **intervals),
        row("shipped model", 21.0, 1.0, 0.8, worse=0.0),  # no intervals: unpaired recordings
        row("kaiser_fast (model input)", 19.0, 2.6, 2.2, worse=50.0, **intervals),
        row("kaiser_best", 20.0, 2.4, 2.0, visqol=2.9, worse=0.0),
        row("linear", 18.0, math.nan, 1.5),
    ]
    got = scalars(rows, model="audiosr UNet")

    assert got["test/model/snr_db"] == 20.5 and got["test/model/visqol"] == 3.1
    assert got["test/kaiser_fast/lsd_below_edge"] == 2.2 and got["test/kaiser_best/lsd_hf"] == 4.8
    assert got["test/shipped_model/snr_db"] == 21.0 and "test/shipped_model/visqol" not in got
    assert "test/linear/lsd" not in got and got["test/linear/lsd_below_edge"] == 1.5  # NaN left out
    model = {key.split("/", 2)[2]: value for key, value in got.items() if key.startswith("test/model_vs_kaiser_best/")}
    assert model == pytest.approx({
        "snr_db": 0.5, "snr_db_ci_low": 0.1, "snr_db_ci_high": 0.9,
        "lsd_ratio": 0.5, "lsd_ratio_ci_low": 0.4, "lsd_ratio_ci_high": 0.6,
        "lsd_below_edge_ratio": 0.5, "lsd_below_edge_ratio_ci_low": 0.45, "lsd_below_edge_ratio_ci_high": 0.55,
        "worse_pct": 25.0,
    })
    against = {key.split("/")[1] for key in got if "_vs_" in key}
    assert against == {"model_vs_kaiser_best", "shipped_model_vs_kaiser_best"}  # not the classical methods
    assert got["test/shipped_model_vs_kaiser_best/snr_db"] == pytest.approx(1.0)
    assert "test/shipped_model_vs_kaiser_best/snr_db_ci_low" not in got
    assert all(isinstance(v, float) for v in got.values())
    assert scalars([], model="audiosr UNet") == {}


def test_a_fit_and_each_test_of_its_checkpoints_are_runs_of_one_group():
    fit = wandb_identity("unet", "20260101-000000-abcd", "fit")
    assert fit == {"id": "20260101-000000-abcd", "name": "unet/20260101-000000-abcd",
                   "group": "unet/20260101-000000-abcd", "job_type": "fit"}
    first, second = (wandb_identity("unet", "20260101-000000-abcd", "test") for _ in range(2))
    for test in (first, second):
        assert test["name"] == "unet/20260101-000000-abcd-test" and test["group"] == fit["group"]
        assert test["job_type"] == "test" and test["id"].startswith("20260101-000000-abcd-test-")
    assert first["id"] != second["id"]  # testing twice gives two runs, never one overwritten


@pytest.mark.slow
def test_offline_fit_and_test_are_linked_runs_and_the_test_summary_holds_the_comparison(tmp_path):
    env = offline_env(tmp_path)
    for command in (["fit", *RECIPE, "--trainer.max_steps", "2", "--trainer.val_check_interval", "1"],
                    ["test", *RECIPE, "--ckpt_path", "last", "--report.listen", "0"]):
        done = subprocess.run([sys.executable, "-m", "audiosr.cli", *command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "unet").iterdir()
    run_id = run_dir.name
    runs = {run.job_type: run for run in map(read_offline_run, offline_runs(tmp_path / "runs"))}
    assert sorted(runs) == ["fit", "test"]
    fit, test = runs["fit"], runs["test"]

    # Linked by group and name; the test is a new run (not the fit's id resumed) that names what it tested.
    assert (fit.run_id, fit.name, fit.group) == (run_id, f"unet/{run_id}", f"unet/{run_id}")
    assert (test.name, test.group) == (f"unet/{run_id}-test", fit.group)
    assert test.run_id.startswith(f"{run_id}-test-") and not test.resumed
    assert test.config["run"] == {"experiment": "unet", "id": run_id, "command": "test", "checkpoint_step": 2,
                                  "fit_run_id": run_id}
    assert (tmp_path / test.config["ckpt_path"]).resolve() == (run_dir / "checkpoints" / "last.ckpt").resolve()
    assert fit.config["run"] == {"experiment": "unet", "id": run_id, "command": "fit"}

    # Steps: the fit's run up to its last step; the test's rows at the tested checkpoint's step.
    assert max(r["trainer/global_step"] for r in fit.history if "trainer/global_step" in r) == 2
    assert {"test/comparison", "test/spectrograms", "test/report"} <= test.history_keys
    assert [r.get("trainer/global_step") for r in test.history] == [2] * len(test.history)

    # The config's own keys at the top, as W&B filters them.
    for run in (fit, test):
        assert {"model", "data", "trainer", "report", "git_commit", "run"} <= set(run.config)
        assert "config" not in run.config
        assert run.config["model"]["class_path"] == "audiosr.training.module.SuperResolutionModule"
        assert run.config["data"]["batch_size"] == 2
    assert fit.config["trainer"]["max_steps"] == 2 and test.config["report"]["listen"] == 0

    # The summary holds each method's scores and the model against kaiser_best, as comparison.json has them.
    rows = {r["method"]: r for r in json.loads((run_dir / "test" / "comparison.json").read_text())["rows"]}
    names = {"audiosr UNet": "model", "kaiser_fast (model input)": "kaiser_fast", "kaiser_best": "kaiser_best",
             "soxr_vhq": "soxr_vhq", "linear": "linear"}
    assert set(rows) == set(names)
    summary = test.summary
    for method, name in names.items():
        for field, key in (("snr", "snr_db"), ("lsd", "lsd"), ("lsd_below_edge", "lsd_below_edge"),
                           ("visqol", "visqol")):
            if rows[method][field] is None:  # ViSQOL: only where the optional package is installed
                assert f"test/{name}/{key}" not in summary
            else:
                assert summary[f"test/{name}/{key}"] == pytest.approx(rows[method][field], rel=1e-9)
    model, best = rows["audiosr UNet"], rows["kaiser_best"]
    prefix = "test/model_vs_kaiser_best/"
    against = {key[len(prefix):]: value for key, value in summary.items() if key.startswith(prefix)}
    assert against == pytest.approx({
        "snr_db": model["snr"] - best["snr"],
        "snr_db_ci_low": model["snr_vs_kaiser_best_ci"][0], "snr_db_ci_high": model["snr_vs_kaiser_best_ci"][1],
        "lsd_ratio": model["lsd"] / best["lsd"],
        "lsd_ratio_ci_low": model["lsd_vs_kaiser_best_ci"][0], "lsd_ratio_ci_high": model["lsd_vs_kaiser_best_ci"][1],
        "lsd_below_edge_ratio": model["lsd_below_edge"] / best["lsd_below_edge"],
        "lsd_below_edge_ratio_ci_low": model["lsd_below_edge_vs_kaiser_best_ci"][0],
        "lsd_below_edge_ratio_ci_high": model["lsd_below_edge_vs_kaiser_best_ci"][1],
        "worse_pct": model["worse"],
    }, rel=1e-9)
    assert not [key for key in fit.summary if key.startswith("test/")]
