"""Speed: the whole low-rate -> high-rate path of every family and classical method, in one run."""

from __future__ import annotations

import copy

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
        "`torch.utils.flop_counter` (FLOPs / 2).\n\n" + table + "\n" + gpu
    )
