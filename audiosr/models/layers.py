"""Building blocks shared by the networks: activations (Snake included) and ConvNeXt blocks."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["relu", "gelu", "snake"]


class Snake(nn.Module):
    """Snake: ``x + sin^2(alpha x) / alpha`` with one learned ``alpha`` per channel.

    Periodic, so it suits periodic signals (Ziyin et al. 2020; used by BigVGAN and the
    Descript Audio Codec, ``dac/nn/layers.py``). ``alpha`` starts at 1; the ``1e-9``
    keeps the division finite if it reaches 0.

    Args:
        channels: size of the channel axis (``dim``).
        dim: which axis holds the channels: 1 for ``(B, C, T)``, -1 for ``(B, T, C)``.
    """

    def __init__(self, channels: int, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.dim] = -1
        alpha = self.alpha.view(shape)
        return x + torch.sin(alpha * x).square() / (alpha + 1e-9)


def activation(name: Activation, channels: int, dim: int = 1) -> nn.Module:
    """A fresh activation module by name; ``channels``/``dim`` matter for Snake only."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "gelu":
        return nn.GELU()
    if name == "snake":
        return Snake(channels, dim)
    raise ValueError(f"unknown activation {name!r}; choose relu, gelu or snake")


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block over frames ``(B, C, N)``, as in Vocos (``vocos/modules.py``).

    Depthwise conv (k=7) -> LayerNorm -> Linear(C, expansion C) -> activation ->
    Linear(expansion C, C) -> layer scale, added to the input.
    """

    def __init__(self, dim: int, expansion: int = 3, kernel_size: int = 7, layer_scale: float = 0.1,
                 act: Activation = "gelu") -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, expansion * dim)
        self.act = activation(act, expansion * dim, dim=-1)
        self.pwconv2 = nn.Linear(expansion * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, N, C)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)
