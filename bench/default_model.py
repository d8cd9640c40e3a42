"""Train the default model that ships with audiosr, test it, and write its model card.

    bash ../shared/data/train/build.sh ../traindata               # about 5 hours of real audio, 3-4 min
    python -m bench.default_model --train-dir ../traindata        # 90 minutes of training on 2 CPU cores
    python -m bench.default_model --train-dir DIR --minutes 5 --output /tmp/card   # a trial, nothing overwritten
    python -m bench.default_model --train-dir DIR --run-dir RUN   # test and describe a finished run
    python -m bench.default_model --train-dir DIR --generator audiosr/pretrained/default.pt   # recalibrate it

It trains the CPU-sized magnitude + phase recipe (``configs/magphase.yaml`` +
``configs/overlays/spectral-cpu.yaml``) with ``audiosr fit`` on ``build.sh``'s recordings (split by
package, ``bench.corpus``) together with the training split of the dev recordings
(``../shared/data/dev``), each category a fixed share of the crops. Every decision uses the
validation files alone: ``val/score`` picks the ``best`` checkpoint, and the calibration tests it
there at each level of the band above the input's edge (``--gains``; the output stage's
``invented_gain_db``, see ``audiosr.output_stage``) and keeps the one with the lowest mean LSD below
each reference's own edge (an encoder's cut is no truth above it; ties: the louder). Then, once,
``audiosr test`` on the test split nothing chose (the dev test split and the held-out packages of
``build.sh``), 16-bit inputs made by resampy ``kaiser_best`` and by a Chebyshev I low-pass, against
every classical method in the same runs, per category and per kind of reference (full band, cut
by an encoder, band-poor); then the ablation of the band keeping. It writes
``audiosr/pretrained/default.pt`` (the generator alone, its output stage included) and
``audiosr/pretrained/MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audiosr.evaluation.comparison import markdown_table
from audiosr.models.checkpoint import checkpoint_step
from bench.common import (
    DEFAULT_DEV_DIR, REPO, audiosr_module_command, bar_verdict, meets_bar, command_line, config_args, dev_split, khz, log, machine,
    portable, run_measured, subprocess_env,
)
from bench.corpus import CATEGORIES, DEFAULT_TRAIN_DIR, corpus_split

CONFIGS = ["magphase.yaml", "overlays/spectral-cpu.yaml"]
PRETRAINED = REPO / "audiosr" / "pretrained"
# The share of training crops per source (the corpus's categories, then the dev training split).
SHARES = {"speech": 0.3, "music": 0.3, "effects": 0.12, "ambiences": 0.13, "dev": 0.15}
CHEBYSHEV = ["--data.test_degradation", "audiosr.data.Lowpass", "--data.test_degradation.kind", "cheby1",
             "--data.test_degradation.order", "8", "--data.test_degradation.cutoff", "0.95",
             "--data.test_degradation.ripple_db", "0.05"]
NO_VISQOL = ["--report.visqol", "false"]
CLASSICAL = ("kaiser_fast", "kaiser_best", "soxr_vhq")
LABELS = {
    "dev": "dev test split, resampy kaiser_best",
    "dev-cheby": "dev test split, Chebyshev I (order 8, 0.05 dB, 0.95 x Nyquist)",
    "dev-mp3-64k": "dev test split, kaiser_best then MP3 at 64 kbps (configs/inputs/mp3-64k.yaml)",
    "dev-mp3-32k": "dev test split, kaiser_best then MP3 at 32 kbps (configs/inputs/mp3-32k.yaml)",
    "holdout": "held-out build.sh packages, resampy kaiser_best",
    "holdout-float": "held-out build.sh packages, resampy kaiser_best, float inputs (not 16-bit)",
    "fixed": "dev test split, fixed crossover 8.82-9.92 kHz",
    "none": "dev test split, no band keeping",
}
# The dev set's categories as the tables name them (its environmental sounds are "sounds").
DEV_CATEGORIES = {"speech": "speech", "music": "music", "env": "sounds"}
GAINS = "0,-3,-6"
STAGE = "--model.init_args.output_stage"
# A reference whose own edge (MANIFEST.tsv, else measured) lies below this was cut by an encoder.
FULL_BAND_HZ = 19_500.0


@dataclass
class Tested:
    label: str
    command: list[str]
    rows: list[dict] = field(default_factory=list)
    items: dict[str, list[dict]] = field(default_factory=dict)

    def row(self, method: str) -> dict | None:
        return next((r for r in self.rows if r["method"].removesuffix(" (model input)") == method
                     or (method == "model" and r["method"].startswith("audiosr "))), None)


def write_lists(folder: Path, dev, corpus) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    lists = {}

    def put(name: str, files: list[Path]) -> None:
        lists[name] = folder / f"{name}.txt"
        lists[name].write_text("".join(f"{p}\n" for p in files))

    for category in SHARES:
        if category != "dev":
            put(f"train-{category}", [p for p in corpus.train if corpus.category[p] == category])
    put("train-dev", dev.train)
    put("val", [*dev.val, *corpus.val])
    put("test", dev.test)
    put("holdout", corpus.test)
    return lists


def data_args(lists: dict[str, Path], test: str = "test") -> list[str]:
    sources = [*(lists[f"train-{c}"] for c in SHARES if c != "dev"), lists["train-dev"]]
    return ["--data.corpus", "audiosr.data.AudioFolders", "--data.corpus.train", f"[{','.join(map(str, sources))}]",
            "--data.corpus.train_shares", f"[{','.join(str(v) for v in SHARES.values())}]",
            "--data.corpus.val", f"[{lists['val']}]", "--data.corpus.test", f"[{lists[test]}]"]


def fit_command(lists: dict[str, Path], minutes: float, root: Path, steps: int | None = None) -> list[str]:
    """The training run: ``minutes`` of wall time, or ``steps`` optimizer steps with ``minutes`` as a cap
    (a step budget does not shrink when the machine is shared)."""
    seconds = int(round(minutes * 60))
    return [*audiosr_module_command(), "fit", *config_args(CONFIGS), *data_args(lists), "--experiment", "default",
            "--trainer.default_root_dir", str(root / "runs"), "--trainer.max_steps", str(steps or 1_000_000),
            "--trainer.max_time", f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root / "csv"),
            "--trainer.enable_progress_bar", "false"]


# The card's note on an output stage that runs in frames (audiosr.output_stage, transform).
FRAMES_NOTE = (" The output stage (keeping, ceiling, gain) runs as weights on one short-time transform "
               "(`transform: stft`); against the FIR stage it was measured with, on the dev recordings: "
               "`bench/STAGE-TRANSFORM.md`.")


def run_test(label: str, name: str, checkpoint: Path, lists: dict[str, Path], test: str, extra: list[str],
             tmp: Path, cache: Path, configs: list[str] = CONFIGS, kept_only: bool = False) -> Tested | None:
    """``audiosr test`` once in ``tmp/tests/name``; a finished run of the same command is read back instead
    (``kept_only``: only that, and None where there is none)."""
    work = tmp / "tests" / name
    cmd = [*audiosr_module_command(), "test", *config_args(configs), *data_args(lists, test), "--ckpt_path",
           str(checkpoint), "--trainer.logger", "false", "--experiment", name, "--trainer.default_root_dir",
           str(work), *extra]
    tested = Tested(label, cmd)
    done = work / "command.json"
    reports = sorted(work.rglob("comparison.json"))
    if reports and done.is_file() and json.loads(done.read_text()) == cmd:  # an interrupted run goes on from here
        log(f"  test: {label} (kept from {work})")
    elif kept_only:
        return None
    else:
        log(f"  test: {label}")
        done.unlink(missing_ok=True)
        measured = run_measured(cmd, work / "test.log", cwd=REPO, env=subprocess_env(cache), label=name)
        reports = sorted(work.rglob("comparison.json"))
        if measured.returncode != 0 or not reports:
            log(f"  {name}: audiosr test exit {measured.returncode}; see {work / 'test.log'}")
            return tested
        done.write_text(json.dumps(cmd))
    payload = json.loads(reports[-1].read_text())
    tested.rows, tested.items = payload["rows"], payload.get("items", {})
    return tested


def group_rows(tested: Tested, group_of: Callable[[dict], str]) -> list[list]:
    """Per group of items and method: files, mean SNR, mean LSD (whole band and below each reference's
    edge), share of files > 3 dB below kaiser_best. A stereo file is scored per channel ("path#ch0", ...)."""
    methods = {"model": next(m for m in tested.items if m.startswith("audiosr ")),
               **{c: next(m for m in tested.items if m.removesuffix(" (model input)") == c) for c in CLASSICAL}}
    reference = {i["name"]: i["snr"] for i in tested.items[methods["kaiser_best"]]}
    rows = []
    for name in sorted({group_of(i) for i in tested.items[methods["model"]]}):
        for label, method in methods.items():
            items = [i for i in tested.items[method] if group_of(i) == name]
            worse = 100 * np.mean([i["snr"] < reference[i["name"]] - 3 for i in items])
            rows.append([name, label, len(items), np.mean([i["snr"] for i in items]), np.mean([i["lsd"] for i in items]),
                         np.mean([i.get("lsd_below_edge", np.nan) for i in items]), f"{worse:.1f}"])
    return rows


GROUP_HEADERS = ["method", "files", "SNR (dB) ↑", "LSD ↓", "LSD < ref edge ↓", "> 3 dB worse (%) ↓"]


def category_of_item(category_of: dict[str, str]) -> Callable[[dict], str]:
    return lambda item: category_of.get(item["name"].split("#")[0], "?")


def reference_kind(poor: set[str]) -> Callable[[dict], str]:
    """An item's kind of reference: band-poor (``bench.corpus.band_poor``), cut by an encoder, or full band."""
    def kind(item: dict) -> str:
        if item["name"].split("#")[0] in poor:
            return "band-poor"
        return "full band" if item.get("ref_edge_hz", 0.0) >= FULL_BAND_HZ else "cut by an encoder"
    return kind


def bar(tested: Tested) -> str:
    """The quality bar (``bench.common.bar_checks``) against kaiser_best of the same run."""
    m, kb = tested.row("model"), tested.row("kaiser_best")
    if m is None or kb is None:
        return "not measured (the test failed)"
    return bar_verdict(m, kb)


def interval(values: list | None, unit: str) -> str:
    return "" if not values else f"[{values[0]:+.2f}, {values[1]:+.2f}]" if unit == "dB" else f"[x{values[0]:.2f}, x{values[1]:.2f}]"


def table(tested: Tested) -> str:
    keys = ["method", "snr", "lsd", "lsd_below_edge", "lsd_hf", "visqol", "worse", "rtr"]
    headers = ["method", "SNR (dB) ↑", "LSD ↓", "LSD < ref edge ↓", "LSD-HF ↓", "ViSQOL ↑", "> 3 dB worse (%) ↓",
               "RTR ↑"]
    if all(r.get("visqol") is None for r in tested.rows):
        keys.remove("visqol")
        headers.remove("ViSQOL ↑")
    rows = [[r.get(k) for k in keys] + [interval(r.get("snr_vs_kaiser_best_ci"), "dB"),
                                        interval(r.get("lsd_below_edge_vs_kaiser_best_ci"), "x")] for r in tested.rows]
    return markdown_table(headers + ["SNR - kaiser_best, 95 % CI", "LSD < ref edge / kaiser_best's, 95 % CI"], rows)


def attribution(dev_dir: Path, files: list[Path]) -> str:
    """One line per origin of the dev training recordings, with its licence (the dev set's MANIFEST.tsv)."""
    with (dev_dir / "MANIFEST.tsv").open(newline="") as f:
        manifest = {row["path"]: row for row in csv.DictReader(f, delimiter="\t")}
    by_origin: dict[tuple[str, str], list[str]] = {}
    for path in files:
        row = manifest[path.relative_to(dev_dir).as_posix()]
        by_origin.setdefault((row["origin"], row["license"]), []).append(path.name)
    return "\n".join(f"- {origin} ({license}): {', '.join(sorted(names))}"
                     for (origin, license), names in sorted(by_origin.items()))


def corpus_attribution(corpus) -> str:
    """Minutes per Debian package of the corpus's training files, with their licences."""
    with (corpus.root / "MANIFEST.tsv").open(newline="") as f:
        rows = {(corpus.root / r["file"]).resolve(): r for r in csv.DictReader(f, delimiter="\t")}
    packages: dict[str, dict] = {}
    for path in corpus.train:
        row = rows[path]
        entry = packages.setdefault(row["package"], {"version": row["version"], "minutes": 0.0, "licenses": set()})
        entry["minutes"] += corpus.minutes[path]
        entry["licenses"].add(row["license"])
    return markdown_table(["Debian package", "version", "minutes", "licences"],
                          [[p, e["version"], f"{e['minutes']:.1f}", ", ".join(sorted(e["licenses"]))]
                           for p, e in sorted(packages.items(), key=lambda kv: -kv[1]["minutes"])], left={0, 1, 3})


def dev_categories(dev_dir: Path) -> dict[str, str]:
    with (dev_dir / "MANIFEST.tsv").open(newline="") as f:
        return {str((dev_dir / r["path"])): DEV_CATEGORIES.get(r["category"], r["category"])
                for r in csv.DictReader(f, delimiter="\t")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.default_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=90.0, help="training budget (default %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead, --minutes as a cap")
    parser.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR)
    parser.add_argument("--train-dir", type=Path, default=DEFAULT_TRAIN_DIR, help="build.sh's output folder")
    trained = parser.add_mutually_exclusive_group()
    trained.add_argument("--run-dir", type=Path, help="a finished `audiosr fit` run of this recipe: test it, train nothing")
    trained.add_argument("--generator", type=Path, help="a generator file of this recipe (e.g. the shipped "
                         "default.pt, with --minutes as it was trained): calibrate, test and describe it again")
    parser.add_argument("--gains", default=GAINS, help="levels (dB) of the band above the input's edge the "
                        "calibration tries on the validation files (default %(default)s)")
    parser.add_argument("--float-inputs", action="store_true", help="also test the held-out packages with float "
                        "inputs, beside the 16-bit ones (about as long again as that test)")
    parser.add_argument("--history", default="", help="with --generator: a sentence on the card's training "
                        "section saying what changed since the file's weights were trained")
    parser.add_argument("--output", type=Path, default=PRETRAINED, help="where default.pt and MODEL_CARD.md go")
    parser.add_argument("--work-dir", type=Path, help="with --run-dir or --generator: an earlier run's work folder (the "
                        "one it says it kept); its recorded tests.json is reused, so only the card is written again")
    args = parser.parse_args(argv)
    gains = [float(g) for g in args.gains.split(",")]
    if any(not -60 <= g <= 0 for g in gains):
        parser.error(f"--gains must lie between -60 and 0 dB, got {args.gains}")
    dev = dev_split(args.dev_dir.resolve())
    if dev is None:
        parser.error(f"the dev recordings are not at {args.dev_dir}")
    corpus = corpus_split(args.train_dir.resolve())
    if corpus is None:
        parser.error(f"no build.sh corpus at {args.train_dir}: bash ../shared/data/train/build.sh {args.train_dir}")
    tmp = args.work_dir.resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="audiosr-default-"))
    cache = tmp / "cache"
    lists = write_lists(tmp / "lists", dev, corpus)
    fit_cmd = fit_command(lists, args.minutes, tmp / "train", args.steps)
    if args.generator is not None:
        import torch

        checkpoint = args.generator.resolve()
        stored = torch.load(checkpoint, map_location="cpu", weights_only=False)
        steps, best_step = stored.get("trained_steps"), stored.get("best_step")
        candidates = [checkpoint]
    else:
        if args.run_dir is None:
            log(f"audiosr fit ({args.minutes:g} min budget)")
            fit = run_measured(fit_cmd, tmp / "train" / "fit.log", cwd=REPO, env=subprocess_env(cache), label="fit")
            runs = sorted((tmp / "train" / "runs" / "default").glob("*/checkpoints"))
            if fit.returncode != 0 or not runs:
                log(f"training failed (kept in {tmp}); see {tmp / 'train' / 'fit.log'}")
                return 1
            run_dir = runs[-1].parent
            csv_dir = tmp / "train" / "csv"
        else:
            run_dir = args.run_dir.resolve()
            csv_dir = next((p for p in [run_dir.parent.parent.parent / "csv"] if p.is_dir()), run_dir)
        best = sorted((run_dir / "checkpoints").glob("best-*.ckpt"))
        if not best:
            parser.error(f"no best-*.ckpt in {run_dir / 'checkpoints'}")
        checkpoint = best[-1]
        steps, best_step = curve_steps(csv_dir), int(checkpoint.stem.split("=")[-1])
        last = run_dir / "checkpoints" / "last.ckpt"
        candidates = [checkpoint] + ([last] if last.is_file() and checkpoint_step(last) != best_step else [])
    categories = {**dev_categories(args.dev_dir.resolve()), **{str(p): c for p, c in corpus.category.items()}}
    recorded = tmp / "tests.json"

    def as_tested(runs: dict) -> dict[str, Tested]:
        return {k: Tested(v["label"], [], v["rows"], v["items"]) for k, v in runs.items()}

    if args.work_dir and (args.run_dir or args.generator) and recorded.is_file():
        kept = json.loads(recorded.read_text())
        gain, tests, calibration = kept["gain_db"], as_tested(kept["tests"]), as_tested(kept["calibration"])
        checkpoint, selection = Path(kept["checkpoint"]), kept["selection"]
    else:
        checkpoint, selection, known = choose_checkpoint(candidates, lists, tmp, cache)
        log(f"calibration on the validation files: the band above the edge at {', '.join(f'{g:+g}' for g in gains)} dB")
        gain, calibration = calibrate(checkpoint, lists, tmp, cache, gains, known)
        log(f"  kept {gain:+g} dB (meets the bar on validation, lowest LSD below the references' edges): every test runs at it")
        tests = run_tests(checkpoint, lists, tmp, cache, gain, args.float_inputs)
        recorded.write_text(json.dumps({"gain_db": gain, "checkpoint": str(checkpoint), "selection": selection, **{
            name: {k: {"label": t.label, "rows": t.rows, "items": t.items} for k, t in runs.items()}
            for name, runs in (("calibration", calibration), ("tests", tests))}}))
    best_step = best_step if checkpoint.suffix == ".pt" else checkpoint_step(checkpoint)
    write(args, dev, corpus, checkpoint, steps, best_step, fit_cmd, gain, calibration, tests, categories, tmp, selection)
    log(f"work kept in {tmp}")
    return 0


def _cut_share(corpus) -> float:
    """The share (%) of the corpus's files whose encoder cut them below 17 kHz (``lowpass_edge_hz``, MANIFEST.tsv)."""
    with (corpus.root / "MANIFEST.tsv").open(newline="") as f:
        edges = [float(r.get("lowpass_edge_hz") or 22050) for r in csv.DictReader(f, delimiter="\t")]
    return 100 * float(np.mean([e < 17000 for e in edges])) if edges else 0.0


def gain_args(gain_db: float) -> list[str]:
    return [f"{STAGE}.invented_gain_db", f"{gain_db:g}"]


def choose_checkpoint(candidates: list[Path], lists: dict[str, Path], tmp: Path,
                      cache: Path) -> tuple[Path, str, dict[str, Tested]]:
    """``best`` (by ``val/score``) or ``last``: the one with the lower mean LSD below the references' edges
    on the validation files, at 0 dB (ties: ``best``); with the sentence the card says and that run."""
    if len(candidates) == 1:
        return candidates[0], "", {}
    runs = {path: run_test(f"validation files, {path.stem}", f"select-{path.stem}", path, lists, "val",
                           [*NO_VISQOL, *gain_args(0.0)], tmp, cache) for path in candidates}
    scored = {path: t.row("model")["lsd_below_edge"] for path, t in runs.items() if t.row("model")}
    chosen = min(scored, key=lambda p: (scored[p], candidates.index(p)))
    said = ", ".join(f"`{p.name}` (step {checkpoint_step(p)}) {v:.3f}" for p, v in scored.items())
    log(f"  checkpoints on the validation files, LSD below the references' edges: {said}; kept {chosen.name}")
    return chosen, (f" Of the `best` checkpoint by `val/score` and the `last` one, the lower mean LSD below the "
                    f"references' own edges on the validation files at 0 dB was kept: {said}."), {"0": runs[chosen]}


def calibrate(checkpoint: Path, lists: dict[str, Path], tmp: Path, cache: Path,
              gains: list[float], known: dict[str, Tested] | None = None) -> tuple[float, dict[str, Tested]]:
    """Each gain of the band above the edge on the validation files. Kept: of the gains that meet the bar
    there (``bench.common.meets_bar``: SNR and both LSDs against kaiser_best, the share of files more than
    3 dB worse), the one with the lowest mean LSD below each reference's own edge; where none does, the
    lowest of all (ties: the louder). ``known``: gains already tested so."""
    known = known or {}
    tested = {f"{g:g}": known.get(f"{g:g}") or run_test(f"validation files, band above the edge {g:+g} dB",
                                                        f"calibrate{g:g}", checkpoint, lists, "val",
                                                        [*NO_VISQOL, *gain_args(g)], tmp, cache) for g in gains}
    measured = [(g, t) for g, t in zip(gains, tested.values()) if t.row("model") and t.row("kaiser_best")]
    if not measured:
        raise RuntimeError("the calibration measured nothing: every validation test failed")
    passing = [(g, t) for g, t in measured if meets_bar(t.row("model"), t.row("kaiser_best"))] or measured
    return min((t.row("model")["lsd_below_edge"], -g, g) for g, t in passing)[2], tested


def run_tests(checkpoint: Path, lists: dict[str, Path], tmp: Path, cache: Path, gain_db: float,
              float_inputs: bool = False, run_holdout: bool = True) -> dict[str, Tested]:
    """Every test of the card, once, on the test split: the dev split (four kinds of input) and the held-out
    packages (``float_inputs``: once more with float instead of 16-bit inputs); the ablation."""
    g = gain_args(gain_db)  # every test at the calibrated gain
    tests = {
        "dev": run_test(LABELS["dev"], "dev", checkpoint, lists, "test", g, tmp, cache),
        "dev-cheby": run_test(LABELS["dev-cheby"], "dev-cheby",
                              checkpoint, lists, "test", [*CHEBYSHEV, *NO_VISQOL, *g], tmp, cache),
        **{name: run_test(LABELS[name], name, checkpoint, lists, "test",
                          ["--config", str(REPO / "configs" / "inputs" / f"{name.removeprefix('dev-')}.yaml"),
                           *NO_VISQOL, *g], tmp, cache) for name in ("dev-mp3-64k", "dev-mp3-32k")},
        "fixed": run_test(LABELS["fixed"], "ablation-fixed", checkpoint, lists, "test",
                          [f"{STAGE}.keep_band", "[0.8, 0.9]", *NO_VISQOL, *g], tmp, cache),
        "none": run_test(LABELS["none"], "ablation-none", checkpoint, lists, "test",
                         [f"{STAGE}.keep_band", "off", *NO_VISQOL, *g], tmp, cache),
    }
    # The held-out packages (549 files, 50 minutes) take about 75 minutes on 2 cores.
    tests["holdout"] = run_test(LABELS["holdout"], "holdout", checkpoint, lists, "holdout", [*NO_VISQOL, *g], tmp, cache) \
        if run_holdout else Tested(LABELS["holdout"], [])
    if float_inputs:
        tests["holdout-float"] = run_test(LABELS["holdout-float"], "holdout-float", checkpoint, lists, "holdout",
                                          ["--data.test_input_bits", "null", *NO_VISQOL, *g], tmp, cache)
    return tests


def ceiling_text(spec) -> str:
    """How the card describes the level ceiling."""
    if spec.stage.level_ceiling_db is None:
        return ""
    return (f" Above the edge the output is held under the input's own spectrum continued upwards "
            f"(`level_ceiling_db` {spec.stage.level_ceiling_db:g}, `audiosr.band.level_ceiling`: the level and slope of "
            "the 1.5 kHz below the edge, frame by frame, followed for 1 kHz and then held), never under the "
            "input's own level: no bump at the edge, and a quiet band where the recording's spectrum falls steeply.")


def carry_text(spec) -> str:
    """How the card describes the network's gain on the input's own bins near its edge."""
    args = spec.network["init_args"]
    if not args.get("carry_input"):
        return ""
    cap = args.get("carry_gain_max_db")
    if cap is not None and cap <= 0:
        return (", and near the edge it may lower the input's own attenuated bins but never raise them "
                f"(`carry_gain_max_db` {cap:g}: above the edge they are the stop band of a filter the model cannot know)")
    return ", and near the edge it may raise the input's own attenuated bins (`carry_input`)"


def curve_steps(csv_dir: Path) -> int | None:
    files = sorted(csv_dir.rglob("metrics.csv"))
    if not files:
        return None
    with files[-1].open(newline="") as f:
        steps = [int(float(r["step"])) for r in csv.DictReader(f) if r.get("step")]
    return max(steps) if steps else None


def budget(args) -> str:
    if args.steps:
        return f"{args.steps} steps (at most {args.minutes:g} minutes)"
    return f"{args.minutes:g} minutes"


def calibration_spread(calibration: dict[str, Tested], kept: float) -> dict[str, tuple[float, float]]:
    """Per gain tried: the 95 % bootstrap interval over validation files of its mean LSD below the
    references' edges minus the kept gain's (positive: the kept gain is better)."""
    from audiosr.evaluation.spread import bootstrap_interval

    def by_name(t: Tested) -> dict[str, float]:
        method = next(m for m in t.items if m.startswith("audiosr "))
        return {i["name"]: i["lsd_below_edge"] for i in t.items[method]}

    chosen = by_name(calibration[f"{kept:g}"])
    spread = {}
    for key, t in calibration.items():
        other = by_name(t) if t.items else {}
        names = sorted(set(chosen) & set(other))
        if float(key) != kept and names:
            spread[key] = bootstrap_interval([other[n] for n in names], [chosen[n] for n in names])
    return spread


def write(args, dev, corpus, checkpoint: Path, steps: int | None, best_step: int | None, fit_cmd: list[str],
          gain_db: float, calibration: dict[str, Tested], tests: dict[str, Tested], categories: dict[str, str],
          tmp: Path, selection: str = "") -> None:
    from audiosr.models.checkpoint import load_generator, save_generator

    generator = load_generator(checkpoint)
    # The checkpoint holds the stage it was validated with; the calibrated level is the one change.
    generator.spec = generator.spec.with_stage(invented_gain_db=gain_db)
    history = f"\n- {args.history}" if getattr(args, "history", "") else ""
    args.output.mkdir(parents=True, exist_ok=True)
    path = save_generator(args.output / "default.pt", generator, extra={"trained_steps": steps, "best_step": best_step})
    spec = generator.spec
    spread = calibration_spread(calibration, gain_db)

    def calibration_rows(tested: dict[str, Tested], kept: float) -> list[list]:
        rows = []
        for key, t in tested.items():
            m, kb = t.row("model"), t.row("kaiser_best")
            if m and kb:
                rows.append([f"{float(key):+g} dB" + (" (kept)" if float(key) == kept else ""), m["snr"], m["lsd"],
                             m.get("lsd_below_edge"), m["worse"], kb["snr"], kb.get("lsd_below_edge"),
                             interval(spread.get(key), "dB")])
        return rows

    calibration_headers = ["SNR (dB) ↑", "LSD ↓", "LSD < ref edge ↓", "> 3 dB worse (%) ↓", "kaiser_best SNR",
                           "kaiser_best LSD < ref edge", "LSD < ref edge minus the kept gain's, 95 % CI"]
    train_minutes = corpus.total_minutes(corpus.train) + dev.minutes(dev.train)
    split = markdown_table(
        ["set", "files", "minutes", "what"],
        [["build.sh train", len(corpus.train), f"{corpus.total_minutes(corpus.train):.1f}",
          ", ".join(f"{c} {n} ({m:.0f} min)" for c, (n, m) in sorted(corpus.by_category(corpus.train).items()))],
         ["dev train", len(dev.train), f"{dev.minutes(dev.train):.1f}", dev.describe(dev.train)],
         ["validation", len(dev.val) + len(corpus.val), f"{dev.minutes(dev.val) + corpus.total_minutes(corpus.val):.1f}",
          f"{dev.describe(dev.val)}; {len(corpus.val)} build.sh files of {', '.join(corpus.packages(corpus.val))} "
          f"({', '.join(f'{n} {c}' for c, (n, _) in sorted(corpus.by_category(corpus.val).items()))})"],
         ["dev test", len(dev.test), f"{dev.minutes(dev.test):.1f}", dev.describe(dev.test)],
         ["build.sh held out", len(corpus.test), f"{corpus.total_minutes(corpus.test):.1f}",
          f"{', '.join(corpus.packages(corpus.test))}: "
          + ", ".join(f"{c} {n}" for c, (n, _) in sorted(corpus.by_category(corpus.test).items()))
          + f"; {len([p for p in corpus.test if p in corpus.poor])} of them band-poor"]],
        left={0, 3})
    per_category = {k: markdown_table(["category", *GROUP_HEADERS], group_rows(t, category_of_item(categories)),
                                      left={0, 1}) for k, t in tests.items() if t.items}
    poor = {str(p) for p in corpus.poor}
    per_kind = {k: markdown_table(["reference", *GROUP_HEADERS], group_rows(t, reference_kind(poor)), left={0, 1})
                for k, t in tests.items() if t.items}
    ablation = [[label, t.row("model")["snr"], t.row("model")["lsd"], t.row("model")["lsd_hf"], t.row("model")["lsd_lf"],
                 t.row("model")["worse"]]
                for label, t in (("the input's own edge, found per window (`auto`, shipped)", tests["dev"]),
                                 ("a fixed crossover, 8.82-9.92 kHz (`[0.8, 0.9]`, the previous model)", tests["fixed"]),
                                 ("none: the network's output everywhere (`null`)", tests["none"])) if t.row("model")]
    kb = tests["dev"].row("kaiser_best")
    if kb:
        ablation.append(["(kaiser_best, same run)", kb["snr"], kb["lsd"], kb["lsd_hf"], kb["lsd_lf"], kb["worse"]])
    sections = []
    for key in ("dev", "dev-cheby", "dev-mp3-64k", "dev-mp3-32k", "holdout"):
        t = tests[key]
        if not t.rows:
            sections.append(f"### {t.label}\n\nNot measured in this run (" + ("not run: about 25 minutes on 2 cores"
                            if not t.command else "the test failed") + ").\n")
            continue
        sections.append(f"### {t.label}\n\n{table(t)}\nThe bar: {bar(t)}.\n\nPer category (a stereo file counts once per channel):\n\n{per_category[key]}\n"
                        f"Per kind of reference (full band: its own edge at {FULL_BAND_HZ / 1000:g} kHz or above; "
                        f"band-poor: build.sh's default build leaves it out):\n\n{per_kind[key]}")
    float_inputs = tests.get("holdout-float")
    if float_inputs is not None and float_inputs.rows and tests["holdout"].rows:
        pairs = [(r16, next((r for r in float_inputs.rows if r["method"] == r16["method"]), None))
                 for r16 in tests["holdout"].rows]
        sections.append(f"### 16-bit or float inputs\n\nThe held-out packages with float inputs (`--data.test_input_bits "
                        f"null`) beside the 16-bit ones above (ViSQOL not scored here):\n\n" + markdown_table(
                            ["method", "SNR 16-bit", "SNR float", "LSD < ref edge 16-bit", "LSD < ref edge float"],
                            [[a["method"], a["snr"], b["snr"], a.get("lsd_below_edge"), b.get("lsd_below_edge")]
                             for a, b in pairs if b is not None], left={0}))
    card = f"""# The default model of audiosr

`audiosr upsample IN... --output_dir OUT` and `Upsampler.from_checkpoint()` use this model when
no checkpoint is given. It is small (`default.pt`, {path.stat().st_size / 2**20:.1f} MiB) and runs
many times faster than real time on 2 CPU cores (the RTR columns below: seconds of audio per
second of the whole path, measured in the same runs as resampy's).

## What it is

- {spec.describe()}.{FRAMES_NOTE if spec.stage.transform == "stft" else ""}
- {generator.network.num_parameters():,} parameters (`{spec.network['class_path']}` {spec.network['init_args']}).
- Input: audio at {spec.source_rate} Hz; output: {spec.target_rate} Hz. Runs in float32. Other rates below
  {spec.target_rate} Hz: between the two rates the input keeps its own band and the model fills above it;
  below, it is resampled to {spec.source_rate} Hz first, and one whose band ends below where the model fills
  gets a plain soxr VHQ resample, said so (`audiosr upsample --help`).
- Up to where the input has content (the -10 dB point of the cliff of whatever filter made it,
  found per 6-s window: about 10.2 kHz for resampy `kaiser_best`, 10.5 kHz for soxr VHQ) the output *is* the
  input; the network fills above{carry_text(spec)}.{ceiling_text(spec)} Every passage is level-normalised by a
  smooth envelope around the network, so a quiet passage gets the band its own content asks for.

## How it was trained

- Recipe: `configs/{CONFIGS[0]}` + `configs/{CONFIGS[1]}`: random steep low-pass degradations
  of the training crops (Butterworth, Chebyshev I/II, elliptic, orders 6-10, corner 0.9-1.0 x
  Nyquist, or a plain resampler), soxr VHQ rough input, multi-resolution STFT + negative-SNR
  loss on the level-normalised pair, blind above a target's own encoder cut-off, AdamW 2e-3
  decaying by 0.9998 per step.
- Data: {train_minutes:.0f} minutes of real recordings (below); each category a fixed share of the
  crops ({', '.join(f'{c} {v:g}' for c, v in SHARES.items())}), whatever its minutes.
- Budget: {budget(args)} of `audiosr fit` on 2 CPU cores ({steps} steps, batch 12 x 0.75 s);
  the checkpoint is step {best_step}.{selection}{history}
- Calibrated on the validation files alone: the band above the input's edge (the output stage's
  `invented_gain_db`, from the edge found per window up) is scaled by each gain below; of those that
  meet the bar there (below), the one with the lowest mean LSD below each reference's own edge is
  kept ({gain_db:+g} dB, stored in
  `default.pt`; `audiosr upsample --invented_gain_db` overrides it). The whole-band LSD would
  reward an empty band wherever an encoder emptied the reference (in the build.sh corpus,
  {_cut_share(corpus):.0f} % of the files are cut below 17 kHz); below the edge it does not. The last
  column is the spread of that choice: a bootstrap interval over the validation files.

{markdown_table(["band above the edge", *calibration_headers], calibration_rows(calibration, gain_db), left={0})}
- Trained and tested by `python -m bench.default_model --train-dir DIR --minutes {args.minutes:g}{f" --steps {args.steps}" if args.steps else ""}`
  (`--generator audiosr/pretrained/default.pt` calibrates and tests it again) on
  {machine()['CPU (/proc/cpuinfo model name)']}, which runs:

```
{command_line(fit_cmd)}
```

## Data and attribution

{split}
- build.sh: `bash ../shared/data/train/build.sh DIR` builds the corpus from pinned Debian
  packages (game soundtracks and voice packs, drum kits, sample libraries, effects,
  ambiences), with its band-poor files (`TRAIN_HF_MIN=-999 TRAIN_EDGE_MIN=0`); `bench/corpus.py`
  splits it by package, so no game, album, drum kit or voice pack is on two sides; band-poor
  files (nothing above 11 kHz, or cut below 13 kHz) validate and test but do not train. Most of
  its minutes were Ogg Vorbis, cut by the
  encoder at 13-21 kHz: the loss ignores each training crop's band from 500 Hz below its own
  cut-off (found by `audiosr.band.content_edge`), so the model does not learn the encoder's cliff.
- dev: the project's dev recordings; test speech is the VCTK test speakers of published
  systems (`audiosr.data.VCTK.PUBLISHED_TEST_SPEAKERS`), none of whom trains or validates; nine
  other VCTK speakers validate (`bench.common.VAL_SPEAKERS`); NU-Wave 2's demo samples, whose
  speakers are not named, are used nowhere.

Training recordings from build.sh, by package (per-file licences in the corpus's
`MANIFEST.tsv`, each package's copyright file in its `licenses/` folder):

{corpus_attribution(corpus)}
Training recordings from the dev set, with their origin and licence (changes: downmixed to
mono, resampled to 44.1 kHz where needed, re-encoded as 16-bit FLAC):

{attribution(args.dev_dir.resolve(), dev.train)}

Licences: GPL, CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/), CC-BY-3.0
(https://creativecommons.org/licenses/by/3.0/), CC-BY-SA, CC0-1.0, public domain. The VCTK
corpus is by Christophe Veaux, Junichi Yamagishi and Kirsten MacDonald (CSTR, University of
Edinburgh).

## Results

Every figure in this section comes from the test split (the dev test split and the held-out
build.sh packages), run once after every decision was made on validation. `audiosr test`, whole
files, every recording at its own level, {khz(spec.source_rate)} kHz 16-bit input made as named; every
method measured in the same run (LSD: log10 power, STFT 2048/512, over the whole band and below
each reference's own edge, `LSD < ref edge`: the edge from the corpus's MANIFEST.tsv, else
measured; ViSQOL audio mode at 48 kHz, on the dev test split; "> 3 dB worse": share of files whose SNR is more than 3 dB
below kaiser_best's; 95 % CI: bootstrap over files of the difference from kaiser_best). The bar:
SNR >= kaiser_best - 1 dB, LSD (both) <= 0.55 x kaiser_best's, at most 2 % of files more than 3 dB
worse, ViSQOL >= kaiser_best + 0.5.

{chr(10).join(sections)}
### Ablation: what keeping the input's band is worth

The same checkpoint on the dev test split (kaiser_best input), with the band keeping switched
at test time (`--model.init_args.output_stage.keep_band`; every row with the band above the edge at the
calibrated {gain_db:+g} dB):

{markdown_table(["band keeping", "SNR (dB) ↑", "LSD ↓", "LSD-HF ↓", "LSD-LF ↓", "> 3 dB worse (%) ↓"], ablation, left={0})}
## Limits

- Trained on {train_minutes / 60:.1f} hours, mostly game music, short game voice lines, effects and
  ambiences; little read or conversational speech (VCTK's dozen speakers). Train your own for
  other material (`audiosr fit --config configs/magphase.yaml --config configs/overlays/spectral-cpu.yaml`).
- It invents the band above the input's edge from what the input has: plausible, not the original.
"""
    (args.output / "MODEL_CARD.md").write_text(portable(card, args.dev_dir, tmp).replace(str(args.train_dir.resolve()),
                                                                                          "$TRAIN"))
    log(f"wrote {path} and {args.output / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    raise SystemExit(main())
