"""Quality on real recordings: the families, the known-band ablation, other degradations, the GAN.

Every model is trained by ``audiosr fit`` on the training split of the dev recordings for the
same wall-time budget (``--budget`` minutes) and tested by ``audiosr test --ckpt_path best``
on the held-out split, where every classical method is measured in the same run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audiosr.evaluation.comparison import markdown_table
from bench.common import (
    GAN_CPU, Context, DevSplit, bar_verdict, command_line, cpu_recipes, fmt, khz, log, meets_bar, rates, recipes,
)
from bench.runs import Trained, by_method, commands, test_checkpoint, train_and_test

BASELINE_ROWS = ("kaiser_fast", "kaiser_best", "soxr_vhq", "linear")


def split_table(dev: DevSplit) -> str:
    rows = [[split, len(files), f"{dev.minutes(files):.1f}", dev.describe(files)]
            for split, files in (("train", dev.train), ("val", dev.val), ("test", dev.test))]
    return (markdown_table(["split", "files", "minutes", "which (folder / speaker (files))"], rows, left={0, 3})
            + "\n- test speech: the VCTK test speakers of published systems "
            "(`audiosr.data.VCTK.PUBLISHED_TEST_SPEAKERS`); none of them trains.\n"
            "- val: nine VCTK speakers that neither train nor test (`bench.common.VAL_SPEAKERS`); validation "
            "picks the `best` checkpoint (lowest `val/score`), which is the one tested. NU-Wave 2's demo samples "
            "(`vctk/nuwave2_*`, speakers not named) are used nowhere.\n"
            "- test music/sounds: five files of different kinds; every other music/sound file trains.\n")


def baseline_rows(trained: Trained, columns_before: int) -> list[list]:
    """The classical methods' rows of a test run, with ``columns_before`` empty cells before the metrics."""
    rows = []
    for row in trained.rows:
        if not row["method"].startswith("audiosr "):
            rows.append([row["method"], *[None] * columns_before, row["snr"], row["lsd"], row["lsd_hf"],
                         row.get("visqol"), row["rtr"]])
    return rows


METRIC_HEADERS = ["SNR (dB) ↑", "LSD ↓", "LSD-HF ↓", "ViSQOL ↑", "RTR ↑ (test)"]


def model_cells(trained: Trained) -> list:
    m = trained.model
    if m is None:
        return ["failed", None, None, None, None]
    return [m["snr"], m["lsd"], m["lsd_hf"], m.get("visqol"), m["rtr"]]


def steps_trained(trained: Trained) -> str:
    return str(trained.curve[-1]["step"]) if trained.curve else "–"


def bar(trained: Trained) -> str:
    """Whether a model meets the quality bar against kaiser_best of the same run."""
    m, kb = trained.model, trained.row("kaiser_best")
    if m is None or kb is None:
        return "–"
    return bar_verdict(m, kb)


def no_dev(ctx: Context) -> str:
    ctx.skipped = "skipped: no dev recordings"
    return f"Skipped: the dev recordings are not at `{ctx.args.dev_dir}`.\n"


def slug(family: str) -> str:
    """A run name for a family: ``magnitude + phase`` -> ``magnitude-phase``."""
    return family.replace(" + ", "-").replace(" ", "-")


def trained_families(ctx: Context) -> dict[str, Trained]:
    """Each CPU-sized family trained once per run; later sections reuse them."""
    if "families" not in ctx.results:
        ctx.results["families"] = {family: train_and_test(ctx, slug(family), configs)
                                   for family, configs in cpu_recipes().items()}
    return ctx.results["families"]


def best_family(ctx: Context) -> tuple[str, Trained] | None:
    ok = [(name, t) for name, t in trained_families(ctx).items() if t.ok]
    return min(ok, key=lambda item: item[1].model["lsd"] - 0.1 * item[1].model["snr"]) if ok else None


def curves_figure(families: dict[str, Trained], path: Path) -> Path | None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not any(t.curve for t in families.values()):
        return None
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for name, t in families.items():
        minutes = [p.get("time/elapsed_s", np.nan) / 60 for p in t.curve]
        for ax, key in zip(axes, ("val/lsd", "val/snr", "val/score")):
            ax.plot(minutes, [p.get(key, np.nan) for p in t.curve], marker="o", markersize=3, label=name)
    inputs = next((t.curve for t in families.values() if t.curve), [])
    for ax, key, title in zip(axes, ("val/lsd", "val/snr", "val/score"),
                              ("LSD (log10) ↓", "SNR (dB) ↑", "val/score ↓")):
        if key != "val/score" and inputs:
            ax.axhline(inputs[-1].get(key.replace("val/", "val/input_"), np.nan), color="0.5", linestyle="--",
                       label="network input (soxr VHQ)")
        ax.set_xlabel("training minutes (2 CPU cores)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Validation (NU-Wave 2 samples, centre crops) against training time, each family CPU-sized")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


class Families:
    TITLE = "4. Model families at an equal training budget (dev recordings)"

    @staticmethod
    def run(ctx: Context) -> str:
        if ctx.dev is None:
            return no_dev(ctx)
        families = trained_families(ctx)
        phase = Families.phase_choices(ctx, families.get("magnitude"))
        rows = []
        for family, trained in families.items():
            speed = ctx.results.get("speed", {}).get((family, "CPU-sized", "cpu"), {})
            rows.append([family, fmt(speed.get("params", np.nan) / 1e6, 3), fmt(speed.get("macs", np.nan) / 1e9),
                         fmt(speed.get("rtr")), fmt(speed.get("vs_kaiser_best")), steps_trained(trained),
                         *model_cells(trained)])
        first = next((t for t in families.values() if t.ok), None)
        table = markdown_table(
            ["model (CPU-sized)", "params (M)", "GMAC / s of audio", "CPU RTR (section 1)", "vs kaiser_best",
             "steps in budget", *METRIC_HEADERS],
            rows + (baseline_rows(first, 5) if first else []), left={0})
        figure = curves_figure(families, ctx.args.figures / "families.png")
        bars = "\n".join(f"- {family}: meets the bar: {bar(t)}" for family, t in families.items())
        return (
            split_table(ctx.dev) + "\n"
            f"**Budget: {ctx.args.budget:g} minutes of `audiosr fit` per family** on 2 CPU cores (`--trainer.max_time`), "
            "each family at CPU size (`configs/<family>.yaml` + its CPU overlay), validated every 250 steps; "
            "then `audiosr test --ckpt_path best` on the 45 test files, whole, every classical method in the same "
            "run (their rows below come from the first family's test run; they are the same in every run but for "
            "RTR).\n\n" + table + "\n"
            "RTR (test) is measured inside `audiosr test` on whole files while ViSQOL and the baselines share "
            "the process; section 1's CPU RTR is the clean speed figure.\n\n"
            "The quality bar of the project, against `kaiser_best` in the same run: SNR at most 1 dB below it, "
            "LSD at most 0.55 of its LSD, at most 2 % of files more than 3 dB below it, and ViSQOL at least 0.5 "
            "above it (the parts a run measured).\n\n" + bars + "\n\n"
            + (f"![validation against training time]({figure.name})\n\n*`bench/{figure.name}`: validation LSD, SNR "
               "and the checkpoint-selection score against training minutes, per family.*\n\n" if figure else "")
            + phase + "Commands:\n\n" + commands(list(families.values()))
        )

    @staticmethod
    def phase_choices(ctx: Context, trained: Trained | None) -> str:
        """The magnitude family's trained checkpoint tested with each reused phase."""
        if trained is None or not trained.ok:
            return ""
        rows = [["mirror (trained with)", *model_cells(trained)]]
        m, found = test_checkpoint(ctx, trained, "magnitude-shift", ["--model.init_args.network.init_args.phase", "shift",
                                                                     *NO_VISQOL])
        model = by_method(found).get("model")
        if model is not None:
            rows.append(["shift (same weights)", model["snr"], model["lsd"], model["lsd_hf"], None, model["rtr"]])
        return ("**Phase of the magnitude family.** The same trained weights tested with each reused phase "
                "(the phase has no weights; `--model.init_args.network.init_args.phase shift`):\n\n"
                + markdown_table(["phase", *METRIC_HEADERS], rows) + "\n" + f"```\n{command_line(m.cmd)}\n```\n\n")


class Ablation:
    TITLE = "5. Ablation: keeping the known band"

    @staticmethod
    def run(ctx: Context) -> str:
        if ctx.dev is None:
            return no_dev(ctx)
        families = trained_families(ctx)
        rows, runs = [], []
        # A recipe built on another (magnitude.yaml: magphase.yaml with another head) would repeat its ablation.
        for recipe in [r for r in recipes() if r.cpu_overlay is not None and not r.includes_recipe]:
            family, configs = recipe.label, recipe.cpu
            without = train_and_test(ctx, f"{slug(family)}-nokeep", configs,
                                     ["--model.init_args.output_stage.keep_band", "off"], test_extra=NO_VISQOL)
            runs.append(without)
            for label, trained in (("kept (default)", families[family]), ("not kept", without)):
                m = trained.model
                rows.append([family, label, *model_cells(trained), m["lsd_lf"] if m else None, bar(trained)])
        return (
            "The same recipes at the same budget with the generator's known-band keeping switched off "
            "(`--model.init_args.output_stage.keep_band off`): the network's output is then used across the whole band, as "
            "the U-Net of the reference study did. With it on (the default), the output is the input below "
            f"0.8 x {khz(rates()[0] / 2)} kHz and the network's above 0.9 x, with a complementary linear-phase "
            "crossover between (`audiosr/models/generator.py`).\n\n"
            + markdown_table(["family", "known band", *METRIC_HEADERS, "LSD-LF ↓", "meets the bar"], rows, left={0, 1, 8})
            + "\nCommands:\n\n" + commands(runs)
        )


def lowpass(kind: str, order: int, cutoff: float) -> list[str]:
    """``audiosr test`` arguments that make the test input with one IIR low-pass, then soxr VHQ."""
    return ["--data.test_degradation", "audiosr.data.Lowpass", "--data.test_degradation.kind", kind,
            "--data.test_degradation.order", str(order), "--data.test_degradation.cutoff", str(cutoff)]


NO_VISQOL = ["--report.visqol", "false"]  # ViSQOL (seconds per file) only where a section compares perception

DEGRADATIONS = [
    ("resampy kaiser_best (the standard test)", []),
    ("soxr VHQ", ["--data.test_degradation", "audiosr.data.Resample", "--data.test_degradation.method", "soxr_vhq"]),
    ("Chebyshev I, order 8, 0.95 x Nyquist", lowpass("cheby1", 8, 0.95)),
    ("Butterworth, order 4, 0.9 x Nyquist", lowpass("butter", 4, 0.9)),
    ("elliptic, order 6, 0.97 x Nyquist", lowpass("ellip", 6, 0.97)),
]


class Degradations:
    TITLE = "6. Robustness: the test split degraded other ways"

    @staticmethod
    def run(ctx: Context) -> str:
        if ctx.dev is None:
            return no_dev(ctx)
        best = best_family(ctx)
        if best is None:
            ctx.problems.append("no trained family to test")
            return "No family trained successfully.\n"
        family, trained = best
        rows, lines = [], []
        for label, extra in DEGRADATIONS:
            if extra:
                name = "degraded-" + "".join(c for c in label.split(",")[0].split(" (")[0].lower() if c.isalnum())
                m, found = test_checkpoint(ctx, trained, name, [*extra, *NO_VISQOL])
                lines.append(command_line(m.cmd))
            else:  # the standard test input: section 4's test run of the same checkpoint
                found = trained.rows
            table = by_method(found)
            if "model" not in table:
                continue
            model, kb, sox = table["model"], table["kaiser_best"], table["soxr_vhq"]
            rows.append([label, model["snr"], model["lsd"], model["lsd_hf"], kb["snr"], kb["lsd"], sox["snr"], sox["lsd"],
                         "yes" if meets_bar(model, kb) else "no"])
            log(f"  {label}: model SNR {model['snr']:.2f} LSD {model['lsd']:.2f}; kaiser_best {kb['snr']:.2f} / {kb['lsd']:.2f}")
        return (
            f"The best family of section 4 (**{family}**, its `best` checkpoint) on the test split made low-rate in "
            "other ways than the resampy `kaiser_best` it is validated with (`--data.test_degradation`, "
            "`audiosr.data.degradations`): low-passed by IIR filters of other families (zero-phase), then "
            "resampled with soxr VHQ. It was trained with random degradations of this kind (`RandomLowpass`).\n\n"
            + markdown_table(["test input made by", "model SNR ↑", "model LSD ↓", "model LSD-HF ↓", "kaiser_best SNR",
                              "kaiser_best LSD", "soxr VHQ SNR", "soxr VHQ LSD", "meets the bar"], rows, left={0, 8})
            + "\nCommands:\n\n```\n" + "\n".join(lines) + "\n```\n"
        )


class Gan:
    TITLE = "7. Adversarial training at CPU scale"
    WARMUP_SHARE = 0.5  # of the batches the reconstruction-only run trained in the same budget

    @staticmethod
    def run(ctx: Context) -> str:
        if ctx.dev is None:
            return no_dev(ctx)
        families = trained_families(ctx)
        rows, runs, trios = [], [], []
        for family, configs in cpu_recipes().items():
            plain = families[family]
            overlay = [*configs, *GAN_CPU]
            gan = train_and_test(ctx, f"{slug(family)}-gan", overlay, tested="last")
            warm = None
            if plain.batches:  # the warm-up's length is measured on the reconstruction-only run
                warmup = int(Gan.WARMUP_SHARE * plain.batches)
                warm = train_and_test(ctx, f"{slug(family)}-gan-warm", overlay, tested="last",
                                      extra=["--model.init_args.warmup_steps", str(warmup)])
            else:
                ctx.problems.append(f"{family}: no reconstruction-only run to size the GAN's warm-up")
            runs += [t for t in (gan, warm) if t is not None]
            labelled = [("reconstruction only", plain), ("+ GAN from the start", gan)]
            if warm is not None:
                labelled.append((f"+ GAN after {warmup} reconstruction batches", warm))
            for label, trained in labelled:
                rows.append([family, label, trained.batches, *model_cells(trained), bar(trained)])
            trios.append((family, {"reconstruction only": plain, "+ GAN": gan, "+ GAN after warm-up": warm}))
        figure = Gan.figure(ctx, trios)
        return (
            f"Each CPU-sized generator trained for the same {ctx.args.budget:g} minutes with `configs/overlays/gan.yaml` + "
            "`configs/overlays/gan-cpu.yaml` on top (DAC's discriminators at CPU width, lsgan, mel 15 / feature matching 2 / "
            "adversarial 1 plus the generator's own loss), against the reconstruction-only runs of section 4: once "
            f"adversarial from the first batch, once after a reconstruction-only warm-up (`warmup_steps`) of "
            f"{Gan.WARMUP_SHARE:.0%} of the batches the reconstruction-only run trained in the same budget. "
            "Batches are counted at the end of fit. The reconstruction-only runs are tested at their `best` "
            "checkpoint, the GAN runs at `last` (a validation during the warm-up would otherwise be the best).\n\n"
            + markdown_table(["generator", "training", "batches in budget", *METRIC_HEADERS, "meets the bar"], rows,
                             left={0, 1, 8})
            + ("\n" + f"![spectrograms with and without the GAN]({figure.name})\n\n*`bench/{figure.name}`: one held-out "
               "test file upsampled by each generator with and without adversarial training, target on the left.*\n"
               if figure else "")
            + "\nCommands:\n\n" + commands(runs)
        )

    @staticmethod
    def figure(ctx: Context, trios: list[tuple[str, dict[str, Trained | None]]]) -> Path | None:
        from audiosr.data.recordings import index_files
        from audiosr.dsp import resample
        from audiosr.inference.upsampler import Upsampler
        from audiosr.evaluation.plots import spectrogram_grid

        ready = [(family, runs) for family, runs in trios if all(t is not None and t.checkpoint for t in runs.values())]
        if not ready or ctx.dev is None:
            return None
        path = next(p for p in ctx.dev.test if p.stem.startswith("p360"))
        # One grid, one pair of rates: the first shown family's data module's (the families share them).
        source_rate, target_rate = rates(cpu_recipes()[ready[0][0]])
        (recording,) = index_files([path], target_rate, ctx.cache_dir)
        target = recording.read()[0][: 4 * target_rate]
        low = resample(target, target_rate, source_rate, "kaiser_best")
        rows, names = [], []
        for family, runs in ready:
            row = {"target": target}
            for label, trained in runs.items():
                row[label] = Upsampler.from_checkpoint(trained.checkpoint, device="cpu").upsample(low, source_rate)
            rows.append(row)
            names.append(family)
        out = ctx.args.figures / "gan.png"
        spectrogram_grid(rows, names, target_rate, cutoff_hz=source_rate / 2,
                         title=f"{path.name}: with and without the GAN", path=out)
        return out
