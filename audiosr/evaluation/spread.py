"""How sure a comparison is: paired bootstrap intervals over files (numpy only).

Two methods scored on the same ``n`` files give paired values ``a[i]``, ``b[i]``. Resampling
the files with replacement (the pairs stay together) and recomputing a statistic of the two
means, e.g. the difference of mean SNRs or the ratio of mean LSDs, gives its spread over
what another draw of test files might have given; the middle ``level`` of those values is
the interval (the percentile bootstrap). A method that is better on every file but one has
a narrow interval; one that wins on average through a single file has a wide one.

    from audiosr.evaluation.spread import bootstrap_interval, mean_difference, mean_ratio

    bootstrap_interval(model_snr, kaiser_snr, mean_difference)   # dB, e.g. (0.31, 0.57)
    bootstrap_interval(model_lsd, kaiser_lsd, mean_ratio)        # e.g. (0.43, 0.47)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["RESAMPLES", "SEED", "bootstrap_interval", "mean_difference", "mean_ratio"]

RESAMPLES = 2000
SEED = 0
# Resamples drawn at once: bounds the memory of a large test set (resamples x files indices).
_CHUNK_VALUES = 1 << 22

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def mean_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``mean(a) - mean(b)`` over the last axis: ``(..., n), (..., n) -> (...)``."""
    return a.mean(axis=-1) - b.mean(axis=-1)


def mean_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``mean(a) / mean(b)`` over the last axis: ``(..., n), (..., n) -> (...)``."""
    return a.mean(axis=-1) / b.mean(axis=-1)


def bootstrap_interval(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    statistic: Statistic = mean_difference,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = 0.95,
) -> tuple[float, float]:
    """The percentile-bootstrap interval of ``statistic(a, b)`` over paired files.

    Args:
        values_a, values_b: ``(n,)`` one value per file for each of two methods, in the same
            file order (file ``i`` is resampled as a pair).
        statistic: maps resampled pairs ``(resamples, n), (resamples, n)`` to ``(resamples,)``,
            e.g. :func:`mean_difference` or :func:`mean_ratio`.
        resamples: how many resamples of the ``n`` files.
        seed: the resampling's seed: the same inputs always give the same interval.
        level: the share of resamples the interval holds (0.95: the 2.5th to 97.5th percentile).

    Returns:
        ``(low, high)``. One file gives a zero-width interval at its value.
    """
    a, b = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equally long, non-empty 1-D sequences of per-file values, got shapes "
                         f"{a.shape} and {b.shape}")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    rng = np.random.default_rng(seed)
    n = a.size
    chunk = max(1, _CHUNK_VALUES // n)
    values = []
    for start in range(0, resamples, chunk):
        index = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        values.append(np.asarray(statistic(a[index], b[index]), dtype=np.float64))
    spread = np.concatenate(values)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(spread, [tail, 100 - tail])
    return float(low), float(high)
