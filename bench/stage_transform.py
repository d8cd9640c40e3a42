"""The output stage in frames against the FIR stage, on the shipped model and every dev recording.

    python -m bench.stage_transform [--dev-dir ../shared/data/dev] [--output bench/STAGE-TRANSFORM.md]

``transform: stft`` (``audiosr.output_stage``) applies the band keeping, the level ceiling and the
invented band's gain as weights on one pair of short-time transforms instead of FIR filters over each
window. It changes the output on purpose, so before the shipped model is switched to it this measures
by how much: each dev recording made a 22.05 kHz 16-bit file with resampy ``kaiser_best`` (as the
card's tests make them), upsampled by the shipped model with each stage, and scored against the
original (SNR; LSD over the whole band and below each recording's own edge), per channel. The
difference between the two outputs is given relative to the output (dB), per file and at its worst.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_DEV_DIR, REPO, command_line, dev_split, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR)
    parser.add_argument("--only", default="", help="comma-separated parts of file names (a quick look at a few)")
    parser.add_argument("--store", action="store_true",
                        help="then write the shipped model (audiosr/pretrained/default.pt) with transform: stft")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "STAGE-TRANSFORM.md")
    args = parser.parse_args(argv)

    import soundfile as sf
    import torch

    from audiosr.band import content_edge
    from audiosr.dsp import output_length, resample
    from audiosr.evaluation.comparison import markdown_table
    from audiosr.evaluation.metrics import lsd, lsd_below, snr
    from audiosr.inference.upsampler import Upsampler

    dev = dev_split(args.dev_dir.resolve())
    if dev is None:
        raise SystemExit(f"the dev recordings are not at {args.dev_dir}")
    stages = {"fir": Upsampler.from_checkpoint(device="cpu", output_stage={"transform": "fir"}, notice=lambda _: None),
              "stft": Upsampler.from_checkpoint(device="cpu", output_stage={"transform": "stft"}, notice=lambda _: None)}
    source_rate, target_rate = 22050, stages["fir"].target_rate
    rows, scores, differences, names = [], {name: [] for name in stages}, [], []
    seconds = {name: 0.0 for name in stages}
    paths = sorted(args.dev_dir.resolve().rglob("*.flac"))
    if args.only:
        paths = [p for p in paths if any(name in str(p) for name in args.only.split(","))]
    for path in paths:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        reference = audio.T if rate == target_rate else resample(audio.T, rate, target_rate, "soxr_vhq",
                                                                 output_length(audio.shape[0], rate, target_rate))
        low = resample(reference, target_rate, source_rate, "kaiser_best",
                       output_length(reference.shape[-1], target_rate, source_rate))
        low = np.round(np.clip(low, -1, 1) * 32767) / 32767  # a 16-bit file, as users have them
        outputs = {}
        for name, upsampler in stages.items():
            start = time.process_time()
            outputs[name] = upsampler.upsample(low.astype(np.float32), source_rate)[:, : reference.shape[-1]]
            seconds[name] += time.process_time() - start
        ref = torch.from_numpy(np.ascontiguousarray(reference))
        edges = content_edge(ref, target_rate, 3000.0, target_rate / 2)
        for name, out in outputs.items():
            estimate = torch.from_numpy(np.ascontiguousarray(out))
            scores[name].append(np.stack([snr(estimate, ref, 60.0).numpy(), lsd(estimate, ref).numpy(),
                                          lsd_below(estimate, ref, target_rate, edges).numpy()], axis=-1))
        gap = outputs["stft"] - outputs["fir"]
        relative = 10 * np.log10(np.sum(gap ** 2) / max(np.sum(outputs["fir"] ** 2), 1e-30) + 1e-30)
        differences.append(relative)
        change = scores["stft"][-1] - scores["fir"][-1]
        names.extend(f"{path.relative_to(args.dev_dir.resolve())}" for _ in range(change.shape[0]))
        log(f"  {path.relative_to(args.dev_dir.resolve())}: stft - fir {relative:.1f} dB; SNR {change[:, 0].max():+.3f} "
            f"{change[:, 0].min():+.3f} dB, LSD {change[:, 1].max():+.3f} {change[:, 1].min():+.3f}")
    fir, frames = np.concatenate(scores["fir"]), np.concatenate(scores["stft"])
    delta = frames - fir
    for i, metric in enumerate(("SNR (dB)", "LSD", "LSD < ref edge")):
        rows.append([metric, f"{fir[:, i].mean():.3f}", f"{frames[:, i].mean():.3f}", f"{delta[:, i].mean():+.4f}",
                     f"{np.abs(delta[:, i]).max():.4f}"])
    stage_ms = stage_times(stages)
    worst = [int(np.abs(delta[:, i]).argmax()) for i in range(3)]
    largest = "; ".join(f"{metric} {delta[w, i]:+.3f} on `{names[w]}` (FIR stage: {fir[w, i]:.2f})"
                        for i, (metric, w) in enumerate(zip(("SNR", "LSD", "LSD < ref edge"), worst)))
    table = markdown_table(["metric (mean over channels)", "FIR stage", "stage in frames", "mean difference",
                            "largest difference on one channel"], rows, left={0})
    text = (
        "# The output stage in frames against the FIR stage (the shipped model)\n\n"
        f"Measured by `{command_line(['python', '-m', 'bench.stage_transform', *(argv or [])])}` "
        f"({time.strftime('%Y-%m-%d')}): {len(paths)} dev recordings ({fir.shape[0]} channels), each made a "
        "22.05 kHz 16-bit file with resampy `kaiser_best`, upsampled by the shipped model (`default.pt`) with "
        "its stored settings and each `transform`, and scored against the original.\n\n" + table + "\n\n"
        f"The two outputs differ by {max(differences):.1f} dB relative to the output at most (one file), "
        f"{float(np.median(differences)):.1f} dB in the median file. CPU seconds of the whole path over all files "
        f"(one process, the machine's threads): FIR stage {seconds['fir']:.1f}, stage in frames {seconds['stft']:.1f}. "
        f"The largest changes on one channel: {largest}.\n\n"
        f"The stage alone on one 6.5-s window at 44.1 kHz (its edge at 10.2 kHz), one torch thread, median of "
        f"{TIMED_CALLS} calls: FIR stage {stage_ms['fir']:.1f} ms, stage in frames {stage_ms['stft']:.1f} ms.\n"
    )
    args.output.write_text(text)
    print(text)
    if args.store:
        store_in_frames()
    return 0


TIMED_CALLS = 7


def stage_times(stages: dict) -> dict[str, float]:
    """Milliseconds the output stage alone takes on one window, per transform (one torch thread)."""
    import torch

    torch.manual_seed(0)
    length = round(6.5 * 44_100)
    rough, estimate, edges = torch.randn(1, 1, length) * 0.1, torch.randn(1, 1, length) * 0.1, torch.tensor([10_200.0])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = {}
        for name, upsampler in stages.items():
            stage = upsampler.spec.stage
            calls = []
            for _ in range(TIMED_CALLS + 1):
                start = time.perf_counter()
                stage(rough, estimate, 44_100, 11_025.0, False, edges)
                calls.append(time.perf_counter() - start)
            times[name] = 1000 * float(np.median(calls[1:]))
        return times
    finally:
        torch.set_num_threads(before)


def store_in_frames() -> None:
    """The shipped model's file again, its weights and notes as they are, its output stage in frames."""
    import torch

    from audiosr.models.checkpoint import load_generator, save_generator
    from audiosr.pretrained import default_model_path

    path = default_model_path()
    notes = {k: v for k, v in torch.load(path, map_location="cpu", weights_only=False).items()
             if k not in ("audiosr", "state_dict", "format")}
    generator = load_generator(path)
    generator.spec = generator.spec.with_stage(transform="stft")
    save_generator(path, generator, extra=notes)
    log(f"wrote {path}: {generator.spec.describe()}")


if __name__ == "__main__":
    raise SystemExit(main())
