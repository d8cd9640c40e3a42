"""Checkpoint contents that do not need Lightning to read, and `last`/`best` lookup.

A training checkpoint is Lightning's dict plus one key, ``"audiosr"``::

    {"network": {"class_path": "audiosr.models.unet.UNet", "init_args": {...}},
     "source_rate": 22050, "target_rate": 44100, "input_filter": "kaiser_fast"}

and the network's weights are the ``"network."`` entries of ``"state_dict"``.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from audiosr.models.base import SuperResolutionNetwork

CHECKPOINT_KEY = "audiosr"
NETWORK_PREFIX = "network."


@dataclass(frozen=True)
class ModelSpec:
    """What inference needs besides the weights."""

    network: dict[str, Any]
    source_rate: int
    target_rate: int
    input_filter: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def network_spec(network: SuperResolutionNetwork) -> dict[str, Any]:
    return {"class_path": network.class_path, "init_args": dict(network.config)}


def build_network(spec: dict[str, Any]) -> SuperResolutionNetwork:
    module_name, _, class_name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**spec.get("init_args", {}))


def load_network(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild the trained network of a checkpoint file.

    Returns:
        ``(network in eval mode, ModelSpec)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    if CHECKPOINT_KEY not in checkpoint:
        raise ValueError(f"{path} is not an audiosr checkpoint (no '{CHECKPOINT_KEY}' entry)")
    spec = ModelSpec(**checkpoint[CHECKPOINT_KEY])
    network = build_network(spec.network)
    weights = {
        key[len(NETWORK_PREFIX):]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(NETWORK_PREFIX)
    }
    network.load_state_dict(weights)
    return network.eval(), spec


def resolve_checkpoint(ckpt_path: str | Path | None, runs_root: str | Path) -> Path | None:
    """Turn ``"last"``/``"best"`` into a real file under ``runs_root``, or fail loudly.

    ``last`` is the newest ``last.ckpt`` of any run; ``best`` is the ``best-*.ckpt`` of
    the newest run that has one. Lightning's own ``"last"`` only looks inside the current
    run's directory, which a new run never has, and then silently starts from scratch.
    """
    if ckpt_path is None:
        return None
    if str(ckpt_path) not in ("last", "best"):
        path = Path(ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    root = Path(runs_root)
    pattern = "last*.ckpt" if ckpt_path == "last" else "best*.ckpt"
    candidates = [p for p in root.rglob(pattern) if p.parent.name == "checkpoints"]
    if not candidates:
        raise FileNotFoundError(
            f"--ckpt_path {ckpt_path}: no {pattern} under {root.resolve()}; "
            "train first or give a checkpoint file"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)
