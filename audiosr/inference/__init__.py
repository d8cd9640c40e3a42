"""Inference: trained generators on audio of any length, rate and channel count.

    from audiosr.inference import Upsampler

The names below are imported on first use, so ``audiosr upsample --help``
(``audiosr.inference.command``) answers without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = "audiosr.inference.upsampler"
__all__ = ["AudioError", "FileReport", "RateError", "Upsampler", "default_checkpoint", "default_device"]


def __getattr__(name: str) -> Any:
    # Every public name of audiosr/inference/upsampler.py (what the flat module audiosr.inference offered).
    if not name.startswith("_"):
        try:
            return getattr(import_module(_HOME), name)
        except AttributeError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
