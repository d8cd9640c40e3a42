"""Callbacks: side effects only (the learning rate in the logger, the test comparison and its report).

They read the trainer, the batches, what the steps return (``audiosr.training.module.UpsampledRecording``)
and the module's public ``spec``; every metric a checkpoint is chosen by is the module's own.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger

from audiosr.evaluation.comparison import BASELINES, METRICS, Comparison, write_report
from audiosr.evaluation.plots import comparison_figure
from audiosr.models.generator import PRECISION_NAMES
from audiosr.training.module import UpsampledRecording
from audiosr.training.runs import git_commit, run_directory


class LearningRate(LearningRateMonitor):
    """Lightning's learning-rate monitor, quietly off when the run has no logger."""

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_epoch_start(trainer, *args, **kwargs)


class BaselineComparison(Callback):
    """``audiosr test``: the model against classical resampling, one table for all processes.

    For every test recording it scores the model's output (made by the module's
    ``test_step``, whole path timed) and every method of ``audiosr.evaluation.comparison.BASELINES``
    on the same low-rate input, timed the same way. After the last recording the
    processes' shares are merged (a recording seen by two processes counts once), and
    global rank zero prints the table and writes ``comparison.{md,csv,json}`` and
    ``spectrograms.png`` (input / output / target / error of the first ``examples``
    recordings, by name) into ``<run directory>/test``, and logs them.

    Args:
        examples: recordings shown in the spectrogram figure.
        visqol: add a ViSQOL column (``audiosr.evaluation.perceptual``); ``null`` (default): when the
            optional package is installed, with one line saying so when it is not.
    """

    def __init__(self, examples: int = 3, visqol: bool | None = None) -> None:
        self.examples_wanted = examples
        self.visqol = visqol
        self.comparison: Comparison | None = None
        self.examples: list[dict[str, Any]] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from audiosr.evaluation.perceptual import MISSING, visqol_scorer

        spec = pl_module.spec
        scorer = None
        if self.visqol is not False:
            scorer = visqol_scorer(notice=lambda line: trainer.is_global_zero and print(f"audiosr: {line}"))
            if scorer is None and self.visqol:
                raise RuntimeError(MISSING.replace("column skipped", "asked for (--report.visqol true)"))
        self.comparison = Comparison(spec.source_rate, spec.target_rate, scorer)
        self.examples = []

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: UpsampledRecording, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        assert self.comparison is not None
        spec = pl_module.spec
        name = batch["name"][0]
        low = batch["low"][0].cpu().numpy()  # (1, T_low): one whole recording per batch
        target = batch["target"][0].cpu().numpy()
        self.comparison.add(outputs.method, outputs.output, target, name)
        self.comparison.add_timing(outputs.method, outputs.output.shape[-1] / spec.target_rate, outputs.seconds,
                                   outputs.batch_size, outputs.device, outputs.precision)
        for baseline, fn in BASELINES.items():
            label = f"{baseline} (model input)" if baseline == spec.input_filter else baseline
            self.comparison.evaluate(label, fn, low, target, name=name, precision=PRECISION_NAMES["32"])
        if len(self.examples) < self.examples_wanted:
            self.examples.append({"name": name, "input": batch["input"][0, 0].cpu().numpy(),
                                  "output": outputs.output[0], "target": target[0]})

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.comparison is not None
        shares = _gather(trainer, (self.comparison, self.examples))
        merged = Comparison(self.comparison.source_rate, self.comparison.target_rate)
        examples = []
        for comparison, items in shares:
            merged.merge(comparison)
            examples.extend(items)
        self.comparison = merged
        unique = {e["name"]: e for e in examples}
        self.examples = [unique[n] for n in sorted(unique)][: self.examples_wanted]

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        directory = run_directory(trainer) / "test"
        if not trainer.is_global_zero or self.comparison is None:
            return
        rows = self.comparison.rows()
        config_file = directory.parent / "test-config.yaml"
        spec = pl_module.spec
        metadata = {
            "checkpoint": trainer.ckpt_path,
            "git_commit": git_commit(),
            "model": spec.describe(),
            "precision": rows[0].precision if rows else None,  # the model's row comes first
            "data": trainer.datamodule.describe() if trainer.datamodule is not None else None,
            "config": yaml.safe_load(config_file.read_text()) if config_file.is_file() else None,
        }
        paths = write_report(rows, directory, metadata)
        figure = None
        if self.examples:
            figure = comparison_figure(
                self.examples, [e["name"] for e in self.examples], spec.target_rate, spec.cutoff_hz,
                directory / "spectrograms.png",
                title=f"{spec.source_rate} Hz -> {spec.target_rate} Hz: input ({spec.input_filter}), model, target, error",
            )
        self._log(trainer, rows, figure)
        print("\n" + paths["md"].read_text())
        print(f"audiosr: report in {directory} (comparison.md/.csv/.json" + (", spectrograms.png)" if figure else ")"))

    @staticmethod
    def _log(trainer: L.Trainer, rows: list, figure: Path | None) -> None:
        columns = [f.name for f in fields(rows[0])] if rows else []
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table("test/comparison", columns=columns, data=[[getattr(r, c) for c in columns] for r in rows])
                if figure is not None:
                    logger.log_image("test/spectrograms", images=[str(figure)])
            else:
                logger.log_metrics({f"test/{r.method}/{m}": getattr(r, m) for r in rows for m in METRICS})


def _gather(trainer: L.Trainer, obj: Any) -> list[Any]:
    """``obj`` of every process (a list of one outside distributed runs)."""
    import torch.distributed as dist

    if trainer.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
