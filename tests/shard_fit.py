"""A test-only script: a Lightning fit on shards that writes which item each training crop came from.

``python shard_fit.py SHARDS OUT --devices N --max_steps S [--resume CKPT]``: a one-weight module
trains on ``AudioPairDataModule (train_shards)`` (DDP on CPU, gloo, for ``--devices 2``), appending one line of
item keys per batch to ``OUT/rank<N>.txt``; ``last.ckpt`` is written every ``--every`` steps into
``OUT/checkpoints``, as a run's own checkpoints are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from audiosr.data import SyntheticCorpus
from audiosr.data.datamodule import AudioPairDataModule

SOURCE_RATE, TARGET_RATE, SEGMENT_SECONDS, BATCH_SIZE, SHUFFLE_ITEMS = 8000, 16000, 0.25, 2, 4


class KeyRecorder(L.LightningModule):
    """Trains one weight towards the targets' mean level; writes each batch's item keys."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = Path(out)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        with (self.out / f"rank{self.global_rank}.txt").open("a") as f:
            f.write(" ".join(str(int(k)) for k in batch["key"]) + "\n")
        return (self.weight - batch["target"].abs().mean()).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def data(shards: str, num_workers: int) -> AudioPairDataModule:
    return AudioPairDataModule(
        train_shards=shards, corpus=SyntheticCorpus(train_clips=0, val_clips=1, test_clips=1, clip_seconds=1.0),
        shuffle_items=SHUFFLE_ITEMS, source_rate=SOURCE_RATE, target_rate=TARGET_RATE,
        segment_seconds=SEGMENT_SECONDS, batch_size=BATCH_SIZE, num_workers=num_workers,
        lowpass_filter="kaiser_fast", input_filter="kaiser_fast")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("shards")
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--max_steps", type=int, required=True)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--resume", default=None)
    args = parser.parse_args()
    L.seed_everything(0)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(
        accelerator="cpu", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
        max_steps=args.max_steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=args.out,
        callbacks=[ModelCheckpoint(dirpath=Path(args.out) / "checkpoints", every_n_train_steps=args.every,
                                   save_last=True, save_top_k=0)],
    )
    trainer.fit(KeyRecorder(args.out), datamodule=data(args.shards, args.num_workers), ckpt_path=args.resume)


if __name__ == "__main__":
    main()
