"""Inference: trained generators on audio of any length, rate and channel count.

    from audiosr.inference import Upsampler

The names below are imported on first use, so ``audiosr upsample --help``
(``audiosr.inference.command``) answers without importing torch.
"""

from __future__ import annotations

from audiosr._lazy import forward_to

__all__ = ["AudioError", "FileReport", "RateError", "Upsampler", "default_checkpoint", "default_device"]
__getattr__ = forward_to(__name__, "audiosr.inference.upsampler")
