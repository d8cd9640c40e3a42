"""Data: corpora, aligned low/high-rate pairs, and the Lightning data module.

The data module is imported on first use, so that inference code importing
``audiosr.data.pairs`` does not pay for loading Lightning.
"""

from typing import Any

from audiosr.data.corpora import VCTK, AudioFolders, Corpus, SyntheticCorpus

__all__ = ["AudioFolders", "AudioPairDataModule", "Corpus", "SyntheticCorpus", "VCTK"]


def __getattr__(name: str) -> Any:
    if name == "AudioPairDataModule":
        from audiosr.data.datamodule import AudioPairDataModule

        return AudioPairDataModule
    raise AttributeError(f"module 'audiosr.data' has no attribute {name!r}")
