"""Compare upsampling methods on the test split: classical baselines, metrics, timing, reports.

One :class:`Comparison` collects, per method, the per-utterance SNR / LSD / LSD-HF /
LSD-LF of :mod:`audiosr.evaluation.metrics`, the LSD below the reference's own band edge, and
the wall time of the whole low-rate -> high-rate path; its rows hold the means, and for each
method bootstrap intervals of its difference from kaiser_best (:mod:`audiosr.evaluation.spread`);
:func:`write_report` writes the resulting table as Markdown, CSV and JSON, and :func:`scalars`
flattens it into the keys a run tracker (W&B's summary) sorts runs by.

The reference's edge: many real references were MP3 or Vorbis files whose encoder cut their
band (13-19.5 kHz at 44.1 kHz); above that edge the reference is empty because of the encoder,
not the sound, and scoring a method against it there rewards the encoder's cut. Each
utterance's edge (``ref_edge_hz``) is the one its corpus manifest gives (``MANIFEST.tsv``'s
``lowpass_edge_hz``, see ``audiosr.data.recordings.manifest_edges``) and otherwise measured
from the reference with ``audiosr.band.content_edge``, searched from ``REFERENCE_EDGE_FROM_HZ``
(or the source Nyquist frequency, if lower) to the target Nyquist frequency; ``lsd_below_edge``
is the LSD over the bins at or below it, ``lsd`` for a reference with no such edge.

Every method, baseline or model, is a callable ``fn(low, source_rate, target_rate)``
mapping ``(C, T_low)`` at ``source_rate`` to ``(C, ceil(T_low * target_rate /
source_rate))`` at ``target_rate``. Output sample ``k`` sits at time ``k / target_rate``
and input sample ``j`` at ``j / source_rate``, so outputs are sample-aligned with the
target (see ``tests/test_evaluation.py``, which checks that for every baseline).
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from audiosr.audio_io import atomic_output
from audiosr.band import content_edge
from audiosr.dsp import nyquist, output_length, resample
from audiosr.evaluation.metrics import TOP_BAND_HZ, lsd_bands, snr, snr_lost
from audiosr.evaluation.spread import RESAMPLES, bootstrap_interval, mean_difference, mean_ratio

Method = Callable[[np.ndarray, int, int], "np.ndarray | Tensor"]

# A reference's own edge is searched for from here up (or from the source Nyquist frequency, if
# lower): encoders cut at 13-21 kHz at 44.1 kHz, and a manifest's edge (build.sh) is the first
# above 4 kHz too.
REFERENCE_EDGE_FROM_HZ = 4000.0
# An input at the target rate (a codec's file, a model for any input's test) splits LSD-HF from LSD-LF
# at its own edge, searched from here up (at most TOP_BAND_HZ under the top: audiosr.evaluation.metrics).
ANY_INPUT_EDGE_FROM_HZ = 3000.0

CAPTION = ("Every recording scored at its own level (no gain); "
           "> 3 dB worse: share of recordings whose SNR is more than 3 dB below kaiser_best's (both counted up to 60 dB); "
           "LSD: log10 power, STFT 2048/512 Hann, clamp 1e-8; "
           "LSD < ref edge: the same LSD over only the bins at or below the reference's own band edge "
           f"(its MANIFEST.tsv lowpass_edge_hz, else measured from {REFERENCE_EDGE_FROM_HZ / 1000:g} kHz up), "
           "above which an encoder's low-pass left the reference no truth; "
           "SNR dB; RTR = audio s / wall s, whole path; "
           "ViSQOL (if shown): audio mode MOS-LQO 1-5, both signals resampled to 48 kHz (soxr VHQ)")


def _resampler(method: str) -> Method:
    """A classical method of :mod:`audiosr.dsp`, fitted to the ceil length convention.

    soxr rounds the length and resampy floors it: at most one zero sample is appended.
    Both compensate their filter delay (checked by test: zero lag).
    """
    def upsample(low: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
        n = output_length(low.shape[-1], source_rate, target_rate)
        return resample(low, source_rate, target_rate, method, n)

    upsample.__name__ = method
    return upsample


def linear(low: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Linear interpolation ``(C, T_low) -> (C, T_out)`` at the exact output times.

    Output sample ``k`` is the input's piecewise-linear curve at ``k / target_rate``;
    past the last input sample (``(T_low - 1) / source_rate``) it holds that value.
    """
    low = np.asarray(low, dtype=np.float32)
    n = output_length(low.shape[-1], source_rate, target_rate)
    # Times in units of input samples, exact for integer rates.
    positions = np.arange(n, dtype=np.float64) * source_rate / target_rate
    grid = np.arange(low.shape[-1], dtype=np.float64)
    flat = low.reshape(-1, low.shape[-1])
    out = np.stack([np.interp(positions, grid, channel) for channel in flat])
    return out.reshape(*low.shape[:-1], n).astype(np.float32)


BASELINES: dict[str, Method] = {
    "kaiser_fast": _resampler("kaiser_fast"),
    "kaiser_best": _resampler("kaiser_best"),
    "soxr_vhq": _resampler("soxr_vhq"),
    "linear": linear,
}
# What a user would otherwise have of an input already at the target rate (a 44.1 kHz MP3 whose
# encoder cut the band): the input itself.
AS_IS = "input as is"


def as_is(low: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """The input unchanged (``source_rate == target_rate``)."""
    if source_rate != target_rate:
        raise ValueError(f"the input as is is at {source_rate} Hz, not {target_rate} Hz")
    return np.array(low, dtype=np.float32, copy=True)


def baselines(source_rate: int, target_rate: int) -> dict[str, Method]:
    """The classical methods a model is compared with: the resamplers of :data:`BASELINES`, or, for an
    input already at the target rate, the input as it is (every resampler would return it unchanged)."""
    return {AS_IS: as_is} if source_rate == target_rate else dict(BASELINES)


def _sync(sync_cuda: bool) -> None:
    if sync_cuda and torch.cuda.is_available():
        torch.cuda.synchronize()


def time_method(fn: Callable[..., Any], *args: Any, warmup: int = 1, repeats: int = 1, sync_cuda: bool = False) -> tuple[Any, float]:
    """Call ``fn(*args)`` ``warmup`` times untimed, then ``repeats`` times timed.

    CUDA work is asynchronous, so with ``sync_cuda`` the device is synchronised before
    the clock starts and before it stops. Returns the last output and the median
    wall time of one call in seconds (``time.perf_counter``).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        _sync(sync_cuda)
        start = time.perf_counter()
        out = fn(*args)
        _sync(sync_cuda)
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


@dataclass
class Row:
    """One line of the comparison table; metric values are means over ``n`` utterances."""

    method: str
    n: int
    snr: float
    lsd: float
    lsd_below_edge: float
    lsd_hf: float
    lsd_lf: float
    rtr: float | None = None
    batch_size: int | None = None
    device: str | None = None
    precision: str | None = None
    visqol: float | None = None
    # Share (%) of the utterances whose SNR is more than WORSE_DB below kaiser_best's on the
    # same utterance: a mean can hide a file that got much worse.
    worse: float | None = None
    # 95 % bootstrap intervals over utterances (paired by name, RESAMPLES resamples) of the mean SNR
    # difference from kaiser_best (dB) and of the ratios of mean LSD and mean below-edge LSD to
    # kaiser_best's; None for kaiser_best itself and where the utterances cannot be paired.
    snr_vs_kaiser_best_ci: list[float] | None = None
    lsd_vs_kaiser_best_ci: list[float] | None = None
    lsd_below_edge_vs_kaiser_best_ci: list[float] | None = None


METRICS = ("snr", "lsd", "lsd_below_edge", "lsd_hf", "lsd_lf")
# The reference of the `worse` column and of the intervals, and by how much an utterance must lose against it.
WORSE_REFERENCE, WORSE_DB = "kaiser_best", 3.0


def is_reference(method: str) -> bool:
    """Whether a row is the one every other is compared with, by its exact name: kaiser_best's
    (``kaiser_best`` or ``kaiser_best (model input)``), or, for inputs at the target rate, the input as is."""
    return method.split(" (")[0] in (WORSE_REFERENCE, AS_IS)


def reference_name(methods: Collection[str]) -> str:
    """The name of the row the others are compared with among ``methods``: ``kaiser_best``, or ``input as is``
    for inputs at the target rate (``kaiser_best`` where neither is there)."""
    return next((m.split(" (")[0] for m in methods if is_reference(m)), WORSE_REFERENCE)


def against_reference(text: str, methods: Collection[str]) -> str:
    """``text`` with "kaiser_best" naming the reference row among ``methods`` (the input as is, at equal rates)."""
    return text.replace(WORSE_REFERENCE, reference_name(methods))
# Row field -> (metric, statistic of the method's and the reference's values over the same utterances).
SPREAD = {
    "snr_vs_kaiser_best_ci": ("snr", mean_difference),
    "lsd_vs_kaiser_best_ci": ("lsd", mean_ratio),
    "lsd_below_edge_vs_kaiser_best_ci": ("lsd_below_edge", mean_ratio),
}


def _as_tensor(x: np.ndarray | Tensor) -> Tensor:
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x)  # torch refuses negative strides
    return torch.as_tensor(x).detach().to("cpu", torch.float32)


class Comparison:
    """Accumulates per-utterance metrics and timings per method; rows keep insertion order.

    Args:
        source_rate: rate of the low-rate input; its Nyquist splits LSD-HF from LSD-LF.
        target_rate: rate of outputs and targets.
        perceptual: optional ``score(estimate, target, rate)`` (ViSQOL, see
            ``audiosr.evaluation.perceptual``), reported as the ``visqol`` column.
    """

    def __init__(self, source_rate: int, target_rate: int, perceptual: Callable[..., float] | None = None) -> None:
        self.source_rate = source_rate
        self.target_rate = target_rate
        self.perceptual = perceptual
        self.items: dict[str, list[dict[str, float]]] = {}
        self._timing: dict[str, dict[str, Any]] = {}

    def reference_edge(self, target: np.ndarray | Tensor, known: float | None = None) -> float:
        """Where the reference ``target`` ``(C, T)``'s own content ends (Hz): the edge its scores use.

        ``known`` (a manifest's edge) wins where given and finite, capped at the target Nyquist
        frequency. Otherwise ``audiosr.band.content_edge`` measures it, searched from
        ``min(REFERENCE_EDGE_FROM_HZ, source Nyquist)`` up; the highest of the channels' edges.
        """
        top = nyquist(self.target_rate)
        if known is not None and math.isfinite(known):
            if not known > 0:
                raise ValueError(f"a reference's edge must be positive, got {known} Hz")
            return min(float(known), top)
        lowest = min(REFERENCE_EDGE_FROM_HZ, nyquist(self.source_rate))
        return float(content_edge(_as_tensor(target), self.target_rate, lowest, top).max())

    def band_split(self, low: np.ndarray | Tensor) -> float:
        """Where LSD-HF begins for this input ``(C, T_low)``: the source Nyquist frequency, or for an input
        already at the target rate the edge of its own content (``audiosr.band.content_edge`` from
        ``ANY_INPUT_EDGE_FROM_HZ`` up, the highest of its channels'), at most ``TOP_BAND_HZ`` under the top."""
        top = nyquist(self.target_rate)
        if self.source_rate < self.target_rate:
            return nyquist(self.source_rate)
        edge = float(content_edge(_as_tensor(low), self.target_rate, ANY_INPUT_EDGE_FROM_HZ, top).max())
        return min(edge, top - TOP_BAND_HZ)

    def add(self, method: str, estimate: np.ndarray | Tensor, target: np.ndarray | Tensor,
            name: str | None = None, edge_hz: float | None = None, split_hz: float | None = None) -> dict[str, float]:
        """Score one utterance: ``estimate`` and ``target`` ``(C, T)`` at ``target_rate``.

        Shapes must match exactly (no cropping: a length mismatch hints at misalignment).
        A multi-channel utterance scores the mean of its channels. ``name`` identifies the
        utterance when comparisons of several processes are merged. ``edge_hz``: the
        reference's own band edge, as :meth:`reference_edge` gives it (measured when ``None``;
        pass it when scoring several methods on one target, to measure once). ``split_hz``: where
        LSD-HF begins, :meth:`band_split` of the input (needed where the input is at the target
        rate). Returns its metrics; the stored item adds ``name`` and ``ref_edge_hz``.
        """
        est, ref = _as_tensor(estimate), _as_tensor(target)
        edge = self.reference_edge(ref, edge_hz)
        if split_hz is None:
            if self.source_rate == self.target_rate:
                raise ValueError("an input at the target rate splits LSD at its own edge: pass split_hz (band_split)")
            split_hz = nyquist(self.source_rate)
        values = lsd_bands(est, ref, self.target_rate, split_hz, edge_hz=edge)
        values["snr"] = snr(est, ref)
        item = {k: float(values[k].mean()) for k in METRICS}
        if self.perceptual is not None:
            item["visqol"] = float(self.perceptual(est.numpy(), ref.numpy(), self.target_rate))
        self.items.setdefault(method, []).append({**item, "ref_edge_hz": edge, "name": name})
        return item

    def add_timing(self, method: str, audio_seconds: float, wall_seconds: float, batch_size: int = 1,
                   device: str = "cpu", precision: str | None = None) -> None:
        """Record ``audio_seconds`` of output produced in ``wall_seconds`` on ``device``.

        The reported batch size is the largest recorded (a last, partial batch is smaller).
        """
        timing = self._timing.setdefault(method, {"audio": 0.0, "wall": 0.0, "batch_size": batch_size,
                                                  "device": str(device), "precision": precision})
        if timing["device"] != str(device):
            raise ValueError(f"{method}: timed on {timing['device']} and on {device}; one device per row")
        timing["audio"] += audio_seconds
        timing["wall"] += wall_seconds
        timing["batch_size"] = max(timing["batch_size"], batch_size)

    def evaluate(
        self, method: str, fn: Method, low: np.ndarray | Tensor, target: np.ndarray | Tensor, *,
        device: str = "cpu", sync_cuda: bool = False, warmup: int = 1, batch_size: int = 1,
        precision: str | None = None, name: str | None = None, edge_hz: float | None = None,
        split_hz: float | None = None,
    ) -> np.ndarray | Tensor:
        """Run ``fn(low (C, T_low), source_rate, target_rate)``, time it and score it (``edge_hz``: as in :meth:`add`).

        The first call per method is preceded by ``warmup`` untimed calls. Returns the output.
        """
        first = method not in self._timing
        out, seconds = time_method(fn, low, self.source_rate, self.target_rate, warmup=warmup if first else 0, sync_cuda=sync_cuda)
        self.add(method, out, target, name, edge_hz, split_hz if split_hz is not None else self.band_split(low))
        self.add_timing(method, out.shape[-1] / self.target_rate, seconds, batch_size, device, precision)
        return out

    def rows(self, names: Collection[str] | None = None) -> list[Row]:
        """One :class:`Row` per method: means over utterances and RTR = audio s / wall s.

        With ``names``, the means cover only those utterances (a category's rows); timing,
        measured over the whole run, is then left out. The ``worse`` share and the intervals
        against kaiser_best (:data:`SPREAD`) need every utterance of a method named and
        scored by kaiser_best too.
        """
        rows = []
        reference = next((m for m in self.items if is_reference(m)), None)
        by_name = {i["name"]: i for i in self.items.get(reference, []) if i["name"] is not None}
        for method in dict.fromkeys([*self.items, *self._timing]):
            items = self.items.get(method, [])
            if names is not None:
                items = [i for i in items if i["name"] in names]
            means = {k: float(np.mean([i[k] for i in items])) if items else math.nan for k in METRICS}
            if items and all(i["name"] in by_name for i in items):
                paired = [by_name[i["name"]] for i in items]
                means["worse"] = 100.0 * float(np.mean([float(snr_lost(i["snr"], r["snr"])) > WORSE_DB for i, r in zip(items, paired)]))
                if method != reference:
                    for key, (metric, statistic) in SPREAD.items():
                        ours, theirs = [i[metric] for i in items], [r[metric] for r in paired]
                        if np.isfinite(ours).all() and np.isfinite(theirs).all():  # an exact copy's SNR is infinite
                            means[key] = list(bootstrap_interval(ours, theirs, statistic))
            if items and all("visqol" in i for i in items):
                means["visqol"] = float(np.mean([i["visqol"] for i in items]))
            timing = self._timing.get(method) if names is None else None
            rtr = None
            if timing is not None:
                rtr = timing["audio"] / timing["wall"] if timing["wall"] > 0 else math.inf
            rows.append(Row(method, len(items), **means, rtr=rtr, batch_size=timing and timing["batch_size"],
                            device=timing and timing["device"], precision=timing and timing["precision"]))
        return rows

    def __getstate__(self) -> dict[str, Any]:
        # The scores travel between processes (``merge``); the scorer stays: ViSQOL holds C handles.
        return {**self.__dict__, "perceptual": None}

    def merge(self, other: Comparison) -> None:
        """Add another comparison's utterances and timings (e.g. another process's share).

        A named utterance already scored for a method is not counted twice: a distributed
        sampler repeats a few items so that every process gets as many.
        """
        for method, items in other.items.items():
            mine = self.items.setdefault(method, [])
            seen = {item["name"] for item in mine if item["name"] is not None}
            mine.extend(item for item in items if item["name"] is None or item["name"] not in seen)
        for method, timing in other._timing.items():
            self.add_timing(method, timing["audio"], timing["wall"], timing["batch_size"], timing["device"],
                            timing["precision"])


HEADERS = {"method": "method", "n": "n", "snr": "SNR (dB) ↑", "lsd": "LSD ↓", "lsd_below_edge": "LSD < ref edge ↓",
           "lsd_hf": "LSD-HF ↓", "lsd_lf": "LSD-LF ↓", "visqol": "ViSQOL ↑", "worse": "> 3 dB worse (%) ↓",
           "rtr": "RTR ↑", "batch_size": "batch", "device": "device", "precision": "precision"}
# The intervals' table: row field -> header (its point value is the rows' difference or ratio of means).
SPREAD_HEADERS = {"snr_vs_kaiser_best_ci": "SNR − kaiser_best (dB)", "lsd_vs_kaiser_best_ci": "LSD ÷ kaiser_best",
                  "lsd_below_edge_vs_kaiser_best_ci": "LSD < ref edge ÷ kaiser_best"}
SPREAD_CAPTION = (f"Against kaiser_best on the same recordings: the difference of mean SNRs and the ratios of mean LSDs, "
                  f"each with its 95 % bootstrap interval over recordings ({RESAMPLES} resamples)")


def cell(value: Any, digits: int = 2) -> str:
    """A table cell: ``–`` for missing values, floats to ``digits`` places (3 significant above 1e4)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list[Any]], left: set[int] | None = None, digits: int = 2) -> str:
    """An aligned Markdown table: the one writer of every table this project prints.

    ``left`` holds the indices of left-aligned (text) columns; default: the first only.
    Numbers are right-aligned, as a reader scans them.
    """
    left = {0} if left is None else left
    table = [[str(h) for h in headers]] + [[cell(c, digits) for c in row] for row in rows]
    widths = [max(3, *(len(line[i]) for line in table)) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + ("-" if i in left else ":") for i, w in enumerate(widths)) + " |"
    return "\n".join([line(table[0]), rule, *map(line, table[1:])]) + "\n"


def shown_columns(rows: list[Row], keys: Collection[str] = tuple(HEADERS)) -> list[str]:
    """The columns of ``keys`` worth showing: ViSQOL and the worse-than-kaiser_best share only when measured."""
    optional = ("visqol", "worse")
    return [k for k in keys if k not in optional or any(getattr(r, k) is not None for r in rows)]


def _point(row: Row, reference: Row, key: str) -> float:
    """The statistic of :data:`SPREAD` ``key`` on the two rows' means: what its interval is around."""
    metric, statistic = SPREAD[key]
    return float(statistic(np.array([getattr(row, metric)]), np.array([getattr(reference, metric)])))


def spread_table(rows: list[Row], digits: int = 2) -> str:
    """Each method against kaiser_best: ``point [low, high]`` per interval of :data:`SPREAD`; ``""`` without any.

    The point is the difference (SNR) or ratio (LSD) of the rows' means; the interval, the row's.
    """
    reference = next((r for r in rows if is_reference(r.method)), None)
    shown = [r for r in rows if any(getattr(r, k) is not None for k in SPREAD)]
    if reference is None or not shown:
        return ""

    def text(row: Row, key: str) -> str:
        interval = getattr(row, key)
        if interval is None:
            return "–"
        sign = "+" if SPREAD[key][1] is mean_difference else ""
        low, high = (f"{v:{sign}.{digits}f}" for v in interval)
        return f"{_point(row, reference, key):{sign}.{digits}f} [{low}, {high}]"

    headers = [against_reference(h, [r.method for r in rows]) for h in SPREAD_HEADERS.values()]
    return markdown_table(["method", *headers], [[r.method, *(text(r, k) for k in SPREAD)] for r in shown])


def to_markdown(rows: list[Row], caption: str = CAPTION, digits: int = 2) -> str:
    """The comparison table (one line per method) with the conventions as caption, then
    the intervals against kaiser_best (:func:`spread_table`) where the rows have them.

    The ViSQOL column appears only when some row has a score.
    """
    keys = shown_columns(rows)
    body = markdown_table([HEADERS[k] for k in keys], [[getattr(r, k) for k in keys] for r in rows],
                          left={keys.index("method"), keys.index("device"), keys.index("precision")}, digits=digits)
    spread = spread_table(rows, digits)
    methods = [r.method for r in rows]
    caption = against_reference(caption, methods)
    return body + "\n" + caption + "\n" + (f"\n{spread}\n{against_reference(SPREAD_CAPTION, methods)}\n" if spread else "")


# Row field -> the name of its scalar in :func:`scalars` (the unit where the number has one).
SCALARS = {"snr": "snr_db", "lsd": "lsd", "lsd_below_edge": "lsd_below_edge", "lsd_hf": "lsd_hf", "lsd_lf": "lsd_lf",
           "visqol": "visqol"}
# SPREAD field -> the name of the model's difference or ratio against kaiser_best in :func:`scalars`.
SPREAD_SCALARS = {"snr_vs_kaiser_best_ci": "snr_db", "lsd_vs_kaiser_best_ci": "lsd_ratio",
                  "lsd_below_edge_vs_kaiser_best_ci": "lsd_below_edge_ratio"}


def scalar_name(method: str) -> str:
    """A row's name in scalar keys: ``kaiser_fast (model input)`` -> ``kaiser_fast``, ``shipped model`` ->
    ``shipped_model``."""
    return re.sub(r"[^0-9a-z]+", "_", method.split(" (")[0].lower()).strip("_")


def scalars(rows: list[Row], model: str, prefix: str = "test") -> dict[str, float]:
    """The table as flat ``{key: number}``: what a run tracker shows per run and sorts runs by.

    Every row gives ``<prefix>/<name>/<metric>`` (:data:`SCALARS`), the row of the tested
    ``model`` under the name ``model``, every other row under :func:`scalar_name`, so that runs
    of different networks or input filters share their keys. Each row that is not a classical
    method (the tested model, other trained models) adds ``<prefix>/<name>_vs_kaiser_best/``:
    the difference of mean SNRs (``snr_db``), the ratios of mean LSDs (``lsd_ratio``,
    ``lsd_below_edge_ratio``), each with its bootstrap bounds (``..._ci_low``, ``..._ci_high``)
    where the row has them, and the share of recordings more than ``WORSE_DB`` worse
    (``worse_pct``). Missing and non-finite values are left out.
    """
    reference = next((r for r in rows if is_reference(r.method)), None)
    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if value is not None and math.isfinite(value):
            out[f"{prefix}/{key}"] = float(value)

    for row in rows:
        name = "model" if row.method == model else scalar_name(row.method)
        for field, key in SCALARS.items():
            put(f"{name}/{key}", getattr(row, field))
        if scalar_name(row.method) in BASELINES or is_reference(row.method) or reference is None:
            continue
        against = f"{name}_vs_{scalar_name(reference.method)}"
        for field, key in SPREAD_SCALARS.items():
            put(f"{against}/{key}", _point(row, reference, field))
            for bound, value in zip(("ci_low", "ci_high"), getattr(row, field) or ()):
                put(f"{against}/{key}_{bound}", value)
        put(f"{against}/worse_pct", row.worse)
    return out


def _finite(value: Any) -> Any:
    # JSON has no NaN / Infinity; null is what a strict parser accepts.
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


# The CSV's columns: Row's fields, each interval as two (``<field>_lo``, ``<field>_hi``).
CSV_COLUMNS = [c for f in fields(Row) for c in ((f"{f.name}_lo", f"{f.name}_hi") if f.name in SPREAD else (f.name,))]


def _csv_cells(row: Row) -> dict[str, Any]:
    cells = {}
    for key, value in asdict(row).items():
        if key in SPREAD:
            cells[f"{key}_lo"], cells[f"{key}_hi"] = value if value is not None else (None, None)
        else:
            cells[key] = value
    return cells


def write_report(rows: list[Row], directory: str | Path, metadata: dict[str, Any], caption: str = CAPTION,
                 items: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv`` and ``comparison.json`` into ``directory``.

    The JSON holds ``{"caption", "metadata", "rows"}`` and, given ``items`` (a comparison's
    per-utterance scores by method), ``"items"``; ``metadata`` (config, checkpoint,
    git commit, data description) is stored as given, non-JSON values as ``str``. Intervals
    are ``[low, high]`` lists in the JSON and two columns (``_lo``, ``_hi``) in the CSV.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {ext: directory / f"comparison.{ext}" for ext in ("md", "csv", "json")}
    with atomic_output(paths["md"]) as partial:
        Path(partial).write_text(to_markdown(rows, caption), encoding="utf-8")
    with atomic_output(paths["csv"]) as partial, open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(_csv_cells(r) for r in rows)
    payload = {"caption": caption, "metadata": metadata,
               "rows": [{k: _finite(v) for k, v in asdict(r).items()} for r in rows]}
    if items is not None:
        payload["items"] = {method: [{k: _finite(v) for k, v in i.items()} for i in values]
                            for method, values in items.items()}
    with atomic_output(paths["json"]) as partial:
        Path(partial).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return paths
