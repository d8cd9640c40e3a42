"""The data module: owns the sample rates and turns a corpus into aligned training pairs."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from audiosr.data.corpora import Corpus, SyntheticCorpus
from audiosr.data.datasets import EpochSampler, FixedCrops, RandomCrops, WholeRecordings
from audiosr.data.degradations import AnyBand, Degradation, Resample
from audiosr.data.on_device import apply_plans
from audiosr.data.pairs import PairMaker, check_input_bits, target_edges
from audiosr.data.recordings import default_cache_dir
from audiosr.dsp import check_resampler
from audiosr.evaluation.metrics import LSD_N_FFT


class AudioPairDataModule(L.LightningDataModule):
    """Low/high-rate pairs for super-resolution.

    The single source of truth for the rates: the model receives ``source_rate``,
    ``target_rate`` and ``input_filter`` from here through the CLI's argument links.

    Args:
        corpus: where recordings come from (default: the built-in synthetic corpus).
        source_rate: rate of the low-resolution audio (Hz).
        target_rate: rate of the full-band audio (Hz); above ``source_rate``, or equal to it for a model
            for any input (whose inputs stay at the target rate with their band cut by ``AnyBand``).
        segment_seconds: length of training and validation crops.
        batch_size: crops per training and validation batch.
        num_workers: loader processes (0 loads in the main process).
        train_items_per_epoch: random crops per training epoch.
        lowpass_filter: the resampler that makes validation and test low-rate signals
            from their targets (and training ones, unless ``train_degradation``).
        input_filter: the resampler that brings the low-rate signal back to the target
            rate as the network's input (``audiosr.dsp.RESAMPLERS``).
        train_degradation: how training low-rate signals are made, e.g.
            ``audiosr.data.RandomLowpass`` (random filters and gains); default: ``lowpass_filter``.
        val_degradation: how validation low-rate signals are made (a random one draws the same for
            each item at every validation); default: ``lowpass_filter``.
        test_degradation: how test low-rate signals are made; default: ``lowpass_filter``.
        test_input_bits: the test's low-rate signal, what every method compared by ``audiosr test``
            receives, is put on the grid of this many bits after its degradation (16: what a
            user's 16-bit file holds; rounded, clipped, no dither); ``null`` or 32: float32, as
            the degradation made it. Targets are never quantised, nor training or validation inputs.
        cache_dir: where converted files and file checks are kept
            (default ``$AUDIOSR_CACHE`` or ``~/.cache/audiosr``).
        train_shards: train from shards instead of the corpus's training split: the folder or URL
            prefix ``audiosr shards write`` wrote at ``target_rate`` (``audiosr.data.shards``). Each
            process streams its own part, an epoch is one crop of every item
            (``train_items_per_epoch`` does not apply), and the loader's position goes into
            checkpoints, so ``--ckpt_path last`` continues mid-epoch. Validation and test still
            come from ``corpus``.
        shuffle_items: with ``train_shards``, items shuffled together inside each process's part.
        degrade_on_device: with an ``AnyBand`` training degradation, the loader only draws each training
            item's degradation, and everything but a codec round trip runs batched on the model's
            device after the batch gets there (:mod:`audiosr.data.on_device`); the same draws as in the
            loader, with Kaiser sincs standing in for resampy and soxr. Validation and test are made
            in the loader as always.

    Crops and random degradations follow the run's seed (``seed_everything``).
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
        train_degradation: Degradation | None = None,
        val_degradation: Degradation | None = None,
        test_degradation: Degradation | None = None,
        test_input_bits: int | None = 16,
        cache_dir: str | None = None,
        train_shards: str | None = None,
        shuffle_items: int = 256,
        degrade_on_device: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < source_rate <= target_rate:
            raise ValueError(f"need 0 < source_rate <= target_rate, got {source_rate} and {target_rate}")
        if source_rate == target_rate and (train_degradation is None or val_degradation is None):
            # A resampler between equal rates changes nothing: every pair would be input = target.
            raise ValueError("inputs at the target rate (source_rate = target_rate) need a train_degradation and a "
                             "val_degradation that cut the band, e.g. audiosr.data.AnyBand")
        for name, value in (("lowpass_filter", lowpass_filter), ("input_filter", input_filter)):
            try:
                check_resampler(value)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
        self.corpus = corpus if corpus is not None else SyntheticCorpus()
        self.source_rate = source_rate
        self.target_rate = target_rate
        self.segment_frames = round(segment_seconds * target_rate)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_items_per_epoch = train_items_per_epoch
        self.input_filter = input_filter
        try:
            self.test_input_bits = check_input_bits(test_input_bits)
        except ValueError as error:
            raise ValueError(f"test_input_bits: {error}") from None
        standard = Resample(lowpass_filter)
        self.degradations = {
            "train": train_degradation or standard,
            "val": val_degradation or standard,
            "test": test_degradation or standard,
        }
        if degrade_on_device and not isinstance(self.degradations["train"], AnyBand):
            raise ValueError("degrade_on_device runs audiosr.data.AnyBand's degradations; the train_degradation is "
                             f"{self.degradations['train'].describe()}")
        self.degrade_on_device = degrade_on_device
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.datasets: dict[str, Any] = {}
        self.train_sampler = EpochSampler(train_items_per_epoch)
        self.train_shards = train_shards
        self.shuffle_items = shuffle_items
        self._shard_loader: Any = None  # audiosr.data.shards.ShardLoader, once made
        self._shard_position: dict[str, Any] | None = None  # where a resumed run starts

    @property
    def min_frames(self) -> dict[str, int]:
        # A test recording needs two full LSD frames to be scored.
        return {"train": self.segment_frames, "val": self.segment_frames, "test": 2 * LSD_N_FFT}

    def pair_maker(self, split: str) -> PairMaker:
        bits = self.test_input_bits if split == "test" else None
        return PairMaker(self.source_rate, self.target_rate, self.input_filter, self.degradations[split], bits,
                         on_device=self.degrade_on_device and split == "train")

    @property
    def test_input(self) -> str:
        """What the test's low-rate input is, in words (the report's metadata and caption)."""
        if self.test_input_bits is None:
            return "float32 (not quantised)"
        return f"{self.test_input_bits}-bit PCM (rounded, no dither)"

    def prepare_data(self) -> None:
        if self.train_shards is None:
            self.corpus.prepare(self.target_rate, self.cache_dir, self.min_frames)
            return
        from audiosr.data.shards import read_index

        read_index(self.train_shards)  # a missing or unreadable index fails now, named
        for split in ("val", "test"):
            self.corpus.recordings(split, self.target_rate, self.cache_dir, self.min_frames[split], warn=True)

    def setup(self, stage: str) -> None:
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

        def recordings(split):
            return self.corpus.recordings(split, self.target_rate, self.cache_dir, self.min_frames[split])

        if stage == "fit" and "train" not in self.datasets and self.train_shards is not None:
            from audiosr.data.shards import ShardStream

            trainer = self.trainer
            self.datasets["train"] = ShardStream(
                self.train_shards, self.segment_frames, self.batch_size, self.pair_maker("train"), seed,
                self.shuffle_items, trainer.global_rank if trainer else 0, trainer.world_size if trainer else 1)
        if stage == "fit" and "train" not in self.datasets:
            self.datasets["train"] = RandomCrops(recordings("train"), self.segment_frames,
                                                 self.train_items_per_epoch, self.pair_maker("train"), seed)
        if stage in ("fit", "validate") and "val" not in self.datasets:
            self.datasets["val"] = FixedCrops(recordings("val"), self.segment_frames, self.pair_maker("val"), seed)
        if stage == "test" and "test" not in self.datasets:
            # Scored at their own level, as published systems score: LSD depends on level
            # through its floor, so a normalised copy would not give the published number.
            own_level = [r.at_own_level() for r in recordings("test")]
            self.datasets["test"] = ScoredRecordings(own_level, self.pair_maker("test"), seed)

    def _loader(self, split: str, batch_size: int, **kwargs: Any) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=split == "train",
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_shards is None:
            return self._loader("train", self.batch_size, sampler=self.train_sampler)
        from audiosr.data.shards import ShardLoader

        # The loader counts only the batches that reach the training step (on_before_batch_transfer).
        position = self._shard_loader.position() if self._shard_loader is not None else self._shard_position
        self._shard_loader = ShardLoader(self.datasets["train"], self.num_workers, position, counts_itself=False)
        return self._shard_loader

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self._shard_loader is not None and self.trainer is not None and self.trainer.training:
            self._shard_loader.taken += 1
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        plans = batch.pop("device_plan", None) if isinstance(batch, dict) else None
        if plans is not None:
            # At equal rates the low-rate signal is the network's input.
            batch["input"] = batch["low"] = apply_plans(batch["input"], plans, self.target_rate)
            # Each target's own edge, at its own level (as the loader finds it).
            gain = plans[:, 1].to(batch["target"]).reshape(-1, 1)
            batch["edge_hz"] = target_edges(batch["target"][:, 0] / gain, self.source_rate,
                                            self.target_rate).float()
        return batch

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.batch_size)

    def test_dataloader(self) -> DataLoader:
        # Whole recordings differ in length: one per batch.
        return self._loader("test", 1)

    def state_dict(self) -> dict[str, Any]:
        # Resumed runs continue with the next epoch's crops, or, from shards, mid-epoch.
        state: dict[str, Any] = {"train_sampler": self.train_sampler.state_dict()}
        if self.train_shards is not None:
            state["shards"] = self._shard_loader.position() if self._shard_loader is not None else self._shard_position
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_sampler.load_state_dict(state_dict.get("train_sampler", {}))
        self._shard_position = state_dict.get("shards")

    def describe(self) -> str:
        rates = f"{self.source_rate} Hz -> {self.target_rate} Hz" if self.source_rate < self.target_rate else \
            f"any band at {self.target_rate} Hz"
        source = f"training crops from the shards at {self.train_shards}, validation and test from " \
            f"{self.corpus.describe()}" if self.train_shards else self.corpus.describe()
        if self.degrade_on_device:
            rates += " (training inputs cut on the model's device)"
        return (f"{source}; {rates}; "
                f"test input made by {self.degradations['test'].describe()}, then {self.test_input}; "
                f"network input by {self.input_filter}")


class ScoredRecordings(WholeRecordings):
    """:class:`WholeRecordings` whose items also carry ``ref_edge_hz``: the band edge a manifest
    gives for the recording (``Recording.manifest_edge_hz``), NaN where none does (the comparison
    then measures it from the target)."""

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        edge = self.items[index][0].manifest_edge_hz
        item["ref_edge_hz"] = torch.tensor(math.nan if edge is None else float(edge))
        return item
