"""Data: corpora, degradations, aligned low/high-rate pairs, and the Lightning data module."""

from audiosr.data.corpora import VCTK, AudioFolders, Corpus, SyntheticCorpus
from audiosr.data.datamodule import AudioPairDataModule
from audiosr.data.degradations import Codec, Degradation, Lowpass, RandomLowpass, Resample

__all__ = [
    "VCTK", "AudioFolders", "AudioPairDataModule", "Codec", "Corpus", "Degradation", "Lowpass", "RandomLowpass",
    "Resample", "SyntheticCorpus",
]
