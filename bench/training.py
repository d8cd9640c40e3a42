"""Training speed: steps per second of every family, through the real LightningModule and Trainer."""

from __future__ import annotations

import time

import numpy as np
from lightning.pytorch.callbacks import Callback

from audiosr.evaluation.comparison import markdown_table
from bench.common import GAN_CPU, Context, cli, cpu_recipes, fmt, log, reference_recipes

TITLE = "3. Training steps per second"
WARMUP = 2


class StepTimer(Callback):
    """Wall time of every training batch (forward, losses, backward, clipping, optimizer steps)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self.start)


def measure(ctx: Context, configs: list[str], steps: int) -> dict:
    from torch.utils.data import DataLoader

    from audiosr.models.spectral import SpectralNetwork

    batches = WARMUP + steps
    # The recipe's own Trainer (accelerator, precision, gradient clipping) as `audiosr fit` builds it,
    # for one epoch of `batches` batches: counted in batches, so the GAN's two optimizer steps per
    # batch need no correction. Nothing validates and nothing is kept (the run folder is in ctx.tmp).
    built = cli(configs, "--data.num_workers", "0", "--data.cache_dir", str(ctx.cache_dir),
                "--trainer.devices", "1", "--trainer.max_epochs", "1", "--trainer.max_steps", "-1",
                "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(ctx.tmp / "train"),
                "--checkpoint.save_last", "false", f"--trainer.callbacks+={StepTimer.__module__}.StepTimer")
    module, data, trainer = built.model, built.datamodule, built.trainer
    timer = next(c for c in trainer.callbacks if isinstance(c, StepTimer))
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    # The same real batch every step: compute does not depend on content, and the loader is measured apart.
    trainer.fit(module, train_dataloaders=DataLoader([batch] * batches, batch_size=None))
    times = timer.times[WARMUP:]
    step = float(np.median(times))
    device = trainer.strategy.root_device.type
    return {"params": module.network.num_parameters(), "batch": batch["target"].shape[0],
            "crop": batch["target"].shape[-1] / data.target_rate, "step_s": step, "min_s": min(times),
            "accelerator": "gpu" if device == "cuda" else device, "precision": trainer.precision,
            "spectral": isinstance(module.network, SpectralNetwork)}


def run(ctx: Context) -> str:
    steps = ctx.args.train_steps
    plan = [(f"{family} (CPU-sized)", configs, steps) for family, configs in cpu_recipes().items()]
    plan += [(f"{family} (CPU-sized) + GAN", [*configs, *GAN_CPU], steps) for family, configs in cpu_recipes().items()]
    plan += [(f"{family} (reference)", configs, max(2, steps // 5)) for family, configs in reference_recipes().items()]
    rows = []
    loaders = ctx.results.get("loader", {})
    for label, configs, n in plan:
        try:
            r = measure(ctx, configs, n)
        except Exception as error:
            ctx.problems.append(f"{label}: {error!r}"[:120])
            log(f"  {label} failed: {error!r}")
            continue
        # Section 2 measured the data of the U-Net recipe and of the spectral ones (which share it).
        loader = loaders.get(("spectral recipes" if r["spectral"] else "reference U-Net recipe", "synthetic", 2))
        pairs = r["batch"] / r["step_s"]
        log(f"  {label}: {r['step_s']:.3f} s/step")
        rows.append([label, f"{r['params'] / 1e6:.3f} M", f"{r['batch']} x {r['crop']:g} s", f"{r['step_s']:.3f}",
                     f"{r['min_s']:.3f}", fmt(1 / r["step_s"]), fmt(pairs, 1),
                     fmt(loader["pairs_per_s"], 1) if loader else None, f"{r['accelerator']}, {r['precision']}"])
    table = markdown_table(["recipe", "parameters", "batch", "s/step (median)", "s/step (min)", "steps/s",
                            "pairs/s trained", "loader pairs/s (2 workers)", "device"], rows, left={0, 8})
    return (
        "One training step as `audiosr fit` runs it: the recipe's LightningModule (from its config files) in a "
        "Lightning `Trainer`, forward, losses, backward, clipping and optimizer step(s) (both networks' for the "
        f"GAN rows). A real batch of the recipe's data module, reused every step; {WARMUP} warm-up steps, then "
        f"the median of {steps} timed steps ({max(2, steps // 5)} for the reference sizes). The loader column "
        "(section 2, two workers, synthetic corpus) says whether the data keeps up: on these 2 cores the workers "
        "and the step share the cores during a real run.\n\n" + table
    )
