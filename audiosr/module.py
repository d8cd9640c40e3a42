"""The LightningModule: training and validation around a pure network."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from audiosr.checkpoint import CHECKPOINT_KEY, ModelSpec, network_spec
from audiosr.evaluation import BASELINES, Comparison
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
        test_batch_size: windows per network call in ``audiosr test`` (raise on GPU).
        test_examples: test recordings shown in the spectrogram figure.
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
        test_batch_size: int = 1,
        test_examples: int = 3,
    ) -> None:
        super().__init__()
        self.network = network if network is not None else UNet()
        self.loss = loss if loss is not None else MultiResolutionSTFTLoss()
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.spec = ModelSpec(network_spec(self.network), source_rate, target_rate, input_filter)
        self.test_batch_size = test_batch_size
        self.test_examples = test_examples

    def forward(self, rough: torch.Tensor) -> torch.Tensor:
        """Refine the rough upsampled signal ``(B, 1, T)`` into ``(B, 1, T)``."""
        return self.network(rough)

    def _log_parts(self, stage: str, parts: dict[str, torch.Tensor], batch_size: int) -> None:
        """Logs ``{stage}/loss`` (the total, also on the progress bar), ``/mse``, ``/sc``, ``/mag``."""
        on_step = stage == "train"
        for name, value in parts.items():
            key = "loss" if name == "total" else name
            self.log(f"{stage}/{key}", value.detach(), on_step=on_step, on_epoch=not on_step,
                     batch_size=batch_size, sync_dist=not on_step, prog_bar=key == "loss")

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

    # Test: the model against classical resampling on whole recordings, the way
    # `audiosr upsample` runs it (overlapping windows), timed over the whole path.

    def on_test_epoch_start(self) -> None:
        from audiosr.inference import Upsampler

        self.upsampler = Upsampler(self.network, self.spec, device=self.device, batch_size=self.test_batch_size)
        self.comparison = Comparison(self.spec.source_rate, self.spec.target_rate)
        self.examples: list[dict[str, Any]] = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        low = batch["low"][0].cpu().numpy()  # (1, T_low): one whole recording per batch
        target = batch["target"][0].cpu().numpy()
        output = self.comparison.evaluate(
            self.model_row, lambda x, source_rate, _: self.upsampler.upsample(x, source_rate), low, target,
            device=str(self.device), sync_cuda=self.device.type == "cuda", batch_size=self.test_batch_size,
        )
        for name, method in BASELINES.items():
            label = f"{name} (model input)" if name == self.spec.input_filter else name
            self.comparison.evaluate(label, method, low, target)
        if len(self.examples) < self.test_examples:
            self.examples.append({"name": batch["name"][0], "input": batch["input"][0, 0].cpu().numpy(),
                                  "output": output[0], "target": target[0]})

    @property
    def model_row(self) -> str:
        return f"audiosr {type(self.network).__name__}"

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.spec.to_dict()
