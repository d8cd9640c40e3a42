"""Spectrogram figures for test reports: input, model output, target and error side by side;
and the listening page's panels, one picture per version of a recording.

Only matplotlib's object-oriented API is used (``Figure`` + ``FigureCanvasAgg``): the
global backend and pyplot's figure registry are never touched, so this works headless
and inside Lightning callbacks. Nothing happens at import time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
# The listening page's panels are shown at about their own pixel size at 1280 px (four to a row) and
# larger on a phone (one to a row), so text PANEL_FONT_PT at PANEL_DPI (13.9 px) stays >= 11 px.
PANEL_INCHES = (2.8, 2.1)
PANEL_DPI = 100
PANEL_FONT_PT = 10.0
_PANEL_MARGINS = (0.5, 0.1, 0.14, 0.42)  # inches: left (kHz ticks), top, right, bottom (time ticks)


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


@dataclass(frozen=True)
class Panels:
    """One recording's spectrograms for the listening page: one RGBA image ``(H, W, 4)`` uint8 per
    signal, all the same size and colour scale; ``colorbar`` is that scale; ``plot_box`` is where
    the time axis lies in a panel, ``(left, top, right, bottom)`` as fractions of its width and
    height (the page draws its playhead there)."""

    images: list[np.ndarray]
    colorbar: np.ndarray
    plot_box: tuple[float, float, float, float]


def spectrogram_panels(signals: dict[str, np.ndarray], sample_rate: int, cutoff_hz: float | None = None) -> Panels:
    """Draw each of ``signals`` (name -> waveform ``(T,)`` or ``(C, T)`` at ``sample_rate``) as its own panel.

    Separate pictures, not one wide figure, so that the page can lay them out four to a row on a
    screen and stacked on a phone, each at a size where its text is legible. They are drawn side
    by side in one figure (one render) and cut apart at exact pixel columns; no titles: the page
    names each panel in HTML. The band edge ``cutoff_hz`` is dashed.
    """
    from matplotlib.figure import Figure

    if not signals:
        raise ValueError("no signals to plot")
    images = _decibels([power_spectrogram(x) for x in signals.values()])
    width, height = PANEL_INCHES
    left, top, right, bottom = _PANEL_MARGINS
    fig = Figure(figsize=(width * len(images), height), dpi=PANEL_DPI)
    for index, (image, signal) in enumerate(zip(images, signals.values())):
        ax = fig.add_axes(((index * width + left) / (width * len(images)), bottom / height,
                           (width - left - right) / (width * len(images)), (height - top - bottom) / height))
        ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=-DB_RANGE, vmax=0.0,
                  extent=(0.0, np.shape(signal)[-1] / sample_rate, 0.0, sample_rate / 2000))
        if cutoff_hz is not None:
            ax.axhline(cutoff_hz / 1000, color="white", linestyle="--", linewidth=0.8)
        ax.tick_params(labelsize=PANEL_FONT_PT)
        ax.set_ylabel("kHz", fontsize=PANEL_FONT_PT, labelpad=2)
        ax.set_xlabel("s", fontsize=PANEL_FONT_PT, labelpad=1)
    strip = _pixels(fig)
    step = strip.shape[1] // len(images)
    return Panels([strip[:, i * step:(i + 1) * step].copy() for i in range(len(images))], _colorbar(),
                  (left / width, top / height, 1 - right / width, 1 - bottom / height))


def _colorbar() -> np.ndarray:
    """The panels' colour scale as a picture as wide as one panel."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    width, height = PANEL_INCHES[0], 0.62
    left, _, right, _ = _PANEL_MARGINS
    fig = Figure(figsize=(width, height), dpi=PANEL_DPI)
    cax = fig.add_axes((left / width, 0.42, (width - left - right) / width, 0.14))
    fig.colorbar(ScalarMappable(Normalize(-DB_RANGE, 0.0), "magma"), cax=cax, orientation="horizontal")
    cax.tick_params(labelsize=PANEL_FONT_PT)
    cax.set_title("dB re. loudest bin", fontsize=PANEL_FONT_PT, pad=3, loc="left")
    return _pixels(fig)


def _pixels(fig: Figure) -> np.ndarray:
    """``fig`` rendered: ``(H, W, 4)`` uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGBA image ``(H, W, 4)`` uint8 as a PNG at ``path``, whole or not at all."""
    from PIL import Image

    path = Path(path)
    with atomic_output(path) as partial:
        Image.fromarray(image).save(partial, format="PNG")
    return path
