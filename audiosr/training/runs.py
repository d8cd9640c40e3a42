"""Runs: where a run keeps its files, and checkpoints that lose nothing.

Every run has its own folder, whatever the logger: ``runs/<experiment>/<run id>/`` with
``checkpoints/`` (``best-step=N.ckpt``, ``last.ckpt``), ``fit-config.yaml`` and, after
``audiosr test``, ``test/``. The experiment (a "run family") defaults to the name of the
first config file, so ``--ckpt_path last`` of the quickstart never picks up a reference run.

``last.ckpt`` always holds the latest step: it is rewritten after every validation, at
the end of fit, on Ctrl-C and on SIGTERM (a cluster's time limit, preemption, ``kill``),
and every checkpoint is written to a temporary file first and renamed into place, so an
interrupted write never replaces a good file.

With W&B, each command is a W&B run of its own, linked to its run folder by group and name
(:func:`wandb_identity`); its config holds the resolved ``model`` / ``data`` / ``trainer`` / ...
keys at the top, as W&B lists and filters them, and what the run is (:func:`run_facts`).
"""

from __future__ import annotations

import datetime as _dt
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from audiosr.audio_io import DiskFullError, atomic_output
from audiosr.models.checkpoint import as_training_checkpoint, checkpoint_step


def new_run_id() -> str:
    """A sortable, unique run id: ``20261124-071502-3fa9``."""
    return f"{_dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def run_directory(trainer: L.Trainer) -> Path:
    """The run's folder: the parent of its ``checkpoints/``, e.g. ``runs/quickstart/<run id>``.

    Call it on every process (it broadcasts).
    """
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        path = Path(callback.dirpath).parent
    else:
        path = Path(trainer.default_root_dir)
    return Path(trainer.strategy.broadcast(str(path)))


def run_of_checkpoint(path: Path, family_dir: Path) -> str | None:
    """The run id of a checkpoint saved by a run of this family, else None."""
    try:
        relative = path.resolve().relative_to(family_dir.resolve())
    except ValueError:
        return None
    parts = relative.parts
    return parts[0] if len(parts) == 3 and parts[1] == "checkpoints" else None


def git_commit() -> str | None:
    """The commit of the working tree, marked ``+dirty`` when it has changes."""
    try:
        here = Path(__file__).parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def wandb_identity(experiment: str, run_id: str, command: str) -> dict[str, str]:
    """``wandb.init``'s ``id``, ``name``, ``group`` and ``job_type`` for one command on a run folder.

    ``fit`` (first or resumed) is the W&B run ``<run id>``, named ``<experiment>/<run id>``;
    every ``test`` or ``validate`` of the folder's checkpoints is a run of its own, named
    ``<experiment>/<run id>-test`` (``-validate``), with a fresh id (a second test is a second run). All are in
    the group ``<experiment>/<run id>`` with the command as ``job_type``. (Continuing the fit's
    W&B run instead writes, offline, a second file under the fit's id whose steps start again at 0.)
    """
    fit = f"{experiment}/{run_id}"
    if command == "fit":
        return {"id": run_id, "name": fit, "group": fit, "job_type": command}
    return {"id": f"{run_id}-{command}-{secrets.token_hex(2)}", "name": f"{fit}-{command}", "group": fit,
            "job_type": command}


def run_facts(run_dir: Path, command: str, checkpoint: str | Path | None) -> dict[str, Any]:
    """What a logged config says the run is: its folder's experiment and id, the command, and
    for a run that starts from a checkpoint, that checkpoint's step and the id of the run that
    wrote it (None for a file from elsewhere, e.g. a generator file)."""
    facts: dict[str, Any] = {"experiment": run_dir.parent.name, "id": run_dir.name, "command": command}
    if checkpoint:
        facts["checkpoint_step"] = checkpoint_step(checkpoint)
        facts["fit_run_id"] = run_of_checkpoint(Path(checkpoint), run_dir.parent)
    return facts


def tested_step(trainer: L.Trainer) -> int | None:
    """The training step of the checkpoint ``validate`` or ``test`` runs (Lightning restores no step
    there; None for a generator file), else the trainer's step: where its logged rows belong."""
    from lightning.pytorch.trainer.states import TrainerFn

    if trainer.state.fn != TrainerFn.FITTING and trainer.ckpt_path:
        return checkpoint_step(trainer.ckpt_path)
    return trainer.global_step


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger, minus the ``anonymous=None`` that wandb >= 0.19 warns about."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; fit stops. The message names the folder and what is intact."""

    def __str__(self) -> str:
        return str(self.args[0])


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint beside its destination, flushes it, then renames it into place.

    A write that fails (a full disk, a vanished mount) leaves the file it would have
    replaced as it was, and stops fit with :class:`CheckpointWriteError`: training on
    without checkpoints would lose every step after the last good one.
    """

    def load_checkpoint(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        """Lightning's loader, which also reads generator files (``audiosr test --ckpt_path default.pt``)."""
        checkpoint = super().load_checkpoint(path, **kwargs)
        return as_training_checkpoint(checkpoint, L.__version__)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options}")
        path = Path(path)
        try:
            with atomic_output(path) as partial:
                torch.save(checkpoint, partial)
        except Exception as error:
            reason = "no space left on device" if isinstance(error, DiskFullError) else str(error).strip() or type(error).__name__
            last = path.parent / "last.ckpt"
            kept = (f"{last} (step {checkpoint_step(last)}) is intact; resume from it with --ckpt_path last"
                    if last.is_file() else "no checkpoint of this run was written before")
            raise CheckpointWriteError(
                f"could not write checkpoint {path.name} in {path.parent} ({reason}); training stopped at step "
                f"{checkpoint.get('global_step', '?')}; {kept}"
            ) from error


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is always the latest step.

    Lightning refreshes ``last`` only when it saves a new top-k checkpoint, so a run whose
    validation stops improving would keep an old ``last`` and resume from it. Here ``last``
    is also written after every validation, at the end of fit, and when the run is
    interrupted by Ctrl-C or SIGTERM (Lightning stops such a run after the current step).
    A run that diverges (:class:`audiosr.training.divergence.TrainingDiverged`) leaves ``last`` as it was:
    the last state with finite weights.
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self.save_last_now(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self.save_last_now(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from audiosr.training.divergence import TrainingDiverged

        if isinstance(exception, TrainingDiverged):  # last.ckpt keeps the last good state; say where
            if self.last_model_path and Path(self.last_model_path).is_file():
                step = getattr(self, "_last_step_in_last", None)  # unknown in a resumed run until it saves
                step = step if step is not None else checkpoint_step(self.last_model_path)
                exception.last_checkpoint = (self.last_model_path, step)
            return
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and self.save_last_now(trainer, force=True):
            cause = "interrupted" if isinstance(exception, KeyboardInterrupt) else "stopped by SIGTERM"
            if trainer.is_global_zero:
                print(f"\naudiosr: {cause} at step {trainer.global_step}; state saved to {self.last_model_path} "
                      "(resume with --ckpt_path last)", file=sys.stderr)

    def save_last_now(self, trainer: L.Trainer, force: bool = False) -> bool:
        """Write ``last.ckpt`` unless it already holds this step; True if it now does."""
        from lightning.pytorch.trainer.states import TrainerFn

        if not self.save_last or self.dirpath is None or trainer.state.fn != TrainerFn.FITTING:
            return False
        if trainer.sanity_checking or trainer.fast_dev_run:
            return False
        if not force and getattr(self, "_last_step_in_last", None) == trainer.global_step:
            return True
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_step_in_last = trainer.global_step
        return True


class SaveRunConfig(SaveConfigCallback):
    """Writes the resolved config into the run directory and attaches it to the logger.

    Lightning's default writes ``config.yaml`` into the logger's ``save_dir``, shared by
    every run, so the second run would refuse to start. The logger gets the config's own
    top-level keys (``model``, ``data``, ``trainer``, ...), ``git_commit`` and ``run``
    (:func:`run_facts`).
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        directory = self.run_dir = run_directory(trainer)  # on every process: it broadcasts
        if trainer.is_global_zero:
            directory.mkdir(parents=True, exist_ok=True)
            stage_name = getattr(stage, "value", stage)  # Lightning passes a TrainerFn enum
            self.parser.save(self.config, directory / f"{stage_name}-{self.config_filename}", skip_none=False,
                             overwrite=True, multifile=False)
            self.save_config(trainer, pl_module, stage_name)
        self.already_saved = True

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config = json.loads(self.parser.dump(self.config, skip_none=False, format="json"))  # type: ignore[arg-type]
        facts = run_facts(self.run_dir, stage, self.config.get("ckpt_path"))
        for logger in trainer.loggers:
            logger.log_hyperparams({**config, "git_commit": git_commit(), "run": facts})
