"""Train the model for any input (issue 36) in sittings, each resuming from the last one's ``last.ckpt``,
and score it per kind of input.

    bash ../shared/data/train/build.sh ../traindata                                 # about 5 hours of real audio
    python -m bench.any_input train --train-dir ../traindata --root RUNROOT --minutes 80   # one sitting
    python -m bench.any_input train --train-dir ../traindata --root RUNROOT --minutes 80   # the next one goes on
    python -m bench.any_input train ... -- --model.init_args...                    # a variant of the recipe
    python -m bench.any_input evaluate --root RUNROOT [--checkpoint best] [--split val|test|holdout]
    python -m bench.any_input evaluate ... --tag gain-3 -- --model.init_args.output_stage.invented_gain_db -3
    python -m bench.any_input speed --root RUNROOT [--checkpoint best] [--threads 2]
    python -m bench.any_input parts [--hops 256,512]                           # where the time goes
    python -m bench.any_input levels --root RUNROOT [--every 9]     # the band above an MP3's cut, per band
    python -m bench.any_input paired RUN-B/evaluation-val-8s-step500 RUN-A/evaluation-val-8s-step500   # item by item

The recipe is ``configs/magphase.yaml`` + ``configs/overlays/spectral-cpu.yaml`` +
``configs/overlays/any-input.yaml`` on the shipped model's data (``build.sh``'s recordings split by
package and the dev recordings' training split, each category a fixed share of the crops:
``bench.default_model``), for ``--steps`` optimizer steps in all (give every sitting the same
``--steps``: the learning rate's decay per step is set from it). Each sitting trains at most
``--minutes`` more: Lightning keeps the time already spent in the checkpoint (its ``Timer``), so the
cap passed on is that time plus this sitting's. ``--ckpt_path last`` is passed whenever the run family
already has a ``last.ckpt``; the learning rate decays per step, so sittings of any length make the
same run. ``RUNROOT/fit-N.log`` keeps each sitting's log.

``evaluate`` runs ``audiosr test`` once per kind of input (``configs/inputs/any-input/``) on the
validation recordings (``--split val``: where one variant of the recipe is chosen over another), the
dev test split (``--split test``) or the held-out ``build.sh`` packages (``--split holdout``), neither
of which any decision touches, and writes ``RUNROOT/evaluation-<split>-step<N>.md``: each kind against
what a user would otherwise have (issue 36's bar): soxr VHQ for 8 and 16 kHz files, kaiser_best for
22.05 and 32 kHz files (and the shipped model, which 22.05 kHz files must not lose to), the decoded
file as it is for 44.1 kHz MP3 and Vorbis files; a file whose own band reaches 19.5 kHz must come out
within -60 dB of itself (one its own encoder cut is reported apart: the model fills it). Per category
as well; an interrupted evaluation keeps the kinds it finished, and its report every kind it has.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiosr.evaluation.comparison import AS_IS, markdown_table
from audiosr.evaluation.metrics import snr_lost
from audiosr.evaluation.spread import bootstrap_interval, mean_difference, mean_ratio
from audiosr.models.checkpoint import checkpoint_step, resolve_checkpoint
from bench.common import DEFAULT_DEV_DIR, REPO, audiosr_module_command, command_line, config_args, dev_split, log, \
    run_measured, subprocess_env
from bench.corpus import DEFAULT_TRAIN_DIR, corpus_split
from bench.default_model import Tested, data_args, dev_categories, run_test, write_lists

CONFIGS = ["magphase.yaml", "overlays/spectral-cpu.yaml", "overlays/any-input.yaml"]
EXPERIMENT = "any-input"
STEPS = 20_000
# The learning rate ends at this share of its start after the run's steps, however many: the CPU
# recipe's decay (x0.09 after 12 000 steps) carried to a run of any length.
FINAL_LR_SHARE = 0.05


def decay_per_step(steps: int) -> float:
    """ExponentialLR's gamma that brings the learning rate to ``FINAL_LR_SHARE`` after ``steps`` steps."""
    return FINAL_LR_SHARE ** (1.0 / steps)


def elapsed_seconds(checkpoint: Path | None) -> float:
    """Training and validation time a checkpoint's ``Timer`` has counted (0 without one)."""
    if checkpoint is None:
        return 0.0
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    spent = state.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {})
    return float(spent.get("train", 0.0)) + float(spent.get("validate", 0.0))


def fit_command(lists: dict[str, Path], root: Path, steps: int, seconds: int, resume: bool,
                extra: list[str] = ()) -> list[str]:
    """The sitting's ``audiosr fit``; ``extra``: more of its arguments, after the recipe's (a variant's)."""
    return [*audiosr_module_command(), "fit", *config_args(CONFIGS), *data_args(lists), *extra, "--experiment", EXPERIMENT,
            "--trainer.default_root_dir", str(root / "runs"), "--trainer.max_steps", str(steps),
            "--trainer.max_time", f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
            "--model.init_args.lr_scheduler.init_args.gamma", f"{decay_per_step(steps):.8f}",
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root / "csv"),
            "--trainer.enable_progress_bar", "false", *(["--ckpt_path", "last"] if resume else [])]


@dataclass(frozen=True)
class Kind:
    """One kind of input: its preset, what a user would otherwise have, and issue 36's bar for it."""

    preset: str
    label: str
    baseline: str
    snr_db: float | None = None  # the model's mean SNR at least the baseline's minus this
    lsd_ratio: float | None = None  # its mean LSD at most this times the baseline's
    beside_shipped: bool = False  # 22.05 kHz files: no worse than the shipped model on any number


KINDS = [
    Kind("rate-8k", "8 kHz files (16-bit, kaiser_best)", "soxr_vhq", 1.0, 0.7),
    Kind("rate-16k", "16 kHz files (16-bit, kaiser_best)", "soxr_vhq", 1.0, 0.7),
    Kind("rate-22.05k", "22.05 kHz files (16-bit, kaiser_best)", "kaiser_best", beside_shipped=True),
    Kind("rate-32k", "32 kHz files (16-bit, kaiser_best)", "kaiser_best"),
    Kind("mp3-64k", "44.1 kHz MP3, 64 kbps (decoded)", AS_IS, 0.5, 0.8),
    Kind("vorbis-64k", "44.1 kHz Vorbis, about 64 kbps (decoded)", AS_IS, 0.5, 0.8),
    Kind("full-band", "44.1 kHz files, nothing missing (16-bit)", AS_IS),
]
SHIPPED = "shipped model"
# Issue 36's bar: at most this share of files losing more than 3 dB against the baseline.
WORSE_PERCENT = 2.0
# A full-band file comes out within this of itself (dB: the SNR of the output against the input).
TRANSPARENT_DB = 60.0
# A file given as it is lacks nothing when its own band reaches this (its edge as the test measures it):
# converters and 256-320 kbps encoders end about here (the recipe's complete_from_hz is the same).
FULL_BAND_FROM_HZ = 19_500.0


def _method(tested: Tested, name: str) -> str:
    if name == "model":
        return next(m for m in tested.items if m.startswith("audiosr "))
    return next(m for m in tested.items if m.split(" (")[0] == name)


def compare(tested: Tested, kind: Kind, against: str, names: set[str] | None = None) -> dict:
    """The model against ``against`` on the same files (``names``: only those): means, intervals, worse share."""
    model = {i["name"]: i for i in tested.items[_method(tested, "model")] if names is None or i["name"] in names}
    other = {i["name"]: i for i in tested.items[_method(tested, against)]}
    files = sorted(model)
    a, b = ([d[f] for f in files] for d in (model, other))

    def values(items: list[dict], key: str) -> np.ndarray:
        return np.array([i.get(key, np.nan) for i in items], dtype=np.float64)

    out = {"files": len(files), "snr": values(a, "snr").mean(), "snr_base": values(b, "snr").mean(),
           "worse": 100 * float(np.mean([float(snr_lost(x["snr"], y["snr"])) > 3.0 for x, y in zip(a, b)])),
           "min_snr": float(values(a, "snr").min())}
    out["snr_ci"] = bootstrap_interval(values(a, "snr"), values(b, "snr"), mean_difference)
    for key in ("lsd", "lsd_below_edge"):
        out[key], out[f"{key}_base"] = values(a, key).mean(), values(b, key).mean()
        out[f"{key}_ci"] = bootstrap_interval(values(a, key), values(b, key), mean_ratio)
    if all("visqol" in i for i in a + b):
        out["visqol"], out["visqol_base"] = values(a, "visqol").mean(), values(b, "visqol").mean()
    return out


def verdict(kind: Kind, c: dict, shipped: dict | None) -> str:
    """Issue 36's bar for this kind, each part with what was measured (✗ where missed)."""
    if kind.preset == "full-band":
        checks = [(c["min_snr"] >= TRANSPARENT_DB, f"lowest SNR against the input {c['min_snr']:.1f} dB")]
    elif kind.beside_shipped:
        if shipped is None:
            return "not measured (no shipped model row)"
        checks = [(c["snr"] >= shipped["snr"], f"SNR {c['snr'] - shipped['snr']:+.2f} dB"),
                  (c["lsd"] <= shipped["lsd"], f"LSD x{c['lsd'] / shipped['lsd']:.2f}"),
                  (c["lsd_below_edge"] <= shipped["lsd_below_edge"],
                   f"LSD below edge x{c['lsd_below_edge'] / shipped['lsd_below_edge']:.2f}"),
                  (c["worse"] <= shipped["worse"], f"{c['worse']:.1f} % vs {shipped['worse']:.1f} % > 3 dB worse")]
        if "visqol" in c and "visqol" in shipped:
            checks.append((c["visqol"] >= shipped["visqol"], f"ViSQOL {c['visqol'] - shipped['visqol']:+.2f}"))
        checks = [(met, f"{text} against the shipped model") for met, text in checks]
    elif kind.snr_db is None:
        return "no bar set (reported)"
    else:
        checks = [(c["snr"] >= c["snr_base"] - kind.snr_db, f"SNR {c['snr'] - c['snr_base']:+.2f} dB"),
                  (c["lsd"] <= kind.lsd_ratio * c["lsd_base"], f"LSD x{c['lsd'] / c['lsd_base']:.2f}"),
                  (c["worse"] <= WORSE_PERCENT, f"{c['worse']:.1f} % > 3 dB worse")]
        if "visqol" in c:
            checks.append((c["visqol"] > c["visqol_base"], f"ViSQOL {c['visqol'] - c['visqol_base']:+.2f}"))
    parts = ", ".join(text + ("" if met else " ✗") for met, text in checks)
    return f"{'yes' if all(met for met, _ in checks) else 'no'} ({parts})"


def _ratio(c: dict, key: str, ci: bool = True) -> str:
    """``model ÷ baseline [interval]`` of a mean; ``–`` where the baseline is (nearly) exact: the input as is
    of a full-band file has no error to divide by."""
    if not c[f"{key}_base"] > 1e-6:
        return "–"
    return f"{c[key] / c[f'{key}_base']:.2f}" + (f" {_interval(c[f'{key}_ci'], False)}" if ci else "")


def _interval(ci, signed: bool) -> str:
    low, high = ci
    return f"[{low:+.2f}, {high:+.2f}]" if signed else f"[{low:.2f}, {high:.2f}]"


def report(tested: dict[str, Tested], categories: dict[str, str], heading: str) -> str:
    """The evaluation as Markdown: one row per kind against its baseline (files given as they are: two,
    :func:`_parts`), then per category."""
    rows, by_category = [], []
    for kind in KINDS:
        if kind.preset not in tested or not tested[kind.preset].items:
            continue
        t = tested[kind.preset]
        for preset, label, names in _parts(t, kind):
            if names is not None and not names:
                continue
            c = compare(t, kind, kind.baseline, names)
            shipped = compare(t, kind, SHIPPED) if kind.beside_shipped and any(m == SHIPPED for m in t.items) else None
            if shipped is not None:  # the shipped model's own numbers, for the verdict
                shipped = {"snr": shipped["snr_base"], "lsd": shipped["lsd_base"],
                           "lsd_below_edge": shipped["lsd_below_edge_base"], "worse": _shipped_worse(t, kind),
                           **({"visqol": shipped["visqol_base"]} if "visqol_base" in shipped else {})}
            visqol = f"{c['visqol']:.2f} / {c['visqol_base']:.2f}" if "visqol" in c else "–"
            judged = verdict(kind, c, shipped) if preset == kind.preset else \
                "no bar set (reported): filled above its own cut, as an MP3 is; the SNR says how much was added"
            rows.append([label, kind.baseline, c["files"], f"{c['snr']:.2f} / {c['snr_base']:.2f}",
                         f"{c['snr'] - c['snr_base']:+.2f} {_interval(c['snr_ci'], True)}",
                         _ratio(c, "lsd"), _ratio(c, "lsd_below_edge"), f"{c['worse']:.1f}", visqol, judged])
            model_items = [i for i in t.items[_method(t, "model")] if names is None or i["name"] in names]
            for category in sorted({categories.get(i["name"].split("#")[0], "other") for i in model_items}):
                group = {i["name"] for i in model_items if categories.get(i["name"].split("#")[0], "other") == category}
                g = compare(t, kind, kind.baseline, group)
                by_category.append([preset, category, g["files"], f"{g['snr'] - g['snr_base']:+.2f}",
                                    _ratio(g, "lsd", False), _ratio(g, "lsd_below_edge", False), f"{g['worse']:.1f}"])
    return "\n".join([
        f"# {heading}",
        "",
        "Each kind of input against what a user would otherwise have, on the same files in the same run "
        "(`python -m bench.any_input evaluate`). SNR: model / baseline, mean over files (stereo files per channel); "
        "the difference and the LSD ratios with 95 % bootstrap intervals over files; > 3 dB worse: share of files "
        "whose SNR is more than 3 dB below the baseline's (both counted up to 60 dB); LSD < edge: below each "
        "reference's own edge. ViSQOL: model / baseline.",
        "",
        markdown_table(["input", "baseline", "files", "SNR (dB)", "SNR − baseline", "LSD ÷ baseline",
                        "LSD < edge ÷ baseline", "> 3 dB worse (%)", "ViSQOL", "issue 36's bar"], rows),
        "Per category, against the same baseline:",
        "",
        markdown_table(["input", "category", "files", "SNR − baseline", "LSD ÷", "LSD < edge ÷", "> 3 dB worse (%)"],
                       by_category, left={0, 1}),
    ])


def _parts(tested: Tested, kind: Kind) -> list[tuple[str, str, set[str] | None]]:
    """The rows a kind is reported in: ``(preset, label, item names or None for all)``. Files given as they are
    split by their own band: one that reaches ``FULL_BAND_FROM_HZ`` lacks nothing and must come out as it
    went in (the bar); one cut by its own encoder is a codec-cut file, which the model is meant to fill."""
    if kind.preset != "full-band":
        return [(kind.preset, kind.label, None)]
    items = tested.items[_method(tested, "model")]
    complete = {i["name"] for i in items if i.get("ref_edge_hz", FULL_BAND_FROM_HZ) >= FULL_BAND_FROM_HZ}
    return [(kind.preset, kind.label, complete),
            (f"{kind.preset}, own cut", "44.1 kHz files cut by their own encoder (16-bit)",
             {i["name"] for i in items} - complete)]


def _shipped_worse(tested: Tested, kind: Kind) -> float:
    shipped = {i["name"]: i for i in tested.items[_method(tested, SHIPPED)]}
    base = {i["name"]: i for i in tested.items[_method(tested, kind.baseline)]}
    return 100 * float(np.mean([float(snr_lost(shipped[n]["snr"], base[n]["snr"])) > 3.0 for n in shipped]))


def network_args(checkpoint: Path) -> list[str]:
    """``audiosr test`` arguments that build the network a training checkpoint was trained with (its stored
    description): a variant of the recipe (another hop, another head) is scored as it was trained, not as
    the recipe's configs would build it."""
    from audiosr.models.checkpoint import CHECKPOINT_KEY, _load

    spec = _load(checkpoint, mmap=True).get(CHECKPOINT_KEY) or {}
    return ["--model.init_args.network", json.dumps(spec["network"])] if "network" in spec else []


def evaluate(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    lists = {p.stem: p for p in (root / "lists").glob("*.txt")}
    if not lists:
        raise SystemExit(f"no lists in {root / 'lists'}: train first (python -m bench.any_input train ...)")
    checkpoint = Path(args.checkpoint) if args.checkpoint not in ("best", "last") else \
        resolve_checkpoint(args.checkpoint, root / "runs" / EXPERIMENT)
    step = checkpoint_step(checkpoint)
    name = f"evaluation-{args.split}" + (f"-{args.excerpt:g}s" if args.excerpt else "") + f"-step{step}" \
        + (f"-{args.tag}" if args.tag else "")
    test_args = [a for a in args.test_args if a != "--"]
    if test_args and not args.tag:
        raise SystemExit("a variant of the test (arguments after --) needs a --tag to name its results")
    work = root / name
    sources = {}
    if args.excerpt:
        lists = dict(lists)
        lists[args.split], sources = write_excerpts(lists[args.split], root / f"excerpts-{args.split}-{args.excerpt:g}s",
                                                    args.excerpt)
    chosen = {k.preset for k in KINDS if not args.kinds or k.preset in args.kinds.split(",")}
    tested = {}
    for kind in KINDS:  # the kinds asked for, and any other this evaluation already finished (its report keeps them)
        extra = [*network_args(checkpoint),
                 "--config", str(REPO / "configs" / "inputs" / "any-input" / f"{kind.preset}.yaml"),
                 *(["--report.visqol", "false"] if args.no_visqol else []),
                 *(["--report.models", f"{{{SHIPPED}: default}}"] if kind.beside_shipped else []), *test_args]
        result = run_test(kind.label, kind.preset, checkpoint, lists, args.split, extra, work, root / "cache", CONFIGS,
                          kept_only=kind.preset not in chosen)
        if result is not None:
            tested[kind.preset] = result
    categories = {"test": lambda: dev_categories(args.dev_dir.resolve()), "holdout": lambda: _package_categories(args),
                  "val": lambda: {**dev_categories(args.dev_dir.resolve()), **_package_categories(args)}}[args.split]()
    categories.update({excerpt: categories.get(source, "other") for excerpt, source in sources.items()})
    what = f"{args.split} split" + (f" ({args.excerpt:g}-s excerpts)" if args.excerpt else "")
    variant = f", {command_line(test_args)}" if test_args else ""
    text = report(tested, categories, f"The model for any input, {what}, {checkpoint.name} (step {step}){variant}")
    out = root / f"{name}.md"
    out.write_text(text + "\n")
    log(f"wrote {out}")
    print(text)
    return 0


def _evaluated(evaluation: Path, kind: Kind) -> tuple[dict[str, dict], dict[str, float]] | None:
    """One kind's items in an evaluation folder: the model's, and the baseline's SNR, each by a name that
    does not depend on the run's folder (the excerpt's own path below it); None if the kind was not run."""
    reports = sorted((evaluation / "tests" / kind.preset).rglob("comparison.json"))
    if not reports:
        return None
    items = json.loads(reports[-1].read_text())["items"]

    def by_name(method: str) -> dict[str, dict]:
        return {re.sub(r"^.*/(excerpts-[^/]+/)", r"\1", i["name"]): i for i in items[method]}

    baseline = by_name(next(m for m in items if m.split(" (")[0] == kind.baseline))
    return by_name(next(m for m in items if m.startswith("audiosr "))), {n: i["snr"] for n, i in baseline.items()}


def paired(args: argparse.Namespace) -> int:
    """Two evaluations of the same items (two runs, or two variants of one test) compared item by item: the
    difference of mean SNR and the ratio of mean LSDs with bootstrap intervals, and each one's share of items
    more than 3 dB worse than the baseline of its own run."""
    rows = []
    for kind in KINDS:
        both = [_evaluated(e, kind) for e in (args.variant, args.against)]
        if None in both:
            continue
        (a, base_a), (b, base_b) = both
        names = sorted(set(a) & set(b))
        if not names:
            raise SystemExit(f"{kind.preset}: the two evaluations share no items")
        worse = [100 * float(np.mean([float(snr_lost(items[n]["snr"], base[n])) > 3.0 for n in names]))
                 for items, base in ((a, base_a), (b, base_b))]

        def values(items: dict, key: str) -> np.ndarray:
            return np.array([items[n].get(key, np.nan) for n in names], dtype=np.float64)

        snr_a, snr_b = values(a, "snr"), values(b, "snr")
        row = [kind.preset, len(names), f"{snr_a.mean() - snr_b.mean():+.2f} "
               + _interval(bootstrap_interval(snr_a, snr_b, mean_difference), True)]
        for key in ("lsd", "lsd_below_edge"):
            la, lb = values(a, key), values(b, key)
            low, high = bootstrap_interval(la, lb, mean_ratio)
            row.append(f"{la.mean() / lb.mean():.3f} [{low:.3f}, {high:.3f}]")
        rows.append([*row, f"{worse[0]:.1f} / {worse[1]:.1f}"])
    if not rows:
        raise SystemExit(f"no kind of input evaluated in both {args.variant} and {args.against}")
    print(f"{args.variant} against {args.against}, the same items:\n")
    print(markdown_table(["input", "files", "SNR difference (dB)", "LSD ratio", "LSD < edge ratio",
                          "> 3 dB worse (%), each"], rows, left={0}))
    return 0


LEVEL_BANDS_HZ = (12000, 14000, 15000, 16000, 17000, 18000, 19000, 20000, 22050)


def band_levels(x: np.ndarray, rate: int, edges_hz=LEVEL_BANDS_HZ, n_fft: int = 2048) -> list[float]:
    """Mean power per bin (dB) of a mono signal in each band between consecutive ``edges_hz``
    (``audiosr.band.mean_power``: Hann frames, half overlapping, averaged over the whole signal)."""
    import torch

    from audiosr.band import mean_power

    power = mean_power(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), n_fft).double().numpy()
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    return [float(10 * np.log10(power[(freqs >= lo) & (freqs < hi)].mean() + 1e-20))
            for lo, hi in zip(edges_hz, edges_hz[1:])]


def levels(args: argparse.Namespace) -> int:
    """How loud the band the model invents above an encoder's cut is against the reference: the first
    channel of every ``--every``-th validation excerpt at 44.1 kHz, encoded as MP3 at 64 kbps (the
    ``mp3-64k`` preset's codec) and decoded, then upsampled; band levels of the three."""
    import soundfile as sf
    import torch

    from audiosr.data.degradations import round_trip
    from audiosr.inference.upsampler import Upsampler

    root = args.root.resolve()
    checkpoint = Path(args.checkpoint) if args.checkpoint not in ("best", "last") else \
        resolve_checkpoint(args.checkpoint, root / "runs" / EXPERIMENT)
    torch.set_num_threads(2)
    upsampler = Upsampler.from_checkpoint(checkpoint, device="cpu", notice=lambda _: None)
    excerpts = sorted((root / "excerpts-val-8s").glob("*.flac"))
    if not excerpts:
        raise SystemExit(f"no validation excerpts in {root / 'excerpts-val-8s'}: evaluate --split val --excerpt 8 first")
    rows, above = [], []
    for path in excerpts[::args.every]:
        x, rate = sf.read(str(path), always_2d=True, dtype="float32")
        if rate != 44100:
            continue
        reference = x[:, 0]
        decoded = round_trip(reference[None], rate, "mp3", 64)[0]
        output = upsampler.upsample(decoded[None], rate)[0]
        measured = {name: band_levels(s, rate) for name, s in (("reference", reference), ("MP3", decoded), ("output", output))}
        for name, values in measured.items():
            rows.append([path.stem[:48] if name == "reference" else "", name, *(f"{v:.1f}" for v in values)])
        above.append(np.mean(measured["output"][4:7]) - np.mean(measured["reference"][4:7]))  # 17-20 kHz
    bands = [f"{lo / 1000:g}-{hi / 1000:g} kHz" for lo, hi in zip(LEVEL_BANDS_HZ, LEVEL_BANDS_HZ[1:])]
    print(f"{checkpoint.name}: dB per bin, 2048-point frames; the output's 17-20 kHz against the reference's: "
          f"median {np.median(above):+.1f} dB over {len(above)} excerpts\n")
    print(markdown_table(["excerpt", "signal", *bands], rows, left={0, 1}))
    return 0


def write_excerpts(listed: Path, folder: Path, seconds: float) -> tuple[Path, dict[str, str]]:
    """The middle ``seconds`` of every file in the list ``listed``, written once into ``folder`` as they are
    (same subtype): a split of long recordings scored in minutes, every source still in it. Returns the
    excerpts' list and, for each excerpt, its source (for the categories)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    out, sources = [], {}
    for i, line in enumerate(listed.read_text().split()):
        source = Path(line)
        target = folder / f"{i:04d}-{source.stem}.flac"
        if not target.is_file():
            info = sf.info(str(source))
            length = min(info.frames, int(round(seconds * info.samplerate)))
            audio, rate = sf.read(str(source), start=(info.frames - length) // 2, frames=length, always_2d=True)
            subtype = info.subtype if info.subtype in ("PCM_16", "PCM_24") else "PCM_24"
            sf.write(str(target), audio, rate, subtype=subtype)
        out.append(target)
        sources[str(target)] = str(source)
    excerpts = folder / "list.txt"
    excerpts.write_text("".join(f"{p}\n" for p in out))
    return excerpts, sources


def _package_categories(args: argparse.Namespace) -> dict[str, str]:
    corpus = corpus_split(args.train_dir.resolve())
    return {str(p): c for p, c in corpus.category.items()} if corpus else {}


def train(args: argparse.Namespace) -> int:
    dev = dev_split(args.dev_dir.resolve())
    if dev is None:
        raise SystemExit(f"the dev recordings are not at {args.dev_dir}")
    corpus = corpus_split(args.train_dir.resolve())
    if corpus is None:
        raise SystemExit(f"no build.sh corpus at {args.train_dir}: bash ../shared/data/train/build.sh {args.train_dir}")
    root = args.root.resolve()
    lists = write_lists(root / "lists", dev, corpus)
    family = root / "runs" / EXPERIMENT
    last = resolve_checkpoint("last", family) if any(family.glob("*/checkpoints/last.ckpt")) else None
    spent = elapsed_seconds(last)
    extra = [a for a in args.fit_args if a != "--"]
    cmd = fit_command(lists, root, args.steps, int(spent + args.minutes * 60), last is not None, extra)
    sitting = len(list(root.glob("fit-*.log"))) + 1
    log(f"sitting {sitting}: " + (f"resuming {last} ({spent / 60:.0f} min spent)" if last else "a new run")
        + f", {args.minutes:g} min more\n  {command_line(cmd)}")
    fit = run_measured(cmd, root / f"fit-{sitting}.log", cwd=REPO, env=subprocess_env(root / "cache"), label="fit")
    return fit.returncode


def speed(args: argparse.Namespace) -> int:
    """The whole ``Upsampler`` path of the model for any input beside kaiser_best and the shipped model, in one
    process: 30 s of a dev recording at each input rate, the median of ``--repeats`` calls after a warm-up."""
    import torch

    from audiosr.dsp import output_length, resample
    from audiosr.evaluation.comparison import BASELINES, time_method
    from audiosr.inference.upsampler import Upsampler
    from bench.common import read_mono
    from bench.speed import SPEED_FILE

    root = args.root.resolve()
    checkpoint = Path(args.checkpoint) if args.checkpoint not in ("best", "last") else \
        resolve_checkpoint(args.checkpoint, root / "runs" / EXPERIMENT)
    torch.set_num_threads(args.threads)
    quiet = {"device": "cpu", "notice": lambda _: None}
    models = {"model for any input": Upsampler.from_checkpoint(checkpoint, **quiet),
              "shipped model": Upsampler.from_checkpoint(None, **quiet)}
    full, rate = read_mono(args.dev_dir.resolve() / SPEED_FILE, 30.0)
    rows = []
    for low_rate in (16000, 22050, 44100):
        low = resample(full[None], rate, low_rate, "kaiser_best", output_length(full.size, rate, low_rate))
        seconds = low.shape[-1] / low_rate
        methods = {"kaiser_best": lambda x, r=low_rate: BASELINES["kaiser_best"](x, r, 44100)} if low_rate < 44100 else {}
        methods.update({name: (lambda x, r=low_rate, u=u: u.upsample(x, r)) for name, u in models.items()
                        if low_rate == 22050 or name != "shipped model"})
        walls = {name: time_method(fn, low, warmup=1, repeats=args.repeats)[1] for name, fn in methods.items()}
        for name, wall in walls.items():
            ratio = walls["kaiser_best"] / wall if "kaiser_best" in walls else None
            rows.append([f"{low_rate / 1000:g} kHz", name, f"{wall:.3f}", f"{seconds / wall:.1f}",
                         "–" if ratio is None else f"{ratio:.2f}"])
            log(f"  {low_rate} Hz, {name}: {wall:.3f} s")
    print(f"30 s of `{SPEED_FILE}` at each input rate to 44.1 kHz, {args.threads} torch thread(s) "
          f"(resampy is single-threaded), median of {args.repeats} calls after one; {checkpoint.name}:\n")
    print(markdown_table(["input", "method", "wall s", "RTR ↑", "speed vs kaiser_best ↑"], rows, left={0, 1}))
    return 0


def parts(args: argparse.Namespace) -> int:
    """Where the time of the any-input path goes: each part of ``Upsampler.upsample`` (30 s of noise at
    22.05 kHz; the recipe's network with random weights, speed does not depend on them) per hop length,
    beside kaiser_best in the same process. Parts are timed by wrapping their functions; the shares
    overlap where one part calls another (the generator holds the rest)."""
    import collections
    import functools
    import time

    import torch

    import audiosr.band as band
    import audiosr.models.generator as generator
    import audiosr.models.spectral as spectral
    from audiosr.evaluation.comparison import BASELINES
    from audiosr.inference.upsampler import Upsampler
    from bench.common import build

    torch.set_num_threads(args.threads)
    spent: collections.Counter = collections.Counter()

    def timed(owner, name: str, label: str) -> None:
        function = getattr(owner, name)

        @functools.wraps(function)
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    for owner, name, label in [(band, "content_edge", "edge search"), (band, "filter_each", "keeping the input's band"),
                               (spectral.SpectralNetwork, "stft", "network STFT"),
                               (spectral.SpectralNetwork, "istft", "network inverse STFT"),
                               (spectral.SpectralNetwork, "backbone", "backbone (features, embedding, blocks)"),
                               (spectral.MagnitudePhaseNetwork, "head", "head"),
                               (generator.Generator, "level_scale", "level normalisation")]:
        timed(owner, name, label)
    low = (np.random.default_rng(0).standard_normal(22050 * 30) * 0.05).astype(np.float32)
    rows = []
    for hop in args.hops:
        torch.manual_seed(0)
        module, _ = build(CONFIGS, "--model.init_args.network.init_args.hop_length", str(hop))
        upsampler = Upsampler(module.generator.eval(), device="cpu", notice=lambda _: None)
        upsampler.upsample(low, 22050)
        BASELINES["kaiser_best"](low, 22050, 44100)
        walls, best = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same machine
            spent.clear()
            start = time.perf_counter()
            upsampler.upsample(low, 22050)
            walls.append(time.perf_counter() - start)
            start = time.perf_counter()
            BASELINES["kaiser_best"](low, 22050, 44100)
            best.append(time.perf_counter() - start)
        wall = float(np.median(walls))
        rows.append([f"hop {hop}", "whole path", f"{wall:.3f}", "100", f"{np.median(best) / wall:.2f}"])
        rows += [[f"hop {hop}", label, f"{seconds:.3f}", f"{100 * seconds / walls[-1]:.0f}", ""]
                 for label, seconds in spent.most_common()]
    print(f"30 s at 22.05 kHz to 44.1 kHz, {args.threads} torch thread(s), median of {args.repeats} (parts: the last call):\n")
    print(markdown_table(["network", "part", "s", "% of the path", "speed vs kaiser_best"], rows, left={0, 1}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="one sitting of training (resumes from last.ckpt)")
    fit.add_argument("--minutes", type=float, default=80.0, help="this sitting's training budget")
    fit.add_argument("--steps", type=int, default=STEPS, help="optimizer steps of the whole run")
    fit.add_argument("fit_args", nargs=argparse.REMAINDER,
                     help="after --: more `audiosr fit` arguments (a variant of the recipe; give every sitting the same)")
    score = commands.add_parser("evaluate", help="audiosr test per kind of input, against what a user would otherwise have")
    score.add_argument("--checkpoint", default="best", help="best, last (of the run) or a checkpoint file")
    score.add_argument("--split", choices=("val", "test", "holdout"), default="test",
                       help="val: the validation recordings (dev and build.sh), for decisions; test: the dev test "
                            "split; holdout: the held-out build.sh packages (test and holdout: no decision)")
    score.add_argument("--kinds", default="", help=f"comma-separated presets (default all: {', '.join(k.preset for k in KINDS)})")
    score.add_argument("--no-visqol", action="store_true", help="leave ViSQOL out (faster)")
    score.add_argument("--excerpt", type=float, default=0.0,
                       help="score the middle SECONDS of each file only (the validation split holds an hour)")
    score.add_argument("--tag", default="", help="a name for this variant of the test (its folder and report)")
    score.add_argument("test_args", nargs=argparse.REMAINDER,
                       help="after --: more `audiosr test` arguments (an output stage setting: give --tag too)")
    timed = commands.add_parser("speed", help="the whole upsample path against kaiser_best and the shipped model")
    timed.add_argument("--checkpoint", default="best", help="best, last (of the run) or a checkpoint file")
    timed.add_argument("--threads", type=int, default=2, help="torch threads (default %(default)s)")
    timed.add_argument("--repeats", type=int, default=3, help="timed calls per method, median (default %(default)s)")
    split = commands.add_parser("parts", help="where the time of the upsample path goes, per hop length")
    split.add_argument("--hops", type=lambda t: [int(h) for h in t.split(",")], default=[256, 512])
    split.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    split.add_argument("--repeats", type=int, default=3)
    pair = commands.add_parser("paired", help="two evaluations of the same items, compared item by item")
    pair.add_argument("variant", type=Path, help="an evaluation folder (RUN/evaluation-...)")
    pair.add_argument("against", type=Path, help="the evaluation folder it is compared with")
    loud = commands.add_parser("levels", help="the band invented above an MP3's cut against the reference's, per band")
    loud.add_argument("--checkpoint", default="best", help="best, last (of the run) or a checkpoint file")
    loud.add_argument("--every", type=int, default=9, help="every N-th validation excerpt (default %(default)s)")
    for sub in (fit, score, timed, loud):
        sub.add_argument("--root", type=Path, required=True, help="the run's folder, the same for every sitting")
        sub.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR)
        sub.add_argument("--train-dir", type=Path, default=DEFAULT_TRAIN_DIR, help="build.sh's output folder")
    args = parser.parse_args(argv)
    return {"train": train, "evaluate": evaluate, "speed": speed, "parts": parts, "paired": paired, "levels": levels}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
