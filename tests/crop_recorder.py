"""A test-only callback: which training crops each process saw (loaded by subprocess runs)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class CropRecorder(Callback):
    """Appends one line per training crop, ``<step> <sha1 of the target>``, to ``rank<N>.txt``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"rank{trainer.global_rank}.txt").open("a") as f:
            for target in batch["target"]:
                digest = hashlib.sha1(target.cpu().numpy().tobytes()).hexdigest()[:16]
                f.write(f"{trainer.global_step} {digest}\n")


def crops(directory: Path, rank: int) -> list[str]:
    return [line.split()[1] for line in (directory / f"rank{rank}.txt").read_text().splitlines()]
