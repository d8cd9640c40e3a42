"""Discriminators for adversarial training: the Descript Audio Codec's recipe, sizes configurable.

* :class:`MultiPeriodDiscriminator`: HiFi-GAN's multi-period waveform discriminator
  (``jik876/hifi-gan``, ``models.py``; kept as is by DAC, ``dac/model/discriminator.py``):
  the waveform folded into ``(T / p, p)`` for periods 2, 3, 5, 7, 11, and 2-D convolutions
  along time only.
* :class:`MultiBandSTFTDiscriminator`: DAC's multi-resolution, multi-band complex-STFT
  discriminator (windows 2048 / 1024 / 512, hop a quarter of the window; real and imaginary
  parts as two channels; five frequency bands with their own convolutions, joined along
  frequency before a shared output convolution).

A :class:`Discriminator` is a set of sub-discriminators, each of which returns
``(logits, features)``: the logits map and the list of its
hidden activations, which feature matching compares. Inputs are ``(B, 1, T)`` waveforms;
each is made zero-mean and peak-normalised to 0.8 first, as DAC does, so that the
discriminators judge content, not level. All convolutions are weight-normalised and
followed by LeakyReLU(0.1), except the output ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

# DAC's band split, as fractions of the STFT bins.
BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
LEAKY_SLOPE = 0.1
Output = tuple[torch.Tensor, list[torch.Tensor]]


def _conv2d(c_in: int, c_out: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
            padding: tuple[int, int] = (0, 0)) -> nn.Module:
    return weight_norm(nn.Conv2d(c_in, c_out, kernel, stride, padding))


def prepare(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T)`` -> zero-mean, peak 0.8 (DAC's discriminator input)."""
    x = x - x.mean(dim=-1, keepdim=True)
    return 0.8 * x / (x.abs().amax(dim=-1, keepdim=True) + 1e-9)


class PeriodDiscriminator(nn.Module):
    """One period of the multi-period discriminator.

    Args:
        period: samples per row of the folded waveform.
        channels: widths of the strided layers (HiFi-GAN: 32, 128, 512, 1024) and of the last one (1024).
    """

    def __init__(self, period: int, channels: Sequence[int] = (32, 128, 512, 1024, 1024)) -> None:
        super().__init__()
        self.period = period
        widths = [1, *channels]
        layers = []
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            stride = (3, 1) if i < len(channels) - 1 else (1, 1)
            layers.append(_conv2d(c_in, c_out, (5, 1), stride, (2, 0)))
        self.layers = nn.ModuleList(layers)
        self.output = _conv2d(widths[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor) -> Output:
        batch, channels, length = x.shape
        pad = -length % self.period
        if pad:
            # Reflection needs pad < length; very short inputs are zero-padded instead.
            x = F.pad(x, (0, pad), mode="reflect" if pad < length else "constant")
        h = x.view(batch, channels, -1, self.period)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), LEAKY_SLOPE)
            features.append(h)
        return self.output(h), features


class Discriminator(nn.Module, ABC):
    """A set of sub-discriminators: a prepared ``(B, 1, T)`` waveform -> one ``(logits, features)`` each.

    The GAN's discriminators are a list of these in YAML (``model.init_args.discriminators``);
    a new kind is one subclass and one line there.
    """

    # The smallest working size, for smoke runs (`tiny: true`, configs/overlays/debug.yaml).
    tiny_args: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def forward(self, x: torch.Tensor) -> list[Output]:
        """``(B, 1, T)``, zero-mean at peak 0.8 (:func:`prepare`) -> ``[(logits, features), ...]``."""


class MultiPeriodDiscriminator(Discriminator):
    """Period discriminators for ``periods`` (HiFi-GAN and DAC: 2, 3, 5, 7, 11)."""

    tiny_args = {"channels": [4, 8, 8, 8, 8]}

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11),
                 channels: Sequence[int] = (32, 128, 512, 1024, 1024)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(int(p), channels) for p in periods)

    def forward(self, x: torch.Tensor) -> list[Output]:
        return [d(x) for d in self.discriminators]


class BandSTFTDiscriminator(nn.Module):
    """One resolution of DAC's multi-band STFT discriminator.

    Args:
        window_length: Hann window and FFT size; hop is a quarter of it.
        channels: width of every convolution (DAC: 32).
        bands: frequency bands as fractions of the bins; each has its own convolutions.
    """

    def __init__(self, window_length: int, channels: int = 32, bands: Sequence[tuple[float, float]] = BANDS) -> None:
        super().__init__()
        self.window_length = window_length
        self.hop_length = window_length // 4
        self.register_buffer("window", torch.hann_window(window_length, periodic=True), persistent=False)
        bins = window_length // 2 + 1
        self.bands = [(int(lo * bins), int(hi * bins)) for lo, hi in bands]

        def stack() -> nn.ModuleList:
            return nn.ModuleList([
                _conv2d(2, channels, (3, 9), padding=(1, 4)),
                _conv2d(channels, channels, (3, 9), (1, 2), (1, 4)),
                _conv2d(channels, channels, (3, 9), (1, 2), (1, 4)),
                _conv2d(channels, channels, (3, 9), (1, 2), (1, 4)),
                _conv2d(channels, channels, (3, 3), padding=(1, 1)),
            ])

        self.band_layers = nn.ModuleList(stack() for _ in self.bands)
        self.output = _conv2d(channels, 1, (3, 3), padding=(1, 1))

    def forward(self, x: torch.Tensor) -> Output:
        with torch.autocast(x.device.type, enabled=False):
            # Zero padding at the ends, so that inputs shorter than half a window work too.
            spectrum = torch.stft(x.squeeze(1).float(), self.window_length, self.hop_length, window=self.window,
                                  center=True, pad_mode="constant", return_complex=True)
        # (B, F, N) complex -> (B, 2, N, F): real and imaginary parts, time by frequency.
        h = torch.view_as_real(spectrum).permute(0, 3, 2, 1)
        features, outputs = [], []
        for (lo, hi), layers in zip(self.bands, self.band_layers):
            band = h[..., lo:hi]
            for layer in layers:
                band = F.leaky_relu(layer(band), LEAKY_SLOPE)
                features.append(band)
            outputs.append(band)
        return self.output(torch.cat(outputs, dim=-1)), features


class MultiBandSTFTDiscriminator(Discriminator):
    """Band STFT discriminators at ``window_lengths`` (DAC: 2048, 1024, 512)."""

    tiny_args = {"window_lengths": [512, 256], "channels": 4}

    def __init__(self, window_lengths: Sequence[int] = (2048, 1024, 512), channels: int = 32,
                 bands: Sequence[tuple[float, float]] = BANDS) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(BandSTFTDiscriminator(int(w), channels, bands) for w in window_lengths)

    def forward(self, x: torch.Tensor) -> list[Output]:
        return [d(x) for d in self.discriminators]


def _two_slot_keys(state_dict: dict, prefix: str, *args: object) -> None:
    """GAN checkpoints written before the list (``period.*``, ``stft.*``) resume: their two slots
    are the default list's two members, in the same order."""
    for old, new in (("period.", "members.0."), ("stft.", "members.1.")):
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)


class Discriminators(nn.Module):
    """Every discriminator of a GAN run, applied to one prepared input.

    Args:
        discriminators: the list (default: DAC's multi-period and multi-band STFT ones).

    Returns one ``(logits, features)`` per sub-discriminator, in the list's order.
    """

    def __init__(self, discriminators: Sequence[Discriminator] | None = None) -> None:
        super().__init__()
        if discriminators is None:
            discriminators = [MultiPeriodDiscriminator(), MultiBandSTFTDiscriminator()]
        if not discriminators:
            raise ValueError("a GAN needs at least one discriminator")
        self.members = nn.ModuleList(discriminators)
        self._register_load_state_dict_pre_hook(_two_slot_keys)

    def forward(self, x: torch.Tensor) -> list[Output]:
        x = prepare(x)
        return [output for discriminator in self.members for output in discriminator(x)]
