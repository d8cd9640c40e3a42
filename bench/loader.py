"""Loader: training pairs per second of the data module, as `audiosr fit` builds it."""

from __future__ import annotations

import gc
import time

from audiosr.evaluation.comparison import markdown_table
from bench.common import Context, build, fmt, log

TITLE = "2. Data loader throughput"

# (label, configs): the reference recipe's pairs (resampy kaiser_best down, kaiser_fast up, 2-s
# crops) and the spectral recipes' (random low-pass degradations, soxr VHQ up, 1-s crops).
RECIPES = [("reference U-Net recipe", ["unet.yaml"]), ("spectral recipes", ["magphase.yaml"])]
# The model for any input (issue 36), as bench.any_input trains it.
ANY_INPUT = ["magphase.yaml", "overlays/spectral-cpu.yaml", "overlays/any-input.yaml"]


def measure(ctx: Context, configs: list[str], corpus: str, workers: int, batches: int,
            options: list[str] | None = None) -> dict:
    """Pairs/s of ``train_dataloader()`` after start-up (the first ``max(1, workers)`` batches); ``options``:
    more command-line options for the data module."""
    extra = ["--data.num_workers", str(workers), "--data.cache_dir", str(ctx.cache_dir),
             "--data.train_items_per_epoch", "100000", *(options or [])]  # indices are made lazily: any length is free
    if corpus == "dev":
        extra += ctx.dev.data_args(ctx.tmp / "lists")
    _, data = build(configs, *extra)
    skip = max(1, workers)
    data.prepare_data()
    data.setup("fit")
    start = time.perf_counter()
    iterator = iter(data.train_dataloader())
    for _ in range(skip):
        next(iterator)
    startup = time.perf_counter() - start
    pairs, start = 0, time.perf_counter()
    for _ in range(batches):
        pairs += next(iterator)["target"].shape[0]
    elapsed = time.perf_counter() - start
    crop = data.segment_frames / data.target_rate
    del iterator, data
    gc.collect()
    return {"pairs_per_s": pairs / elapsed, "audio_per_s": pairs * crop / elapsed, "startup_s": startup, "crop": crop}


def any_input_rows(ctx: Context, batches: int) -> tuple[list[list], dict]:
    """The any-input recipe's data made three ways, one loader process each: everything in the loader;
    drawn in the loader and cut on the device; from shards whose codec round trips were written once,
    cut on the device. Beside them the recipe's own training pairs/s, and what cutting on the device
    costs where the device is this CPU."""
    from audiosr.data.on_device import apply_plans
    from audiosr.data.shards import write_shards
    from bench import training

    corpus = "dev" if ctx.dev else "synthetic"
    rows, found = [], {}
    trained = training.measure(ctx, ANY_INPUT, max(3, ctx.args.train_steps // 2))
    found["trained"] = trained["batch"] / trained["step_s"]
    shards = ctx.tmp / "any-input-shards"
    sources = [str(ctx.dev.lists(ctx.tmp / "lists")["train"])] if ctx.dev else None
    ways = [("in the loader", []), ("drawn in the loader, cut on the device", ["--data.degrade_on_device", "true"])]
    if sources:
        start = time.perf_counter()
        write_shards(sources, shards, 44100, codecs=["any-band"], cache_dir=ctx.cache_dir, progress=False)
        found["shard_write_s"] = time.perf_counter() - start
        ways.append(("shards with codecs written once, cut on the device",
                     ["--data.degrade_on_device", "true", "--data.train_shards", str(shards)]))
    for label, extra in ways:
        r = measure(ctx, ANY_INPUT, corpus, 0, batches, extra)
        found[label] = r["pairs_per_s"]
        device_ms = None
        if "--data.degrade_on_device" in extra:
            _, data = build(ANY_INPUT, *extra, "--data.num_workers", "0", "--data.cache_dir", str(ctx.cache_dir),
                            *(ctx.dev.data_args(ctx.tmp / "lists") if ctx.dev else []))
            data.prepare_data()
            data.setup("fit")
            batch = next(iter(data.train_dataloader()))
            start = time.perf_counter()
            for _ in range(3):
                apply_plans(batch["input"], batch["device_plan"], data.target_rate)
            device_ms = (time.perf_counter() - start) / 3 * 1000
            found[label + " device ms"] = device_ms
            del data
        log(f"  any input, {label}: {r['pairs_per_s']:.1f} pairs/s")
        rows.append([label, corpus, f"{r['crop']:g} s", fmt(r["pairs_per_s"], 1),
                     fmt(r["pairs_per_s"] / found["trained"], 2), fmt(device_ms, 0), fmt(r["startup_s"], 1)])
    return rows, found


def run(ctx: Context) -> str:
    batches = ctx.args.loader_batches
    corpora = ["synthetic"] + (["dev"] if ctx.dev else [])
    rows = []
    loaders = ctx.results.setdefault("loader", {})
    for label, configs in RECIPES:
        for corpus in corpora:
            for workers in (0, 2):
                try:
                    r = measure(ctx, configs, corpus, workers, batches)
                except Exception as error:  # one failure must not hide the other rows
                    ctx.problems.append(f"{label} {corpus} workers={workers}: {error!r}"[:120])
                    continue
                loaders[(label, corpus, workers)] = r
                log(f"  {label}, {corpus}, workers={workers}: {r['pairs_per_s']:.1f} pairs/s")
                rows.append([label, corpus, f"{r['crop']:g} s", workers, fmt(r["pairs_per_s"], 1),
                             fmt(r["audio_per_s"], 1), fmt(r["startup_s"], 1)])
    table = markdown_table(["recipe", "corpus", "crop", "workers", "pairs/s", "audio s/s", "start-up s"], rows,
                           left={0, 1})
    return (
        "What `AudioPairDataModule(...).train_dataloader()` delivers, built from the recipe's own config: the "
        "reference U-Net recipe makes each pair with resampy `kaiser_best` down and `kaiser_fast` up (2-s crops); "
        "the spectral recipes with a random low-pass degradation (`audiosr.data.RandomLowpass`) and soxr VHQ up "
        "(1-s crops). The clock starts after the first `max(1, workers)` batches (worker start-up and numba "
        f"compilation excluded) and runs over {batches} batches. `dev`: the training split of the dev recordings; "
        "`synthetic`: the built-in corpus.\n\n" + table + "\n"
        "What a GPU needs: pairs/s = steps/s x batch size. The spectral reference recipe (batch 16) at, say, 20 "
        "steps/s on a GPU needs 320 pairs/s: the per-worker rate above says how many loader processes (cores) "
        "that takes; the resampy recipe needs far more than the soxr one.\n" + _any_input_text(ctx, batches)
    )


def _any_input_text(ctx: Context, batches: int) -> str:
    try:
        rows, found = any_input_rows(ctx, batches)
    except Exception as error:  # the tables above stand on their own
        ctx.problems.append(f"any input: {error!r}"[:160])
        return ""
    table = markdown_table(["training data of the model for any input", "corpus", "crop", "pairs/s (one process)",
                            "÷ pairs/s trained", "cut on the device (ms per batch, here this CPU)", "start-up s"],
                           rows, left={0, 1})
    written = (f" Writing the shards (the dev training split, one codec round trip per 4-s item drawn from "
               f"AnyBand's list) took {found['shard_write_s']:.0f} s, once." if "shard_write_s" in found else "")
    return (
        "\n**The model for any input** (`configs/overlays/any-input.yaml`: `audiosr.data.AnyBand`, 0.75-s crops, "
        "batch 12). Every item loses its band one of four ways; a codec round trip (a quarter of the items) costs "
        "about as much as the rest together, and resampy to a lower rate and back most of what is left. One loader "
        f"process, {batches} batches after the first, each way; the recipe's own training step on this CPU "
        f"trains {found['trained']:.1f} pairs/s (the median of the `train` section's way of timing it), so the "
        "ratio column says how many times over one loader process keeps the step fed. `data.degrade_on_device` "
        "leaves the linear part (IIR low-passes, resampling, 16-bit rounding) to the training step, batched on "
        "the model's device (`audiosr.data.on_device`): on a GPU a few milliseconds; on this CPU the last "
        "column's time, which the step then pays instead of the loader." + written + "\n\n" + table
    )
