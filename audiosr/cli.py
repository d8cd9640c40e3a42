"""``audiosr``: LightningCLI for fit / validate / test, plus ``audiosr upsample``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import WandbLogger

from audiosr.callbacks import ComparisonReport, LearningRate, QualityMetrics
from audiosr.checkpoint import resolve_checkpoint
from audiosr.data.datamodule import AudioPairDataModule
from audiosr.media import AudioExamples
from audiosr.module import SuperResolutionModule
from audiosr.runs import InterruptCheckpoint, SaveRunConfig, run_directory, runs_root

RUNS_DIR = "runs"
GPU_PRECISIONS = ("16-mixed", "16", "16-true", "bf16-mixed", "bf16", "bf16-true", "transformer-engine")


def wandb_offline() -> bool:
    """W&B stays offline unless the user asked for online or has logged in."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode:
        return mode in ("offline", "dryrun", "disabled")
    if os.environ.get("WANDB_API_KEY"):
        return False
    netrc = Path(os.environ.get("NETRC", "~/.netrc")).expanduser()
    return not (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))


class AudioSRCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The data module owns the rates; the model is told, never configured twice.
        for name in ("source_rate", "target_rate", "input_filter"):
            parser.link_arguments(f"data.{name}", f"model.{name}")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/lsd",
            "checkpoint.mode": "min",
            "checkpoint.filename": "best-{step}",
            "checkpoint.save_last": True,
            "checkpoint.save_top_k": 1,
        })
        parser.add_lightning_class_args(QualityMetrics, "metrics")
        parser.add_lightning_class_args(ComparisonReport, "report")
        parser.add_lightning_class_args(AudioExamples, "examples")
        parser.add_lightning_class_args(InterruptCheckpoint, "interrupt_checkpoint")
        parser.add_lightning_class_args(LearningRate, "lr_monitor")
        parser.set_defaults({
            "lr_monitor.logging_interval": "step",
            "trainer.default_root_dir": RUNS_DIR,
            "trainer.logger": {
                "class_path": "lightning.pytorch.loggers.WandbLogger",
                "init_args": {"project": "audiosr", "save_dir": RUNS_DIR, "offline": wandb_offline()},
            },
        })

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        trainer = config.trainer
        if self.subcommand == "test":
            if not config.get("ckpt_path"):
                self.parser.error("audiosr test needs --ckpt_path best, last or a checkpoint file")
            # The comparison table is built in one process; several would each see a part.
            if str(trainer.devices) not in ("1", "auto"):
                print(f"audiosr: test runs on one device (asked for {trainer.devices})", file=sys.stderr)
            trainer.devices = 1
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

    def _resolve_ckpt_path(self) -> None:
        config = self.config_init[self.subcommand]
        resolved = resolve_checkpoint(config.get("ckpt_path"), runs_root(self.trainer))
        if resolved is not None:
            if str(config["ckpt_path"]) != str(resolved):
                print(f"audiosr: --ckpt_path {config['ckpt_path']} -> {resolved}", file=sys.stderr)
            config["ckpt_path"] = str(resolved)

    def before_fit(self) -> None:
        self._resolve_ckpt_path()

    def before_validate(self) -> None:
        self._resolve_ckpt_path()

    def before_test(self) -> None:
        self._resolve_ckpt_path()

    def after_fit(self) -> None:
        run_dir = run_directory(self.trainer)  # on every process: it broadcasts
        if not self.trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("val/")}
        lines = ["", "audiosr: training finished"]
        if metrics:
            shown = ("snr", "lsd", "lsd_hf", "rtr", "input_snr", "input_lsd")
            lines.append("  last validation: " + ", ".join(
                f"{key} {metrics['val/' + key]:.3f}" for key in shown if "val/" + key in metrics
            ) + "  (LSD log10; input = the network's kaiser-upsampled input)")
        checkpoint = self.trainer.checkpoint_callback
        if checkpoint is not None:
            lines.append(f"  checkpoints: {checkpoint.dirpath}")
            if checkpoint.best_model_path:
                lines.append(f"    best: {checkpoint.best_model_path}")
            if checkpoint.last_model_path:
                lines.append(f"    last: {checkpoint.last_model_path}")
        lines.append(f"  run directory: {run_dir}")
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                run = logger.experiment
                where = getattr(run, "dir", None)
                lines.append(f"  W&B run: {getattr(run, 'id', '?')} ({where}); sync offline runs with `wandb sync {Path(where).parent if where else RUNS_DIR}`")
        print("\n".join(lines))


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    if argv[:1] == ["upsample"]:
        from audiosr.upsample import main as upsample_main

        raise SystemExit(upsample_main(argv[1:]))
    AudioSRCLI(
        SuperResolutionModule,
        AudioPairDataModule,
        save_config_callback=SaveRunConfig,
        seed_everything_default=0,
        args=args,
        parser_kwargs={"epilog": "Also: `audiosr upsample --help` runs a trained model on audio files."},
    )


if __name__ == "__main__":
    main()
