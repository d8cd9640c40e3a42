"""Listening reports: one HTML page to hear and see a comparison, self-contained on disk.

``audiosr test`` writes ``test/report.html`` (the comparison table, per category when the
test files sit in several folders, and players for chosen recordings); ``audiosr upsample
--report DIR`` writes ``DIR/report.html`` for a user's own files. Beside the page,
``media/`` holds short FLAC excerpts (the loudest ``excerpt_seconds`` of each recording)
and one spectrogram figure per recording. Links are relative, so the folder opens from
disk, anywhere, without a server or a network; :meth:`ListeningReport.render` with
``inline=True`` embeds everything in the page instead (what W&B shows).

Every player of one recording is played at the same gain (the target's excerpt brought
to ``LOUDNESS_DBFS`` RMS, lowered if a peak would pass full scale), so what differs
between two players is the method, never the level.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from audiosr.audio_io import atomic_output
from audiosr.dsp import output_length, resample
from audiosr.evaluation.plots import spectrogram_grid

EXCERPT_SECONDS = 6.0
LOUDNESS_DBFS = -20.0  # RMS of the reference excerpt on the page
PEAK_LIMIT = 0.99
PAGE = "report.html"
MANIFEST = ".written-by-audiosr"  # in media/: the files the last page wrote, the only ones a new page removes


def category_of(name: str) -> str:
    """The folder a recording sits in (``music`` for ``.../test/music/song.flac``); ``""`` without one."""
    parts = [p for p in re.split(r"[\\/]", name) if p]
    return parts[-2] if len(parts) > 1 else ""


def loudest_span(signal: np.ndarray, rate: int, seconds: float) -> tuple[float, float]:
    """Start and end (seconds) of the loudest ``seconds`` of ``signal`` ``(C, T)``, on a 0.25-s grid."""
    signal = np.atleast_2d(signal)
    length = signal.shape[-1] / rate
    if length <= seconds:
        return 0.0, length
    hop = max(1, round(0.25 * rate))
    energy = np.square(signal, dtype=np.float64).mean(axis=0)
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    width = round(seconds * rate)
    starts = np.arange(0, signal.shape[-1] - width + 1, hop)
    best = int(starts[np.argmax(cumulative[starts + width] - cumulative[starts])])
    return best / rate, (best + width) / rate


def crop(signal: np.ndarray, rate: int, span: tuple[float, float]) -> np.ndarray:
    """``signal`` ``(C, T)`` between two times, at its own rate."""
    start, end = (round(t * rate) for t in span)
    return np.atleast_2d(np.asarray(signal))[:, start:end].copy()  # a copy: the whole recording can be freed


def matched_gain(reference: np.ndarray, signals: list[np.ndarray]) -> float:
    """One gain for every player of a recording: ``reference`` at ``LOUDNESS_DBFS`` RMS, no peak clipped."""
    rms = float(np.sqrt(np.mean(np.square(reference, dtype=np.float64)))) if reference.size else 0.0
    gain = 10 ** (LOUDNESS_DBFS / 20) / rms if rms > 0 else 1.0
    peak = max((float(np.abs(s).max()) for s in signals if s.size), default=0.0)
    return min(gain, PEAK_LIMIT / peak) if peak > 0 else gain


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "audio"


@dataclass
class Player:
    label: str
    source: str  # relative path of the excerpt
    rate: int
    note: str = ""


@dataclass
class Recording:
    name: str
    why: str
    players: list[Player]
    spectrogram: str  # relative path of the figure


@dataclass
class Table:
    caption: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class ListeningReport:
    """Collects recordings (excerpts and figures are written as they come), then writes the page.

    Args:
        directory: the page's folder (``report.html`` and ``media/``).
        title: the page's heading.
        excerpt_seconds: how much of each recording the page plays.
    """

    directory: Path
    title: str
    excerpt_seconds: float = EXCERPT_SECONDS
    intro: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        media = self.directory / "media"
        media.mkdir(parents=True, exist_ok=True)
        manifest = media / MANIFEST
        if manifest.is_file():  # an earlier page's excerpts and figures, never a file of someone else's
            for name in manifest.read_text(encoding="utf-8").split("\n"):
                if name and "/" not in name and (media / name).is_file():
                    (media / name).unlink()
            manifest.unlink()
        self._written: list[str] = []

    def add_recording(self, name: str, players: dict[str, tuple[np.ndarray, int]], reference: str,
                      target_rate: int, cutoff_hz: float | None, why: str = "",
                      notes: dict[str, str] | None = None, figure: dict[str, np.ndarray] | None = None) -> Recording:
        """Add one recording: a player per entry of ``players`` (label -> ``(signal (C, T), rate)``).

        The excerpt is the loudest stretch of ``players[reference]``; ``figure`` (label -> signal
        at ``target_rate``; default: the players at ``target_rate``, others resampled) is drawn
        as one row of spectrograms with the band edge ``cutoff_hz`` dashed.
        """
        ref_signal, ref_rate = players[reference]
        span = loudest_span(ref_signal, ref_rate, self.excerpt_seconds)
        excerpts = {label: (crop(signal, rate, span), rate) for label, (signal, rate) in players.items()}
        gain = matched_gain(excerpts[reference][0], [e for e, _ in excerpts.values()])
        index = len(self.recordings)
        entries = []
        for number, (label, (excerpt, rate)) in enumerate(excerpts.items()):
            # The player's number keeps two labels that slug alike apart.
            relative = self._claim(f"{index:02d}-{number}-{_slug(label)}.flac")
            with atomic_output(self.directory / relative) as partial:
                sf.write(partial, (gain * excerpt).T, rate, format="FLAC", subtype="PCM_16")
            entries.append(Player(label, relative, rate, (notes or {}).get(label, "")))
        if figure is None:
            figure = {label: signal if rate == target_rate else
                      resample(signal, rate, target_rate, "soxr_vhq", output_length(signal.shape[-1], rate, target_rate))
                      for label, (signal, rate) in players.items()}
        figure = {label: crop(signal, target_rate, span) for label, signal in figure.items()}
        picture = self._claim(f"{index:02d}-spectrograms.png")
        spectrogram_grid([figure], None, target_rate, cutoff_hz, path=self.directory / picture)
        recording = Recording(name, why, entries, picture)
        self.recordings.append(recording)
        return recording

    def _claim(self, name: str) -> str:
        """``media/<name>``, recorded in the manifest before it is written."""
        self._written.append(name)
        with atomic_output(self.directory / "media" / MANIFEST) as partial:
            Path(partial).write_text("\n".join(self._written) + "\n", encoding="utf-8")
        return f"media/{name}"

    def render(self, inline: bool = False) -> str:
        """The page as HTML; with ``inline``, every excerpt and figure embedded as a data URI
        (one self-contained file: what W&B shows)."""
        import jinja2

        environment = jinja2.Environment(loader=jinja2.PackageLoader("audiosr.evaluation", "templates"),
                                         autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                                         lstrip_blocks=True)

        def link(relative: str) -> str:
            if not inline:
                return relative
            kind = "image/png" if relative.endswith(".png") else "audio/flac"
            data = base64.b64encode((self.directory / relative).read_bytes()).decode("ascii")
            return f"data:{kind};base64,{data}"

        return environment.get_template("listening.html").render(report=self, link=link)

    def write(self) -> Path:
        """Write ``report.html`` beside ``media/``; returns its path."""
        path = self.directory / PAGE
        with atomic_output(path) as partial:
            Path(partial).write_text(self.render(), encoding="utf-8")
        return path


def keep_extremes(candidates: list[dict], count: int, key: str) -> list[dict]:
    """The ``(count + 1) // 2`` lowest and the ``count // 2`` highest by ``key``, lowest first, each once.

    The lowest comes first and always stays (a NaN counts as the lowest): a page of one shows the worst.
    """
    ordered = sorted(candidates, key=lambda c: -math.inf if math.isnan(c[key]) else c[key])
    if len(ordered) <= count:
        return ordered
    low = (count + 1) // 2
    return ordered[:low] + ordered[len(ordered) - (count - low):]


def table_cells(rows: list, keys: list[str]) -> list[list[str]]:
    """Rows of :class:`audiosr.evaluation.comparison.Row` as the page's text cells."""
    from audiosr.evaluation.comparison import cell

    return [[cell(getattr(row, key)) for key in keys] for row in rows]
