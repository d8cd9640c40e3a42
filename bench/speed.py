"""Speed: the whole low-rate -> high-rate path of every family and classical method, in one run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from audiosr.evaluation.comparison import markdown_table
from bench.common import Context, build, cpu_recipes, fmt, khz, log, rates, read_mono, reference_recipes

TITLE = "1. Upsampling speed and cost (whole path)"
SPEED_FILE = "librosa-data/kevin_macleod_vibe_ace.flac"  # 61 s of full-band music


def speed_audio(ctx: Context, seconds: float, rate: int) -> tuple[np.ndarray, str]:
    """``seconds`` of mono audio at ``rate``: a dev recording if present at that rate, else synthetic."""
    if ctx.dev is not None and (ctx.dev.root / SPEED_FILE).is_file():
        audio, found = read_mono(ctx.dev.root / SPEED_FILE, seconds)
        if found == rate and audio.size >= seconds * rate:
            return audio, f"the first {seconds:g} s of `{SPEED_FILE}` (dev recording)"
    from audiosr.data.synthetic import synthesize

    return synthesize(12345, rate, seconds), f"{seconds:g} s of the built-in synthetic corpus (seed 12345)"


def macs_per_second(generator) -> float:
    """Multiply-accumulates per second of audio: FLOPs / 2 of the generator on 1 s of input."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, 1, generator.spec.target_rate)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generator(x)
    return counter.get_total_flops() / 2


def run(ctx: Context) -> str:
    import torch

    from audiosr.dsp import output_length, resample
    from audiosr.evaluation.comparison import BASELINES, time_method
    from audiosr.inference.upsampler import Upsampler

    seconds, repeats = ctx.args.speed_seconds, ctx.args.repeats
    # One input for every method, at the rates of the reference recipe's data module.
    source_rate, target_rate = rates()
    target, source = speed_audio(ctx, seconds, target_rate)
    low = resample(target[None], target_rate, source_rate, "kaiser_best",
                   output_length(target.size, target_rate, source_rate))
    audio_s = low.shape[-1] / source_rate
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    # (label, what, device, fn, key into ctx.results["speed"] for the networks)
    methods = [(f"`{name}`", "classical", "cpu", fn, None) for name, fn in BASELINES.items()]
    speeds = ctx.results.setdefault("speed", {})
    for size, recipes in (("CPU-sized", cpu_recipes()), ("reference", reference_recipes())):
        for family, configs in recipes.items():
            torch.manual_seed(0)
            module, _ = build(configs)
            generator = module.generator.eval()
            params, macs = generator.network.num_parameters(), macs_per_second(generator)
            for device in devices:
                batch = 16 if device == "cuda" else 1
                # An Upsampler moves its generator to its device: each device gets its own copy, or the
                # CUDA one would move the CPU one's network too.
                upsampler = Upsampler(copy.deepcopy(generator), device=device, batch_size=batch)
                what = (f"{params / 1e6:.3f} M params, {macs / 1e9:.2f} GMAC per s of audio, input "
                        f"{generator.spec.input_filter}; {' + '.join(configs)}; {device}, batch {batch}, fp32")
                key = (family, size, device)
                speeds[key] = {"params": params, "macs": macs}
                methods.append((f"{family} ({size})", what, device,
                                lambda x, s, t, u=upsampler: u.upsample(x, s), key))
    threads = torch.get_num_threads()
    # The default model with the stage it ships with, as `audiosr upsample` runs it: a window per core.
    shipped = Upsampler.from_checkpoint(device="cpu", workers=threads)
    stage = shipped.spec.stage
    other = "fir" if stage.transform == "stft" else "stft"
    about = (f"{shipped.generator.network.num_parameters() / 1e6:.3f} M params, trained weights, its stored output "
             f"stage ({stage.describe(shipped.spec.source_rate / 2)}); cpu, batch 1, fp32")
    methods.append(("shipped model (`default.pt`)", f"{about}; {threads} windows at once, one torch thread each "
                    "(as `audiosr upsample` runs it)", "cpu", lambda x, s, t: shipped.upsample(x, s), None))
    one_window = Upsampler.from_checkpoint(device="cpu")
    methods.append(("shipped model, one window at a time", f"the same, each window on {threads} torch threads", "cpu",
                    lambda x, s, t: one_window.upsample(x, s), None))
    methods.append(("shipped model, 1 thread", "the same, one window at a time, `torch.set_num_threads(1)`", "cpu",
                    lambda x, s, t: one_thread(one_window.upsample, x, s), None))
    swapped = Upsampler.from_checkpoint(device="cpu", workers=threads, output_stage={"transform": other})
    methods.append((f"shipped model, `transform: {other}`", f"the stored model with its output stage {other} "
                    f"({'FIR filters over each window' if other == 'fir' else 'in frames'}); {threads} windows at once",
                    "cpu", lambda x, s, t: swapped.upsample(x, s), None))
    results = {}
    for label, what, device, fn, key in methods:
        try:
            _, median = time_method(fn, low, source_rate, target_rate, warmup=1, repeats=repeats,
                                    sync_cuda=device == "cuda")
        except Exception as error:  # one failure must not hide the other rows
            log(f"  {label} on {device} failed: {error!r}")
            ctx.problems.append(f"{label}: {error!r}"[:120])
            continue
        results[(label, device)] = median
        log(f"  {label} on {device}: {median:.3f} s -> {audio_s / median:.1f}x real time")
    best = results.get(("`kaiser_best`", "cpu"))
    rows = []
    for label, what, device, _, key in methods:
        median = results.get((label, device))
        if median is None:
            rows.append([label, what, "failed", None, None])
            continue
        ratio = best / median if best else None
        rows.append([label, what, f"{median:.3f}", fmt(audio_s / median, 1), fmt(ratio)])
        if key is not None:
            speeds[key].update(rtr=audio_s / median, vs_kaiser_best=ratio)
    table = markdown_table(["method", "what", "wall s (median)", "RTR ↑", "speed vs kaiser_best ↑"], rows, left={0, 1})
    table += "\n" + alternated(methods, results, low, source_rate, target_rate, repeats)
    files = file_to_file(ctx, shipped)
    gpu = "" if len(devices) > 1 else ("No GPU in this run: GPU real-time ratios need a CUDA machine (`make bench` "
                                         "adds them, batch 16, whenever one is present).\n")
    return (
        f"Input: {source}, made low-rate ({khz(source_rate)} kHz, {audio_s:g} s) with resampy `kaiser_best`. Each "
        f"method maps that waveform to {khz(target_rate)} kHz in this process: classical methods from "
        "`audiosr.evaluation.comparison.BASELINES`, the networks through `audiosr.inference.upsampler.Upsampler` "
        "(rough upsampling with the recipe's `input_filter`, windowing, level normalisation, the network, band "
        "keeping: the whole path of `audiosr upsample`). "
        f"`audiosr.evaluation.comparison.time_method`: 1 warm-up call, then the median of {repeats} timed calls; RTR = "
        "seconds of audio / wall seconds. Networks are built from their configs with random weights (speed does "
        "not depend on the weights). MACs: multiply-accumulates of the generator on 1 s of input, counted by "
        "`torch.utils.flop_counter` (FLOPs / 2). The CPU runs use torch's threads "
        f"({threads} here, one per core, as `audiosr upsample` chooses) unless a row says otherwise; resampy is "
        "single-threaded. The shipped model's rows: `audiosr upsample` refines as many windows at once as it has "
        "threads, each on one torch thread (`Upsampler(workers=N)`).\n\n" + table + "\n" + gpu + files
    )


# `alternated`: rounds of one call of kaiser_best and one of each shipped-model row, in turn.
ALTERNATED_ROUNDS = 9


def alternated(methods: list, measured: dict, low, source_rate: int, target_rate: int, repeats: int) -> str:
    """The shipped model's rows against kaiser_best timed in alternation: the median over rounds of
    kaiser_best's time over the row's, each round one call of each (rows that failed in ``measured``
    are left out). On a machine whose speed drifts
    (other work, a CPU's clock), a ratio of two medians taken minutes apart moves with the drift;
    a ratio taken call by call does not."""
    import time

    from audiosr.evaluation.comparison import BASELINES

    baseline = BASELINES["kaiser_best"]
    rows_of = [(label, fn) for label, _, device, fn, _ in methods
               if label.startswith("shipped model") and (label, device) in measured]
    ratios: dict[str, list[float]] = {label: [] for label, _ in rows_of}
    for _ in range(max(ALTERNATED_ROUNDS, repeats)):
        for label, fn in rows_of:
            start = time.perf_counter()
            baseline(low, source_rate, target_rate)
            reference = time.perf_counter() - start
            start = time.perf_counter()
            fn(low, source_rate, target_rate)
            ratios[label].append(reference / (time.perf_counter() - start))
    rows = [[label, fmt(float(np.median(r))), f"{min(r):.2f}-{max(r):.2f}"] for label, r in ratios.items()]
    return (f"\nThe shipped model's rows timed in alternation with `kaiser_best` ({max(ALTERNATED_ROUNDS, repeats)} "
            "rounds of one call each, the ratio per round; issue 38's bar is 3x):\n\n"
            + markdown_table(["method", "speed vs kaiser_best, median of rounds ↑", "range over rounds"], rows,
                             left={0}) + "\n")


def one_thread(fn, *args):
    """``fn(*args)`` with torch on one thread, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def file_to_file(ctx: Context, upsampler) -> str:
    """Every dev recording made a 22.05 kHz 16-bit WAV (untimed), then upsampled file to file in this
    process, read and write included: resampy ``kaiser_best`` against the shipped model's
    ``Upsampler.upsample_file`` (the work of ``audiosr upsample``, without its start-up)."""
    if ctx.dev is None:
        return "\nFile to file: skipped (no dev recordings).\n"
    import time

    import soundfile as sf

    from audiosr.dsp import output_length, resample

    source_rate, target_rate = upsampler.spec.source_rate, upsampler.spec.target_rate
    inputs = ctx.tmp / "speed-files" / "in"
    inputs.mkdir(parents=True, exist_ok=True)
    paths, seconds = [], 0.0
    for path in sorted(ctx.dev.root.rglob("*.flac")):
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        low = resample(audio.T, rate, source_rate, "kaiser_best", output_length(audio.shape[0], rate, source_rate))
        paths.append(inputs / f"{len(paths):03d}.wav")
        sf.write(paths[-1], low.T, source_rate, subtype="PCM_16")
        seconds += low.shape[-1] / source_rate

    def kaiser_best(src: Path, dst: Path) -> None:
        audio, _ = sf.read(str(src), dtype="float32", always_2d=True)
        high = resample(audio.T, source_rate, target_rate, "kaiser_best",
                        output_length(audio.shape[0], source_rate, target_rate))
        sf.write(dst, high.T.clip(-1, 1), target_rate, subtype="PCM_16")

    def model(src: Path, dst: Path) -> None:
        upsampler.upsample_file(src, dst, overwrite=True)

    kaiser_best(paths[0], ctx.tmp / "speed-files" / "warm.wav")  # resampy compiles its kernel once
    model(paths[0], ctx.tmp / "speed-files" / "warm.wav")
    # File by file in turn, so that a drift in the machine's speed falls on both alike.
    methods = {"resampy `kaiser_best`": kaiser_best, "shipped model": model}
    walls = dict.fromkeys(methods, 0.0)
    for name in methods:
        (ctx.tmp / "speed-files" / name.split()[-1].strip("`")).mkdir(exist_ok=True)
    for src in paths:
        for name, fn in methods.items():
            start = time.perf_counter()
            fn(src, ctx.tmp / "speed-files" / name.split()[-1].strip("`") / src.name)
            walls[name] += time.perf_counter() - start
    for name, wall in walls.items():
        log(f"  file to file, {name}: {wall:.1f} s for {len(paths)} files ({seconds / 60:.1f} min)")
    reference = walls["resampy `kaiser_best`"]
    rows = [[name, f"{wall:.2f}", fmt(seconds / wall, 1), fmt(reference / wall)] for name, wall in walls.items()]
    return (f"\nFile to file: every dev recording ({len(paths)} files, {seconds / 60:.1f} min, mono and stereo) as a "
            f"{khz(source_rate)} kHz 16-bit WAV, upsampled to {khz(target_rate)} kHz 16-bit WAV in this process, "
            "reading and writing included (one pass each, after one warm-up file, the two methods in turn file by "
            "file):\n\n"
            + markdown_table(["method", "wall s", "RTR ↑", "speed vs kaiser_best ↑"], rows, left={0}) + "\n")
