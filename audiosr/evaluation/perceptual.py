"""A perceptual metric: ViSQOL (audio mode, MOS-LQO from 1 to 5), when installed.

LSD and SNR cannot tell a natural-sounding high band from noise with the right envelope;
ViSQOL (Hines et al. 2015; Chinen et al. 2020), which AP-BWE also reports, models how a
listener compares two signals. audiosr uses ``visqol-python``, a pure-Python port of
Google's ViSQOL with its model bundled (``pip install "audiosr-lightning[perceptual]"``).
Audio mode works at 48 kHz: both signals are resampled to it with soxr VHQ first.
Without the package, :func:`visqol_scorer` returns ``None`` and says so in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from audiosr.dsp import resample

VISQOL_RATE = 48_000
MISSING = 'ViSQOL column skipped: the optional package is missing (pip install "audiosr-lightning[perceptual]")'

logger = logging.getLogger(__name__)


class Visqol:
    """``score(estimate, target, rate)``: ViSQOL MOS-LQO of ``(C, T)`` arrays, mean over channels.

    ``seconds``: score only the first this many seconds of each (a convention of published
    evaluations, e.g. 8 s; it also bounds the cost on long recordings); ``None``: all of it.
    """

    def __init__(self, seconds: float | None = None) -> None:
        from visqol import VisqolApi

        if seconds is not None and not seconds > 0:
            raise ValueError(f"seconds must be positive (or None), got {seconds}")
        self.seconds = seconds

        self.api = VisqolApi()
        self.api.create(mode="audio")

    def __call__(self, estimate: np.ndarray, target: np.ndarray, rate: int) -> float:
        estimate, target = np.atleast_2d(estimate), np.atleast_2d(target)
        if self.seconds is not None:
            keep = max(1, round(self.seconds * rate))
            estimate, target = estimate[..., :keep], target[..., :keep]
        scores = []
        for est, ref in zip(estimate, target):
            est48 = resample(est, rate, VISQOL_RATE, "soxr_vhq").astype(np.float64)
            ref48 = resample(ref, rate, VISQOL_RATE, "soxr_vhq").astype(np.float64)
            scores.append(self.api.measure_from_arrays(ref48, est48, sample_rate=VISQOL_RATE).moslqo)
        return float(np.mean(scores))


def visqol_scorer(notice: Callable[[str], None] | None = None, seconds: float | None = None) -> Visqol | None:
    """A ready :class:`Visqol` (of the first ``seconds``), or ``None`` (with one line to ``notice``)
    if the package is absent."""
    try:
        return Visqol(seconds)
    except ImportError:
        (notice or logger.warning)(MISSING)
        return None
