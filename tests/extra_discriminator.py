"""A third kind of discriminator, outside the package: what adding one to a GAN run takes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from audiosr.models.discriminators import Discriminator, Output


class WaveformDiscriminator(Discriminator):
    """One strided 1-D convolution stack on the waveform (MelGAN's scale discriminator, narrowed)."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList([weight_norm(nn.Conv1d(1, channels, 15, padding=7)),
                                     weight_norm(nn.Conv1d(channels, channels, 41, stride=4, padding=20))])
        self.output = weight_norm(nn.Conv1d(channels, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> list[Output]:
        features = []
        for layer in self.layers:
            x = nn.functional.leaky_relu(layer(x), 0.1)
            features.append(x)
        return [(self.output(x), features)]
