"""Train the model for any input (issue 36) in sittings, each resuming from the last one's ``last.ckpt``.

    bash ../shared/data/train/build.sh ../traindata                     # about 5 hours of real audio
    python -m bench.any_input --train-dir ../traindata --root RUNROOT --minutes 80   # one sitting
    python -m bench.any_input --train-dir ../traindata --root RUNROOT --minutes 80   # the next one goes on

The recipe is ``configs/magphase.yaml`` + ``configs/overlays/spectral-cpu.yaml`` +
``configs/overlays/any-input.yaml`` on the shipped model's data (``build.sh``'s recordings split by
package and the dev recordings' training split, each category a fixed share of the crops:
``bench.default_model``), for ``--steps`` optimizer steps in all. Each sitting trains at most
``--minutes`` more: Lightning keeps the time already spent in the checkpoint (its ``Timer``), so the
cap passed on is that time plus this sitting's. ``--ckpt_path last`` is passed whenever the run family
already has a ``last.ckpt``; the learning rate decays per step, so sittings of any length make the
same run. ``RUNROOT/fit-N.log`` keeps each sitting's log.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiosr.models.checkpoint import resolve_checkpoint
from bench.common import DEFAULT_DEV_DIR, REPO, audiosr_module_command, command_line, config_args, dev_split, log, \
    run_measured, subprocess_env
from bench.corpus import DEFAULT_TRAIN_DIR, corpus_split
from bench.default_model import data_args, write_lists

CONFIGS = ["magphase.yaml", "overlays/spectral-cpu.yaml", "overlays/any-input.yaml"]
EXPERIMENT = "any-input"
STEPS = 20_000
# x0.05 after STEPS steps: the CPU recipe's decay (x0.09 after 12 000) stretched to the longer run.
GAMMA = 0.99985


def elapsed_seconds(checkpoint: Path | None) -> float:
    """Training and validation time a checkpoint's ``Timer`` has counted (0 without one)."""
    if checkpoint is None:
        return 0.0
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    spent = state.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {})
    return float(spent.get("train", 0.0)) + float(spent.get("validate", 0.0))


def fit_command(lists: dict[str, Path], root: Path, steps: int, seconds: int, resume: bool) -> list[str]:
    return [*audiosr_module_command(), "fit", *config_args(CONFIGS), *data_args(lists), "--experiment", EXPERIMENT,
            "--trainer.default_root_dir", str(root / "runs"), "--trainer.max_steps", str(steps),
            "--trainer.max_time", f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
            "--model.init_args.lr_scheduler.init_args.gamma", str(GAMMA),
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root / "csv"),
            "--trainer.enable_progress_bar", "false", *(["--ckpt_path", "last"] if resume else [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="the run's folder, the same for every sitting")
    parser.add_argument("--minutes", type=float, default=80.0, help="this sitting's training budget")
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps of the whole run")
    parser.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR)
    parser.add_argument("--train-dir", type=Path, default=DEFAULT_TRAIN_DIR, help="build.sh's output folder")
    args = parser.parse_args(argv)
    dev = dev_split(args.dev_dir.resolve())
    if dev is None:
        parser.error(f"the dev recordings are not at {args.dev_dir}")
    corpus = corpus_split(args.train_dir.resolve())
    if corpus is None:
        parser.error(f"no build.sh corpus at {args.train_dir}: bash ../shared/data/train/build.sh {args.train_dir}")
    root = args.root.resolve()
    lists = write_lists(root / "lists", dev, corpus)
    family = root / "runs" / EXPERIMENT
    last = resolve_checkpoint("last", family) if any(family.glob("*/checkpoints/last.ckpt")) else None
    spent = elapsed_seconds(last)
    cmd = fit_command(lists, root, args.steps, int(spent + args.minutes * 60), last is not None)
    sitting = len(list(root.glob("fit-*.log"))) + 1
    log(f"sitting {sitting}: " + (f"resuming {last} ({spent / 60:.0f} min spent)" if last else "a new run")
        + f", {args.minutes:g} min more\n  {command_line(cmd)}")
    fit = run_measured(cmd, root / f"fit-{sitting}.log", cwd=REPO, env=subprocess_env(root / "cache"), label="fit")
    return fit.returncode


if __name__ == "__main__":
    raise SystemExit(main())
