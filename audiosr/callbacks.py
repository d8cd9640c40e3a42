"""Validation quality and speed: SNR, LSD (log10), LSD-HF/LF and real-time ratio."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from audiosr.metrics import lsd_bands, snr


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
