"""Streaming overlap/cross-fade engine: low-rate blocks in, refined target-rate blocks out.

Every window is computed from more input than it keeps, so its kept part is what the
whole signal would give there:

* the rough upsampler (``input_filter``, see ``audiosr.dsp``) gets ``resample_margin``
  extra low-rate samples each side, more than the filter's half-length;
* the network gets ``context`` extra target-rate samples each side (discarded), and its
  input starts on a multiple of ``align`` (the network's ``length_multiple``: ``2**depth``
  for the U-Net, whose strided convolutions only commute with shifts by that much) and
  of the rate ratio's numerator (so a window's first output sample sits exactly on a
  low-rate sample).

With ``context`` at least the generator's ``receptive_field`` (the default), windowed
output equals whole-signal output up to float32 rounding, for a generator without level
normalisation. With it, each window is scaled by its own peak, which is the point: the
output then follows the input's level window by window. Neighbouring windows overlap by
``overlap`` samples and are cross-faded with a raised cosine, so a network whose reach
outgrows ``context`` degrades smoothly instead of leaving a step at each seam.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from audiosr.dsp import fit_length, output_length, rate_ratio, resample, resample_margin

DEFAULT_WINDOW = 6.0  # seconds kept per window
DEFAULT_OVERLAP = 0.25  # seconds cross-faded between neighbouring windows

# Maps a list of rough segments, each ``(C, L_i)``, to refined segments of the same shapes.
Refine = Callable[[list[np.ndarray]], list[np.ndarray]]


def rough_upsample(low: np.ndarray, plan: WindowPlan) -> np.ndarray:
    """``input_filter`` upsampling ``(C, n) -> (C, ceil(n * p / q))``, float32.

    The same function that makes the network's training input, with the length
    convention of every output of audiosr (a resampler that floors pads a zero).
    """
    return resample(low, plan.source_rate, plan.target_rate, plan.input_filter,
                    output_length(low.shape[-1], plan.source_rate, plan.target_rate))


@dataclass(frozen=True)
class WindowPlan:
    """Window geometry in target-rate samples.

    Args:
        window: samples kept from each window, cross-faded overlap included.
        overlap: samples cross-faded between neighbours (at most ``window // 2``).
        context: extra network input on each side of a window, computed and discarded.
        align: network input starts are multiples of this.
    """

    source_rate: int
    target_rate: int
    input_filter: str
    window: int
    overlap: int
    context: int
    align: int = 1

    def __post_init__(self) -> None:
        if self.target_rate < self.source_rate:  # equal: a model for any input, its input already there
            raise ValueError(f"target rate {self.target_rate} must not be below source rate {self.source_rate}")
        if self.window <= 0 or self.overlap < 0 or self.context < 0:
            raise ValueError("window must be > 0, overlap and context >= 0")
        if self.hop < self.overlap:
            raise ValueError(
                f"overlap ({self.overlap} samples) must be at most half the window ({self.window} samples)"
            )

    @property
    def ratio(self) -> tuple[int, int]:
        """``(p, q)`` with ``target / source = p / q`` in lowest terms."""
        return rate_ratio(self.source_rate, self.target_rate)

    @property
    def step(self) -> int:
        """Granularity of window starts: keeps both the network and the resampler aligned."""
        return math.lcm(self.align, self.ratio[0])

    @property
    def hop(self) -> int:
        return max(self.step, (self.window - self.overlap) // self.step * self.step)

    @property
    def margin(self) -> int:
        return resample_margin(self.input_filter, self.source_rate, self.target_rate)


def raised_cosine(length: int) -> np.ndarray:
    """Fade-in ``(length,)``; ``1 - fade`` is the matching fade-out, so they sum to one."""
    return (np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / max(length, 1)) ** 2).astype(np.float32)


def refine_in_windows(
    blocks: Iterable[np.ndarray], plan: WindowPlan, refine: Refine, batch_size: int = 1
) -> Iterator[np.ndarray]:
    """Bring a stream of low-rate blocks to the target rate and refine it window by window.

    Args:
        blocks: float arrays ``(C, n_i)`` at ``plan.source_rate``, any ``n_i``, in order.
        refine: the network on a batch of rough segments (see ``Refine``).
        batch_size: windows handed to ``refine`` at once.

    Yields:
        float32 blocks ``(C, m_j)`` at ``plan.target_rate``; together ``ceil(T * p / q)``
        samples for ``T`` input samples. Memory is bounded by ``batch_size`` windows.
    """
    p, q = plan.ratio
    step, hop, overlap, context, margin = plan.step, plan.hop, plan.overlap, plan.context, plan.margin
    window = hop + overlap
    fade_in = raised_cosine(overlap)
    source = iter(blocks)
    buffer: np.ndarray | None = None  # low-rate samples from global index `buffer_start`
    buffer_start = 0
    total: int | None = None  # low-rate length, known once `source` is exhausted
    pending: list[tuple[int, int, int, bool]] = []  # (start, end, net_start, last) per window
    segments: list[np.ndarray] = []
    tail: np.ndarray | None = None

    for k in itertools.count():
        start = k * hop
        net_start = max(0, (start - context) // step * step)
        net_end = start + window + context
        low_start = max(0, (net_start * q // p - margin) // q * q)
        low_end = output_length(net_end, p, q) + margin

        while total is None and (buffer is None or buffer_start + buffer.shape[1] < low_end):
            block = next(source, None)
            if block is None:
                total = buffer_start + (0 if buffer is None else buffer.shape[1])
            else:
                block = np.atleast_2d(np.asarray(block, dtype=np.float32))
                buffer = block if buffer is None else np.concatenate([buffer, block], axis=1)
        last = False
        if total is not None:
            out_total = output_length(total, q, p)
            if start >= out_total:
                break  # only for empty input: every later window is ended by `last`
            net_end, low_end = min(net_end, out_total), min(low_end, total)
            last = start + window >= out_total
        end = net_end if last else start + window

        low = buffer[:, low_start - buffer_start:low_end - buffer_start]
        rough = rough_upsample(low, plan)
        offset = net_start - low_start * p // q
        segments.append(fit_length(rough[:, offset:], net_end - net_start))
        pending.append((start, end, net_start, last))
        # Later windows never reach further back than this one's low-rate start.
        next_net_start = max(0, (start + hop - context) // step * step)
        drop = max(0, (next_net_start * q // p - margin) // q * q) - buffer_start
        if drop > 0:
            buffer, buffer_start = buffer[:, drop:], buffer_start + drop

        if len(pending) == batch_size or last:
            for (w_start, w_end, w_net, w_last), refined in zip(pending, refine(segments)):
                kept = refined[:, w_start - w_net:w_end - w_net].astype(np.float32, copy=True)
                if tail is not None:
                    kept[:, :overlap] = tail * (1 - fade_in) + kept[:, :overlap] * fade_in
                if w_last:
                    yield kept
                else:
                    yield kept[:, :hop]
                    tail = kept[:, hop:]
            pending, segments = [], []
        if last:
            break
