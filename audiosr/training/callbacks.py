"""Callbacks: side effects only (the learning rate in the logger, the test comparison and its report).

They read the trainer, the batches, what the steps return (``audiosr.training.module.UpsampledRecording``)
and the module's public ``spec``; every metric a checkpoint is chosen by is the module's own.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger

from audiosr.dsp import nyquist
from audiosr.evaluation.comparison import (
    AS_IS, BASELINES, CAPTION, HEADERS, Comparison, against_reference, baselines, is_reference, reference_name,
    scalar_name, scalars, shown_columns, write_report,
)
from audiosr.evaluation.listening import (
    EXCERPT_SECONDS,
    PAGE,
    ListeningReport,
    Table,
    category_of,
    crop,
    keep_extremes,
    loudest_span,
    table_cells,
)
from audiosr.evaluation.plots import comparison_figure
from audiosr.models.generator import PRECISION_NAMES
from audiosr.training.module import UpsampledRecording
from audiosr.training.runs import git_commit, run_directory, tested_step


class LearningRate(LearningRateMonitor):
    """Lightning's learning-rate monitor, quietly off when the run has no logger."""

    def on_train_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_start(trainer, *args, **kwargs)

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_batch_start(trainer, *args, **kwargs)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.loggers:
            super().on_train_epoch_start(trainer, *args, **kwargs)


class BaselineComparison(Callback):
    """``audiosr test``: the model against classical resampling, one table for all processes.

    For every test recording it scores the model's output (made by the module's
    ``test_step``, whole path timed) and every method of ``audiosr.evaluation.comparison.BASELINES``
    on the same low-rate input (16-bit by default: the data module's ``test_input_bits``, which the
    caption and metadata name), timed the same way; LSD also below the reference's own band edge:
    the batch's ``ref_edge_hz`` (a manifest's) where finite, else measured once per recording.
    After the last recording the processes' shares are merged (a recording seen by two
    processes counts once), and global rank zero prints the table and writes
    ``comparison.{md,csv,json}``, ``spectrograms.png`` (input / output / target / error of the first ``examples``
    recordings, by name) and ``report.html`` into ``<run directory>/test``, and logs them.

    ``report.html`` (``audiosr.evaluation.listening``) is the table, per category when the
    test files sit in several folders, and players for ``listen`` recordings: those where the
    model gains least and most SNR against kaiser_best, each with its low-rate input, the
    model, every classical method and the target at one gain, and their spectrograms.

    Args:
        examples: recordings shown in the spectrogram figure.
        listen: recordings with players on the listening page (0: no players).
        excerpt_seconds: how much of each of them the page plays (its loudest stretch).
        visqol: add a ViSQOL column (``audiosr.evaluation.perceptual``); ``null`` (default): when the
            optional package is installed, with one line saying so when it is not.
        visqol_seconds: score ViSQOL on the first this many seconds of each recording only (e.g.
            8, as published evaluations do; it bounds the cost of long recordings); ``null``: all.
        models: other trained models scored in the same run, on the same inputs, beside the tested
            one: their label in the table -> a checkpoint or generator file, or ``default`` for the
            model shipped with audiosr (``make quickstart`` puts the shipped model beside the model
            it has just trained). Each must have the tested model's rates.
    """

    def __init__(self, examples: int = 3, visqol: bool | None = None, listen: int = 8,
                 excerpt_seconds: float = EXCERPT_SECONDS, visqol_seconds: float | None = None,
                 models: dict[str, str] | None = None) -> None:
        if listen < 0 or excerpt_seconds <= 0:
            raise ValueError(f"need listen >= 0 and excerpt_seconds > 0, got {listen} and {excerpt_seconds}")
        self.models = dict(models or {})
        for label in self.models:
            if label_taken(label, [other for other in self.models if other != label]):
                raise ValueError(f"report.models: the label {label!r} is taken (by a classical method, the tested "
                                 "model's 'audiosr ...' row or its 'model' scalars, the page's input and target, or "
                                 "another label alike); choose another")
        self.upsamplers: dict[str, Any] = {}
        self.roles: str | None = None
        if visqol_seconds is not None and not visqol_seconds > 0:
            raise ValueError(f"visqol_seconds must be positive (or null), got {visqol_seconds}")
        self.examples_wanted = examples
        self.visqol = visqol
        self.visqol_seconds = visqol_seconds
        self.listen = listen
        self.excerpt_seconds = excerpt_seconds
        self.candidates: list[dict[str, Any]] = []
        self.comparison: Comparison | None = None
        self.baselines: dict[str, Any] = dict(BASELINES)
        self.examples: list[dict[str, Any]] = []
        # What the methods' low-rate input is (the data module's words; None: not said).
        self.test_input: str | None = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from audiosr.evaluation.perceptual import MISSING, visqol_scorer

        spec = pl_module.spec
        scorer = None
        if self.visqol is not False:
            scorer = visqol_scorer(notice=lambda line: trainer.is_global_zero and print(f"audiosr: {line}"),
                                   seconds=self.visqol_seconds)
            if scorer is None and self.visqol:
                raise RuntimeError(MISSING.replace("column skipped", "asked for (--report.visqol true)"))
        # The test inputs' rate is the data's: a model for any input is tested on files of any rate.
        self.source_rate = getattr(trainer.datamodule, "source_rate", spec.source_rate)
        self.comparison = Comparison(self.source_rate, spec.target_rate, scorer)
        self.baselines = baselines(self.source_rate, spec.target_rate)
        self.upsamplers = {label: self._other_model(label, where, self.source_rate, spec, trainer.strategy.root_device)
                           for label, where in self.models.items()}
        # Which row is which, said under the table wherever it is shown.
        self.roles = None
        if self.upsamplers:
            shipped = [label for label, where in self.models.items() if where == "default"]
            self.roles = (f"'audiosr {type(pl_module.network).__name__}' is the model under test "
                          f"({trainer.ckpt_path or 'not trained'})"
                          + "".join(f"; {label!r} is the model shipped with audiosr" for label in shipped)
                          + "".join(f"; {label!r} is {where}" for label, where in self.models.items()
                                    if label not in shipped) + ", on the same inputs")
        self.examples = []
        self.candidates = []
        self.test_input = getattr(trainer.datamodule, "test_input", None)

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: UpsampledRecording, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        assert self.comparison is not None
        spec = pl_module.spec
        name = batch["name"][0]
        low = batch["low"][0].cpu().numpy()  # (1, T_low): one whole recording per batch
        target = batch["target"][0].cpu().numpy()
        known = batch.get("ref_edge_hz")
        edge = self.comparison.reference_edge(target, None if known is None else float(known[0]))
        split = self.comparison.band_split(low)
        self.comparison.add(outputs.method, outputs.output, target, name, edge, split)
        self.comparison.add_timing(outputs.method, outputs.output.shape[-1] / spec.target_rate, outputs.seconds,
                                   outputs.batch_size, outputs.device, outputs.precision)
        outputs_by_method = {outputs.method: outputs.output}
        for label, upsampler in self.upsamplers.items():
            outputs_by_method[label] = self.comparison.evaluate(
                label, lambda x, rate, _: upsampler.upsample(x, rate), low, target, name=name,
                device=str(upsampler.device), precision=PRECISION_NAMES[upsampler.precision], edge_hz=edge,
                split_hz=split)
        for baseline, fn in self.baselines.items():
            label = f"{baseline} (model input)" if baseline == spec.input_filter else baseline
            outputs_by_method[label] = self.comparison.evaluate(label, fn, low, target, name=name,
                                                                precision=PRECISION_NAMES["32"], edge_hz=edge,
                                                                split_hz=split)
        if self.listen:
            self._consider(name, low, outputs_by_method, target, batch["input"][0].cpu().numpy())
        if len(self.examples) < self.examples_wanted:
            self.examples.append({"name": name, "input": batch["input"][0, 0].cpu().numpy(),
                                  "output": outputs.output[0], "target": target[0]})

    @staticmethod
    def _other_model(label: str, where: str, source_rate: int, spec: Any, device: Any) -> Any:
        """The ``Upsampler`` of one of ``models`` on the tested model's device, its rates checked: the test
        files' ``source_rate`` must be its own, unless it is a model for any input."""
        from audiosr.inference import Upsampler
        from audiosr.inference.upsampler import default_checkpoint

        path = default_checkpoint() if where == "default" else Path(where).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"report.models: {label!r}: no checkpoint at {path}")
        upsampler = Upsampler.from_checkpoint(path, device=device)
        other = upsampler.spec
        if other.target_rate != spec.target_rate or (other.source_rate != source_rate and not other.any_input):
            raise ValueError(f"report.models: {label!r} ({path}) upsamples {other.source_rate} -> {other.target_rate} Hz; "
                             f"the test files are {source_rate} Hz, to {spec.target_rate} Hz")
        return upsampler

    def _consider(self, name: str, low: Any, outputs: dict[str, Any], target: Any, rough: Any) -> None:
        """Keep this recording's excerpts if it is among the model's worst or best against kaiser_best."""
        assert self.comparison is not None
        rates = self.comparison
        metrics = {method: self.comparison.items[method][-1] for method in outputs}
        model = next(iter(outputs))
        reference = next(m for m in outputs if is_reference(m))
        span = loudest_span(target, rates.target_rate, self.excerpt_seconds)
        self.candidates.append({
            "name": name, "gain_db": metrics[model]["snr"] - metrics[reference]["snr"],
            "low": crop(low, rates.source_rate, span), "rough": crop(rough, rates.target_rate, span),
            "target": crop(target, rates.target_rate, span),
            "outputs": {m: crop(o, rates.target_rate, span) for m, o in outputs.items()},
            "notes": {m: f"SNR {v['snr']:.1f} dB · LSD {v['lsd']:.2f}" for m, v in metrics.items()},
        })
        self.candidates = keep_extremes(self.candidates, self.listen, "gain_db")  # memory stays bounded

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.comparison is not None
        shares = _gather(trainer, (self.comparison, self.examples, self.candidates))
        merged = Comparison(self.comparison.source_rate, self.comparison.target_rate)
        examples, candidates = [], {}
        for comparison, items, kept in shares:
            merged.merge(comparison)
            examples.extend(items)
            candidates.update({c["name"]: c for c in kept})
        self.candidates = keep_extremes(list(candidates.values()), self.listen, "gain_db")
        self.comparison = merged
        unique = {e["name"]: e for e in examples}
        self.examples = [unique[n] for n in sorted(unique)][: self.examples_wanted]

    @property
    def caption(self) -> str:
        caption = against_reference(CAPTION, self.baselines)
        if self.visqol_seconds is not None:
            caption += f", on the first {self.visqol_seconds:g} s of each recording"
        if self.test_input is not None:
            caption += f"; every method's low-rate input: {self.test_input}"
        if self.roles:
            caption += f". {self.roles}"
        return caption

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        directory = run_directory(trainer) / "test"
        if not trainer.is_global_zero or self.comparison is None:
            return
        rows = self.comparison.rows()
        config_file = directory.parent / "test-config.yaml"
        spec = pl_module.spec
        metadata = {
            "checkpoint": trainer.ckpt_path,
            "git_commit": git_commit(),
            "model": spec.describe(),
            "precision": rows[0].precision if rows else None,  # the model's row comes first
            "data": trainer.datamodule.describe() if trainer.datamodule is not None else None,
            "test_input": self.test_input,
            "config": yaml.safe_load(config_file.read_text()) if config_file.is_file() else None,
        }
        paths = write_report(rows, directory, metadata, caption=self.caption, items=self.comparison.items)
        figure = None
        if self.examples:
            figure = comparison_figure(
                self.examples, [e["name"] for e in self.examples], spec.target_rate, nyquist(self.source_rate),
                directory / "spectrograms.png",
                title=f"{self.source_rate} Hz -> {spec.target_rate} Hz: input ({spec.input_filter}), model, target, error",
            )
        report = self._listening_page(directory, rows, spec)
        self._log(trainer, rows, figure, report)
        print("\n" + paths["md"].read_text())
        print(f"audiosr: report in {directory} (comparison.md/.csv/.json" + (", spectrograms.png)" if figure else ")"))
        print(f"audiosr: listening report: {directory / PAGE} (open it in a browser)")

    def _listening_page(self, directory: Path, rows: list, spec: Any) -> ListeningReport:
        """Write ``report.html``: the tables, then players for the kept recordings, worst first."""
        assert self.comparison is not None
        source_rate = self.comparison.source_rate
        report = ListeningReport(directory, f"audiosr test: {source_rate} Hz -> {spec.target_rate} Hz",
                                 self.excerpt_seconds)
        keys = shown_columns(rows)
        report.intro = [self.caption]
        report.tables.append(Table("All test recordings", [HEADERS[k] for k in keys], table_cells(rows, keys)))
        names = {item["name"] for items in self.comparison.items.values() for item in items}
        categories = sorted({category_of(n) for n in names})
        if len(categories) > 1:
            quality = [k for k in keys if k not in ("rtr", "batch_size", "device", "precision")]
            for category in categories:
                members = {n for n in names if category_of(n) == category}
                report.tables.append(Table(f"{category or '(top folder)'}: {len(members)} recordings",
                                           [HEADERS[k] for k in quality],
                                           table_cells(self.comparison.rows(members), quality)))
        for candidate in self.candidates:
            players = {"low-rate input": (candidate["low"], source_rate),
                       **{m: (o, spec.target_rate) for m, o in candidate["outputs"].items()},
                       "target": (candidate["target"], spec.target_rate)}
            figure = {"input (rough)": candidate["rough"], **candidate["outputs"], "target": candidate["target"]}
            reference = reference_name(candidate["outputs"])
            report.add_recording(candidate["name"], players, "target", spec.target_rate, nyquist(source_rate),
                                 why=f"model vs {reference}: {candidate['gain_db']:+.1f} dB SNR",
                                 notes=candidate["notes"], figure=figure)
        report.write()
        return report

    @staticmethod
    def _log_page(logger: WandbLogger, report: ListeningReport, step: int | None) -> None:
        """The listening page as one self-contained file (W&B serves nothing beside it); a failure
        here costs the W&B copy only, never the report on disk."""
        import tempfile

        import wandb

        try:
            with tempfile.TemporaryDirectory() as scratch:
                page = Path(scratch) / "report.html"
                page.write_text(report.render(inline=True), encoding="utf-8")
                logger.log_metrics({"test/report": wandb.Html(str(page), inject=False)}, step)
        except Exception as error:
            print(f"audiosr: the listening page was not logged to W&B ({str(error).strip() or type(error).__name__}); "
                  f"it is in {report.directory / PAGE}")

    @staticmethod
    def _log(trainer: L.Trainer, rows: list, figure: Path | None, report: ListeningReport | None = None) -> None:
        """The table, figure and page at the tested checkpoint's step; its numbers as flat scalars
        (``audiosr.evaluation.comparison.scalars``): W&B's run summary, any other logger's metrics."""
        columns = [f.name for f in fields(rows[0])] if rows else []
        step = tested_step(trainer)
        numbers = scalars(rows, model=rows[0].method) if rows else {}  # the model's row comes first
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table("test/comparison", columns=columns,
                                 data=[[_cell(getattr(r, c)) for c in columns] for r in rows], step=step)
                if figure is not None:
                    logger.log_image("test/spectrograms", images=[str(figure)], step=step)
                if report is not None:
                    BaselineComparison._log_page(logger, report, step)
                logger.experiment.summary.update(numbers)
            else:
                logger.log_metrics(numbers, step)


# Names the listening page gives its own versions.
PAGE_VERSIONS = ("low-rate input", "input (rough)", "target")


def label_taken(label: str, others: list[str]) -> bool:
    """Whether a ``report.models`` label would stand for, or be filed under, another row: a classical
    method (``kaiser_best v2`` would become the reference), the tested model (``audiosr ...``, or
    ``model`` in the scalars), a version of the page, or another label with the same scalar name."""
    name = scalar_name(label)
    return (label.startswith("audiosr ") or name == "model" or label.lower() in PAGE_VERSIONS
            or any(name == b or name.startswith(f"{b}_") for b in [*BASELINES, scalar_name(AS_IS)])
            or any(scalar_name(other) == name for other in others))


def _cell(value: Any) -> Any:
    """A W&B table cell: an interval ``[low, high]`` as its text, everything else as it is."""
    return str(value) if isinstance(value, list) else value


def _gather(trainer: L.Trainer, obj: Any) -> list[Any]:
    """``obj`` of every process (a list of one outside distributed runs)."""
    import torch.distributed as dist

    if trainer.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * trainer.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
