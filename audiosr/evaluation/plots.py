"""Spectrogram figures for test reports: input, model output, target and error side by side.

Only matplotlib's object-oriented API is used (``Figure`` + ``FigureCanvasAgg``): the
global backend and pyplot's figure registry are never touched, so this works headless
and inside Lightning callbacks. Nothing happens at import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audiosr.audio_io import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("input", "output", "target", "error")
N_FFT = 2048
HOP_LENGTH = 512
DB_RANGE = 100.0  # dB below the figure's loudest bin that still gets a colour


def power_spectrogram(x: np.ndarray, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Hann STFT power ``(T,)`` or ``(C, T)`` -> ``(n_fft // 2 + 1, frames)``, mean over channels.

    Frames are centred (``n_fft // 2`` zeros each side) like ``torch.stft(center=True)``;
    zero rather than reflect padding so clips shorter than half a window still plot.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    padded = np.pad(x, [(0, 0), (n_fft // 2, n_fft // 2)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop_length]
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as in the metrics
    spec = np.fft.rfft(frames * window, axis=-1)
    return (np.abs(spec) ** 2).mean(axis=0).T


def _decibels(powers: list[np.ndarray]) -> list[np.ndarray]:
    # One reference for every panel: colours compare across panels, and the error
    # panel reads directly as "dB below the signal".
    reference = max(float(p.max()) for p in powers) or 1.0
    return [np.clip(10 * np.log10(np.maximum(p, 1e-20) / reference), -DB_RANGE, 0.0) for p in powers]


def spectrogram_grid(
    rows: list[dict[str, np.ndarray]],
    row_names: list[str] | None,
    sample_rate: int,
    cutoff_hz: float | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Draw ``rows`` (each ``{column name: signal}``, same keys) as a grid of spectrograms.

    One colour scale for every panel; with ``path`` the figure is also written as a PNG.
    """
    fig = _grid_figure(rows, row_names, sample_rate, cutoff_hz, title)
    if path is not None:
        with atomic_output(path) as partial:
            fig.savefig(partial, dpi=100, format="png")
    return fig


def row_label(name: str, width: int = 28) -> str:
    """A row name short enough for an axis: a file path keeps its folder and file name,
    and anything longer than ``width`` keeps its ends."""
    parts = [part for part in re.split(r"[\\/]", name) if part]  # POSIX or Windows paths, wherever we run
    if len(parts) > 1:
        name = "/".join(parts[-2:])
    return name if len(name) <= width else name[: width // 2 - 1] + "…" + name[-(width - width // 2):]


def _grid_figure(
    rows: list[dict[str, np.ndarray]],
    row_names: list[str] | None,
    sample_rate: int,
    cutoff_hz: float | None,
    title: str | None,
) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = list(rows[0])
    powers = [power_spectrogram(row[c]) for row in rows for c in columns]
    images = _decibels(powers)
    fig = Figure(figsize=(3.2 * len(columns) + 1.0, 2.4 * len(rows) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas; no global backend involved
    # Rows may differ in length: share time within a row only.
    axes = fig.subplots(len(rows), len(columns), sharex="row", sharey=True, squeeze=False)
    nyquist_khz = sample_rate / 2000
    for index, (ax, image) in enumerate(zip(axes.flat, images)):
        r, c = divmod(index, len(columns))
        signal = rows[r][columns[c]]
        duration = np.shape(signal)[-1] / sample_rate
        mappable = ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=-DB_RANGE, vmax=0.0,
                             extent=(0.0, duration, 0.0, nyquist_khz), interpolation="nearest")
        if cutoff_hz is not None:
            ax.axhline(cutoff_hz / 1000, color="white", linestyle="--", linewidth=0.8)
        if r == 0:
            ax.set_title(columns[c])
        if c == 0:
            ax.set_ylabel(f"{row_label(row_names[r])}\nkHz" if row_names else "kHz")
        if r == len(rows) - 1:
            ax.set_xlabel("s")
    fig.colorbar(mappable, ax=axes, label=f"dB re. loudest bin (clipped at -{DB_RANGE:g})")
    if title:
        fig.suptitle(title)
    return fig


def spectrogram_figure(
    signals: dict[str, np.ndarray], sample_rate: int, *, title: str | None = None, cutoff_hz: float | None = None
) -> Figure:
    """One column per signal, log-power spectrograms on a shared colour scale.

    Args:
        signals: name -> waveform ``(T,)`` or ``(C, T)`` at ``sample_rate`` (channels are
            averaged in power), e.g. ``{"input": ..., "output": ..., "target": ..., "error": ...}``.
        cutoff_hz: draw a dashed line here (the input's Nyquist frequency).

    Returns:
        A ``Figure`` with one axes per signal plus a colour bar; frequency axis in kHz.
    """
    if not signals:
        raise ValueError("no signals to plot")
    return _grid_figure([dict(signals)], None, sample_rate, cutoff_hz, title)


def comparison_grid(
    items: list[dict[str, np.ndarray]],
    names: list[str],
    sample_rate: int,
    cutoff_hz: float | None,
    *,
    title: str | None = None,
) -> Figure:
    """A grid figure: one row per test item, columns input / output / target / error.

    Args:
        items: per item ``{"input", "output", "target"}`` waveforms ``(T,)`` or ``(C, T)``
            at ``sample_rate``, sample-aligned; ``"error"`` defaults to output - target.
        names: one row label per item.
        cutoff_hz: dashed line at the input's Nyquist frequency.

    Returns:
        A ``Figure`` with ``4 * len(items)`` spectrogram axes plus a colour bar.
    """
    if not items or len(items) != len(names):
        raise ValueError(f"need one name per item, got {len(items)} items and {len(names)} names")
    rows = []
    for item in items:
        error = item.get("error")
        if error is None:
            error = np.asarray(item["output"], dtype=np.float64) - np.asarray(item["target"], dtype=np.float64)
        rows.append({"input": item["input"], "output": item["output"], "target": item["target"], "error": error})
    return _grid_figure(rows, list(names), sample_rate, cutoff_hz, title)


def comparison_figure(
    items: list[dict[str, np.ndarray]],
    names: list[str],
    sample_rate: int,
    cutoff_hz: float | None,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Write :func:`comparison_grid` as a PNG at ``path`` (parents created); returns it."""
    fig = comparison_grid(items, names, sample_rate, cutoff_hz, title=title)
    path = Path(path)
    with atomic_output(path) as partial:
        fig.savefig(partial, dpi=100, format="png")
    fig.clear()  # never registered with pyplot: clearing frees it, there is nothing to close
    return path
