"""Aligned (input, target) items cut from recordings.

Each item is a dict of float32 tensors: ``target`` ``(1, T)`` at the target rate, ``low``
``(1, T_low)`` at the source rate (made from the target by ``lowpass_filter``), and
``input`` ``(1, T)``: ``low`` brought back to the target rate by ``input_filter``. The
network maps ``input`` to ``target``. Multichannel recordings are used one channel at a
time: a random channel for training crops, every channel for validation and test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from audiosr.data.pairs import make_pair
from audiosr.data.recordings import Recording


@dataclass(frozen=True)
class PairMaker:
    """Turns a target crop ``(1, T)`` into the item dict (see module docstring)."""

    source_rate: int
    target_rate: int
    lowpass_filter: str = "kaiser_best"
    input_filter: str = "kaiser_fast"

    def __call__(self, target: np.ndarray, **extra) -> dict:
        low, rough = make_pair(target, self.target_rate, self.source_rate, self.lowpass_filter, self.input_filter)
        return {
            "input": torch.from_numpy(rough),
            "target": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
            "low": torch.from_numpy(low),
            **extra,
        }


class RandomCrops(Dataset):
    """``length`` random crops per epoch, recordings drawn in proportion to their length.

    Randomness comes from torch's generator, which Lightning seeds per worker with
    ``seed_everything(workers=True)``, so runs are reproducible.
    """

    def __init__(self, recordings: Sequence[Recording], frames: int, length: int, make: PairMaker) -> None:
        if not recordings:
            raise ValueError("no recordings to crop from")
        self.recordings = list(recordings)
        self.frames = frames
        self.length = length
        self.make = make
        weights = np.array([r.frames * r.channels for r in self.recordings], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        draw = torch.rand(3).numpy()
        recording = self.recordings[min(int(np.searchsorted(self.cumulative, draw[0])), len(self.recordings) - 1)]
        channel = min(int(draw[1] * recording.channels), recording.channels - 1)
        start = int(draw[2] * (recording.frames - self.frames + 1))
        target = recording.read(start, start + self.frames)[channel : channel + 1]
        return self.make(target)


class _EveryChannel(Dataset):
    """One item per (recording, channel): evaluation scores every channel."""

    def __init__(self, recordings: Sequence[Recording], make: PairMaker) -> None:
        self.items = [(r, c) for r in recordings for c in range(r.channels)]
        self.make = make

    def __len__(self) -> int:
        return len(self.items)


class FixedCrops(_EveryChannel):
    """One centred crop of ``frames`` samples per (recording, channel): the same every time."""

    def __init__(self, recordings: Sequence[Recording], frames: int, make: PairMaker) -> None:
        super().__init__(recordings, make)
        self.frames = frames

    def __getitem__(self, index: int) -> dict:
        recording, channel = self.items[index]
        start = (recording.frames - self.frames) // 2
        return self.make(recording.read(start, start + self.frames)[channel : channel + 1])


class WholeRecordings(_EveryChannel):
    """Every (recording, channel) whole, with its name: for evaluation on full files.

    A target is trimmed to a whole number of rate periods (at most a few samples at the
    end: 1 at 22.05 -> 44.1 kHz), so that the low-rate signal has exactly
    ``T * source_rate / target_rate`` samples and every method's output, of
    ``ceil(T_low * target_rate / source_rate)`` samples, lines up with the target.
    """

    def __init__(self, recordings: Sequence[Recording], make: PairMaker) -> None:
        super().__init__(recordings, make)
        self.period = make.target_rate // math.gcd(make.source_rate, make.target_rate)

    def __getitem__(self, index: int) -> dict:
        recording, channel = self.items[index]
        name = recording.name if recording.channels == 1 else f"{recording.name}#ch{channel}"
        frames = recording.frames - recording.frames % self.period
        return self.make(recording.read(0, frames)[channel : channel + 1], name=name)
