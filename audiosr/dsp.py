"""Signal facts and tools shared by data, evaluation and inference: rates, lengths, resampling.

Everything here is plain NumPy (plus resampy / soxr), so inference and the benchmarks can
use it without loading Lightning. Conventions:

* A signal is ``(..., T)``; resampling and fitting act on the last axis.
* Going from ``rate_in`` to ``rate_out``, output sample ``k`` sits at time ``k / rate_out``
  and input sample ``j`` at ``j / rate_in``: every resampler here is zero-phase, so outputs
  are sample-aligned with their inputs.
* ``T`` input samples give ``ceil(T * rate_out / rate_in)`` output samples (:func:`output_length`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction

import numpy as np

# Peak level of training audio after normalisation (files and the synthetic corpus alike):
# inside [-1, 1] with headroom for a model's output.
PEAK = 0.95

RESAMPY_METHODS = ("kaiser_best", "kaiser_fast", "sinc_window")
SOXR_METHODS = {"soxr_vhq": "VHQ", "soxr_hq": "HQ", "soxr_mq": "MQ"}
# Every name accepted as a data module's `lowpass_filter` / `input_filter`.
RESAMPLERS = (*RESAMPY_METHODS, *SOXR_METHODS)


def rate_ratio(source_rate: int, target_rate: int) -> tuple[int, int]:
    """``(p, q)`` with ``target_rate / source_rate = p / q`` in lowest terms."""
    g = math.gcd(target_rate, source_rate)
    return target_rate // g, source_rate // g


def output_length(length: int, rate_in: int, rate_out: int) -> int:
    """``ceil(length * rate_out / rate_in)`` in exact integer arithmetic."""
    return -(-length * rate_out // rate_in)


def nyquist(rate: int) -> float:
    """The highest frequency a signal at ``rate`` can hold: the low-rate input's band edge."""
    return rate / 2


def last_bin_at_or_below(frequency_hz: float, rate: int, n_fft: int) -> int:
    """Index of the last FFT bin whose centre ``k * rate / n_fft`` is ``<= frequency_hz``.

    Exact arithmetic, so a band edge that falls on a bin (11025 Hz at 44.1 kHz) stays there.
    """
    return math.floor(Fraction(frequency_hz) * n_fft / rate)


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``length`` samples."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def check_resampler(method: str) -> None:
    if method not in RESAMPLERS:
        raise ValueError(f"unknown resampler {method!r}; choose one of {RESAMPLERS}")


def resample(x: np.ndarray, rate_in: int, rate_out: int, method: str, length: int | None = None) -> np.ndarray:
    """Resample the last axis of ``x`` (zero-phase, so sample-aligned).

    Args:
        x: float array ``(..., T)``.
        method: a resampy filter (``kaiser_best``, ``kaiser_fast``, ``sinc_window``) or a
            soxr quality (``soxr_vhq``, ``soxr_hq``, ``soxr_mq``).
        length: output length; default ``floor(T * rate_out / rate_in)`` (resampy's).

    Returns:
        float32 array ``(..., length)``.
    """
    check_resampler(method)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if length is None:
        length = x.shape[-1] * rate_out // rate_in
    if rate_in != rate_out and x.shape[-1] > 0:
        if method in SOXR_METHODS:
            # Zeros past the end make soxr's last samples those of the zero-extended signal,
            # whatever the length, as resampy's are: a window of a stream then ends exactly
            # like the whole signal.
            tail = np.zeros((*x.shape[:-1], resample_margin(method, rate_in, rate_out)), np.float32)
            x = _soxr(np.concatenate([x, tail], axis=-1), rate_in, rate_out, SOXR_METHODS[method])
        else:
            import resampy

            x = resampy.resample(x, rate_in, rate_out, filter=method, axis=-1)
    return np.ascontiguousarray(fit_length(x, length), dtype=np.float32)


def _soxr(x: np.ndarray, rate_in: int, rate_out: int, quality: str) -> np.ndarray:
    """soxr one-shot resampling of ``(..., T)``; soxr compensates its own filter delay."""
    import soxr

    flat = x.reshape(-1, x.shape[-1])
    y = soxr.resample(np.ascontiguousarray(flat.T), rate_in, rate_out, quality=quality).T
    return y.reshape(*x.shape[:-1], y.shape[-1])


def resample_margin(method: str, rate_in: int, rate_out: int) -> int:
    """Input samples each side that one output sample depends on, plus slack.

    The windowing engine reads this much extra input around every window, so that a window's
    samples equal the whole-signal resampling's. For soxr it is measured, not derived
    (the project's tests check that it suffices for every resampler).
    """
    check_resampler(method)
    if method in SOXR_METHODS:
        # Measured: at 2x up, VHQ output is exact with 128 input samples each side; at 2x
        # down it needs about 192 (the filter is cut at the output's Nyquist, so it is longer
        # in input samples). This scales with the down-sampling factor, with slack.
        return math.ceil(160 * max(1.0, rate_in / rate_out)) + 64
    from resampy.filters import get_filter

    half_window, num_table, _ = get_filter(method)
    scale = min(1.0, rate_out / rate_in)
    return math.ceil(len(half_window) / int(scale * num_table)) + 2


# --- filters and streams ------------------------------------------------------------------


def best_lag(x: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag (samples, positive: ``x`` later) within ``+-max_lag`` where ``x`` ``(T,)`` best matches
    ``reference`` ``(T',)``, and their correlation coefficient there (0 when either is silent).

    One FFT cross-correlation, just long enough that no lag within reach wraps around.
    """
    from scipy.fft import next_fast_len

    x, reference = np.asarray(x, np.float64), np.asarray(reference, np.float64)
    max_lag = max(0, min(max_lag, max(x.size, reference.size) - 1))
    size = next_fast_len(max(x.size, reference.size) + max_lag, real=True)
    cross = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.concatenate([cross[size - max_lag:], cross[: max_lag + 1]])  # -max .. +max
    index = int(np.argmax(lags))
    norm = math.sqrt(float(np.dot(x, x)) * float(np.dot(reference, reference)))
    return index - max_lag, (float(lags[index]) / norm if norm > 1e-24 else 0.0)


def crossover_kernel(lo_hz: float, hi_hz: float, rate: int, attenuation_db: float = 80.0) -> np.ndarray:
    """Zero-phase Kaiser-windowed low-pass ``(K,)``, ``K`` odd: passes below ``lo_hz``, stops above ``hi_hz``.

    Design after Kaiser: ``beta`` and the length follow from the stop-band attenuation and
    the transition width; the cut-off sits in the middle of the transition band. The taps
    sum to one (unit gain in the pass band). ``h`` and ``1 - h`` form a complementary
    crossover: ``y + h * (x - y)`` is ``x`` below ``lo_hz`` and ``y`` above ``hi_hz``.
    """
    if not 0 < lo_hz < hi_hz <= rate / 2:
        raise ValueError(f"need 0 < lo < hi <= rate / 2, got {lo_hz}, {hi_hz} at {rate} Hz")
    width = 2 * math.pi * (hi_hz - lo_hz) / rate
    a = attenuation_db
    beta = 0.1102 * (a - 8.7) if a > 50 else 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    taps = math.ceil((a - 8) / (2.285 * width)) | 1  # odd: a whole-sample centre, no delay
    n = np.arange(taps) - taps // 2
    cutoff = (lo_hz + hi_hz) / 2 / rate  # cycles per sample
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, beta)
    return (kernel / kernel.sum()).astype(np.float32)


def resample_stream(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int, channels: int) -> Iterator[np.ndarray]:
    """Stream ``(C, n)`` blocks through soxr VHQ: the same samples as one whole-signal call.

    soxr's stream compensates its filter delay like the one-shot call (checked by test).
    """
    import soxr

    stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="VHQ")
    for block in blocks:
        yield stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32)).T
    yield stream.resample_chunk(np.zeros((0, channels), np.float32), last=True).T


def fit_stream(blocks: Iterable[np.ndarray], length: Callable[[], int], slack: int = 256) -> Iterator[np.ndarray]:
    """Crop or zero-pad a stream of ``(C, n)`` blocks to ``length()`` samples in all.

    ``length`` is asked only at the end (a streamed input's length is known only then);
    the last ``slack`` samples are held back until then, so the stream may run up to
    ``slack`` samples past the length it is cropped to.
    """
    held: np.ndarray | None = None
    emitted = 0
    for block in blocks:
        held = block if held is None else np.concatenate([held, block], axis=1)
        if held.shape[-1] > slack:
            out, held = held[:, : held.shape[-1] - slack], held[:, held.shape[-1] - slack:]
            emitted += out.shape[-1]
            yield out
    total = length()
    if emitted > total:
        raise ValueError(f"stream ran {emitted - total} samples past its length; raise slack")
    channels = held.shape[0] if held is not None else 1
    tail = held[:, : total - emitted] if held is not None else np.zeros((channels, 0), np.float32)
    if tail.shape[-1] < total - emitted:
        tail = np.concatenate([tail, np.zeros((channels, total - emitted - tail.shape[-1]), np.float32)], axis=1)
    if tail.shape[-1]:
        yield tail


def zip_streams(a: Iterable[np.ndarray], b: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Re-cut two streams of ``(C, n)`` blocks into pairs of equally long blocks.

    Both streams must have the same total length; the pairs cover it in order.
    """
    a, b = iter(a), iter(b)
    buffers: list[np.ndarray | None] = [None, None]
    sources = (a, b)
    while True:
        for i in (0, 1):
            while buffers[i] is None or buffers[i].shape[-1] == 0:
                block = next(sources[i], None)
                if block is None:
                    break
                buffers[i] = block if buffers[i] is None else np.concatenate([buffers[i], block], axis=1)
        if buffers[0] is None or buffers[1] is None or not buffers[0].shape[-1] or not buffers[1].shape[-1]:
            rest = [x.shape[-1] for x in buffers if x is not None]
            if any(rest):
                raise ValueError("streams of different lengths")
            return
        n = min(buffers[0].shape[-1], buffers[1].shape[-1])
        yield buffers[0][:, :n], buffers[1][:, :n]
        buffers = [buffers[0][:, n:], buffers[1][:, n:]]


def crossover_stream(
    high: Iterable[np.ndarray], low: Iterable[np.ndarray], kernel: np.ndarray
) -> Iterator[np.ndarray]:
    """``high + h * (low - high)`` over two aligned streams: ``low`` below the crossover, ``high`` above.

    Zero-phase, aligned with the inputs, and equal to filtering the whole signals with
    zeros outside them: the last ``len(kernel) // 2`` samples of each block are held back
    until the next block (or the end) completes their filter support.
    """
    taps = kernel.shape[-1]
    half = taps // 2
    history: np.ndarray | None = None  # low - high, from the next output's support on
    delayed: np.ndarray | None = None  # `high` samples whose output is not out yet

    def emit(count: int) -> np.ndarray:
        nonlocal history, delayed
        filtered = np.stack([np.convolve(ch[: count + taps - 1], kernel, mode="valid") for ch in history])
        out = delayed[:, :count] + filtered
        history, delayed = history[:, count:], delayed[:, count:]
        return out.astype(np.float32, copy=False)

    for a, b in zip_streams(high, low):
        if history is None:
            # `half` zeros stand for the signal's past: output 0 is centred on sample 0.
            history = np.zeros((a.shape[0], half), np.float32)
            delayed = np.zeros((a.shape[0], 0), np.float32)
        history = np.concatenate([history, b - a], axis=1)
        delayed = np.concatenate([delayed, a], axis=1)
        ready = history.shape[-1] - (taps - 1)
        if ready > 0:
            yield emit(ready)
    if history is not None and delayed.shape[-1]:
        history = np.concatenate([history, np.zeros((history.shape[0], half), np.float32)], axis=1)
        yield emit(delayed.shape[-1])
