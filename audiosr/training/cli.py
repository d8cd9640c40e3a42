"""``audiosr fit / validate / test``: the LightningCLI, its run layout and checkpoint lookup."""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import CheckpointIO
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger

from audiosr.data.datamodule import AudioPairDataModule
from audiosr.dsp import nyquist
from audiosr.models.checkpoint import (
    CheckpointError, check_compatible, checkpoint_step, is_generator_path, read_spec, resolve_checkpoint,
)
from audiosr.output_stage import OutputStage
from audiosr.training.callbacks import BaselineComparison, LearningRate
from audiosr.training.examples import AudioExamples
from audiosr.training.module import SuperResolutionModule
from audiosr.training.runs import (
    AtomicCheckpointIO, CheckpointWriteError, RunCheckpoint, SaveRunConfig, new_run_id, run_directory, run_of_checkpoint,
    wandb_identity,
)

RUNS_DIR = "runs"
DEFAULT_EXPERIMENT = "audiosr"
GPU_PRECISIONS = ("16-mixed", "16", "16-true", "bf16-mixed", "bf16", "bf16-true", "transformer-engine")
WANDB_LOGGER = "audiosr.training.runs.WandbLogger"
WANDB_LOGGERS = (WANDB_LOGGER, "lightning.pytorch.loggers.WandbLogger")


def wandb_offline() -> bool:
    """W&B stays offline unless the user asked for online or has logged in."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", "~/.netrc")).expanduser()
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


def fail(message: str) -> None:
    """One clear line and exit status 2: a usage problem, found before anything runs."""
    print(f"audiosr: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class AudioSRCLI(LightningCLI):
    """LightningCLI with the data module owning the rates and one folder per run.

    The model is given in subclass mode (``model: {class_path, init_args}``), so a config
    can choose another LightningModule (the GAN module) for the same generator.
    """

    def __init__(self, args: Any = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("parser_kwargs", {"epilog": "Also: `audiosr upsample --help` runs a trained model on audio files."})
        super().__init__(
            SuperResolutionModule, AudioPairDataModule, subclass_mode_model=True,
            save_config_callback=SaveRunConfig, seed_everything_default=0, args=args, run=run, **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's, less ``predict``: running a model on files is ``audiosr upsample``'s job."""
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name != "predict"}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--experiment", type=str | None, default=None,
            help="run family: runs go to runs/<experiment>/<run id>/ and --ckpt_path last|best look only there "
                 "(default: the name of the first --config file)",
        )
        parser.add_argument(
            "--tiny", type=bool, default=False,
            help="shrink the recipe's networks (generator and discriminators) to the smallest size of their "
                 "own design, for smoke runs (configs/overlays/debug.yaml sets it)",
        )
        # The data module owns the rates; the model is told, never configured twice.
        for name in ("source_rate", "target_rate", "input_filter"):
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults({
            "model": {"class_path": "audiosr.training.module.SuperResolutionModule"},
            "checkpoint.monitor": "val/score",
            "checkpoint.mode": "min",
            "checkpoint.filename": "best-{step}",
            "checkpoint.save_last": True,
            "checkpoint.save_top_k": 1,
            "checkpoint.auto_insert_metric_name": True,
        })
        parser.add_lightning_class_args(BaselineComparison, "report")
        parser.add_lightning_class_args(AudioExamples, "examples")
        parser.add_lightning_class_args(LearningRate, "lr_monitor")
        parser.set_defaults({
            "lr_monitor.logging_interval": "step",
            "trainer.default_root_dir": RUNS_DIR,
            "trainer.logger": {
                "class_path": WANDB_LOGGER,
                "init_args": {"project": "audiosr", "save_dir": RUNS_DIR, "offline": wandb_offline()},
            },
        })

    # --- before anything is built: device, run folder, checkpoint -------------------------

    def before_instantiate_classes(self) -> None:
        # With run=False there is no subcommand and the config is not nested under one.
        config = self.config[self.subcommand] if self.subcommand else self.config
        self._fall_back_to_cpu(config.trainer)
        if config.get("tiny"):
            model = config.model.init_args
            for component in [model.get("network"), *(model.get("discriminators") or [])]:
                _shrink(component)
        experiment = config.get("experiment") or self._experiment_from_configs(config)
        family = Path(config.trainer.default_root_dir or RUNS_DIR) / experiment
        checkpoint = self._resolve_checkpoint(config, family)
        run_id = (run_of_checkpoint(checkpoint, family) if checkpoint else None) or new_run_id()
        run_dir = family / run_id
        config.experiment = experiment
        config.checkpoint.dirpath = str(run_dir / "checkpoints")
        config.trainer.default_root_dir = str(run_dir)
        logger = config.trainer.logger
        if getattr(logger, "class_path", None) in WANDB_LOGGERS:
            init = logger.init_args
            # A fit and the tests of its checkpoints: one W&B group; what the command line names wins.
            identity = wandb_identity(experiment, run_id, self.subcommand or "fit")
            if init.get("version") is not None:
                identity.pop("id")
            for key, value in identity.items():
                if init.get(key) is None:
                    setattr(init, key, value)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        # The run family is named after the first --config of the command line. jsonargparse's
        # own list is no guide: a file that includes another (`config: vctk.yaml`) replaces it.
        argv = sys.argv[1:] if args is None else args if isinstance(args, list) else []
        self.command_line = [str(a) for a in argv]
        self.command_line_configs = [
            value.split("=", 1)[1] if "=" in value else argv[i + 1]
            for i, value in enumerate(argv)
            if value.startswith("--config=") or (value in ("--config", "-c") and i + 1 < len(argv))
        ]
        super().parse_arguments(parser, args)

    def _experiment_from_configs(self, config: Any) -> str:
        """The name of the first config file of the command line."""
        files = getattr(self, "command_line_configs", None) or [str(c) for c in (config.get("config") or [])]
        return Path(files[0]).stem if files else DEFAULT_EXPERIMENT

    @staticmethod
    def _fall_back_to_cpu(trainer: Any) -> None:
        if torch.cuda.is_available():
            return
        changed = []
        if str(trainer.accelerator) in ("gpu", "cuda"):
            changed.append(f"accelerator {trainer.accelerator} -> cpu")
            trainer.accelerator = "cpu"
        if str(trainer.precision) in GPU_PRECISIONS:
            changed.append(f"precision {trainer.precision} -> 32-true")
            trainer.precision = "32-true"
        if changed:
            print(f"audiosr: no GPU found, falling back: {', '.join(changed)}", file=sys.stderr)

    def _resolve_checkpoint(self, config: Any, family: Path) -> Path | None:
        """``--ckpt_path last|best|FILE`` -> a file of this run family, checked against the config."""
        given = config.get("ckpt_path")
        if self.subcommand is None:
            return None
        if self.subcommand == "test" and not given:
            fail("audiosr test needs --ckpt_path best, last or a checkpoint file")
        try:
            path = resolve_checkpoint(given, family)
            if path is None:
                return None
            data = config.data
            spec = read_spec(path)
            if spec.any_input and self.subcommand == "test":
                # A model for any input is tested on files at whatever rate they are: the module is built
                # as the checkpoint's (its input at the target rate), the data keeps its own rate.
                check_compatible(spec, path, target_rate=data.target_rate)
                config.model.init_args.source_rate = spec.source_rate
                config.model.init_args.input_filter = spec.input_filter
            else:
                check_compatible(spec, path, source_rate=data.source_rate, target_rate=data.target_rate,
                                 input_filter=data.input_filter)
            if is_generator_path(path) and self.subcommand != "test":
                fail(f"{path} is a generator file (weights only, no optimizer or step): `audiosr test --ckpt_path "
                     f"{path}` tests it and `audiosr upsample --ckpt_path {path}` runs it, but {self.subcommand} "
                     "cannot resume it; give a training checkpoint (.ckpt)")
        except (FileNotFoundError, CheckpointError) as error:
            fail(str(error))
        if self.subcommand in ("test", "validate", "predict"):
            self._stage_from_checkpoint(config, spec.stage, path)
        step = checkpoint_step(path)
        print(f"audiosr: --ckpt_path {given} -> {path}" + (f" (step {step})" if step is not None else ""),
              file=sys.stderr)
        config.ckpt_path = str(path)
        return path

    def _stage_from_checkpoint(self, config: Any, stored: OutputStage, path: Path) -> None:
        """Run the checkpoint's own output stage; a setting given on the command line overrides it.

        Config files describe how to train; the stage stored in a checkpoint is what was validated
        (and calibrated, for the shipped model), so it wins over them.
        """
        prefix = "--model.init_args.output_stage"
        named = [a.split("=", 1)[0] for a in getattr(self, "command_line", []) if a.startswith(prefix)]
        configured = config.model.init_args.get("output_stage")
        configured = OutputStage.from_dict(configured.as_dict()) if configured is not None else OutputStage()
        given = {f.name for f in fields(OutputStage)} if prefix in named else {a[len(prefix) + 1:] for a in named}
        stage = stored.replace(**{name: getattr(configured, name) for name in sorted(given)})
        config.model.init_args.output_stage = Namespace(stage.to_dict())
        print(f"audiosr: output stage of {path.name}" + (f", {', '.join(sorted(given))} from the command line" if given else "")
              + f": {stage.describe(nyquist(config.data.source_rate))}", file=sys.stderr)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        plugins = kwargs.get("plugins", self._get(self.config_init, "trainer", default={}).get("plugins"))
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())  # an interrupted write never replaces a good checkpoint
        return super().instantiate_trainer(**{**kwargs, "plugins": plugins})

    # --- after fit: where things are --------------------------------------------------------

    def after_fit(self) -> None:
        run_dir = run_directory(self.trainer)  # on every process: it broadcasts
        if not self.trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("val/")}
        lines = ["", f"audiosr: training finished at step {self.trainer.global_step}"]
        if metrics:
            shown = ("score", "snr", "lsd", "lsd_hf", "rtr", "input_snr", "input_lsd")
            lines.append("  last validation: " + ", ".join(
                f"{key} {metrics['val/' + key]:.3f}" for key in shown if "val/" + key in metrics
            ) + "  (LSD log10; input = the network's own rough input; score = what `best` is chosen by)")
        checkpoint = self.trainer.checkpoint_callback
        if checkpoint is not None:
            lines.append(f"  checkpoints: {checkpoint.dirpath}")
            if checkpoint.best_model_path:
                score = checkpoint.best_model_score
                lines.append(f"    best: {checkpoint.best_model_path}"
                             + (f" ({checkpoint.monitor} {float(score):.3f})" if score is not None else ""))
            if checkpoint.last_model_path:
                lines.append(f"    last: {checkpoint.last_model_path} (step {self.trainer.global_step})")
        lines.append(f"  run directory: {run_dir}")
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                run = logger.experiment
                where = getattr(run, "dir", None)
                lines.append(f"  W&B run: {getattr(run, 'id', '?')} ({where}); sync offline runs with "
                             f"`wandb sync {Path(where).parent if where else RUNS_DIR}`")
        print("\n".join(lines))


def _shrink(component: Any) -> None:
    """Sets a configured class's ``tiny_args`` (its smallest working size) into its ``init_args``."""
    class_path = getattr(component, "class_path", None)
    if not class_path:
        return
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    for name, value in getattr(cls, "tiny_args", {}).items():
        setattr(component.init_args, name, value)


class _DropNoise(logging.Filter):
    """Lightning's advertising tips and TPU/HPU lines tell a user of audiosr nothing."""

    PREFIXES = ("💡 Tip", "TPU available", "HPU available")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.PREFIXES)


def quiet() -> None:
    """Keep the terminal to what a user needs: progress, metrics, where things are."""
    import warnings

    from audiosr.data.recordings import SkippedAudioWarning

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropNoise())
    # Lightning 2.6 calls a torch pytree API that torch 2.11 deprecates; nothing a user can do.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, SkippedAudioWarning):
            print(f"audiosr: {message}", file=sys.stderr)  # one line, without the source line
            return
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(args: list[str] | None = None) -> None:
    from audiosr.training.divergence import TrainingDiverged

    quiet()
    try:
        AudioSRCLI(args=args)
    except TrainingDiverged as diverged:
        where = diverged.last_checkpoint
        print(f"\naudiosr: {diverged}.\n"  # a fresh line: the progress bar stops mid-line
              + (f"  last good state: {where[0]} (step {where[1]}); resume it with --ckpt_path last, "
                 "e.g. with a lower learning rate or stronger gradient clipping" if where else
                 "  no checkpoint was written before it; lower the learning rate or check the data"),
              file=sys.stderr)
        raise SystemExit(1) from None
    except SystemExit as exit_:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exit_, SIGTERMException):
            raise SystemExit(143) from None  # 128 + SIGTERM, as a killed process reports
        raise
    except Exception as error:
        # Problems a user fixes outside audiosr get one line, no traceback. jsonargparse wraps
        # what a class raises while it is built (the GAN's mel loss loads torchaudio there),
        # so they are looked for along the chain of causes.
        cause: BaseException | None = error
        while cause is not None and not _user_fixable(cause):
            cause = cause.__cause__
        if cause is None:
            raise
        print(f"\naudiosr: error: {cause}", file=sys.stderr)  # a fresh line: a progress bar may stop mid-line
        raise SystemExit(1) from None


def _user_fixable(error: BaseException) -> bool:
    """A broken install, a checkpoint that cannot be written, a full disk."""
    from audiosr.torchaudio_check import TorchaudioUnavailable

    if isinstance(error, (TorchaudioUnavailable, CheckpointWriteError)):
        return True
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
