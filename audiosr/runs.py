"""Where a run keeps its files, and what it leaves there besides checkpoints."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import SaveConfigCallback


def run_directory(trainer: L.Trainer) -> Path:
    """The run's folder: the parent of its ``checkpoints/``, e.g. ``runs/audiosr/<run id>``.

    Mirrors how Lightning's ``ModelCheckpoint`` places checkpoints, so that configs,
    reports and figures sit beside them. Call it on every process (it broadcasts).
    """
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        path = Path(callback.dirpath).parent
    elif trainer.loggers:
        logger = trainer.loggers[0]
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        path = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / version
    else:
        path = Path(trainer.default_root_dir)
    return Path(trainer.strategy.broadcast(str(path)))


def runs_root(trainer: L.Trainer) -> Path:
    """The folder that holds every run: where ``last``/``best`` are looked up."""
    if trainer.loggers and trainer.loggers[0].save_dir:
        return Path(trainer.loggers[0].save_dir)
    return Path(trainer.default_root_dir)


def git_commit() -> str | None:
    """The commit of the working tree, marked ``+dirty`` when it has changes."""
    try:
        here = Path(__file__).parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


class SaveRunConfig(SaveConfigCallback):
    """Writes the resolved config into the run directory and attaches it to the logger.

    Lightning's default writes ``config.yaml`` into the logger's ``save_dir``, shared by
    every W&B run, so the second run would refuse to start.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        directory = run_directory(trainer)
        if trainer.is_global_zero:
            directory.mkdir(parents=True, exist_ok=True)
            stage_name = getattr(stage, "value", stage)  # Lightning passes a TrainerFn enum
            self.parser.save(self.config, directory / f"{stage_name}-{self.config_filename}", skip_none=False, overwrite=True, multifile=False)
            self.save_config(trainer, pl_module, stage)
        self.already_saved = True

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config: dict[str, Any] = self.parser.dump(self.config, skip_none=False, format="json_indented")  # type: ignore[assignment]
        import json

        for logger in trainer.loggers:
            logger.log_hyperparams({"config": json.loads(config), "git_commit": git_commit()})


class InterruptCheckpoint(Callback):
    """On Ctrl-C, saves the current state as ``last.ckpt`` so ``--ckpt_path last`` resumes it."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        callback = trainer.checkpoint_callback
        if isinstance(exception, KeyboardInterrupt) and callback is not None and callback.dirpath:
            path = Path(callback.dirpath) / "last.ckpt"
            trainer.save_checkpoint(path)
            print(f"\naudiosr: interrupted; state saved to {path} (resume with --ckpt_path last)")
