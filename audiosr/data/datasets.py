"""Aligned (input, target) items cut from recordings.

Each item is a dict of float32 tensors: ``target`` ``(1, T)`` at the target rate, ``low``
``(1, T_low)`` at the source rate (made from the target by a degradation), and ``input``
``(1, T)``: ``low`` brought back to the target rate by ``input_filter``. The network maps
``input`` to ``target``. Multichannel recordings are used one channel at a time: a random
channel for training crops, every channel for validation and test.

Training crops are a pure function of ``(seed, index)``: the same crop whatever the number
of loader workers, and, because :class:`EpochSampler` numbers the items of every epoch
afresh and Lightning hands each process its own share of those numbers, different crops
on every process of a distributed run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Sampler

from audiosr.data.pairs import PairMaker
from audiosr.data.recordings import Recording
from audiosr.dsp import rate_ratio


class RandomCrops(Dataset):
    """Random crops, recordings drawn in proportion to their length (times their ``weight``); item ``i`` of any epoch.

    ``dataset[i]`` is the same crop for the same ``seed`` and ``i``, on any process and in
    any worker; ``len`` is the number of items per epoch, and :class:`EpochSampler` gives
    epoch ``e`` the indices ``e * len .. (e + 1) * len - 1``.
    """

    def __init__(self, recordings: Sequence[Recording], frames: int, length: int, make: PairMaker, seed: int = 0) -> None:
        if not recordings:
            raise ValueError("no recordings to crop from")
        self.recordings = list(recordings)
        self.frames = frames
        self.length = length
        self.make = make
        self.seed = seed
        weights = np.array([r.frames * r.channels * r.weight for r in self.recordings], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, int(index)])
        draw = rng.random(3)
        recording = self.recordings[min(int(np.searchsorted(self.cumulative, draw[0])), len(self.recordings) - 1)]
        channel = min(int(draw[1] * recording.channels), recording.channels - 1)
        start = int(draw[2] * (recording.frames - self.frames + 1))
        target = recording.read(start, start + self.frames)[channel : channel + 1]
        return self.make(target, rng)


class EpochSampler(Sampler[int]):
    """Indices ``e * n .. (e + 1) * n - 1`` in epoch ``e`` (``n = len(dataset)``), in order.

    The epoch advances at every pass; it is saved in checkpoints (through the data
    module), so a resumed run continues with new crops instead of repeating old ones.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.length
        self.epoch += 1
        return iter(range(start, start + self.length))

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", 0))


class _EveryChannel(Dataset):
    """One item per (recording, channel): evaluation scores every channel."""

    def __init__(self, recordings: Sequence[Recording], make: PairMaker, seed: int = 0) -> None:
        self.items = [(r, c) for r in recordings for c in range(r.channels)]
        self.make = make
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, index: int) -> np.random.Generator:
        # A random degradation of an evaluation split is still the same at every validation.
        return np.random.default_rng([self.seed, 1 << 40, index])


class FixedCrops(_EveryChannel):
    """One centred crop of ``frames`` samples per (recording, channel): the same every time."""

    def __init__(self, recordings: Sequence[Recording], frames: int, make: PairMaker, seed: int = 0) -> None:
        super().__init__(recordings, make, seed)
        self.frames = frames

    def __getitem__(self, index: int) -> dict:
        recording, channel = self.items[index]
        start = (recording.frames - self.frames) // 2
        return self.make(recording.read(start, start + self.frames)[channel : channel + 1], self._rng(index))


class WholeRecordings(_EveryChannel):
    """Every (recording, channel) whole, with its name: for evaluation on full files.

    A target is trimmed to a whole number of rate periods (at most a few samples at the
    end: 1 at 22.05 -> 44.1 kHz), so that the low-rate signal has exactly
    ``T * source_rate / target_rate`` samples and every method's output, of
    ``ceil(T_low * target_rate / source_rate)`` samples, lines up with the target.
    """

    def __init__(self, recordings: Sequence[Recording], make: PairMaker, seed: int = 0) -> None:
        super().__init__(recordings, make, seed)
        self.period = rate_ratio(make.source_rate, make.target_rate)[0]

    def __getitem__(self, index: int) -> dict:
        recording, channel = self.items[index]
        name = recording.name if recording.channels == 1 else f"{recording.name}#ch{channel}"
        frames = recording.frames - recording.frames % self.period
        return self.make(recording.read(0, frames)[channel : channel + 1], self._rng(index), name=name)
