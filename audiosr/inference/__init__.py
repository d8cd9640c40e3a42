"""Inference: trained generators on audio of any length, rate and channel count.

    from audiosr.inference import Upsampler

The names below are imported on first use, so ``audiosr upsample --help``
(``audiosr.inference.command``) answers without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {name: "audiosr.inference.upsampler" for name in ("Upsampler", "FileReport", "upsample_file", "default_checkpoint")}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
