"""audiosr benchmarks: one run measures everything and writes bench/RESULTS.md (`make bench`).

    python -m bench                                      # everything (about 90 minutes on 2 quiet cores)
    python -m bench --sections speed,loader,train        # the quick ones (minutes)
    python -m bench --budget 2 --output /tmp/R.md        # a short trial of every section

Sections (``--sections``, comma-separated, in this order; default all):

* ``speed``        real-time ratio of the whole path and MACs per second of audio, every family
                   (CPU-sized and reference) and every classical method, in one run;
* ``loader``       training pairs/s of the data module (reference and spectral recipes);
* ``train``        training steps/s of every family through the real LightningModule;
* ``families``     equal wall-time training of each family on the dev recordings, tested on the
                   held-out ones, with quality-against-time curves (``bench/families.png``);
* ``ablation``     the known band kept or not, same budget;
* ``degradations`` the best family on the test split degraded four different ways;
* ``gan``          each generator with and without adversarial training, same budget;
* ``memory``       ``audiosr upsample`` on long files: peak memory and speed against kaiser_best;
* ``precision``    (GPU only) each reference recipe trained in its own precision (bf16-mixed) and in
                   fp32 from one seed: losses, held-out scores, step times; bf16 / fp16 inference;
* ``nothing-to-add`` the shipped model on originals band-limited below the input's Nyquist frequency
                   and on a tone just under the edge: what it adds there and what that costs against
                   kaiser_best (alone: ``python -m bench.nothing_to_add``);
* ``stereo``       generated stereo pairs (delays, a pan, a partly coherent pair): the invented band's
                   coherence, level and fold-down, shared against channels on their own (alone, with
                   build.sh's stereo files too: ``python -m bench.stereo --train-dir DIR``).

Every figure in the report is measured by this script in the same run; speeds are given as
ratios to baselines measured alongside, because the machine may be noisy.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from audiosr.evaluation.comparison import markdown_table
from bench import loader, memory, nothing_to_add, precision, quality, speed, stereo, training
from bench.common import DEFAULT_DEV_DIR, REPO, Context, dev_split, loadavg, log, machine, portable, script_command

SECTIONS = {
    "speed": speed,
    "loader": loader,
    "train": training,
    "families": quality.Families,
    "ablation": quality.Ablation,
    "degradations": quality.Degradations,
    "gan": quality.Gan,
    "memory": memory,
    "precision": precision,
    "nothing-to-add": nothing_to_add,
    "stereo": stereo,
}


@dataclass
class Section:
    name: str
    title: str
    markdown: str = ""
    seconds: float = 0.0
    status: str = "ok"


def render(info: dict, sections: list[Section], started: float, done: bool) -> str:
    lines = [
        "# audiosr benchmarks", "",
        "Every figure below was measured by `python -m bench` (`make bench`) in one run, with this command "
        "(from the repository root):", "", "```", script_command(), "```", "",
        "Speeds are also given as ratios to baselines measured in the same run: absolute figures move with the "
        "machine's load, ratios much less. `$TMP` stands for the run's temporary folder, deleted at the end."
        + ("" if done else " **(run in progress: partial report)**"), "",
        "## Machine", "", markdown_table(["", ""], [[k, v] for k, v in info.items()], left={0, 1}),
    ]
    for s in sections:
        lines += [f"## {s.title}", "", f"*Section runtime {s.seconds:.0f} s; status: {s.status}.*", "",
                  s.markdown.rstrip(), ""]
    if done:
        rows = [[s.title, f"{s.seconds:.0f}", s.status] for s in sections]
        rows.append(["total", f"{time.perf_counter() - started:.0f}", ""])
        lines += ["## Runtime of this run", "", markdown_table(["section", "seconds", "status"], rows, left={0, 2}),
                  f"Load average at the end (1 / 5 / 15 min): {loadavg()}.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset (default: all)")
    parser.add_argument("--budget", type=float, default=5.0,
                        help="minutes of training per recipe in families/ablation/gan (default %(default)s)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "RESULTS.md", help="report (default %(default)s)")
    parser.add_argument("--figures", type=Path, default=REPO / "bench", help="where PNG figures go (default %(default)s)")
    parser.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR, help="dev recordings (default %(default)s)")
    parser.add_argument("--speed-seconds", type=float, default=30.0, help="speed: seconds of audio (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="speed: timed calls per method, median (default %(default)s)")
    parser.add_argument("--loader-batches", type=int, default=20, help="loader: timed batches (default %(default)s)")
    parser.add_argument("--train-steps", type=int, default=10, help="train: timed steps per family (default %(default)s)")
    parser.add_argument("--precision-steps", type=int, default=300, help="precision: training steps per run (default %(default)s)")
    parser.add_argument("--memory-minutes", default="1,60", help="memory: input lengths in minutes (default %(default)s)")
    parser.add_argument("--nothing-seconds", type=float, default=8.0,
                        help="nothing-to-add: seconds of each recording (default %(default)s)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary folder (runs, long files)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in chosen]
    args.memory_minutes = sorted({float(m) for m in args.memory_minutes.split(",") if m.strip()})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="audiosr-bench-"))
    ctx = Context(args, tmp, dev_split(args.dev_dir.resolve()))
    log(f"sections: {', '.join(args.sections)}; report -> {args.output}; temporary folder {tmp}")
    if ctx.dev is None:
        log(f"dev recordings not found at {args.dev_dir}: sections that need them are skipped")
    sections: list[Section] = []
    failed = False
    try:
        for name in args.sections:
            module = SECTIONS[name]
            section = Section(name, module.TITLE)
            log(f"== {section.title}")
            start = time.perf_counter()
            ctx.problems, ctx.skipped = [], ""
            try:
                section.markdown = module.run(ctx)
                section.status = ctx.skipped or ("failed: " + "; ".join(ctx.problems) if ctx.problems else "ok")
                failed |= bool(ctx.problems)
            except Exception:
                failed = True
                section.status = "failed"
                section.markdown = f"**This section failed:**\n\n```\n{traceback.format_exc()}\n```\n"
                traceback.print_exc()
            section.seconds = time.perf_counter() - start
            sections.append(section)
            log(f"== {name} done in {section.seconds:.0f} s ({section.status})")
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(portable(render(info, sections, started, done=False), args.dev_dir, tmp))
        args.output.write_text(portable(render(info, sections, started, done=True), args.dev_dir, tmp))
        log(f"report written to {args.output}")
    finally:
        if args.keep_temp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
