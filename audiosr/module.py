"""The LightningModule: training and validation around a pure network."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from audiosr.checkpoint import CHECKPOINT_KEY, ModelSpec, network_spec
from audiosr.losses import MultiResolutionSTFTLoss
from audiosr.models.base import SuperResolutionNetwork
from audiosr.models.unet import UNet


class SuperResolutionModule(L.LightningModule):
    """Trains ``network`` to turn the rough upsampled ``input`` into ``target``.

    Args:
        network: waveform network ``(B, 1, T) -> (B, 1, T)`` (default: reference U-Net).
        loss: returns a dict with ``total`` and its parts (default: multi-resolution
            STFT + 100 x MSE).
        optimizer: builds the optimizer from the parameters.
        lr_scheduler: optional; stepped every optimizer step.
        source_rate, target_rate, input_filter: linked from the data module; stored in
            checkpoints so inference needs nothing else.
    """

    def __init__(
        self,
        network: SuperResolutionNetwork | None = None,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        source_rate: int = 22050,
        target_rate: int = 44100,
        input_filter: str = "kaiser_fast",
    ) -> None:
        super().__init__()
        self.network = network if network is not None else UNet()
        self.loss = loss if loss is not None else MultiResolutionSTFTLoss()
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.spec = ModelSpec(network_spec(self.network), source_rate, target_rate, input_filter)

    def forward(self, rough: torch.Tensor) -> torch.Tensor:
        """Refine the rough upsampled signal ``(B, 1, T)`` into ``(B, 1, T)``."""
        return self.network(rough)

    def _log_parts(self, stage: str, parts: dict[str, torch.Tensor], batch_size: int) -> None:
        on_step = stage == "train"
        self.log_dict(
            {f"{stage}/{name}": value.detach() for name, value in parts.items()},
            on_step=on_step, on_epoch=not on_step, batch_size=batch_size,
            sync_dist=not on_step, prog_bar=False,
        )
        self.log(f"{stage}/loss", parts["total"].detach(), on_step=on_step, on_epoch=not on_step,
                 batch_size=batch_size, sync_dist=not on_step, prog_bar=True)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        parts = self.loss(self(batch["input"]), batch["target"])
        self._log_parts("train", parts, batch["target"].shape[0])
        return parts["total"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        prediction = self(batch["input"])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        self._log_parts("val", self.loss(prediction, batch["target"]), batch["target"].shape[0])
        # The metrics callback reads these; the timing covers the network alone.
        return {"prediction": prediction.detach(), "network_seconds": seconds}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.spec.to_dict()
