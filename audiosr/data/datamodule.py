"""The data module: owns the sample rates and turns a corpus into aligned training pairs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from audiosr.data.corpora import Corpus, SyntheticCorpus
from audiosr.data.datasets import FixedCrops, PairMaker, RandomCrops, WholeRecordings
from audiosr.data.pairs import RESAMPY_FILTERS
from audiosr.data.recordings import default_cache_dir

# Evaluation needs at least one full LSD frame (STFT 2048) in a test recording.
MIN_TEST_FRAMES = 4096


class AudioPairDataModule(L.LightningDataModule):
    """Low/high-rate pairs for super-resolution.

    The single source of truth for the rates: the model receives ``source_rate``,
    ``target_rate`` and ``input_filter`` from here through the CLI's argument links.

    Args:
        corpus: where recordings come from (default: the built-in synthetic corpus).
        source_rate: rate of the low-resolution audio (Hz).
        target_rate: rate of the full-band audio (Hz); must be above ``source_rate``.
        segment_seconds: length of training and validation crops.
        batch_size: crops per training and validation batch.
        num_workers: loader processes (0 loads in the main process).
        train_items_per_epoch: random crops per training epoch.
        lowpass_filter: resampy filter that makes the low-rate signal from the target.
        input_filter: resampy filter that brings the low-rate signal back to the target
            rate as the network's input.
        cache_dir: where converted files and file checks are kept
            (default ``$AUDIOSR_CACHE`` or ``~/.cache/audiosr``).
    """

    def __init__(
        self,
        corpus: Corpus | None = None,
        source_rate: int = 22050,
        target_rate: int = 44100,
        segment_seconds: float = 2.0,
        batch_size: int = 4,
        num_workers: int = 2,
        train_items_per_epoch: int = 1000,
        lowpass_filter: str = "kaiser_best",
        input_filter: str = "kaiser_fast",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if not 0 < source_rate < target_rate:
            raise ValueError(f"need 0 < source_rate < target_rate, got {source_rate} and {target_rate}")
        for name, value in (("lowpass_filter", lowpass_filter), ("input_filter", input_filter)):
            if value not in RESAMPY_FILTERS:
                raise ValueError(f"{name} must be one of {RESAMPY_FILTERS}, got {value!r}")
        self.corpus = corpus if corpus is not None else SyntheticCorpus()
        self.source_rate = source_rate
        self.target_rate = target_rate
        self.segment_frames = round(segment_seconds * target_rate)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_items_per_epoch = train_items_per_epoch
        self.make_pair = PairMaker(source_rate, target_rate, lowpass_filter, input_filter)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.datasets: dict[str, object] = {}

    @property
    def min_frames(self) -> dict[str, int]:
        return {"train": self.segment_frames, "val": self.segment_frames, "test": MIN_TEST_FRAMES}

    def prepare_data(self) -> None:
        self.corpus.prepare(self.target_rate, self.cache_dir, self.min_frames)

    def setup(self, stage: str) -> None:
        def recordings(split):
            return self.corpus.recordings(split, self.target_rate, self.cache_dir, self.min_frames[split])

        if stage == "fit" and "train" not in self.datasets:
            self.datasets["train"] = RandomCrops(
                recordings("train"), self.segment_frames, self.train_items_per_epoch, self.make_pair
            )
        if stage in ("fit", "validate") and "val" not in self.datasets:
            self.datasets["val"] = FixedCrops(recordings("val"), self.segment_frames, self.make_pair)
        if stage == "test" and "test" not in self.datasets:
            self.datasets["test"] = WholeRecordings(recordings("test"), self.make_pair)

    def _loader(self, split: str, batch_size: int, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=split == "train",
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.batch_size)

    def test_dataloader(self) -> DataLoader:
        # Whole recordings differ in length: one per batch.
        return self._loader("test", 1)

    def describe(self) -> str:
        return f"{self.corpus.describe()}; {self.source_rate} Hz -> {self.target_rate} Hz"
