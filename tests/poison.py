"""A test-only callback: makes training diverge at one step (loaded by subprocess runs too)."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback


class Poison(Callback):
    """At ``step``, puts NaN into the ``network``'s weights or into its gradients.

    ``weights``: before the batch, so the loss comes out NaN. ``gradients``: after the
    backward pass, as a finite loss with an infinite derivative would (``sqrt`` at 0).
    """

    def __init__(self, step: int, target: str = "weights", network: str = "generator") -> None:
        self.step, self.target, self.network = step, target, network

    def _parameter(self, pl_module) -> torch.nn.Parameter:
        return next(getattr(pl_module, self.network).parameters())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.target == "weights" and trainer.global_step == self.step:
            with torch.no_grad():
                self._parameter(pl_module).fill_(float("nan"))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        parameter = self._parameter(pl_module)
        owned = any(parameter is p for group in optimizer.param_groups for p in group["params"])
        if self.target == "gradients" and trainer.global_step == self.step and owned and parameter.grad is not None:
            parameter.grad.fill_(float("nan"))
