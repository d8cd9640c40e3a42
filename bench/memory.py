"""`audiosr upsample` on long files: peak memory and speed, file to file, against resampy kaiser_best."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from audiosr.evaluation.comparison import markdown_table
from bench.common import (
    Context, Measured, audiosr_command, build, command_line, fmt, khz, log, read_mono, run_measured, subprocess_env,
)

TITLE = "8. `audiosr upsample`: memory and speed on long files"
# IN OUT RATE: the file resampled to RATE, whole.
KAISER_BEST_SCRIPT = (
    "import sys, soundfile as sf, resampy; x, r = sf.read(sys.argv[1], dtype='float32'); t = int(sys.argv[3]); "
    "sf.write(sys.argv[2], resampy.resample(x, r, t, filter='kaiser_best'), t, subtype='PCM_16')"
)
SOXR_SCRIPT = (
    "import sys, soundfile as sf, soxr; x, r = sf.read(sys.argv[1], dtype='float32'); t = int(sys.argv[3]); "
    "sf.write(sys.argv[2], soxr.resample(x, r, t, quality='VHQ'), t, subtype='PCM_16')"
)


def material(ctx: Context, rate: int) -> tuple[np.ndarray, str]:
    """Minutes of mono audio at ``rate`` to tile into long files (the dev music and sounds if present)."""
    from audiosr.dsp import resample

    if ctx.dev is not None:
        parts = []
        for path in ctx.dev.train + ctx.dev.test:
            if not ctx.dev.rel(path).startswith("vctk/"):
                audio, found = read_mono(path)
                audio = resample(audio, found, rate, "soxr_vhq")
                parts.append(0.9 * audio / max(float(np.abs(audio).max()), 1e-9))
        return np.concatenate(parts), f"the dev music and sound recordings ({len(parts)} files) at {khz(rate)} kHz"
    from audiosr.data.synthetic import synthesize

    return synthesize(7, rate, 60.0), "60 s of the built-in synthetic corpus"


def write_long_file(path: Path, audio: np.ndarray, rate: int, minutes: float) -> None:
    import soundfile as sf

    total = int(round(minutes * 60 * rate))
    with sf.SoundFile(str(path), "w", rate, 1, "PCM_16", format="WAV") as f:
        written = 0
        while written < total:
            position = written % audio.size
            n = min(total - written, audio.size - position, rate * 60)
            f.write(audio[position:position + n])
            written += n


def model_checkpoint(ctx: Context, work: Path) -> tuple[Path, str]:
    """The shipped default model if this installation has one, else a random CPU-sized magnitude + phase one."""
    from audiosr.models.checkpoint import save_generator

    try:
        from audiosr.pretrained import default_model_path

        return default_model_path(), "the shipped default model"
    except FileNotFoundError:
        module, _ = build(["magphase.yaml", "overlays/spectral-cpu.yaml"])
        return save_generator(work / "random.pt", module.generator), "a CPU-sized magnitude + phase model (random weights)"


def run(ctx: Context) -> str:
    from audiosr.models.checkpoint import read_spec

    work = ctx.tmp / "memory"
    work.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(ctx.cache_dir)
    checkpoint, model_note = model_checkpoint(ctx, work)
    # The rates the model was trained for: its data module's, stored in the checkpoint.
    spec = read_spec(checkpoint)
    source_rate, target_rate = spec.source_rate, spec.target_rate
    audio, audio_note = material(ctx, source_rate)
    inputs = {}
    for minutes in ctx.args.memory_minutes:
        inputs[minutes] = work / f"in-{minutes:g}min.wav"
        write_long_file(inputs[minutes], audio, source_rate, minutes)

    def measure(label: str, cmd: list[str], name: str) -> Measured:
        m = run_measured(cmd, work / f"{name}.log", cwd=work, env=env, label=label)
        log(f"  {label}: exit {m.returncode}, {m.wall_s:.1f} s, peak RSS {m.max_rss_mib:.0f} MiB")
        if m.returncode != 0:
            ctx.problems.append(f"{label}: exit {m.returncode}")
        return m

    floor = measure("imports only", [sys.executable, "-c", "import torch, soundfile, soxr, audiosr.inference.upsampler"], "imports")
    rows = [["Python + torch + audiosr imports only", "–", f"{floor.max_rss_mib:.0f}", f"{floor.wall_s:.1f}", "–"]]
    commands = [floor.cmd]
    runs = {}
    for minutes, path in inputs.items():
        out = work / f"out-{minutes:g}"
        cmd = [*audiosr_command(), "upsample", "--ckpt_path", str(checkpoint), str(path), "--output_dir", str(out),
               "--device", "cpu"]
        runs[minutes] = m = measure(f"audiosr upsample, {minutes:g} min", cmd, f"upsample-{minutes:g}")
        rows.append(["`audiosr upsample`", f"{minutes:g} min", f"{m.max_rss_mib:.0f}", f"{m.wall_s:.1f}",
                     fmt(minutes * 60 / m.wall_s, 1)])
        commands.append(cmd)
        shutil.rmtree(out, ignore_errors=True)
    shortest = min(inputs)
    classical = []
    for label, script in (("resampy kaiser_best", KAISER_BEST_SCRIPT), ("soxr VHQ", SOXR_SCRIPT)):
        cmd = [sys.executable, "-c", script, str(inputs[shortest]), str(work / "classical.wav"), str(target_rate)]
        m = measure(f"{label}, {shortest:g} min", cmd, label.replace(" ", "-"))
        classical.append((label, m))
        commands.append(cmd)
        rows.append([f"{label}, file to file (`python -c`, whole file in memory)", f"{shortest:g} min",
                     f"{m.max_rss_mib:.0f}", f"{m.wall_s:.1f}", fmt(shortest * 60 / m.wall_s, 1)])
    ratio = classical[0][1].wall_s / runs[shortest].wall_s
    return (
        f"Inputs: mono {khz(source_rate)} kHz 16-bit WAV files of {', '.join(f'{m:g}' for m in inputs)} minutes, "
        f"tiled from {audio_note}, in a temporary folder. Model: {model_note}. Each command runs as its own process, started "
        "from a small launcher (`bench/common.py`), so peak RSS (`ru_maxrss`) is that command's alone; wall time "
        "includes start-up and imports.\n\n"
        + markdown_table(["command", "input", "peak RSS MiB", "wall s", "RTR (whole command)"], rows, left={0, 1})
        + f"\nA flat peak RSS from {shortest:g} to {max(inputs):g} minutes means memory does not grow with duration "
        f"(the {max(inputs):g}-minute output alone would take {max(inputs) * 60 * target_rate * 4 / 2**20:.0f} MiB as "
        f"float32). `audiosr upsample` against resampy `kaiser_best`, whole commands on the same {shortest:g}-minute "
        f"file: **{ratio:.2f}x** its speed (above 1: faster).\n\n"
        "```\n" + "\n".join(command_line(c) for c in commands) + "\n```\n"
    )
