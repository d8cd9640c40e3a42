"""Stereo: does the invented band keep the input's image? Shared band against channels on their own.

    python -m bench --sections stereo                                   # inside the whole report
    python -m bench.stereo                                              # alone: generated cases only
    python -m bench.stereo --train-dir ../traindata --split val         # and build.sh's stereo files
    python -m bench.stereo --checkpoint RUN/checkpoints/best-*.ckpt     # another model (one for any input)

Generated cases (what the tests check, ``tests/test_stereo.py``): a bright harmonic source with
noise, 6 s at 44.1 kHz, as two channels related one way each (a delay of 3 or 30 samples, a pan
of -6 dB, half of an independent second source in one side), made 22.05 kHz by resampy
``kaiser_best`` and rounded to 16 bits. The shipped model upsamples each pair with its channels'
band shared (``Upsampler(shared_stereo=True)``, the default) and with each channel on its own
(``shared_stereo=False``, what it did before). Measured at 12-16 kHz, inside the invented band:
the magnitude-squared coherence of the two sides (Welch, 1024-point segments), the level of the
right side against the left, and the deepest notch of the mono fold-down (L + R) / 2 against the
sides' mean power (12-20 kHz, 4096-point segments), each beside the original's.

Real files (``--train-dir``): the stereo recordings of one split of build.sh's corpus (by
package, ``bench.corpus``), their first ``--seconds`` seconds: each channel's SNR and LSD below the
reference's own edge against the original, for both ways and for kaiser_best, with a bootstrap
interval of the shared minus the apart mean over channels, and the coherence error at 12-16 kHz.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.common import Context, fmt, log

TITLE = "11. Stereo: the invented band keeps the input's image"
RATE, LOW_RATE = 44100, 22050
BAND_HZ = (12000.0, 16000.0)
FOLD_HZ = (12000.0, 20000.0)


def source(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """A bright harmonic tone (vibrato, a slow swell) with noise: content up to the top of the band."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(220 * (1 + 0.02 * np.sin(2 * np.pi * 0.5 * t))) / RATE
    x = sum(np.sin(k * phase) / k ** 0.7 for k in range(1, 90))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t) ** 2) + 0.3 * rng.standard_normal(t.size)
    return (0.25 * x / np.abs(x).max()).astype(np.float32)


def cases() -> dict[str, np.ndarray]:
    """Full-band stereo pairs ``(2, T)`` at 44.1 kHz, by the relation of their channels."""
    x = source()
    return {"right = left delayed 3 samples": np.stack([x, np.roll(x, 3)]),
            "right = left delayed 30 samples": np.stack([x, np.roll(x, 30)]),
            "right = left at -6 dB (pan)": np.stack([x, 0.5 * x]),
            "right = 0.7 left + 0.7 another source": np.stack([x, 0.7 * x + 0.7 * source(seed=7)])}


def low_16bit(full: np.ndarray) -> np.ndarray:
    """``(C, T)`` at 44.1 kHz -> 22.05 kHz by ``kaiser_best``, on the 16-bit grid."""
    from audiosr.dsp import output_length, resample

    low = resample(full, RATE, LOW_RATE, "kaiser_best", output_length(full.shape[-1], RATE, LOW_RATE))
    return (np.round(np.clip(low, -1, 1) * 32767) / 32767).astype(np.float32)


def coherence(pair: np.ndarray, band: tuple[float, float] = BAND_HZ) -> float:
    from scipy.signal import coherence as msc

    freqs, values = msc(pair[0], pair[1], RATE, nperseg=1024)
    inside = (freqs >= band[0]) & (freqs < band[1])
    return float(values[inside].mean())


def band_db(x: np.ndarray, band: tuple[float, float] = BAND_HZ) -> float:
    from scipy.signal import welch

    freqs, power = welch(x, RATE, nperseg=1024)
    inside = (freqs >= band[0]) & (freqs < band[1])
    return float(10 * np.log10(power[inside].mean() + 1e-30))


def fold_down_notch_db(pair: np.ndarray, band: tuple[float, float] = FOLD_HZ) -> float:
    """The deepest dip of ``(L + R) / 2`` against the sides' mean power, in dB (0: none)."""
    from scipy.signal import welch

    freqs, mono = welch(pair.mean(axis=0), RATE, nperseg=4096)
    _, sides = welch(pair, RATE, nperseg=4096)
    inside = (freqs >= band[0]) & (freqs < band[1])
    return float(10 * np.log10((mono[inside] / (sides.mean(axis=0)[inside] + 1e-30)).min() + 1e-30))


def upsamplers(checkpoint: Path | None = None):
    """The model (the shipped one, or ``checkpoint``) with its channels' band shared and apart."""
    from audiosr.inference.upsampler import Upsampler

    quiet = {"device": "cpu", "notice": lambda _: None}
    return {"shared band": Upsampler.from_checkpoint(checkpoint, **quiet),
            "channels apart": Upsampler.from_checkpoint(checkpoint, shared_stereo=False, **quiet)}


def generated_table(checkpoint: Path | None = None) -> str:
    from audiosr.evaluation.comparison import markdown_table

    ways = upsamplers(checkpoint)
    rows = []
    for name, full in cases().items():
        low = low_16bit(full)
        outputs = {"original": full, **{way: u.upsample(low, LOW_RATE) for way, u in ways.items()}}
        for way, pair in outputs.items():
            rows.append([name, way, fmt(coherence(pair)), f"{band_db(pair[1]) - band_db(pair[0]):+.1f}",
                         f"{fold_down_notch_db(pair):+.1f}"])
        log(f"  stereo: {name}: coherence {coherence(full):.2f} -> shared {rows[-2][2]}, apart {rows[-1][2]}")
    return markdown_table(["case", "version", "L/R coherence 12-16 kHz ↑", "right - left, 12-16 kHz (dB)",
                           "deepest fold-down notch 12-20 kHz (dB)"], rows, left={0, 1})


def real_files(paths: list[Path], seconds: float, checkpoint: Path | None = None) -> str:
    """Each channel of each stereo file, both ways and kaiser_best: SNR, LSD below the reference's edge."""
    import torch

    import soundfile as sf

    from audiosr.data.recordings import manifest_edges
    from audiosr.dsp import resample
    from audiosr.evaluation.comparison import BASELINES, Comparison, markdown_table
    from audiosr.evaluation.metrics import lsd_below, snr
    from audiosr.evaluation.spread import bootstrap_interval

    ways = upsamplers(checkpoint)
    comparison = Comparison(LOW_RATE, RATE)
    scores: dict[str, dict[str, list[float]]] = {w: {"snr": [], "lsd": [], "coh": []}
                                                 for w in [*ways, "kaiser_best"]}
    edges = manifest_edges(paths)
    for i, path in enumerate(paths):
        info = sf.info(str(path))
        full = sf.read(str(path), frames=int(seconds * info.samplerate), dtype="float32", always_2d=True)[0].T
        if info.samplerate != RATE:
            full = resample(full, info.samplerate, RATE, "kaiser_best")
        known = edges.get(path.resolve())
        edge = comparison.reference_edge(full, known)
        low = low_16bit(full)
        outputs = {way: u.upsample(low, LOW_RATE) for way, u in ways.items()}
        outputs["kaiser_best"] = BASELINES["kaiser_best"](low, LOW_RATE, RATE)
        for way, out in outputs.items():
            out = out[:, : full.shape[-1]]
            for c in range(full.shape[0]):
                estimate, target = torch.from_numpy(np.ascontiguousarray(out[c])), torch.from_numpy(full[c])
                scores[way]["snr"].append(float(snr(estimate, target)))
                scores[way]["lsd"].append(float(lsd_below(estimate, target, RATE, edge)))
            scores[way]["coh"].append(abs(coherence(out) - coherence(full)))
        log(f"  stereo: {i + 1}/{len(paths)} {path.name}")
    rows = []
    for way, s in scores.items():
        rows.append([way, len(s["snr"]), fmt(np.mean(s["snr"])), fmt(np.mean(s["lsd"])), fmt(np.mean(s["coh"]))])
    snr_ci = bootstrap_interval(scores["shared band"]["snr"], scores["channels apart"]["snr"])
    lsd_ci = bootstrap_interval(scores["shared band"]["lsd"], scores["channels apart"]["lsd"])
    table = markdown_table(["version", "channels", "SNR (dB) ↑", "LSD < ref edge ↓", "|coherence error| 12-16 kHz ↓"],
                           rows, left={0})
    return (f"{table}\nShared minus apart, 95 % bootstrap interval over channels: SNR [{snr_ci[0]:+.2f}, "
            f"{snr_ci[1]:+.2f}] dB, LSD below the reference's edge [{lsd_ci[0]:+.3f}, {lsd_ci[1]:+.3f}].\n")


def run(ctx: Context) -> str:
    return (__doc__.split("\n\n", 2)[2].split("\n\nReal files")[0] + "\n\n" + generated_table() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stereo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-dir", type=Path, help="build.sh's output folder: also score its stereo files")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--seconds", type=float, default=20.0, help="of each real file (default %(default)s)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a model other than the shipped one (a checkpoint or generator file; e.g. one for any input)")
    args = parser.parse_args(argv)
    print(generated_table(args.checkpoint))
    if args.train_dir is not None:
        import soundfile as sf

        from bench.corpus import corpus_split

        corpus = corpus_split(args.train_dir.resolve())
        if corpus is None:
            parser.error(f"no build.sh corpus at {args.train_dir}")
        files = [p for p in getattr(corpus, args.split) if sf.info(str(p)).channels == 2]
        log(f"{len(files)} stereo files in the {args.split} split")
        print(real_files(files, args.seconds, args.checkpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
