"""Train the default model that ships with audiosr, test it, and write its model card.

    python -m bench.default_model                       # 60 minutes of training on 2 CPU cores
    python -m bench.default_model --minutes 5 --output /tmp/card   # a trial, nothing overwritten

It trains the CPU-sized magnitude + phase recipe (``configs/magphase.yaml`` +
``configs/overlays/spectral-cpu.yaml``) with ``audiosr fit`` on the training split of the dev
recordings (``../shared/data/dev``) for a wall-time budget, tests its ``best`` checkpoint with
``audiosr test`` on the held-out split against every classical method (and on the split
degraded other ways), then writes ``audiosr/pretrained/default.pt`` (the generator alone)
and ``audiosr/pretrained/MODEL_CARD.md`` (data and attribution, budget, config, tables).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

from audiosr.evaluation.comparison import markdown_table
from bench.common import DEFAULT_DEV_DIR, REPO, Context, command_line, dev_split, khz, log, machine, portable
from bench.quality import DEGRADATIONS, NO_VISQOL, bar, split_table
from bench.runs import by_method, test_checkpoint, train_and_test

CONFIGS = ["magphase.yaml", "overlays/spectral-cpu.yaml"]
PRETRAINED = REPO / "audiosr" / "pretrained"


def attribution(dev_dir: Path, files: list[Path]) -> str:
    """One line per training recording: its origin and licence, from the dev set's MANIFEST.tsv."""
    with (dev_dir / "MANIFEST.tsv").open(newline="") as f:
        manifest = {row["path"]: row for row in csv.DictReader(f, delimiter="\t")}
    by_origin: dict[tuple[str, str], list[str]] = {}
    for path in files:
        row = manifest[path.relative_to(dev_dir).as_posix()]
        by_origin.setdefault((row["origin"], row["license"]), []).append(path.name)
    lines = [f"- {origin} ({license}): {', '.join(sorted(names))}" for (origin, license), names in sorted(by_origin.items())]
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    keys = ["method", "snr", "lsd", "lsd_hf", "lsd_lf", "visqol", "rtr"]
    return markdown_table(["method", "SNR (dB) ↑", "LSD ↓", "LSD-HF ↓", "LSD-LF ↓", "ViSQOL ↑", "RTR ↑"],
                          [[r.get(k) for k in keys] for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.default_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget (default %(default)s)")
    parser.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR)
    parser.add_argument("--output", type=Path, default=PRETRAINED, help="where default.pt and MODEL_CARD.md go")
    args = parser.parse_args(argv)
    dev = dev_split(args.dev_dir.resolve())
    if dev is None:
        parser.error(f"the dev recordings are not at {args.dev_dir}")
    tmp = Path(tempfile.mkdtemp(prefix="audiosr-default-"))
    ctx = Context(SimpleNamespace(budget=args.minutes, dev_dir=args.dev_dir), tmp, dev)
    trained = train_and_test(ctx, "default", CONFIGS, minutes=args.minutes)
    if not trained.ok:
        log(f"training or test failed (runs kept in {tmp}): {ctx.problems}\n{trained.fit.tail(30)}")
        return 1
    robustness = []
    for index, (label, extra) in enumerate(DEGRADATIONS[1:4]):
        _, rows = test_checkpoint(ctx, trained, f"default-{index}", [*extra, *NO_VISQOL])
        found = by_method(rows)
        if "model" in found:
            robustness.append([label, found["model"]["snr"], found["model"]["lsd"], found["kaiser_best"]["snr"],
                               found["kaiser_best"]["lsd"], found["soxr_vhq"]["snr"], found["soxr_vhq"]["lsd"]])
    write(args, ctx, trained, robustness)
    shutil.rmtree(tmp, ignore_errors=True)  # kept above when something failed, for a look
    return 0


def write(args: argparse.Namespace, ctx: Context, trained, robustness: list[list]) -> None:
    from audiosr.models.checkpoint import load_generator, save_generator

    generator = load_generator(trained.checkpoint)
    args.output.mkdir(parents=True, exist_ok=True)
    path = save_generator(args.output / "default.pt", generator, extra={"trained_steps": trained.curve[-1]["step"]})
    spec = generator.spec
    steps = trained.curve[-1]["step"] if trained.curve else "?"
    best_step = trained.checkpoint.stem.split("=")[-1]
    above = f"{spec.source_rate / 2000:.0f}"  # the input's Nyquist frequency
    kept = (f"It keeps the input's own band below {spec.keep_band[0] * spec.source_rate / 2000:.1f} kHz unchanged."
            if spec.keep_band else "It does not keep the input's own band: the network makes the whole output.")
    card = f"""# The default model of audiosr

`audiosr upsample IN... --output_dir OUT` and `Upsampler.from_checkpoint()` use this model when
no checkpoint is given. It is small (`default.pt`, {path.stat().st_size / 2**20:.1f} MiB) and runs
many times faster than real time on 2 CPU cores (the speed of this recipe against resampy:
`bench/RESULTS.md`, section 1, "magnitude + phase, CPU-sized").

## What it is

- {spec.describe()}.
- {generator.network.num_parameters():,} parameters (`{spec.network['class_path']}` {spec.network['init_args']}).
- Input: audio at {spec.source_rate} Hz (other rates below {spec.target_rate} Hz are resampled first;
  see `audiosr upsample --help`); output: {spec.target_rate} Hz. Runs in float32.

## How it was trained

- Recipe: `configs/{CONFIGS[0]}` + `configs/{CONFIGS[1]}` (random low-pass degradations of the
  training crops, soxr VHQ rough input, multi-resolution STFT + negative-SNR loss, AdamW 2e-3
  decaying by 0.9998 per step).
- Budget: {args.minutes:g} minutes of `audiosr fit` on 2 CPU cores ({steps} steps, batch 12 x 0.75 s);
  the checkpoint is the one with the best validation score (`val/score`, step {best_step}).
- Trained by `python -m bench.default_model --minutes {args.minutes:g}` on {machine()['CPU (/proc/cpuinfo model name)']},
  which ran:

```
{command_line(trained.fit_cmd)}
{command_line(trained.test_cmd)}
```

## Data and attribution

The dev recordings of the project (real speech, music and sounds, 44.1 kHz), split as below.
Only the training split was used for training; validation picked the checkpoint; the test
split was never seen before the test.

{split_table(ctx.dev)}
The training recordings, with their origin and licence (changes: downmixed to mono, resampled
to 44.1 kHz where needed, re-encoded as 16-bit FLAC):

{attribution(args.dev_dir.resolve(), ctx.dev.train)}

Licences: CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/), CC-BY-3.0
(https://creativecommons.org/licenses/by/3.0/), CC0-1.0, public domain. The VCTK corpus is by
Christophe Veaux, Junichi Yamagishi and Kirsten MacDonald (CSTR, University of Edinburgh).

## Results on the held-out recordings

`audiosr test` on the 45 test files, whole, {khz(spec.source_rate)} kHz input made with resampy `kaiser_best`; every
method measured in the same run (LSD: log10 power, STFT 2048/512; ViSQOL audio mode at 48 kHz):

{table(trained.rows)}
Against `kaiser_best` (the project's quality bar: SNR at most 1 dB below it and LSD at most 0.6 of
its LSD): {bar(trained)}.

The same test split made low-rate in other ways (`--data.test_degradation`):

{markdown_table(["test input made by", "model SNR ↑", "model LSD ↓", "kaiser_best SNR", "kaiser_best LSD",
                 "soxr VHQ SNR", "soxr VHQ LSD"], robustness)}
## Limits

- Trained on 10 minutes of audio: mostly read English speech, some music and environmental sound. It
  has not heard most instruments, genres, languages or recording conditions; train your own for them
  (`audiosr fit --config configs/magphase.yaml --config configs/overlays/spectral-cpu.yaml` with your data).
- It invents the missing band from what the input has: the band above {above} kHz is plausible, not the
  original. {kept}
"""
    (args.output / "MODEL_CARD.md").write_text(portable(card, args.dev_dir, ctx.tmp))
    log(f"wrote {path} and {args.output / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
