"""Data: corpora, degradations, aligned low/high-rate pairs, and the Lightning data module."""

from audiosr.data.corpora import VCTK, AudioFolders, Corpus, SyntheticCorpus
from audiosr.data.datamodule import AudioPairDataModule
from audiosr.data.degradations import AnyBand, Codec, Degradation, Lowpass, LowRate, RandomLowpass, Resample

__all__ = [
    "VCTK", "AnyBand", "AudioFolders", "AudioPairDataModule", "Codec", "Corpus", "Degradation", "LowRate", "Lowpass",
    "RandomLowpass", "Resample", "SyntheticCorpus",
]
