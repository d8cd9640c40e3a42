"""audiosr benchmarks: one run measures everything and writes bench/RESULTS.md (`make bench`).

    .venv/bin/python bench/run.py                       # everything (~15-20 min on 2 quiet cores)
    .venv/bin/python bench/run.py --steps 20 --memory-minutes 1,5   # quick trial
    .venv/bin/python bench/run.py --sections loader,train --output /tmp/R.md

Sections (``--sections``, comma-separated; default all):

* ``loader``  training pairs/s of ``AudioPairDataModule.train_dataloader()`` (2-s crops,
  22.05 -> 44.1 kHz) for several worker counts, synthetic corpus and dev recordings;
* ``train``   training steps/s (network + loss + backward + clip + Adam) of the quickstart
  and the reference U-Net, in-process, next to the loader's pairs/s;
* ``speed``   real-time ratio of the whole 22.05 kHz -> 44.1 kHz path on 30 s of audio:
  resampy kaiser_fast / kaiser_best, soxr VHQ, linear, U-Nets through ``Upsampler``;
* ``quality`` ``audiosr fit`` of the quickstart model on a split of the dev recordings for
  ``--steps`` steps, then ``audiosr test`` on held-out files (needs ../shared/data/dev);
* ``memory``  peak RSS and speed of ``python -m audiosr.upsample`` on long files, and
  ``audiosr upsample`` (quickstart size) against resampy kaiser_best on the same file.

Every figure in the report is measured by this script in the same run; speeds are also
given as ratios to baselines measured alongside, because the machine may be noisy.
"""

from __future__ import annotations

import argparse
import gc
import math
import re
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    CONFIGS, DEFAULT_DEV_DIR, HELD_OUT_MUSIC_ENV, HELD_OUT_SPEAKERS, REPO, SOURCE_RATE, TARGET_RATE,
    DevSplit, Measured, audiosr_command, command_line, config_summary, dev_split, fmt, load_config,
    loadavg, log, machine, md_table, read_mono, run_measured, script_command, subprocess_env,
)

SECTIONS = ("loader", "train", "speed", "quality", "memory")
TITLES = {
    "loader": "1. Data loader throughput",
    "train": "2. Training steps/s",
    "speed": "3. Upsampling speed (whole path, 30 s of audio)",
    "quality": "4. Quality on real recordings (tiny training budget)",
    "memory": "5. `audiosr upsample`: memory and speed on long files",
}
# Quality budget: quickstart steps of `audiosr fit`, chosen so that fit takes about 10
# minutes on the project's 2-core CPU when it is quiet. With configs/quickstart.yaml at
# 4 x 0.5 s crops and one loader worker, a 120-step trial ran at 3.7 steps/s (0.27 s/step)
# plus ~10 s of start-up, so 1500 steps ~ 7-9 min with validation every 100 steps. Under load
# the same steps take several times longer. Re-tune if the quickstart batch or model changes.
DEFAULT_STEPS = 1500
TINY_CHANNELS = [4, 8, 8]
SPEED_FILE = "librosa-data/kevin_macleod_vibe_ace.flac"  # 61 s of full-band music


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    dev: DevSplit | None
    quickstart: dict
    reference: dict
    loader_results: dict = field(default_factory=dict)  # key -> result dict
    problems: list = field(default_factory=list)  # failures inside the current section
    skipped: str = ""  # why the current section measured nothing
    synthetic: object = None  # shared cached corpus

    @property
    def cache_dir(self) -> Path:
        return self.tmp / "cache"


@dataclass
class Section:
    name: str
    markdown: str = ""
    seconds: float = 0.0
    status: str = "ok"


# --- 1. loader ------------------------------------------------------------------------------

def cached_synthetic():
    """The built-in ``SyntheticCorpus`` (defaults), synthesised once and reused: same audio."""
    from audiosr.data.corpora import Corpus, SyntheticCorpus

    class CachedSynthetic(Corpus):
        def __init__(self) -> None:
            self.inner = SyntheticCorpus()
            self.cache: dict = {}

        def recordings(self, split, sample_rate, cache_dir, min_frames, warn=False):
            key = (split, sample_rate, min_frames)
            if key not in self.cache:
                self.cache[key] = self.inner.recordings(split, sample_rate, cache_dir, min_frames, warn)
            return self.cache[key]

        def describe(self) -> str:
            return self.inner.describe()

    return CachedSynthetic()


def corpus_for(ctx: Context, name: str):
    from audiosr.data.corpora import AudioFolders

    if name == "synthetic":
        if ctx.synthetic is None:
            ctx.synthetic = cached_synthetic()
        return ctx.synthetic
    assert ctx.dev is not None
    files = [str(p) for p in ctx.dev.train]
    return AudioFolders(train=files, val=files)


def measure_loader(ctx: Context, corpus_name: str, segment_seconds: float, batch_size: int,
                   num_workers: int, batches: int) -> dict:
    """Pairs/s of ``train_dataloader()`` after start-up (the first ``max(1, workers)`` batches)."""
    key = (corpus_name, segment_seconds, batch_size, num_workers)
    if key in ctx.loader_results:
        return ctx.loader_results[key]
    import warnings

    from audiosr.data import AudioPairDataModule

    skip = max(1, num_workers)
    module = AudioPairDataModule(
        corpus=corpus_for(ctx, corpus_name), segment_seconds=segment_seconds, batch_size=batch_size,
        num_workers=num_workers, train_items_per_epoch=batch_size * (skip + batches + 2),
        cache_dir=str(ctx.cache_dir),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module.prepare_data()
        module.setup("fit")
    skipped = sum("skipping" in str(w.message) for w in caught)
    recordings = module.datasets["train"].recordings
    loader = module.train_dataloader()
    start = time.perf_counter()
    iterator = iter(loader)
    for _ in range(skip):
        next(iterator)
    startup = time.perf_counter() - start
    pairs = 0
    start = time.perf_counter()
    for _ in range(batches):
        pairs += next(iterator)["target"].shape[0]
    elapsed = time.perf_counter() - start
    del iterator, loader, module
    gc.collect()
    result = {
        "pairs_per_s": pairs / elapsed, "audio_per_s": pairs * segment_seconds / elapsed,
        "startup_s": startup, "skipped_batches": skip, "batches": batches, "pairs": pairs,
        "recordings": len(recordings), "skipped_files": skipped,
    }
    ctx.loader_results[key] = result
    log(f"  loader {corpus_name} {segment_seconds:g} s x {batch_size}, workers={num_workers}: "
        f"{result['pairs_per_s']:.1f} pairs/s (start-up {startup:.1f} s)")
    return result


def section_loader(ctx: Context) -> str:
    ref, qs = ctx.reference, ctx.quickstart
    batches = ctx.args.loader_batches
    configured = ref["num_workers"]
    workers = list(dict.fromkeys([configured, 0, 2]))
    corpora = ["synthetic"] + (["dev"] if ctx.dev else [])
    rows = []
    for corpus in corpora:
        for w in workers:
            try:
                r = measure_loader(ctx, corpus, 2.0, ref["batch_size"], w, batches)
            except Exception as error:  # one failure must not hide the other rows
                log(f"  loader {corpus} workers={w} failed: {error!r}")
                rows.append([corpus, "2.0 s", ref["batch_size"], w, "failed", str(error)[:60], "", "", ""])
                continue
            mark = " (unet.yaml)" if w == configured else ""
            rows.append([corpus, "2.0 s", ref["batch_size"], f"{w}{mark}", fmt(r["pairs_per_s"]),
                         fmt(r["audio_per_s"], 1), fmt(r["startup_s"], 1), f"{r['skipped_batches']} + {r['batches']}",
                         r["recordings"]])
    # The quickstart config's own loader, for section 2.
    try:
        r = measure_loader(ctx, "synthetic", qs["segment_seconds"], qs["batch_size"], qs["num_workers"], batches)
        rows.append(["synthetic", f"{qs['segment_seconds']:g} s", qs["batch_size"], f"{qs['num_workers']} (quickstart.yaml)",
                     fmt(r["pairs_per_s"]), fmt(r["audio_per_s"], 1), fmt(r["startup_s"], 1),
                     f"{r['skipped_batches']} + {r['batches']}", r["recordings"]])
    except Exception as error:
        log(f"  quickstart loader failed: {error!r}")
    table = md_table(["corpus", "crop", "batch", "num_workers", "pairs/s", "audio s/s", "start-up s",
                      "batches (skipped + timed)", "recordings"], rows, right={2, 4, 5, 6, 8})
    dev_note = ""
    if ctx.dev:
        dev_note = (f"- `dev`: `AudioFolders` over the training split of section 4 ({len(ctx.dev.train)} files, "
                    f"{ctx.dev.minutes(ctx.dev.train):.1f} min of 44.1 kHz FLAC from `{ctx.dev.root}`), read with "
                    "seeks into the FLAC files (files shorter than a crop are skipped by the data module).\n")
    else:
        dev_note = f"- dev recordings: not found at `{ctx.args.dev_dir}`; only the synthetic corpus is measured.\n"
    return (
        "What `AudioPairDataModule(...).train_dataloader()` delivers: each pair is a random crop, "
        "made low-rate with resampy `kaiser_best` and brought back with `kaiser_fast` "
        "(22.05 -> 44.1 kHz), as in training. The clock starts after the first `max(1, num_workers)` "
        "batches (worker start-up, numba compilation and the first prefetch excluded) and runs over the "
        f"next {batches} batches, with nothing else running in this process.\n\n"
        f"- `synthetic`: the built-in `SyntheticCorpus` (48 train clips of 4 s), synthesised once for all rows.\n"
        + dev_note
        + "- audio s/s: seconds of 44.1 kHz target audio per second; pairs/s x crop length.\n\n"
        + table
        + f"\nWith {ctx.args.cores} cores, workers beyond that share the same cores: the training step "
        "competes with them in a real run (section 2).\n"
    )


# --- 2. training steps ------------------------------------------------------------------------

def measure_train(ctx: Context, config: dict, warmup: int, steps: int) -> dict:
    import torch

    from audiosr.data import AudioPairDataModule
    from audiosr.losses import MultiResolutionSTFTLoss
    from audiosr.models import UNet

    module = AudioPairDataModule(corpus=corpus_for(ctx, "synthetic"), segment_seconds=config["segment_seconds"],
                                 batch_size=config["batch_size"], num_workers=0,
                                 train_items_per_epoch=config["batch_size"], cache_dir=str(ctx.cache_dir))
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    torch.manual_seed(0)
    network = UNet(config["channels"])
    loss_fn = MultiResolutionSTFTLoss()
    optimizer = torch.optim.Adam(network.parameters(), lr=config["lr"], betas=config["betas"],
                                 weight_decay=config["weight_decay"])
    clip = config["gradient_clip_val"]
    network.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        parts = loss_fn(network(batch["input"]), batch["target"])
        parts["total"].backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(network.parameters(), float(clip))
        optimizer.step()
        seconds = time.perf_counter() - start
        if i >= warmup:
            times.append(seconds)
        log(f"  step {i + 1}/{warmup + steps}{' (warm-up)' if i < warmup else ''}: {seconds:.2f} s, "
            f"loss {float(parts['total']):.3f}")
    step = float(np.median(times))
    return {"params": network.num_parameters(), "step_s": step, "steps_per_s": 1 / step,
            "pairs_per_s": config["batch_size"] / step,
            "audio_per_s": config["batch_size"] * config["segment_seconds"] / step,
            "timed": len(times), "warmup": warmup, "min_s": min(times), "max_s": max(times)}


def section_train(ctx: Context) -> str:
    rows, notes = [], []
    plan = [("quickstart", ctx.quickstart, 2, ctx.args.quick_steps),
            ("reference (unet.yaml)", ctx.reference, 1, ctx.args.ref_steps)]
    for name, config, warmup, steps in plan:
        log(f"  training {name}: U-Net {config['channels']}, {config['batch_size']} x {config['segment_seconds']:g} s")
        try:
            r = measure_train(ctx, config, warmup, steps)
        except Exception as error:
            log(f"  training {name} failed: {error!r}")
            rows.append([name, "failed", str(error)[:80]] + [""] * 9)
            continue
        try:
            loader = measure_loader(ctx, "synthetic", config["segment_seconds"], config["batch_size"],
                                    config["num_workers"], ctx.args.loader_batches)
            lp = loader["pairs_per_s"]
        except Exception as error:
            log(f"  loader for {name} failed: {error!r}")
            lp = math.nan
        bottleneck = "loader" if lp < r["pairs_per_s"] else "network"
        rows.append([
            name, f"{r['params'] / 1e6:.3f} M", f"{config['batch_size']} x {config['segment_seconds']:g} s",
            f"{r['step_s']:.2f}", f"{r['min_s']:.2f}", f"{r['steps_per_s']:.3f}", fmt(r["pairs_per_s"]), fmt(r["audio_per_s"]),
            f"{config['num_workers']}", fmt(lp), fmt(lp / r["pairs_per_s"], 1), bottleneck,
        ])
        notes.append(f"{name}: {r['warmup']} warm-up + {r['timed']} timed steps, "
                     f"step time min {r['min_s']:.2f} s / max {r['max_s']:.2f} s; steps/s and pairs/s from the median")
    table = md_table(["model", "parameters", "batch", "s/step (median)", "s/step (min)", "steps/s", "pairs/s trained",
                      "audio s/s trained", "loader workers", "loader pairs/s", "loader / training",
                      "bottleneck"], rows, right={3, 4, 5, 6, 7, 8, 9, 10})
    return (
        "One optimisation step as Lightning runs it, measured in this process: U-Net forward, "
        "multi-resolution STFT + 100 x MSE loss, backward, gradient-norm clipping at 10, Adam "
        "(lr, betas and weight decay from the config). The batch is a real batch from the synthetic "
        "corpus' loader, reused for every step (compute does not depend on content). 32-bit on CPU "
        "(the reference recipe's mixed precision only applies on a GPU). `loader pairs/s` is section 1's "
        "figure for the same crop, batch and the config's `num_workers` (measured with the loader alone).\n\n"
        + table + "\n" + "\n".join(f"- {n}" for n in notes) + "\n\n"
        "`loader / training` > 1 means the loader alone produces pairs faster than the step consumes them, "
        f"so the network is the bottleneck; on {ctx.args.cores} cores the loader workers and the step share "
        "the same cores during a real `audiosr fit`, so the loader's real share of the time is larger than "
        "this ratio suggests.\n"
    )


# --- 3. speed ---------------------------------------------------------------------------------

def speed_audio(ctx: Context, seconds: float) -> tuple[np.ndarray, str]:
    """``seconds`` of 44.1 kHz mono audio: a real dev recording if present, else synthetic."""
    if ctx.dev is not None:
        candidates = [ctx.dev.root / SPEED_FILE] + sorted(
            (p for p in ctx.dev.train + ctx.dev.test if not p.parts[-2] == "vctk"),
            key=lambda p: -ctx.dev.durations.get(ctx.dev.rel(p), 0))
        for path in candidates:
            if path.is_file() and ctx.dev.durations.get(ctx.dev.rel(path), 0) >= seconds:
                audio, rate = read_mono(path, seconds)
                if rate == TARGET_RATE:
                    return audio, f"first {seconds:g} s of `{ctx.dev.rel(path)}` (dev recording, 44.1 kHz)"
    from audiosr.data.synthetic import synthesize

    return synthesize(12345, TARGET_RATE, seconds).astype(np.float32), f"{seconds:g} s of synthetic audio (seed 12345)"


def section_speed(ctx: Context) -> str:
    import torch

    from audiosr.checkpoint import ModelSpec, network_spec
    from audiosr.data.pairs import resample
    from audiosr.evaluation import BASELINES, time_method
    from audiosr.models import UNet

    seconds, repeats = ctx.args.speed_seconds, ctx.args.repeats
    target, source = speed_audio(ctx, seconds)
    low = resample(target[np.newaxis], TARGET_RATE, SOURCE_RATE, "kaiser_best", -(-target.shape[-1] // 2))
    audio_s = low.shape[-1] / SOURCE_RATE
    log(f"  speed audio: {source}; low-rate input {low.shape}")
    methods: list[tuple[str, str, Callable]] = [(name, "classical", fn) for name, fn in BASELINES.items()]
    for label, config in (("U-Net quickstart", ctx.quickstart), ("U-Net reference", ctx.reference)):
        try:
            from audiosr.inference import Upsampler

            torch.manual_seed(0)
            network = UNet(config["channels"])
            spec = ModelSpec(network_spec(network), SOURCE_RATE, TARGET_RATE, "kaiser_fast")
            upsampler = Upsampler(network, spec, device="cpu")
            detail = (f"{network.num_parameters() / 1e6:.3f} M params, channels {config['channels']}, "
                      f"untrained; `Upsampler` window {upsampler.plan.window / TARGET_RATE:g} s, batch 1")
            methods.append((label, detail, lambda x, s, t, u=upsampler: u.upsample(x, s)))
        except Exception as error:
            log(f"  {label}: cannot build ({error!r})")
            methods.append((label, f"failed: {error!r}"[:100], None))
    results: dict[str, float] = {}
    warnings_: dict[str, str] = {}
    for name, detail, fn in methods:
        if fn is None:
            continue
        try:
            out, median = time_method(fn, low, SOURCE_RATE, TARGET_RATE, warmup=1, repeats=repeats)
            expected = -(-low.shape[-1] * TARGET_RATE // SOURCE_RATE)
            if np.asarray(out).shape[-1] != expected:
                warnings_[name] = f" (output length {np.asarray(out).shape[-1]}, expected {expected}!)"
            results[name] = median
            log(f"  {name}: {median:.3f} s -> {audio_s / median:.1f}x real time")
        except Exception as error:
            log(f"  {name} failed: {error!r}")
            traceback.print_exc()
    best = results.get("kaiser_best")
    rows = []
    for name, detail, _ in methods:
        median = results.get(name)
        label = f"`{name}`" if detail == "classical" else name
        if median is None:
            rows.append([label, detail, "failed", "–", "–"])
            continue
        rows.append([label, detail + warnings_.get(name, ""), f"{median:.3f}", fmt(audio_s / median, 1),
                     fmt(best / median, 2) if best else "–"])
    table = md_table(["method", "what", "wall s (median)", "RTR ↑", "speed vs kaiser_best"], rows, right={2, 3, 4})
    return (
        f"Input: {source}, made low-rate (22.05 kHz, {audio_s:g} s) with resampy `kaiser_best` as in training. "
        "Each method maps that 22.05 kHz waveform to 44.1 kHz in-process (classical methods from "
        "`audiosr.evaluation.BASELINES`; U-Nets through `audiosr.inference.Upsampler` on CPU, which includes "
        "the `kaiser_fast` rough upsampling and the windowing). `audiosr.evaluation.time_method`: "
        f"1 warm-up call, then the median of {repeats} timed calls. RTR = seconds of audio / wall seconds. "
        "The U-Nets have random (untrained) weights: speed does not depend on the weights.\n\n"
        + table
        + "\nREFERENCE.md's figures on this machine type: kaiser_fast ~170x, kaiser_best ~31x, soxr VHQ ~6 800x; "
        "compare ratios, not absolute figures, when the machine is busy.\n"
    )


# --- 4. quality -------------------------------------------------------------------------------

def write_list(path: Path, files: list[Path]) -> Path:
    path.write_text("".join(f"{p}\n" for p in files))
    return path


def section_quality(ctx: Context) -> str:
    dev = ctx.dev
    if dev is None:
        ctx.skipped = "skipped: no dev recordings"
        return f"Skipped: the dev recordings are not at `{ctx.args.dev_dir}`.\n"
    steps = ctx.args.steps
    work = ctx.tmp / "quality"
    work.mkdir(parents=True, exist_ok=True)
    lists = {split: write_list(work / f"{split}.txt", files)
             for split, files in (("train", dev.train), ("val", dev.val), ("test", dev.test))}
    env = subprocess_env(ctx.cache_dir)
    config = str(CONFIGS / "quickstart.yaml")
    data_args = ["--data.corpus", "audiosr.data.AudioFolders",
                 "--data.corpus.train", f"[{lists['train']}]", "--data.corpus.val", f"[{lists['val']}]",
                 "--data.corpus.test", f"[{lists['test']}]"]
    fit_cmd = [*audiosr_command(), "fit", "--config", config, *data_args,
               "--trainer.max_steps", str(steps), "--trainer.logger", "false"]
    test_cmd = [*audiosr_command(), "test", "--config", config, *data_args,
                "--ckpt_path", "last", "--trainer.logger", "false"]
    retried: list[str] = []

    def run_cli(name: str, cmd: list[str]) -> Measured:
        """One CLI run; retried once (from scratch) if a signal from outside killed it."""
        for attempt in (1, 2):
            if name == "fit":  # a killed run may have left a last.ckpt behind
                shutil.rmtree(work / "runs", ignore_errors=True)
            m = run_measured(cmd, work / f"{name}.log", cwd=work, env=env, label=f"audiosr {name}")
            log(f"  audiosr {name}: exit {m.returncode} after {m.wall_s:.0f} s")
            if m.returncode >= 0 or attempt == 2:
                return m
            retried.append(f"`audiosr {name}` was killed by signal {-m.returncode} from outside after "
                           f"{m.wall_s:.0f} s and was run again")
            log(f"  audiosr {name} was killed by signal {-m.returncode}; running it again")
        raise AssertionError

    log(f"  audiosr fit: {steps} steps in {work}")
    fit = run_cli("fit", fit_cmd)
    split_rows = [
        ["train", len(dev.train), f"{dev.minutes(dev.train):.1f}", dev.describe(dev.train)],
        ["val", len(dev.val), f"{dev.minutes(dev.val):.1f}", dev.describe(dev.val)],
        ["test", len(dev.test), f"{dev.minutes(dev.test):.1f}", dev.describe(dev.test)],
    ]
    text = (
        f"Dev recordings from `{dev.root}` (real recordings, 44.1 kHz mono FLAC), split by speaker and file:\n\n"
        + md_table(["split", "files", "minutes", "which (folder / speaker (files))"], split_rows, right={1, 2})
        + f"\n- test speech: the held-out VCTK speakers {', '.join(HELD_OUT_SPEAKERS)} (the last 8 speakers, the "
        "test speakers of published VCTK systems); none of them is in training.\n"
        "- val: the NU-Wave 2 demo samples (`vctk/nuwave2_*`), whose speakers are not named; NU-Wave 2 tests on "
        "the same last 8 speakers, so they are kept out of training. Validation only picks the `best` "
        "checkpoint; the test uses `last`.\n"
        f"- test music/env: {', '.join(f'`{f}`' for f in HELD_OUT_MUSIC_ENV)}; every other music/env file trains.\n"
        "- Training crops are drawn in proportion to file length, so the long music files dominate training.\n"
        + "\n"
        f"**Budget: {steps} optimizer steps** of the quickstart recipe (`configs/quickstart.yaml`: "
        f"U-Net {ctx.quickstart['channels']}, {ctx.quickstart['batch_size']} x {ctx.quickstart['segment_seconds']:g} s "
        f"crops, Adam lr {ctx.quickstart['lr']:g}), i.e. {steps * ctx.quickstart['batch_size'] * ctx.quickstart['segment_seconds'] / 60:.1f} "
        "minutes of audio seen. That is tiny next to the reference recipe (`configs/unet.yaml`: a 17.85 M-parameter "
        "U-Net, 200 000 steps of 4 x 2 s, i.e. ~440 hours of audio, on VCTK's 100 training speakers): these numbers "
        "show the pipeline works on real audio, not what the recipe can reach.\n\n"
        f"Training (`AUDIOSR_CACHE` and the run directory in a temporary folder; exit status {fit.returncode}, "
        f"{fit.wall_s:.0f} s wall including start-up and validation, {fit.wall_s / max(steps, 1):.2f} s/step overall):\n\n"
        f"```\n{command_line(fit_cmd)}\n```\n\n"
    )
    if fit.returncode != 0:
        ctx.problems.append(f"audiosr fit exit {fit.returncode}")
        if retried:
            text += "Note: " + "; ".join(retried) + ".\n\n"
        return text + f"**`audiosr fit` failed.** Last lines of its output:\n\n```\n{fit.tail(25)}\n```\n"
    last_val = [line.strip() for line in fit.log_path.read_text(errors="replace").splitlines() if "last validation" in line]
    if last_val:
        text += f"Its last validation (on `val`, {ctx.quickstart['segment_seconds']:g}-s centre crops): `{last_val[-1]}`\n\n"
    log("  audiosr test --ckpt_path last")
    test = run_cli("test", test_cmd)
    text += f"Test ({test.wall_s:.0f} s wall, exit status {test.returncode}):\n\n```\n{command_line(test_cmd)}\n```\n\n"
    if retried:  # said before any table, whatever happens next
        text += "Note: " + "; ".join(retried) + ".\n\n"
    reports = sorted(work.rglob("test/comparison.md"), key=lambda p: p.stat().st_mtime)
    if test.returncode != 0 or not reports:
        ctx.problems.append(f"audiosr test exit {test.returncode}")
        return text + f"**`audiosr test` failed or wrote no comparison.md.** Last lines:\n\n```\n{test.tail(25)}\n```\n"
    text += (f"Its `comparison.md` (whole test files, {len(dev.test)} files; model rows through `Upsampler`; "
             "RTR over the whole 22.05 -> 44.1 kHz path, first call per method after one warm-up):\n\n"
             + reports[-1].read_text())
    return text


# --- 5. memory --------------------------------------------------------------------------------

def write_checkpoint(path: Path, channels: list[int]) -> int:
    """An audiosr checkpoint of a randomly initialised U-Net; returns its parameter count."""
    import torch

    from audiosr.checkpoint import CHECKPOINT_KEY, NETWORK_PREFIX, ModelSpec, network_spec
    from audiosr.models import UNet

    torch.manual_seed(0)
    network = UNet(channels)
    spec = ModelSpec(network_spec(network), SOURCE_RATE, TARGET_RATE, "kaiser_fast")
    torch.save({CHECKPOINT_KEY: spec.to_dict(),
                "state_dict": {NETWORK_PREFIX + k: v for k, v in network.state_dict().items()}}, path)
    return network.num_parameters()


def source_material(ctx: Context) -> tuple[np.ndarray, str]:
    """Some minutes of 22.05 kHz mono audio to tile into long files (dev music/env if present)."""
    import soxr

    if ctx.dev is not None:
        parts, names = [], []
        for path in ctx.dev.train + ctx.dev.test:
            if ctx.dev.rel(path).startswith("vctk/"):
                continue
            audio, rate = read_mono(path)
            audio = soxr.resample(audio, rate, SOURCE_RATE, quality="VHQ").astype(np.float32)
            parts.append(0.9 * audio / max(float(np.abs(audio).max()), 1e-9))
            names.append(path.parent.name)
        if parts:
            material = np.concatenate(parts)
            return material, (f"the dev music/env recordings ({len(parts)} files from "
                              f"{', '.join(f'`{n}/`' for n in sorted(set(names)))}, "
                              f"{material.size / SOURCE_RATE / 60:.1f} min) resampled to 22.05 kHz with soxr VHQ, "
                              "each peak-normalised to 0.9, concatenated and tiled")
    rng = np.random.default_rng(0)
    t = np.arange(SOURCE_RATE * 60) / SOURCE_RATE
    material = (0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440 * t)
                + 0.2 * np.sin(2 * np.pi * 3000 * t * (1 + 0.01 * np.sin(2 * np.pi * 0.5 * t)))).astype(np.float32)
    return material, "60 s of noise plus tones (seed 0), tiled"


def write_long_file(path: Path, material: np.ndarray, minutes: float) -> None:
    import soundfile as sf

    total = int(round(minutes * 60 * SOURCE_RATE))
    with sf.SoundFile(str(path), "w", SOURCE_RATE, 1, "PCM_16", format="WAV") as f:
        written = 0
        while written < total:
            position = written % material.size
            n = min(total - written, material.size - position, SOURCE_RATE * 60)
            f.write(material[position:position + n])
            written += n


def torch_version() -> str:
    import torch

    return torch.__version__


KAISER_BEST_SCRIPT = (
    "import sys, soundfile as sf, resampy; "
    "x, r = sf.read(sys.argv[1], dtype='float32'); "
    "y = resampy.resample(x, r, 44100, filter='kaiser_best'); "
    "sf.write(sys.argv[2], y, 44100, subtype='PCM_16')"
)
IMPORT_SCRIPT = "import torch, resampy, soundfile, audiosr.inference, audiosr.checkpoint"
RESAMPY_IMPORT_SCRIPT = "import sys, soundfile, resampy"


def section_memory(ctx: Context) -> str:
    work = ctx.tmp / "memory"
    work.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(ctx.cache_dir)
    tiny_ckpt, qs_ckpt = work / "tiny.ckpt", work / "quickstart-random.ckpt"
    tiny_params = write_checkpoint(tiny_ckpt, TINY_CHANNELS)
    qs_params = write_checkpoint(qs_ckpt, ctx.quickstart["channels"])
    material, material_note = source_material(ctx)
    minutes_list = ctx.args.memory_minutes
    inputs = {}
    for minutes in minutes_list:
        path = work / f"in-{minutes:g}min.wav"
        write_long_file(path, material, minutes)
        inputs[minutes] = path
        log(f"  wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB)")
    del material

    def measure(label: str, cmd: list[str], name: str, timeout: float | None = None) -> Measured:
        log(f"  {label}")
        m = run_measured(cmd, work / f"{name}.log", cwd=work, env=env, timeout=timeout, label=label)
        log(f"  -> exit {m.returncode}, {m.wall_s:.1f} s, peak RSS {m.max_rss_mib:.0f} MiB")
        return m

    torch_only = measure("import torch only", [sys.executable, "-c", "import torch"], "torch")
    floor = measure("imports only", [sys.executable, "-c", IMPORT_SCRIPT], "imports")
    resampy_floor = measure("resampy imports only", [sys.executable, "-c", RESAMPY_IMPORT_SCRIPT], "imports-resampy")
    rows, commands = [], []
    rows.append(["`import torch` only", "–", f"{torch_only.max_rss_mib:.0f}", f"{torch_only.wall_s:.1f}", "–", "–", torch_only.returncode])
    rows.append(["Python + torch + audiosr imports only", "–", f"{floor.max_rss_mib:.0f}", f"{floor.wall_s:.1f}", "–", "–", floor.returncode])
    rows.append(["numpy + soundfile + resampy imports only", "–", f"{resampy_floor.max_rss_mib:.0f}",
                 f"{resampy_floor.wall_s:.1f}", "–", "–", resampy_floor.returncode])
    commands += [("import torch only", torch_only.cmd), ("imports only", floor.cmd),
                 ("resampy imports only", resampy_floor.cmd)]
    tiny_runs = {}
    for minutes, path in inputs.items():
        out = work / f"out-tiny-{minutes:g}"
        cmd = [sys.executable, "-m", "audiosr.upsample", "--ckpt_path", str(tiny_ckpt), str(path),
               "--output_dir", str(out), "--overwrite", "--device", "cpu"]
        m = measure(f"tiny model, {minutes:g} min", cmd, f"tiny-{minutes:g}", timeout=ctx.args.memory_timeout)
        tiny_runs[minutes] = m
        out_file = out / path.name
        ok = m.returncode == 0 and out_file.is_file()
        out_mib = out_file.stat().st_size / 2**20 if out_file.is_file() else math.nan
        rows.append([f"`python -m audiosr.upsample`, tiny U-Net {TINY_CHANNELS}", f"{minutes:g} min",
                     f"{m.max_rss_mib:.0f}", f"{m.wall_s:.1f}", fmt(minutes * 60 / m.wall_s, 1),
                     f"{out_mib:.0f} MiB" if ok else "missing", m.returncode if m.returncode >= 0 else f"{m.returncode} (killed)"])
        commands.append((f"tiny, {minutes:g} min", cmd))
        shutil.rmtree(out, ignore_errors=True)
    memory_table = md_table(["run", "input (22.05 kHz mono 16-bit WAV)", "peak RSS MiB", "wall s", "RTR (incl. start-up)",
                             "output (44.1 kHz WAV)", "exit"], rows, right={2, 3, 4})

    # audiosr upsample with the CPU-sized model against resampy kaiser_best, same file.
    cmp_minutes = ctx.args.compare_minutes
    cmp_path = inputs.get(cmp_minutes)
    if cmp_path is None:
        cmp_path = work / f"in-{cmp_minutes:g}min.wav"
        material, _ = source_material(ctx)
        write_long_file(cmp_path, material, cmp_minutes)
        del material
    qs_out = work / "out-quickstart"
    qs_cmd = [*audiosr_command(), "upsample", "--ckpt_path", str(qs_ckpt), str(cmp_path), "--output_dir", str(qs_out),
              "--overwrite", "--device", "cpu"]
    kb_cmd = [sys.executable, "-c", KAISER_BEST_SCRIPT, str(cmp_path), str(work / "out-kaiser_best.wav")]
    qs = measure(f"audiosr upsample, quickstart-size, {cmp_minutes:g} min", qs_cmd, "quickstart")
    kb = measure(f"resampy kaiser_best, {cmp_minutes:g} min", kb_cmd, "kaiser_best")
    audio_s = cmp_minutes * 60
    cmp_rows = []
    for label, m, base in ((f"`audiosr upsample`, quickstart-size U-Net {ctx.quickstart['channels']} ({qs_params / 1e3:.0f} k params, random weights)", qs, floor),
                           ("resampy `kaiser_best` file -> file (`python -c`, whole file in memory)", kb, resampy_floor)):
        compute = max(m.wall_s - base.wall_s, 1e-9)
        cmp_rows.append([label, f"{m.wall_s:.1f}", fmt(audio_s / m.wall_s, 1), fmt(audio_s / compute, 1),
                         f"{m.max_rss_mib:.0f}", m.returncode])
    ratio = kb.wall_s / qs.wall_s if qs.returncode == 0 and kb.returncode == 0 else math.nan
    ratio_compute = ((kb.wall_s - resampy_floor.wall_s) / max(qs.wall_s - floor.wall_s, 1e-9)
                     if qs.returncode == 0 and kb.returncode == 0 else math.nan)
    cmp_table = md_table(["command", "wall s", "RTR (whole command)", "RTR (minus import time)", "peak RSS MiB", "exit"],
                         cmp_rows, right={1, 2, 3, 4})
    commands += [("quickstart-size", qs_cmd), ("kaiser_best", kb_cmd)]
    float_mib = lambda minutes: minutes * 60 * TARGET_RATE * 4 / 2**20  # noqa: E731
    biggest = max(minutes_list)
    text = (
        f"Inputs: mono 22.05 kHz 16-bit WAV files of {', '.join(f'{m:g}' for m in minutes_list)} minutes, written to a "
        f"temporary folder (not the repository) from {material_note}. Peak RSS is `ru_maxrss` of the command's "
        "process, forked from a small launcher process (`bench/common.py`: a fork from this big benchmark process "
        "would count its memory too); wall time includes interpreter start-up and imports. The tiny U-Net "
        f"{TINY_CHANNELS} ({tiny_params} parameters, random weights) keeps the run short: the windowed engine's memory "
        "does not depend on the model beyond its weights and activations for one window (6 s by default).\n\n"
        + memory_table
        + f"\nFor scale: the {biggest:g}-minute output alone would take {float_mib(biggest):.0f} MiB as float32 "
        f"in memory (the 22.05 kHz input half of that); a flat peak RSS from the shortest to the longest file means "
        "memory does not grow with duration. Most of the floor is `import torch` itself "
        f"(torch {torch_version()} build).\n"
    )
    if biggest in tiny_runs and tiny_runs[biggest].returncode != 0:
        text += f"\n**The {biggest:g}-minute run failed.** Last lines:\n\n```\n{tiny_runs[biggest].tail(15)}\n```\n"
    text += (
        f"\n`audiosr upsample` on CPU with the CPU-sized (quickstart) U-Net against resampy `kaiser_best` on the same "
        f"{cmp_minutes:g}-minute file, both as separate processes, file in -> file out. \"Minus import time\" subtracts "
        f"what the command's imports alone take in this run (table above): {floor.wall_s:.1f} s for Python + torch + "
        f"audiosr, {resampy_floor.wall_s:.1f} s for Python + numpy + soundfile + resampy. Both commands still "
        "include numba's compilation of resampy on its first call in a fresh process (about 1-2 s here).\n\n"
        + cmp_table
        + f"\n`kaiser_best` wall / `audiosr upsample` wall = **{fmt(ratio, 2)}** (whole commands); "
        f"{fmt(ratio_compute, 2)} without import time. Above 1 means `audiosr upsample` is the faster of the two.\n"
    )
    text += "\nCommands (temporary paths):\n\n```\n" + "\n".join(f"# {label}\n{command_line(cmd)}" for label, cmd in commands) + "\n```\n"
    for m in (qs, kb):
        if m.returncode != 0:
            text += f"\n**{Path(m.cmd[0]).name} failed** (exit {m.returncode}):\n\n```\n{m.tail(15)}\n```\n"
    return text


# --- the report -------------------------------------------------------------------------------

RUNNERS = {"loader": section_loader, "train": section_train, "speed": section_speed,
           "quality": section_quality, "memory": section_memory}


def portable(text: str, dev_dir: Path) -> str:
    """The report names paths relative to the repository, never this machine's own."""
    text = text.replace(str(dev_dir.resolve()), "../shared/data/dev")
    text = text.replace(str(REPO) + "/", "").replace(str(REPO), ".")
    return re.sub(r"/tmp/audiosr-bench-[^/\s'\]]+", "$TMP", text)


def render(ctx: Context, info: dict, sections: list[Section], started: float, done: bool) -> str:
    lines = [
        "# audiosr benchmarks",
        "",
        "Every figure below was measured by `bench/run.py` in one run, with this command (from the repository root):",
        "",
        "```",
        script_command(),
        "```",
        "",
        "Speeds are also given as ratios to baselines measured in the same run: the absolute figures move with the "
        "machine's load, the ratios much less. `$TMP` stands for the run's temporary folder, deleted at the end."
        + ("" if done else " **(run in progress: partial report)**"),
        "",
        "## Machine",
        "",
        md_table(["", ""], [[k, v] for k, v in info.items()], right=set()),
    ]
    for s in sections:
        lines += [f"## {TITLES[s.name]}", "", f"*Section runtime {s.seconds:.0f} s; status: {s.status}.*", "", s.markdown.rstrip(), ""]
    if done:
        rows = [[TITLES[s.name], f"{s.seconds:.0f}", s.status] for s in sections]
        rows.append(["total", f"{time.perf_counter() - started:.0f}", ""])
        lines += ["## Runtime of this run", "", md_table(["section", "seconds", "status"], rows, right={1}),
                  f"Load average at the end (1 / 5 / 15 min): {loadavg()}.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="quality: audiosr fit steps of the quickstart model (default %(default)s, ~10 min)")
    parser.add_argument("--skip-quality", action="store_true", help="leave out the quality section")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "RESULTS.md", help="report file (default %(default)s)")
    parser.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR, help="dev recordings (default %(default)s)")
    parser.add_argument("--loader-batches", type=int, default=20, help="loader: timed batches per setting (default %(default)s)")
    parser.add_argument("--quick-steps", type=int, default=10, help="train: timed steps, quickstart model (default %(default)s)")
    parser.add_argument("--ref-steps", type=int, default=2, help="train: timed steps, reference model (default %(default)s)")
    parser.add_argument("--speed-seconds", type=float, default=30.0, help="speed: seconds of audio (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="speed: timed calls per method, median (default %(default)s)")
    parser.add_argument("--memory-minutes", default="1,60", help="memory: input lengths in minutes (default %(default)s)")
    parser.add_argument("--compare-minutes", type=float, default=1.0,
                        help="memory: file length for audiosr upsample vs kaiser_best (default %(default)s)")
    parser.add_argument("--memory-timeout", type=float, default=3600.0,
                        help="memory: seconds before a tiny-model run is stopped (default %(default)s)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary folder (runs, long files)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if args.skip_quality:
        sections = [s for s in sections if s != "quality"]
    args.sections = [s for s in SECTIONS if s in sections]
    args.memory_minutes = sorted({float(m) for m in args.memory_minutes.split(",") if m.strip()})
    if args.steps < 1 or args.loader_batches < 1 or args.repeats < 1 or not args.memory_minutes:
        parser.error("--steps, --loader-batches, --repeats must be >= 1 and --memory-minutes non-empty")
    return args


def main(argv: list[str] | None = None) -> int:
    import os

    args = parse_args(argv)
    args.cores = os.cpu_count()
    started = time.perf_counter()
    log(f"sections: {', '.join(args.sections)}; report -> {args.output}")
    info = machine()
    for key, value in info.items():
        log(f"  {key}: {value}")
    tmp = Path(tempfile.mkdtemp(prefix="audiosr-bench-"))
    log(f"temporary folder: {tmp}")
    ctx = Context(args, tmp, dev_split(args.dev_dir.resolve()),
                  config_summary(load_config("quickstart.yaml")), config_summary(load_config("unet.yaml")))
    if ctx.dev is None:
        log(f"dev recordings not found at {args.dev_dir}: synthetic data only, no quality section")
    sections: list[Section] = []
    failed = False
    try:
        for name in args.sections:
            log(f"== {TITLES[name]}")
            section = Section(name)
            start = time.perf_counter()
            ctx.problems, ctx.skipped = [], ""
            try:
                section.markdown = RUNNERS[name](ctx)
                section.status = ctx.skipped or section.status
                if ctx.problems:
                    failed = True
                    section.status = "failed: " + "; ".join(ctx.problems)
            except Exception:
                failed = True
                section.status = "failed"
                section.markdown = f"**This section failed:**\n\n```\n{traceback.format_exc()}\n```\n"
                traceback.print_exc()
            section.seconds = time.perf_counter() - start
            sections.append(section)
            log(f"== {name} done in {section.seconds:.0f} s")
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(portable(render(ctx, info, sections, started, done=False), args.dev_dir))
        report = portable(render(ctx, info, sections, started, done=True), args.dev_dir)
        args.output.write_text(report)
        print("\n" + report)
        log(f"report written to {args.output}")
    finally:
        if args.keep_temp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
