"""Callbacks: validation quality and speed, the learning rate, the test report."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger

from audiosr.evaluation import METRICS, write_report
from audiosr.metrics import lsd_bands, snr
from audiosr.plots import comparison_figure
from audiosr.runs import git_commit, run_directory


class QualityMetrics(Callback):
    """Logs ``val/snr``, ``val/lsd``, ``val/lsd_hf``, ``val/lsd_lf`` and ``val/rtr``.

    LSD follows published work: STFT 2048 / hop 512, Hann, power clamped at 1e-8, log10,
    per item then averaged. The same metrics of the network's own input (the
    ``input_filter`` upsampling) are logged as ``val/input_*``, so the gain is visible
    at a glance. ``val/rtr`` is seconds of audio per second of the network's forward pass
    on the validation batches (input upsampling excluded; ``audiosr test`` times the
    whole path).
    """

    def __init__(self) -> None:
        self._audio_seconds = 0.0
        self._network_seconds = 0.0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._audio_seconds = 0.0
        self._network_seconds = 0.0

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        target = batch["target"]
        rates = pl_module.spec
        cutoff = rates.source_rate / 2
        batch_size = target.shape[0]
        for prefix, estimate in (("val/", outputs["prediction"]), ("val/input_", batch["input"])):
            metrics = lsd_bands(estimate, target, rates.target_rate, cutoff)
            metrics["snr"] = snr(estimate, target)
            for key, value in metrics.items():
                pl_module.log(
                    f"{prefix}{key}", value.mean(), on_step=False, on_epoch=True, batch_size=batch_size,
                    sync_dist=True, prog_bar=prefix == "val/" and key in ("lsd", "snr"),
                )
        self._audio_seconds += batch_size * target.shape[-1] / rates.target_rate
        self._network_seconds += outputs["network_seconds"]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._network_seconds > 0:
            pl_module.log("val/rtr", self._audio_seconds / self._network_seconds, sync_dist=True, prog_bar=True)


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


class ComparisonReport(Callback):
    """After ``audiosr test``: the comparison table on screen, on disk and in the logger.

    Writes ``comparison.{md,csv,json}`` and ``spectrograms.png`` (input / output / target /
    error of the first test recordings) into ``<run directory>/test``.
    """

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        directory = run_directory(trainer) / "test"
        if not trainer.is_global_zero or not hasattr(pl_module, "comparison"):
            return
        rows = pl_module.comparison.rows()
        config_file = directory.parent / "test-config.yaml"
        metadata = {
            "checkpoint": trainer.ckpt_path,
            "git_commit": git_commit(),
            "data": trainer.datamodule.describe() if trainer.datamodule is not None else None,
            "config": yaml.safe_load(config_file.read_text()) if config_file.is_file() else None,
        }
        paths = write_report(rows, directory, metadata)
        spec = pl_module.spec
        figure = None
        if pl_module.examples:
            figure = comparison_figure(
                pl_module.examples, [e["name"] for e in pl_module.examples], spec.target_rate,
                spec.source_rate / 2, directory / "spectrograms.png",
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
