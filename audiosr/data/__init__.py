"""Data: corpora, aligned low/high-rate pairs, and the Lightning data module."""

from audiosr.data.corpora import VCTK, AudioFolders, Corpus, SyntheticCorpus
from audiosr.data.datamodule import AudioPairDataModule

__all__ = ["AudioFolders", "AudioPairDataModule", "Corpus", "SyntheticCorpus", "VCTK"]
