"""Divergence: a NaN run must stop, not train on (and checkpoint) NaN weights until its budget ends.

The modules call :func:`ensure_finite` on their losses and
:func:`refuse_non_finite_gradients` before every optimizer step; both raise
:class:`TrainingDiverged`, which the run's checkpoint callback (``audiosr.training.runs``)
answers by leaving ``last.ckpt`` as it was and the command (``audiosr.training.cli``) by
printing one message.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch


class TrainingDiverged(FloatingPointError):
    """A loss or gradient became NaN or infinite; the step that saw it was not applied.

    ``last_checkpoint`` is ``(path, step)`` of the run's ``last.ckpt`` once the checkpoint
    callback has seen the exception (``None`` before the first one was written).
    """

    last_checkpoint: tuple[str, int] | None = None


def ensure_finite(trainer: L.Trainer, parts: Mapping[str, torch.Tensor]) -> None:
    """Raises :class:`TrainingDiverged` naming every non-finite loss part (one device sync).

    Under DDP every process raises if any does: one process leaving alone would leave
    the others waiting in the next gradient all-reduce.
    """
    names = list(parts)
    finite = torch.stack([torch.isfinite(parts[n].detach()).all() for n in names]).tolist()
    everywhere = all(finite)
    if trainer.world_size > 1:
        everywhere = trainer.strategy.reduce_boolean_decision(everywhere, all=True)
    if everywhere:
        return
    bad = [f"{n}={float(parts[n].detach().float().mean()):g}" for n, ok in zip(names, finite) if not ok]
    what = f"non-finite loss ({', '.join(bad)})" if bad else "non-finite loss on another process"
    raise TrainingDiverged(f"training diverged at step {trainer.global_step}: {what}; no update was made from it")


def refuse_non_finite_gradients(trainer: L.Trainer, optimizer: torch.optim.Optimizer,
                                owners: Mapping[str, torch.nn.Module]) -> None:
    """Raises :class:`TrainingDiverged` naming the network (a key of ``owners``) whose gradients are not finite.

    A finite loss can still give NaN gradients (a sqrt or log at 0); stepping on them would
    make every later loss NaN. Under fp16 the grad scaler skips such steps itself, so this
    checks nothing when one is active.
    """
    if getattr(trainer.precision_plugin, "scaler", None) is not None:
        return
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params or bool(torch.stack([torch.isfinite(p.grad).all() for p in params]).all()):
        return
    first = params[0]
    owner = next((name for name, module in owners.items() if any(first is p for p in module.parameters())), "model")
    # No count of bad tensors: once clipped, one NaN gradient makes them all NaN.
    raise TrainingDiverged(f"training diverged at step {trainer.global_step}: non-finite gradients in the "
                           f"{owner}; no update was made from them")
