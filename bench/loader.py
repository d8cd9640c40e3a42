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


def measure(ctx: Context, configs: list[str], corpus: str, workers: int, batches: int) -> dict:
    """Pairs/s of ``train_dataloader()`` after start-up (the first ``max(1, workers)`` batches)."""
    extra = ["--data.num_workers", str(workers), "--data.cache_dir", str(ctx.cache_dir),
             "--data.train_items_per_epoch", "100000"]  # indices are made lazily: any length is free
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
        "that takes; the resampy recipe needs far more than the soxr one.\n"
    )
