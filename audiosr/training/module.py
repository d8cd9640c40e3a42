"""The LightningModule: trains a generator and runs it, nothing else.

Comparison with classical baselines, timing tables and reports are the job of
``audiosr.training.callbacks.BaselineComparison``; the network itself is a pure ``nn.Module``
wrapped in :class:`audiosr.models.generator.Generator`, the same object inference runs.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from audiosr.models.checkpoint import CHECKPOINT_KEY
from audiosr.training.losses import ReconstructionLoss
from audiosr.models.base import SuperResolutionNetwork
from audiosr.models.generator import Generator, ModelSpec, Precision, inference_precision
from audiosr.models.unet import UNet


class TrainingDiverged(FloatingPointError):
    """A loss or gradient became NaN or infinite; the step that saw it was not applied.

    ``last_checkpoint`` is ``(path, step)`` of the run's ``last.ckpt`` once the checkpoint
    callback has seen the exception (``None`` before the first one was written).
    """

    last_checkpoint: tuple[str, int] | None = None


class SuperResolutionModule(L.LightningModule):
    """Trains ``network`` to turn the rough upsampled ``input`` into ``target``.

    Args:
        network: maps the rough signal ``(B, 1, T)`` to ``(B, 1, T)`` (default: reference U-Net).
        loss: named reconstruction terms with weights (default: multi-resolution STFT + 100 x MSE).
        optimizer: builds the optimizer from the generator's parameters.
        lr_scheduler: optional; stepped every optimizer step.
        source_rate, target_rate, input_filter: linked from the data module; stored in
            checkpoints so inference needs nothing else.
        keep_band: ``(lo, hi)`` fractions of the source Nyquist frequency: the output is
            the input below ``lo`` and the network's above ``hi`` (``null``: off); see
            ``audiosr.models.generator``.
        normalise: scale every item (every window at inference) to the training peak
            level around the network, and back.
        precision: the network's precision outside training (validation, ``audiosr
            test``): ``"32"``, ``"bf16"`` or ``"16"``; ``audiosr upsample --precision``
            is the same switch.
        test_batch_size: windows per network call in ``audiosr test`` (raise on a GPU).
    """

    def __init__(
        self,
        network: SuperResolutionNetwork | None = None,
        loss: ReconstructionLoss | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        source_rate: int = 22050,
        target_rate: int = 44100,
        input_filter: str = "kaiser_fast",
        keep_band: tuple[float, float] | None = (0.8, 0.9),
        normalise: bool = True,
        precision: Precision = "32",
        test_batch_size: int = 1,
    ) -> None:
        super().__init__()
        network = network if network is not None else UNet()
        spec = ModelSpec(network.rebuild_spec(), source_rate, target_rate, input_filter,
                         tuple(keep_band) if keep_band is not None else None, normalise)
        self.generator = Generator(network, spec)
        self.loss = (loss if loss is not None else ReconstructionLoss()).setup(target_rate)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        inference_precision("cpu", precision)  # validates the name
        self.precision = precision
        self.test_batch_size = test_batch_size

    @property
    def spec(self) -> ModelSpec:
        return self.generator.spec

    @property
    def network(self) -> SuperResolutionNetwork:
        return self.generator.network

    def forward(self, rough: torch.Tensor) -> torch.Tensor:
        """The generator: rough upsampled signal ``(B, 1, T)`` -> output ``(B, 1, T)``."""
        return self.generator(rough)

    def log_parts(self, stage: str, parts: dict[str, torch.Tensor], batch_size: int) -> None:
        """Logs ``{stage}/loss`` (the total, also on the progress bar) and every raw part."""
        on_step = stage == "train"
        for name, value in parts.items():
            key = "loss" if name == "total" else name
            self.log(f"{stage}/{key}", value.detach(), on_step=on_step, on_epoch=not on_step,
                     batch_size=batch_size, sync_dist=not on_step, prog_bar=key == "loss")

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        parts = self.loss(self(batch["input"]), batch["target"])
        self.ensure_finite(parts)
        self.log_parts("train", parts, batch["target"].shape[0])
        return parts["total"]

    # Divergence: a NaN run must stop, not train on (and checkpoint) NaN weights until its budget ends.

    def ensure_finite(self, parts: dict[str, torch.Tensor]) -> None:
        """Raises :class:`TrainingDiverged` naming every non-finite loss part (one device sync).

        Under DDP every process raises if any does: one process leaving alone would leave
        the others waiting in the next gradient all-reduce.
        """
        names = list(parts)
        finite = torch.stack([torch.isfinite(parts[n].detach()).all() for n in names]).tolist()
        everywhere = all(finite)
        if self.trainer.world_size > 1:
            everywhere = self.trainer.strategy.reduce_boolean_decision(everywhere, all=True)
        if everywhere:
            return
        bad = [f"{n}={float(parts[n].detach().float().mean()):g}" for n, ok in zip(names, finite) if not ok]
        what = f"non-finite loss ({', '.join(bad)})" if bad else "non-finite loss on another process"
        raise TrainingDiverged(f"training diverged at step {self.global_step}: {what}; no update was made from it")

    def parameter_owners(self) -> dict[str, torch.nn.Module]:
        """The networks an optimizer can train, by the name an error message gives them."""
        return {"generator": self.generator}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # A finite loss can still give NaN gradients (a sqrt or log at 0); stepping on them
        # would make every later loss NaN. Under fp16 the grad scaler skips such steps itself.
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params or bool(torch.stack([torch.isfinite(p.grad).all() for p in params]).all()):
            return
        first = params[0]
        owner = next((name for name, module in self.parameter_owners().items()
                      if any(first is p for p in module.parameters())), "model")
        # No count of bad tensors: once clipped, one NaN gradient makes them all NaN.
        raise TrainingDiverged(f"training diverged at step {self.global_step}: non-finite gradients in the "
                               f"{owner}; no update was made from them")

    def _timed(self, fn: Any, *args: Any) -> tuple[Any, float]:
        sync = self.device.type == "cuda"
        if sync:
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = fn(*args)
        if sync:
            torch.cuda.synchronize(self.device)
        return out, time.perf_counter() - start

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        with inference_precision(self.device, self.precision):
            prediction, seconds = self._timed(self, batch["input"])
        prediction = prediction.float()
        self.log_parts("val", self.loss(prediction, batch["target"]), batch["target"].shape[0])
        # The metrics and example callbacks read these; the timing covers the generator alone.
        return {"prediction": prediction.detach(), "network_seconds": seconds}

    # Test: whole recordings through the same windowed engine as `audiosr upsample`.

    def on_test_start(self) -> None:
        from audiosr.inference.upsampler import Upsampler

        self.upsampler = Upsampler(self.generator, device=self.device, batch_size=self.test_batch_size,
                                   precision=self.precision)
        self._warm = False

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Upsample one whole low-rate recording ``(1, 1, T_low)``; returns output ``(1, T)`` and wall time."""
        low = batch["low"][0].cpu().numpy()
        if not self._warm:  # one untimed call: allocations, kernels and caches come first
            self.upsampler.upsample(low, self.spec.source_rate)
            self._warm = True
        output, seconds = self._timed(self.upsampler.upsample, low, self.spec.source_rate)
        return {"output": output, "seconds": seconds}

    @property
    def model_row(self) -> str:
        return f"audiosr {type(self.network).__name__}"

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.generator.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.spec.to_dict()
