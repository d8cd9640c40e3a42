"""Listening reports: one HTML page to hear and see a comparison, self-contained on disk.

``audiosr test`` writes ``test/report.html`` (the comparison table, per category when the
test files sit in several folders, and a player for each chosen recording); ``audiosr upsample
--report DIR`` writes ``DIR/report.html`` for a user's own files. Beside the page, ``media/``
holds short FLAC excerpts (the loudest ``excerpt_seconds`` of each recording, one per version:
input, model, each classical method, target) and a spectrogram picture per version. Links are
relative, so the folder opens from disk, anywhere, without a server or a network;
:meth:`ListeningReport.render` with ``inline=True`` embeds everything in the page instead (what
W&B shows).

Each recording has one player (``templates/listening.html``, a short inline script, no network):
buttons, number keys or a click on a spectrogram switch versions at the same moment, and a
stretch A-B can be looped. The versions are written loudness-matched: each brought to
``LOUDNESS_LUFS`` (ITU-R BS.1770 loudness, K-weighted and gated, so a band-limited input and a
full-band output are compared by what is heard rather than by raw power), all lowered together
if a peak would pass full scale. What differs between two versions is then the method, never
the level; the page gives each version's gain.
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
from audiosr.evaluation.metrics import loudness
from audiosr.evaluation.plots import spectrogram_panels, write_png

EXCERPT_SECONDS = 6.0
LOUDNESS_LUFS = -20.0  # every version of a recording is brought to this loudness on the page
MAX_BOOST_DB = 30.0  # a near-silent version is raised by no more (it would be loud noise)
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


def matched_gains(levels: list[float], peaks: list[float]) -> tuple[list[float], float]:
    """Gains (dB) that bring versions of loudness ``levels`` (LUFS) to ``LOUDNESS_LUFS``, and the level reached.

    When a version's peak (``peaks``, linear) would pass ``PEAK_LIMIT``, all are lowered together
    and so is the level: the versions stay matched. A silent version keeps 0 dB, and none is
    raised by more than ``MAX_BOOST_DB``.
    """
    gains = [min(LOUDNESS_LUFS - level, MAX_BOOST_DB) if math.isfinite(level) else 0.0 for level in levels]
    loudest_peak = max((20 * math.log10(peak) + gain for peak, gain in zip(peaks, gains) if peak > 0),
                       default=-math.inf)
    lowered = max(0.0, loudest_peak - 20 * math.log10(PEAK_LIMIT))
    return [gain - lowered for gain in gains], LOUDNESS_LUFS - lowered


def _seconds(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "audio"


@dataclass
class Version:
    """One version of a recording on the page (input, model, a classical method, target)."""

    label: str
    source: str  # relative path of its excerpt
    rate: int
    gain_db: float  # what loudness matching applied
    loudness: float  # LUFS as written (-inf: silent)
    spectrogram: str  # relative path of its panel
    pictured: str  # what the panel shows, when not the excerpt itself (the input at the output's rate)
    note: str = ""

    def detail(self, level: float) -> str:
        """The line under its name: rate, the gain loudness matching gave it, ``note``; its level
        only where it is not ``level`` (silent, or a boost capped)."""
        parts = [f"{self.rate} Hz", f"gain {self.gain_db:+.1f} dB"]
        if not math.isfinite(self.loudness):
            parts.append("silent")
        elif abs(self.loudness - level) > 0.5:
            parts.append(f"at {self.loudness:.1f} LUFS")
        parts += [self.note] if self.note else []
        parts += [f"spectrogram: {self.pictured}"] if self.pictured else []
        return " · ".join(parts)


@dataclass
class Recording:
    """One recording's player: its versions, what they play and at which level."""

    name: str
    why: str
    versions: list[Version]
    colorbar: str  # relative path of the panels' colour scale
    seconds: float  # length of the excerpts
    whole: bool  # the excerpts are the whole recording
    level: float  # LUFS every version was brought to
    plot_box: tuple[float, float, float, float]  # the time axis in a panel (plots.Panels.plot_box)

    @property
    def caption(self) -> str:
        """What the player plays and how loud, from what was written."""
        length = _seconds(self.seconds)
        what = f"all {length} s of the recording" if self.whole else f"the loudest {length} s of the recording"
        lowered = LOUDNESS_LUFS - self.level
        level = f"{self.level:.1f} LUFS" + (f" ({lowered:.1f} dB under {LOUDNESS_LUFS:g} LUFS so that no peak clips)"
                                           if lowered > 0.05 else "")
        return (f"Plays {what}. Loudness-matched: every version brought to {level} (ITU-R BS.1770: K-weighted, "
                f"gated); the gain each got is given with its spectrogram.")


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
        self._colorbar: str | None = None  # one colour scale serves every recording

    def add_recording(self, name: str, players: dict[str, tuple[np.ndarray, int]], reference: str,
                      target_rate: int, cutoff_hz: float | None, why: str = "",
                      notes: dict[str, str] | None = None, figure: dict[str, np.ndarray] | None = None) -> Recording:
        """Add one recording: a version per entry of ``players`` (label -> ``(signal (C, T), rate)``).

        Every version plays the loudest stretch of ``players[reference]``, loudness-matched.
        ``figure`` (one entry per player, in the same order: label -> signal at ``target_rate``;
        default: the players, resampled where their rate differs) gives each version's
        spectrogram, all on one colour scale with the band edge ``cutoff_hz`` dashed.
        """
        ref_signal, ref_rate = players[reference]
        span = loudest_span(ref_signal, ref_rate, self.excerpt_seconds)
        excerpts = {label: (crop(signal, rate, span), rate) for label, (signal, rate) in players.items()}
        levels = [loudness(excerpt, rate) for excerpt, rate in excerpts.values()]
        peaks = [float(np.abs(excerpt).max()) if excerpt.size else 0.0 for excerpt, _ in excerpts.values()]
        gains, level = matched_gains(levels, peaks)
        if figure is None:
            figure = {label: signal if rate == target_rate else
                      resample(signal, rate, target_rate, "soxr_vhq", output_length(signal.shape[-1], rate, target_rate))
                      for label, (signal, rate) in players.items()}
        if len(figure) != len(players):
            raise ValueError(f"need one spectrogram per player, got {len(figure)} for {len(players)}")
        panels = spectrogram_panels({label: crop(signal, target_rate, span) for label, signal in figure.items()},
                                    target_rate, cutoff_hz)
        if self._colorbar is None:
            self._colorbar = self._claim("scale.png")
            write_png(panels.colorbar, self.directory / self._colorbar)
        index = len(self.recordings)
        versions = []
        for number, ((label, (excerpt, rate)), gain, measured, pictured, panel) in enumerate(
                zip(excerpts.items(), gains, levels, figure, panels.images)):
            # The version's number keeps two labels that slug alike apart.
            stem = f"{index:02d}-{number}-{_slug(label)}"
            source = self._claim(f"{stem}.flac")
            with atomic_output(self.directory / source) as partial:
                sf.write(partial, (10 ** (gain / 20) * excerpt).T, rate, format="FLAC", subtype="PCM_16")
            picture = self._claim(f"{stem}.png")
            write_png(panel, self.directory / picture)
            versions.append(Version(label, source, rate, gain, measured + gain, picture,
                                    pictured if pictured != label else "", (notes or {}).get(label, "")))
        seconds = excerpts[reference][0].shape[-1] / ref_rate
        whole = span == (0.0, ref_signal.shape[-1] / ref_rate)  # what loudest_span gives a short recording
        recording = Recording(name, why, versions, self._colorbar, seconds, whole, level, panels.plot_box)
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
