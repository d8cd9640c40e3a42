"""What every super-resolution network promises, so configs can swap backbones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class SuperResolutionNetwork(nn.Module, ABC):
    """A waveform-to-waveform network at the target rate.

    Subclasses take a rough upsampled signal ``(B, 1, T)`` and return the refined
    signal ``(B, 1, T)`` for any ``T``. They record their constructor arguments in
    ``self.config`` so a checkpoint can rebuild them without Lightning.
    """

    config: dict[str, Any]

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 1, T)`` to ``(B, 1, T)``."""

    @property
    def class_path(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
