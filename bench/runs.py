"""Train a recipe on the dev split for a wall-time budget, then test it: with `audiosr fit` and `audiosr test`.

Every quality figure of the benchmarks comes from these two commands, run as a user runs
them from the repository root (the installed package, ``python -m audiosr.cli``); the commands
are printed in the report.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from bench.common import (
    REPO, Context, Measured, audiosr_module_command, command_line, config_args, log, run_measured, subprocess_env,
)


class Elapsed(Callback):
    """Logs ``time/elapsed_s``, seconds since training started, at every validation (for the curves)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter() - getattr(self, "offset", 0.0)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            pl_module.log("time/elapsed_s", time.perf_counter() - self.start)


@dataclass
class Trained:
    """One recipe trained for a budget and tested on the dev test split."""

    name: str
    fit_cmd: list[str]
    test_cmd: list[str]
    fit: Measured
    test: Measured | None = None
    run_dir: Path | None = None
    rows: list[dict] = field(default_factory=list)  # comparison.json rows
    curve: list[dict] = field(default_factory=list)  # one dict of val/* per validation
    tested: str = "best"  # the --ckpt_path that `audiosr test` was given

    @property
    def ok(self) -> bool:
        return self.fit.returncode == 0 and self.test is not None and self.test.returncode == 0 and bool(self.rows)

    def row(self, method: str) -> dict | None:
        """A classical method's row by its plain name, or the model's as ``"model"``."""
        return by_method(self.rows).get(method)

    @property
    def model(self) -> dict | None:
        return self.row("model")

    @property
    def checkpoint(self) -> Path | None:
        """The checkpoint that was tested."""
        pattern = "last.ckpt" if self.tested == "last" else "best*.ckpt"
        found = sorted((self.run_dir / "checkpoints").glob(pattern)) if self.run_dir else []
        return found[-1] if found else None

    @cached_property
    def batches(self) -> int | None:
        """Batches trained by the end of fit (GAN runs: not Lightning's step, which counts both optimizers)."""
        last = sorted((self.run_dir / "checkpoints").glob("last.ckpt")) if self.run_dir else []
        if not last:
            return None
        state = torch.load(last[0], map_location="cpu", weights_only=False, mmap=True)
        trained = state["state_dict"].get("batches_trained")
        return int(trained) if trained is not None else int(state["global_step"])

    @property
    def figure(self) -> Path | None:
        path = self.run_dir / "test" / "spectrograms.png" if self.run_dir else None
        return path if path is not None and path.is_file() else None


def train_and_test(ctx: Context, name: str, configs: list[str], extra: list[str] | None = None,
                   minutes: float | None = None, test_extra: list[str] | None = None,
                   tested: str = "best") -> Trained:
    """``audiosr fit`` for ``minutes`` of wall time on the dev split, then ``audiosr test --ckpt_path <tested>``."""
    assert ctx.dev is not None
    minutes = ctx.args.budget if minutes is None else minutes
    work = ctx.tmp / "runs" / name
    data = ctx.dev.data_args(ctx.tmp / "lists")
    # Run folders go to <work>/runs/<name>/<run id>/ (the CLI's layout under default_root_dir).
    common = [*config_args(configs), *data, "--experiment", name, "--trainer.default_root_dir", str(work / "runs"),
              *(extra or [])]
    seconds = int(round(minutes * 60))
    fit_cmd = [*audiosr_module_command(), "fit", *common, "--trainer.max_steps", "1000000",
               "--trainer.max_time", f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
               "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(work / "csv"),
               "--trainer.callbacks+=bench.runs.Elapsed", "--trainer.enable_progress_bar", "false"]
    test_cmd = [*audiosr_module_command(), "test", *common, "--ckpt_path", tested, "--trainer.logger", "false",
                *(test_extra or [])]
    env = subprocess_env(ctx.cache_dir)
    log(f"  {name}: audiosr fit ({minutes:g} min budget)")
    fit = run_measured(fit_cmd, work / "fit.log", cwd=REPO, env=env, label=f"{name} fit")
    log(f"  {name}: fit exit {fit.returncode} after {fit.wall_s:.0f} s")
    trained = Trained(name, fit_cmd, test_cmd, fit, tested=tested)
    runs = sorted((work / "runs" / name).glob("*/checkpoints")) if fit.returncode == 0 else []
    if not runs:
        ctx.problems.append(f"{name}: audiosr fit exit {fit.returncode}")
        return trained
    trained.run_dir = runs[-1].parent
    trained.curve = read_curve(work / "csv")
    trained.test = run_measured(test_cmd, work / "test.log", cwd=REPO, env=env, label=f"{name} test")
    log(f"  {name}: test exit {trained.test.returncode} after {trained.test.wall_s:.0f} s")
    report = trained.run_dir / "test" / "comparison.json"
    if trained.test.returncode != 0 or not report.is_file():
        ctx.problems.append(f"{name}: audiosr test exit {trained.test.returncode}")
        return trained
    trained.rows = json.loads(report.read_text())["rows"]
    return trained


def read_curve(csv_dir: Path) -> list[dict]:
    """The validations of a CSVLogger run: ``[{"step", "time/elapsed_s", "val/...": ...}]``."""
    files = sorted(csv_dir.rglob("metrics.csv"))
    if not files:
        return []
    points: dict[int, dict] = {}
    with files[-1].open(newline="") as f:
        for record in csv.DictReader(f):
            values = {k: float(v) for k, v in record.items() if v not in ("", None) and (k.startswith("val/") or k.startswith("time/"))}
            if "val/lsd" in values:
                points.setdefault(int(float(record["step"])), {"step": int(float(record["step"]))}).update(values)
    return [points[s] for s in sorted(points)]


def by_method(rows: list[dict]) -> dict[str, dict]:
    """Comparison rows by method, classical ones under their plain names ("soxr_vhq", not
    "soxr_vhq (model input)") and the model under "model"."""
    table = {}
    for row in rows:
        name = row["method"]
        table["model" if name.startswith("audiosr ") else name.removesuffix(" (model input)")] = row
    return table


def commands(trained: list[Trained]) -> str:
    """The commands, for the report (temporary paths shown as ``$TMP``)."""
    lines = []
    for t in trained:
        lines += [f"# {t.name}", command_line(t.fit_cmd), command_line(t.test_cmd)]
    return "```\n" + "\n".join(lines) + "\n```\n"


def test_checkpoint(ctx: Context, trained: Trained, name: str, extra: list[str]) -> tuple[Measured, list[dict]]:
    """``audiosr test`` of ``trained``'s best checkpoint with ``extra`` arguments, as experiment ``name``."""
    cmd = [c if c != trained.tested else str(trained.checkpoint) for c in trained.test_cmd]
    work = ctx.tmp / "runs" / name
    cmd += [*extra, "--experiment", name, "--trainer.default_root_dir", str(work / "runs")]
    m = run_measured(cmd, work / "test.log", cwd=REPO, env=subprocess_env(ctx.cache_dir), label=f"{name} test")
    reports = sorted((work / "runs" / name).rglob("comparison.json"))
    if m.returncode != 0 or not reports:
        ctx.problems.append(f"{name}: audiosr test exit {m.returncode}")
        return m, []
    return m, json.loads(reports[-1].read_text())["rows"]
