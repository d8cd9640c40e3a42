"""The 1-D U-Net of the reference recipe (configs/unet.yaml): a residual waveform U-Net, width and depth configurable."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiosr.models.base import SuperResolutionNetwork
from audiosr.models.layers import Activation, activation

REFERENCE_CHANNELS = (16, 32, 64, 128, 256, 512, 1024, 1024)


class DoubleConv(nn.Sequential):
    """Conv(k=3) -> BN -> act -> Conv(k=3, stride) -> BN -> act (ReLU in the reference)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, act: Activation = "relu") -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm1d(out_channels),
            activation(act, out_channels),
            nn.Conv1d(out_channels, out_channels, 3, padding=1, stride=stride),
            nn.BatchNorm1d(out_channels),
            activation(act, out_channels),
        )


class UNet(SuperResolutionNetwork):
    """Residual 1-D U-Net: ``output = input + residual``.

    Args:
        channels: encoder widths. ``channels[0]`` is the stride-1 input block; each
            further entry adds one stride-2 level, so ``depth = len(channels) - 1``.
            The default is the reference plan (17.85 M parameters).
        activation: ``relu`` (the reference), ``snake`` (periodic, learned per channel:
            the GAN recipe's choice) or ``gelu``.
    """

    tiny_args = {"channels": [4, 8, 8]}

    def __init__(self, channels: Sequence[int] = REFERENCE_CHANNELS, activation: Activation = "relu") -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"channels needs at least two positive widths, got {channels}")
        self.depth = len(channels) - 1

        self.stem = DoubleConv(1, channels[0], act=activation)
        self.down = nn.ModuleList(
            DoubleConv(c_in, c_out, stride=2, act=activation) for c_in, c_out in zip(channels, channels[1:])
        )
        # Decoder level i joins the skip of encoder level i and narrows to the width one
        # level up: with the reference plan this gives 2048->512, 1024->256, ..., 32->16.
        self.up = nn.ModuleList()
        width = channels[-1]
        for level in reversed(range(self.depth)):
            out = channels[max(level - 1, 0)]
            self.up.append(DoubleConv(width + channels[level], out, act=activation))
            width = out
        self.head = nn.Conv1d(width, 1, kernel_size=1)

    @property
    def length_multiple(self) -> int:  # type: ignore[override]
        # The strided convolutions only commute with shifts by 2**depth samples.
        return 2**self.depth

    @property
    def receptive_field(self) -> int:
        # Each 3-tap convolution adds one sample of its level's spacing per side: 2**(D+1)
        # on the way down, 4 * (2**D - 1) on the way up (linear upsampling included);
        # 7 * 2**D bounds both (896 samples for the reference plan).
        return 7 * 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine ``x`` of shape ``(B, 1, T)``; any ``T`` (padded to ``2**depth`` inside)."""
        length = x.shape[-1]
        multiple = 2**self.depth
        pad = -length % multiple
        # Reflection keeps the edge free of an artificial step; it needs pad < length.
        padded = F.pad(x, (0, pad), mode="reflect" if pad < length else "constant")

        skips = [self.stem(padded)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, scale_factor=2.0, mode="linear", align_corners=False)
            h = F.pad(h, (0, skip.shape[-1] - h.shape[-1]))
            h = block(torch.cat([h, skip], dim=1))
        return x + self.head(h)[..., :length]
