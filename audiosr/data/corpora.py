"""Where recordings come from: the built-in synthetic corpus, folders of files, VCTK.

A corpus only says which recordings belong to which split; the data module decides how
they are cropped and degraded. Every corpus delivers recordings at the rate it is asked
for, so rates are configured once, on the data module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np

from audiosr.audio_io import find_audio
from audiosr.data.recordings import ArrayRecording, Recording, index_files
from audiosr.torchaudio_check import load_torchaudio

Split = Literal["train", "val", "test"]


class Corpus(ABC):
    """A source of recordings for the train, val and test splits."""

    def prepare(self, sample_rate: int, cache_dir: Path, min_frames: dict[str, int]) -> None:
        """Slow one-time work (downloads, checks, conversion), run on one process only.

        ``min_frames`` gives, per split, the shortest usable recording.
        """

    @abstractmethod
    def recordings(
        self, split: Split, sample_rate: int, cache_dir: Path, min_frames: int, warn: bool = False
    ) -> list[Recording]:
        """The split's recordings at ``sample_rate``; ``warn`` reports skipped files."""

    def describe(self) -> str:
        return type(self).__name__


class SyntheticCorpus(Corpus):
    """Deterministic built-in audio (tones, speech-like sounds, hits, noise); no files.

    Args:
        train_clips / val_clips / test_clips: clips per split.
        clip_seconds: length of each clip.
    """

    def __init__(self, train_clips: int = 48, val_clips: int = 8, test_clips: int = 8, clip_seconds: float = 4.0) -> None:
        self.counts = {"train": train_clips, "val": val_clips, "test": test_clips}
        self.clip_seconds = clip_seconds

    def recordings(self, split, sample_rate, cache_dir, min_frames, warn=False):
        from audiosr.data.synthetic import corpus_seed, synthesize

        clips = []
        for index in range(self.counts[split]):
            audio = synthesize(corpus_seed(split, index), sample_rate, self.clip_seconds)
            clips.append(ArrayRecording(f"synthetic/{split}/{index:03d}", audio[np.newaxis]))
        if clips and clips[0].frames < min_frames:
            raise ValueError(
                f"synthetic clips of {self.clip_seconds} s are shorter than the "
                f"{min_frames / sample_rate:.2f} s a {split} item needs; raise clip_seconds"
            )
        return clips

    def describe(self) -> str:
        return f"built-in synthetic corpus ({self.counts}, {self.clip_seconds} s clips)"


class AudioFolders(Corpus):
    """Audio files from folders (recursive), single files or ``.txt`` lists of paths.

    Args:
        train: sources of training audio.
        val: sources of validation audio.
        test: sources of test audio; defaults to ``val``.

        train_shares: one share per ``train`` source: training crops come from each source in
            proportion to its share (and, within it, to each file's length); default: every
            file in proportion to its length, whatever its source. Balances a corpus whose
            categories differ in size (e.g. four hours of music beside twenty minutes of speech).

    Inside folders, audio files are found by name, with the same rule as
    ``audiosr upsample`` (``audiosr.audio_io.is_audio_name``). A ``MANIFEST.tsv`` beside the
    files or in a folder above them (``build.sh``'s, with ``file`` and ``lowpass_edge_hz``
    columns) gives each listed file's band edge: ``audiosr test`` scores the LSD below it.
    """

    def __init__(self, train: list[str], val: list[str], test: list[str] | None = None,
                 train_shares: list[float] | None = None) -> None:
        self.sources = {"train": list(train), "val": list(val), "test": list(test if test is not None else val)}
        if train_shares is not None:
            if len(train_shares) != len(self.sources["train"]) or any(not share > 0 for share in train_shares):
                raise ValueError(f"train_shares needs one positive share per train source "
                                 f"({len(self.sources['train'])}), got {train_shares}")
        self.train_shares = None if train_shares is None else [float(v) for v in train_shares]

    def files(self, split: Split) -> list[Path]:
        return find_audio(self.sources[split])

    def prepare(self, sample_rate, cache_dir, min_frames):
        reported: set[str] = set()
        for split in ("train", "val", "test"):
            self._index(split, sample_rate, cache_dir, min_frames[split], True, reported)

    def recordings(self, split, sample_rate, cache_dir, min_frames, warn=False):
        found = self._index(split, sample_rate, cache_dir, min_frames, warn, None)
        if split != "train" or self.train_shares is None:
            return found
        # Each source's files share its share, in proportion to their length.
        source_of = {}
        for index, entry in enumerate(self.sources["train"]):
            for path in find_audio([entry]):
                source_of.setdefault(str(path), index)
        frames = [0.0] * len(self.train_shares)
        for recording in found:
            frames[source_of[recording.name]] += recording.frames * recording.channels
        for recording in found:
            source = source_of[recording.name]
            recording.weight = self.train_shares[source] / sum(self.train_shares) / frames[source]
        return found

    def _index(self, split, sample_rate, cache_dir, min_frames, warn, reported):
        files = self.files(split)
        if not files:
            raise FileNotFoundError(f"no audio files found for the {split} split in {self.sources[split]}")
        found = index_files(files, sample_rate, cache_dir, min_frames, warn, f"checking {split} audio", reported)
        if not found:
            raise ValueError(f"none of the {len(files)} {split} files is usable (see the warnings above)")
        return found

    def describe(self) -> str:
        return f"audio folders {self.sources}"


class VCTK(Corpus):
    """VCTK 0.92, microphone ``mic``, with the split of published systems.

    Speakers p280 and p315 are dropped (p315 has no recordings, p280 no mic2); of the
    remaining speakers, sorted, all but the last ``held_out_speakers`` train and the held-out
    ones are the test set, as in published systems. Validation never touches the test
    set: it uses the last ``val_utterances`` utterances of each training speaker, which
    are kept out of training (so validation measures unseen utterances of known voices).

    The FLAC files are read with soundfile, avoiding torchaudio's FFmpeg-based decoder.

    Args:
        root: folder that holds (or will hold) ``wav48_silence_trimmed/``.
        mic: "mic1" (as published systems) or "mic2".
        download: fetch the corpus (about 11 GB) through torchaudio when missing.
        held_out_speakers: how many of the last speakers are held out (the test set).
        val_utterances: utterances per training speaker kept out of training for validation.
    """

    DROPPED = ("p280", "p315")
    # What `speakers()` gives on the full VCTK 0.92: the test speakers of published systems
    # (NU-Wave, NU-Wave 2, AERO, AP-BWE). Other code (the benchmarks) reads them from here.
    PUBLISHED_TEST_SPEAKERS = ("p360", "p361", "p362", "p363", "p364", "p374", "p376", "s5")

    def __init__(
        self,
        root: str,
        mic: Literal["mic1", "mic2"] = "mic1",
        download: bool = False,
        held_out_speakers: int = 8,
        val_utterances: int = 1,
    ) -> None:
        self.root = Path(root).expanduser()
        self.mic = mic
        self.download = download
        self.held_out_speakers = held_out_speakers
        self.val_utterances = val_utterances

    @property
    def audio_dir(self) -> Path:
        # torchaudio's VCTK_092 extracts into <root>/VCTK-Corpus-0.92/
        for candidate in (self.root / "wav48_silence_trimmed", self.root / "VCTK-Corpus-0.92" / "wav48_silence_trimmed"):
            if candidate.is_dir():
                return candidate
        return self.root / "wav48_silence_trimmed"

    def _ensure_present(self) -> None:
        if self.audio_dir.is_dir():
            return
        if not self.download:
            raise FileNotFoundError(
                f"VCTK not found under {self.root} (expected wav48_silence_trimmed/); "
                "set download: true to fetch it (about 11 GB)"
            )
        load_torchaudio().datasets.VCTK_092(str(self.root), mic_id=self.mic, download=True)

    def speakers(self) -> tuple[list[str], list[str]]:
        """``(training speakers, held-out speakers)``, each sorted."""
        self._ensure_present()
        speakers = sorted(
            p.name for p in self.audio_dir.iterdir() if p.is_dir() and p.name not in self.DROPPED
        )
        if len(speakers) <= self.held_out_speakers:
            raise ValueError(
                f"{self.audio_dir} has {len(speakers)} speakers; need more than {self.held_out_speakers}"
            )
        return speakers[: -self.held_out_speakers], speakers[-self.held_out_speakers :]

    def files(self, split: Split) -> list[Path]:
        train, held_out = self.speakers()
        files = []
        for speaker in held_out if split == "test" else train:
            utterances = sorted((self.audio_dir / speaker).glob(f"*_{self.mic}.flac"))
            if split == "train":
                utterances = utterances[: len(utterances) - self.val_utterances]
            elif split == "val":
                utterances = utterances[len(utterances) - self.val_utterances:]
            files.extend(utterances)
        return files

    def prepare(self, sample_rate, cache_dir, min_frames):
        reported: set[str] = set()
        for split in ("train", "test", "val"):
            index_files(self.files(split), sample_rate, cache_dir, min_frames[split], True, f"VCTK {split}", reported)

    def recordings(self, split, sample_rate, cache_dir, min_frames, warn=False):
        files = self.files(split)
        if not files:
            raise FileNotFoundError(f"no {self.mic} FLAC files for the VCTK {split} split under {self.audio_dir}")
        return index_files(files, sample_rate, cache_dir, min_frames, warn, f"VCTK {split}")

    def describe(self) -> str:
        return (f"VCTK 0.92 {self.mic} at {self.root} (last {self.held_out_speakers} speakers: test; last "
                f"{self.val_utterances} utterance(s) of every training speaker: validation)")
