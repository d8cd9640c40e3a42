"""A test-only callback: the run's drive fills up from one step on (loaded by subprocess runs)."""

from __future__ import annotations

import errno

import torch
from lightning.pytorch.callbacks import Callback


class FullDisk(Callback):
    """From ``step`` on, every checkpoint write stops half-way with ENOSPC, as on a full drive.

    Half the bytes reach the partial file first, so a writer that wrote in place would
    leave a truncated checkpoint behind.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        real_save = torch.save

        def save(obj, path, *args, **kwargs):
            real_save(obj, path, *args, **kwargs)
            with open(path, "r+b") as f:
                f.truncate(f.seek(0, 2) // 2)
            raise OSError(errno.ENOSPC, "No space left on device")

        torch.save = save  # what audiosr's checkpoint writer calls
