"""Mixed precision: does each reference recipe train as well in its own precision as in fp32, how fast?

Needs a GPU: the recipes ask for ``bf16-mixed``, which ``audiosr fit`` turns into fp32 on a CPU
(``AudioSRCLI``), so on a CPU there is nothing to compare and the section says so.

For each reference recipe (and the magnitude + phase recipe under the GAN overlay), two runs of
the recipe's own LightningModule and Trainer from the same seed, on the same few real batches of
its data module, cycled: one in the recipe's precision, one in ``32-true``. Reported: the training
loss at the end of each, the SNR and LSD of each generator on held-out validation batches (in
fp32), the median step time, and, for the fp32-trained generator, how far its output moves when it
runs in bf16 or fp16 at inference (the SNR of that output against the fp32 output, and the time).
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from lightning.pytorch.callbacks import Callback

from audiosr.evaluation.comparison import markdown_table
from bench.common import Context, cli, fmt, log, reference_recipes

TITLE = "9. Mixed precision (GPU)"
FP32 = "32-true"
TRAIN_BATCHES, HELD_OUT_BATCHES, WARMUP = 8, 2, 3
GAN = ["overlays/gan.yaml"]


class LossAndTime(Callback):
    """The logged training loss and the wall time of every training batch."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.strategy.root_device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.strategy.root_device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)
        loss = trainer.callback_metrics.get("train/loss")
        self.losses.append(float(loss) if loss is not None else float("nan"))


def batches(configs: list[str], *extra: str) -> tuple[list[dict], list[dict]]:
    """Up to ``TRAIN_BATCHES`` training and ``HELD_OUT_BATCHES`` validation batches of the recipe's data module."""
    data = cli(configs, "--data.num_workers", "0", *extra).datamodule
    data.setup("fit")
    return (list(itertools.islice(data.train_dataloader(), TRAIN_BATCHES)),
            list(itertools.islice(data.val_dataloader(), HELD_OUT_BATCHES)))


def held_out_quality(generator, held_out: list[dict], device, precision: str = "32") -> dict[str, float]:
    """Mean SNR / LSD of ``generator`` (run in ``precision``) on the held-out batches, and its outputs."""
    import torch

    from audiosr.evaluation.metrics import quality
    from audiosr.models.generator import inference_precision

    generator = generator.to(device).eval()
    with torch.no_grad(), inference_precision(device, precision):  # type: ignore[arg-type]
        generator(held_out[0]["input"].to(device))  # untimed: kernels are chosen and compiled at the first call
    snrs, lsds, outputs, seconds = [], [], [], 0.0
    for batch in held_out:
        rough, target = batch["input"].to(device), batch["target"].to(device)
        with torch.no_grad(), inference_precision(device, precision):  # type: ignore[arg-type]
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            output = generator(rough).float()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
        scores = quality(output, target, generator.spec.target_rate, generator.spec.cutoff_hz)
        snrs.append(scores["snr"].flatten().cpu())
        lsds.append(scores["lsd"].flatten().cpu())
        outputs.append(output.cpu())
    return {"snr": float(torch.cat(snrs).mean()), "lsd": float(torch.cat(lsds).mean()), "outputs": outputs,
            "seconds": seconds}


def train(configs: list[str], precision: str, steps: int, train_batches: list[dict], root, *extra: str):
    """``steps`` steps of the recipe in ``precision`` on ``train_batches`` (cycled); the module and its timer."""
    from torch.utils.data import DataLoader

    built = cli(configs, "--trainer.precision", precision, "--trainer.devices", "1", "--trainer.max_epochs", "1",
                "--trainer.max_steps", "-1", "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar",
                "false", "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
                "--trainer.default_root_dir", str(root), "--checkpoint.save_last", "false",
                f"--trainer.callbacks+={LossAndTime.__module__}.LossAndTime", *extra)
    module, trainer = built.model, built.trainer
    timer = next(c for c in trainer.callbacks if isinstance(c, LossAndTime))
    cycled = [train_batches[i % len(train_batches)] for i in range(steps)]
    trainer.fit(module, train_dataloaders=DataLoader(cycled, batch_size=None))
    # The Trainer hands the module back on the CPU; the device it trained on is still its root device.
    return module, timer, str(trainer.precision), trainer.strategy.root_device


def compare(configs: list[str], steps: int, root, *extra: str) -> dict:
    """The recipe trained in its own precision and in fp32 from one seed; see the module docstring."""
    import torch

    train_batches, held_out = batches(configs, *extra)
    own = str(cli(configs, *extra).trainer.precision)
    runs = {}
    for precision in dict.fromkeys([own, FP32]):
        module, timer, used, device = train(configs, precision, steps, train_batches, root / precision, *extra)
        scores = held_out_quality(module.generator, held_out, device)
        runs[precision] = {"used": used, "loss": float(np.mean(timer.losses[-3:])),
                           "first_loss": timer.losses[0], "step_s": float(np.median(timer.times[WARMUP:] or timer.times)),
                           **scores, "generator": module.generator, "device": device}
    reference = runs[FP32]
    inference = {}
    for precision in ("bf16", "16"):
        if reference["device"].type != "cuda":
            break
        moved = held_out_quality(reference["generator"], held_out, reference["device"], precision)
        from audiosr.evaluation.metrics import snr

        agreement = torch.cat([snr(a, b).flatten() for a, b in zip(moved["outputs"], reference["outputs"])])
        inference[precision] = {"vs_fp32_db": float(agreement.min()), "snr": moved["snr"], "lsd": moved["lsd"],
                                "speedup": reference["seconds"] / max(moved["seconds"], 1e-9)}
    rough = torch.cat([b["input"] for b in held_out])
    target = torch.cat([b["target"] for b in held_out])
    from audiosr.evaluation.metrics import quality

    spec = reference["generator"].spec
    baseline = quality(rough, target, spec.target_rate, spec.cutoff_hz)
    return {"own": own, "runs": runs, "inference": inference, "input_snr": float(baseline["snr"].mean()),
            "input_lsd": float(baseline["lsd"].mean()), "params": reference["generator"].network.num_parameters()}


GPU_RUNS = [("cpu", "32", 1), ("cuda", "32", 1), ("cuda", "32", 16), ("cuda", "bf16", 16), ("cuda", "16", 16)]


def shipped_model_on_gpu(seconds: float = 60.0, repeats: int = 3, runs=GPU_RUNS) -> list[list]:
    """The shipped model's whole path (``Upsampler``) on CUDA in each precision against the CPU's fp32.

    ``runs``: ``(device, precision, batch)``, the first the reference. Rows: device, precision, batch, SNR against the target, SNR against the CPU fp32 output, RTR and
    the speed against resampy ``kaiser_best`` (on this machine's CPU), on ``seconds`` of the built-in
    synthetic corpus made low-rate by ``kaiser_best``.
    """
    import torch

    from audiosr.data.synthetic import synthesize
    from audiosr.dsp import output_length, resample
    from audiosr.evaluation.comparison import BASELINES, time_method
    from audiosr.evaluation.metrics import snr
    from audiosr.inference.upsampler import Upsampler

    high, low_rate = 44100, 22050
    target = synthesize(12345, high, seconds)
    low = resample(target[None], high, low_rate, "kaiser_best", output_length(target.size, high, low_rate))[0]

    def score(output) -> float:
        return float(snr(torch.as_tensor(output[: target.size]), torch.as_tensor(target[: output.size])))

    _, kaiser_best = time_method(BASELINES["kaiser_best"], low, low_rate, high, warmup=1, repeats=repeats)
    rows, reference = [], None
    for device, precision, batch in runs:  # the first is the reference
        upsampler = Upsampler.from_checkpoint(device=device, precision=precision, batch_size=batch)  # type: ignore[arg-type]
        output, wall = time_method(lambda x, s, t, u=upsampler: u.upsample(x, s), low, low_rate, high, warmup=1,
                                   repeats=repeats, sync_cuda=device == "cuda")
        reference = output if reference is None else reference
        agreement = "(reference)" if output is reference else fmt(float(snr(torch.as_tensor(output),
                                                                            torch.as_tensor(reference))), 1)
        rows.append([device, {"32": "fp32", "bf16": "bf16", "16": "fp16"}[precision], batch, fmt(score(output)),
                     agreement, fmt(seconds / wall, 1), fmt(kaiser_best / wall)])
    return rows


def run(ctx: Context) -> str:
    import torch

    if not torch.cuda.is_available():
        ctx.skipped = "skipped: no GPU"
        return ("No GPU in this run: the recipes' mixed precision (`bf16-mixed`) runs only on a CUDA device "
                "(`audiosr fit` falls back to fp32 on a CPU), so there is nothing to compare here.\n")
    steps = ctx.args.precision_steps
    plan = [(f"{label} (reference)", configs) for label, configs in reference_recipes().items()]
    plan.append(("magnitude + phase (reference) + GAN", [reference_recipes()["magnitude + phase"][0], *GAN]))
    rows, inference_rows = [], []
    for label, configs in plan:
        try:
            measured = compare(configs, steps, ctx.tmp / "precision" / label.replace(" ", "_"))
        except Exception as error:
            ctx.problems.append(f"{label}: {error!r}"[:160])
            log(f"  {label} failed: {error!r}")
            continue
        runs, own = measured["runs"], measured["own"]
        fp32 = runs[FP32]
        for precision, r in runs.items():
            log(f"  {label} {precision}: loss {r['first_loss']:.4f} -> {r['loss']:.4f}, held-out SNR "
                f"{r['snr']:.2f} dB, LSD {r['lsd']:.3f}, {r['step_s'] * 1000:.1f} ms/step")
            rows.append([label, f"{measured['params'] / 1e6:.2f} M", r["used"], fmt(r["first_loss"], 4),
                         fmt(r["loss"], 4), fmt(r["snr"]), fmt(r["lsd"], 3), fmt(measured["input_snr"]),
                         fmt(measured["input_lsd"], 3), f"{r['step_s'] * 1000:.1f}",
                         fmt(fp32["step_s"] / r["step_s"])])
        for precision, r in measured["inference"].items():
            inference_rows.append([label, {"bf16": "bf16", "16": "fp16"}[precision], fmt(r["vs_fp32_db"], 1),
                                   fmt(r["snr"]), fmt(r["lsd"], 3), fmt(r["speedup"])])
        if own == FP32:
            log(f"  {label}: its own precision is fp32")
    table = markdown_table(["recipe", "parameters", "precision", "loss, step 1", f"loss, steps {steps - 2}-{steps}",
                            "held-out SNR (dB) ↑", "held-out LSD ↓", "rough input SNR", "rough input LSD",
                            "ms/step (median)", "speed vs fp32 ↑"], rows, left={0, 2})
    try:
        shipped = markdown_table(["device", "precision", "batch", "SNR vs target (dB)", "SNR vs the CPU fp32 output (dB)",
                                  "RTR ↑", "speed vs kaiser_best ↑"], shipped_model_on_gpu(), left={0, 1})
    except Exception as error:
        ctx.problems.append(f"shipped model: {error!r}"[:160])
        shipped = f"(failed: {error!r})"
    moved = markdown_table(["fp32-trained recipe", "inference precision", "SNR vs the fp32 output (dB, worst item) ↑",
                            "held-out SNR (dB)", "held-out LSD", "speed vs fp32 ↑"], inference_rows, left={0, 1})
    return (
        f"Each recipe's LightningModule and Trainer as `audiosr fit` builds them (`bench.common.cli`), from the "
        f"config's seed, trained {steps} steps on the same {TRAIN_BATCHES} real batches of its data module (cycled), "
        f"once in the recipe's own precision and once in fp32; then each generator is scored in fp32 on "
        f"{HELD_OUT_BATCHES} held-out validation batches (SNR, LSD as `audiosr test`). A few hundred steps on a few "
        "batches say whether a precision trains the same way, not how good a recipe gets. Step times: CUDA-synchronised "
        f"wall time of whole training steps, median after {WARMUP} warm-up steps.\n\n" + table +
        "\n\nThe fp32-trained generator run at inference in bf16 and fp16 (`audiosr upsample --precision`), on the "
        "same held-out batches: how far the output moves from the fp32 output (the worst item's SNR against it; "
        "higher is closer), its scores, and the network's speed against fp32 (the generator's forward pass on "
        "the batches, CUDA-synchronised, after one untimed call).\n\n" + moved +
        "\n\nThe shipped model (`audiosr/pretrained/default.pt`), whole path (`Upsampler`: rough input, windows, "
        "level normalisation, network, band keeping), on 60 s of the built-in synthetic corpus made low-rate by "
        "resampy `kaiser_best`; 1 warm-up call, then the median of 3; `kaiser_best` timed on this machine's CPU in "
        "the same run.\n\n" + shipped + "\n"
    )
