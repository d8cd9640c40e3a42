"""Checkpoint files: the one writer and reader of what inference needs, and `last`/`best` lookup.

Two kinds of file hold a trained generator, and :func:`load_generator` reads both:

* a Lightning training checkpoint: Lightning's dict plus ``"audiosr": ModelSpec.to_dict()``;
  the network's weights are the ``"generator.network."`` entries of ``"state_dict"`` (the
  discriminators and optimizer states of a GAN run are simply not read);
* a generator file (:func:`save_generator`): ``{"audiosr": spec, "state_dict": network
  weights, "format": 2}``, a few hundred kB for a CPU-sized model; the shipped default
  model is one. :func:`as_training_checkpoint` gives it the form Lightning loads, so that
  ``audiosr test --ckpt_path FILE`` tests it like any checkpoint.

Nothing here imports Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audiosr.audio_io import atomic_output
from audiosr.models.base import build_network
from audiosr.models.generator import Generator, ModelSpec

CHECKPOINT_KEY = "audiosr"
GENERATOR_PREFIX = "generator.network."
FORMAT = 2


class CheckpointError(ValueError):
    """A file is not a usable audiosr checkpoint, or does not fit the configuration."""


def save_generator(path: str | Path, generator: Generator, extra: dict[str, Any] | None = None) -> Path:
    """Write the generator alone (weights + spec), atomically; returns the path."""
    path = Path(path)
    state = {k: v.detach().cpu().clone() for k, v in generator.network.state_dict().items()}
    payload = {CHECKPOINT_KEY: generator.spec.to_dict(), "state_dict": state, "format": FORMAT, **(extra or {})}
    with atomic_output(path) as partial:
        torch.save(payload, partial)
    return path


def is_generator_file(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint is a generator file (weights only), not a training checkpoint."""
    return isinstance(checkpoint, dict) and CHECKPOINT_KEY in checkpoint and "format" in checkpoint \
        and "pytorch-lightning_version" not in checkpoint


def is_generator_path(path: str | Path) -> bool:
    """:func:`is_generator_file` of a file on disk (reads only its keys)."""
    return is_generator_file(_load(Path(path), mmap=True))


def as_training_checkpoint(checkpoint: dict[str, Any], lightning_version: str) -> dict[str, Any]:
    """A loaded generator file as the dict Lightning restores a module from (weights only).

    Training checkpoints pass through unchanged. Nothing else is there to restore: no
    optimizer, no step, so such a file can be tested but not resumed.
    """
    if not is_generator_file(checkpoint):
        return checkpoint
    return {
        CHECKPOINT_KEY: checkpoint[CHECKPOINT_KEY],
        "state_dict": {GENERATOR_PREFIX + k: v for k, v in checkpoint["state_dict"].items()},
        "pytorch-lightning_version": lightning_version,
        "global_step": checkpoint.get("trained_steps") or 0,
        "epoch": 0,
    }


def read_spec(path: str | Path) -> ModelSpec:
    """The :class:`ModelSpec` of a checkpoint, without building the network."""
    return _spec(_load(Path(path), mmap=True), Path(path))


def _load(path: Path, mmap: bool = False) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        # mmap reads only what is used: the spec of a large training checkpoint is instant.
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as error:
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({str(error).strip()[:200] or type(error).__name__})") from None


def _spec(checkpoint: Any, path: Path) -> ModelSpec:
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError(f"{path} is not an audiosr checkpoint (no '{CHECKPOINT_KEY}' entry)")
    return ModelSpec.from_dict(checkpoint[CHECKPOINT_KEY])


def _network_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", {})
    if checkpoint.get("format") == FORMAT:
        return dict(state)
    return {k[len(GENERATOR_PREFIX):]: v for k, v in state.items() if k.startswith(GENERATOR_PREFIX)}


def load_generator(path: str | Path) -> Generator:
    """Rebuild the trained generator of a checkpoint file, on the CPU, in eval mode."""
    path = Path(path)
    checkpoint = _load(path)
    spec = _spec(checkpoint, path)
    try:
        generator = Generator(build_network(spec.network), spec)  # binds the rates: some layers need them
        generator.network.load_state_dict(_network_weights(checkpoint))
    except Exception as error:
        raise CheckpointError(f"{path}: the network cannot be rebuilt ({str(error).strip()[:300]})") from None
    return generator.eval()


def check_compatible(spec: ModelSpec, path: str | Path, **expected: Any) -> None:
    """Refuse a checkpoint whose rates or input filter differ from the configuration's."""
    wrong = [f"{name} {getattr(spec, name)} (config: {value})" for name, value in expected.items()
             if getattr(spec, name) != value]
    if wrong:
        raise CheckpointError(f"{path} was trained for {', '.join(wrong)}; use a matching config or checkpoint")


def checkpoint_step(path: str | Path) -> int | None:
    """The global step a training checkpoint was saved at (None for a generator file)."""
    step = _load(Path(path), mmap=True).get("global_step")
    return int(step) if step is not None else None


def resolve_checkpoint(ckpt_path: str | Path | None, family_dir: str | Path) -> Path | None:
    """Turn ``"last"`` / ``"best"`` into a real file of one run family, or fail loudly.

    ``family_dir`` is ``runs/<experiment>``: runs of one recipe, each in its own folder.
    ``last`` is the newest ``last.ckpt`` of the family; ``best`` the ``best-*.ckpt`` of the
    run that wrote the newest checkpoint. Lightning's own ``"last"`` only looks inside the
    current run's folder, which a new run never has, and then silently starts from scratch.
    """
    if ckpt_path is None:
        return None
    if str(ckpt_path) not in ("last", "best"):
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    family = Path(family_dir)
    every = [p for p in family.glob("*/checkpoints/*.ckpt")]
    if ckpt_path == "last":
        candidates = [p for p in every if p.name == "last.ckpt"]
    else:
        newest_run = max(every, key=lambda p: p.stat().st_mtime).parent if every else None
        candidates = [p for p in every if p.parent == newest_run and p.name.startswith("best")]
    if not candidates:
        raise FileNotFoundError(
            f"--ckpt_path {ckpt_path}: no {'last.ckpt' if ckpt_path == 'last' else 'best-*.ckpt'} in the runs "
            f"of {family.resolve()}; train first, or give a checkpoint file"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)
