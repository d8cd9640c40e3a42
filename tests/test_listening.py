"""Listening reports: excerpts at one gain, worst and best kept, a page that opens from disk in a real browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr.evaluation.listening import (
    LOUDNESS_DBFS,
    ListeningReport,
    Table,
    category_of,
    keep_extremes,
    loudest_span,
    matched_gain,
)
from browser import open_page
from conftest import run_audiosr, tone_mix, write_audio

RATE, LOW = 44100, 22050


def test_the_excerpt_is_the_loudest_stretch():
    x = np.zeros((1, 20 * RATE), np.float32)
    x[0, 12 * RATE:13 * RATE] = 0.5  # one loud second at 12 s
    start, end = loudest_span(x, RATE, 6.0)
    assert end - start == pytest.approx(6.0) and start <= 12.0 and end >= 13.0
    assert loudest_span(x[:, :RATE], RATE, 6.0) == (0.0, 1.0)  # shorter than an excerpt: all of it


def test_every_player_of_a_recording_gets_one_gain_that_sets_the_reference_level_without_clipping():
    quiet = 0.01 * np.sin(np.linspace(0, 200, RATE))[None]
    gain = matched_gain(quiet, [quiet, 2 * quiet])
    assert 20 * np.log10(np.sqrt(np.mean((gain * quiet) ** 2))) == pytest.approx(LOUDNESS_DBFS, abs=0.01)
    spiky = quiet.copy()
    spiky[0, 100] = 0.9  # a peak that the level gain would push past full scale
    assert matched_gain(quiet, [quiet, spiky]) * 0.9 == pytest.approx(0.99)


def test_the_worst_and_the_best_are_kept():
    candidates = [{"name": str(i), "gain": g} for i, g in enumerate([0.5, -3.0, 2.0, 0.1, 4.0, -1.0])]
    kept = keep_extremes(candidates, 4, "gain")
    assert [c["gain"] for c in kept] == [-3.0, -1.0, 2.0, 4.0]
    assert keep_extremes(candidates[:3], 4, "gain") == sorted(candidates[:3], key=lambda c: c["gain"])
    assert [c["gain"] for c in keep_extremes(candidates, 1, "gain")] == [-3.0]  # a page of one: the worst
    assert [c["gain"] for c in keep_extremes(candidates, 3, "gain")] == [-3.0, -1.0, 4.0]
    assert keep_extremes([*candidates, {"name": "x", "gain": float("nan")}], 1, "gain")[0]["name"] == "x"


def test_categories_are_the_folders_files_sit_in():
    assert category_of("/data/test/music/song.flac") == "music"
    assert category_of("C:\\data\\speech\\a.wav") == "speech"
    assert category_of("clip-003") == ""


def page(tmp_path: Path) -> Path:
    """A report of two recordings: a low-rate input, two methods and the target each."""
    report = ListeningReport(tmp_path / "report", "a test page", excerpt_seconds=1.0)
    report.tables.append(Table("All", ["method", "SNR"], [["model", "17.10"], ["kaiser_best", "16.90"]]))
    report.summary = ["2 written, 0 failed"]
    for index in range(2):
        target = tone_mix(RATE, 1.5, seed=index).T
        low = target[:, ::2].copy()
        report.add_recording(f"speech/clip{index}.wav", {"low-rate input": (low, LOW), "model": (0.9 * target, RATE),
                                                         "Model": (0.8 * target, RATE), "target": (target, RATE)},
                             "target", RATE, LOW / 2, why="model vs kaiser_best: +0.2 dB SNR",
                             notes={"model": "SNR 17.1 dB"})
    report.write()
    return report.directory / "report.html"


def test_the_page_links_only_files_beside_it_and_plays_excerpts_at_one_gain(tmp_path):
    html = page(tmp_path).read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 2 * 4 + 2 and not any(re.match(r"[a-z]+:|/", s) for s in sources)
    assert all((tmp_path / "report" / s).is_file() for s in sources)
    assert "http" not in html  # nothing fetched from a network
    model, _ = sf.read(tmp_path / "report/media/00-1-model.flac")
    target, rate = sf.read(tmp_path / "report/media/00-3-target.flac")
    assert rate == RATE and len(target) == RATE  # a 1-s excerpt
    np.testing.assert_allclose(model, 0.9 * target, atol=2e-4)  # same gain: the level difference stays
    other, _ = sf.read(tmp_path / "report/media/00-2-model.flac")  # "Model" slugs like "model": its own file
    np.testing.assert_allclose(other, 0.8 * target, atol=2e-4)
    # The page moved elsewhere still works: every link is relative.
    moved = shutil.copytree(tmp_path / "report", tmp_path / "elsewhere")
    assert all((moved / s).is_file() for s in sources)
    # A second page in the same folder leaves no excerpt of the first behind, and nothing else goes.
    (tmp_path / "report/media/01-intro.flac").write_bytes(b"a user's own file")
    ListeningReport(tmp_path / "report", "again").write()
    assert [p.name for p in (tmp_path / "report/media").iterdir()] == ["01-intro.flac"]


def test_the_inline_page_is_one_file(tmp_path):
    page(tmp_path)
    report = ListeningReport(tmp_path / "one", "inline", excerpt_seconds=0.5)
    report.add_recording("x", {"target": (tone_mix(RATE, 1.0).T, RATE)}, "target", RATE, LOW / 2)
    html = report.render(inline=True)
    assert re.findall(r'src="([^":]+)"', html) == []  # no relative links left
    assert html.count('src="data:audio/flac;base64,') == 1 and html.count('src="data:image/png;base64,') == 1


@pytest.mark.slow
def test_the_page_opens_from_disk_in_headless_chromium(tmp_path):
    shot = tmp_path / "report.png"
    seen = open_page(page(tmp_path), screenshot=shot)
    assert seen["console"] == [], seen["console"]
    assert len(seen["audios"]) == 8 and all(a["ready"] >= 2 and a["duration"] > 0 and a["error"] is None
                                             for a in seen["audios"]), seen["audios"]
    assert len(seen["images"]) == 2 and all(i["width"] > 0 for i in seen["images"]), seen["images"]
    assert shot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_the_checker_sees_a_broken_page(tmp_path):
    """The browser check can fail: a missing excerpt, a missing figure and a script error are all seen."""
    broken = page(tmp_path)
    (broken.parent / "media/00-1-model.flac").unlink()
    (broken.parent / "media/01-spectrograms.png").unlink()
    broken.write_text(broken.read_text().replace("</body>", "<script>nosuch();</script></body>"))
    seen = open_page(broken)
    assert any("nosuch" in line for line in seen["console"])
    assert sum(a["ready"] < 2 for a in seen["audios"]) == 1
    assert sum(i["width"] == 0 for i in seen["images"]) == 1


@pytest.mark.slow
def test_upsample_report_shows_the_users_files_and_the_summary(tmp_path, cli_env):
    write_audio(tmp_path / "in/talk.wav", LOW, 2.0, seed=1)
    write_audio(tmp_path / "in/music/song.flac", LOW, 1.5, seed=2, channels=2)
    (tmp_path / "in/broken.wav").write_bytes(b"RIFF....WAVEnot audio")
    result = run_audiosr(["upsample", "in", "-o", "out", "--report", "listen"], tmp_path, cli_env)
    assert result.returncode == 1, result.stderr  # one file failed; the page still comes
    assert "listening report: listen/report.html" in result.stderr
    html = (tmp_path / "listen/report.html").read_text()
    assert "failed: in/broken.wav" in html and "2 written" in html
    (tmp_path / "taken").write_text("a file")
    refused = run_audiosr(["upsample", "in", "-o", "out2", "--report", "taken"], tmp_path, cli_env)
    assert refused.returncode == 2 and "taken: report folder is an existing file" in refused.stderr
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())  # refused before any work
    seen = open_page(tmp_path / "listen/report.html")
    assert seen["console"] == [] and len(seen["audios"]) == 4 and len(seen["images"]) == 2
    assert all(a["ready"] >= 2 and a["duration"] > 0 for a in seen["audios"])
    assert all(i["width"] > 0 for i in seen["images"])


def test_the_test_page_has_a_table_per_category_when_files_sit_in_folders(tmp_path):
    from types import SimpleNamespace

    from audiosr.evaluation.comparison import Comparison
    from audiosr.training.callbacks import BaselineComparison

    comparison = Comparison(LOW, RATE)
    target = tone_mix(RATE, 0.5).T
    for name, noise in (("d/speech/a.wav", 0.01), ("d/speech/b.wav", 0.02), ("d/music/c.wav", 0.3)):
        estimate = target + noise * np.random.default_rng(0).standard_normal(target.shape).astype(np.float32)
        comparison.add("model", estimate, target, name)
        comparison.add("kaiser_best", target * 0.5, target, name)
    callback = BaselineComparison(listen=0)
    callback.comparison = comparison
    spec = SimpleNamespace(source_rate=LOW, target_rate=RATE, cutoff_hz=LOW / 2)
    report = callback._listening_page(tmp_path, comparison.rows(), spec)
    captions = [t.caption for t in report.tables]
    assert captions == ["All test recordings", "music: 1 recordings", "speech: 2 recordings"]
    music = dict(zip(report.tables[0].headers, report.tables[1].rows[0]))
    assert music["n"] == "1" and float(music["SNR (dB) ↑"]) == pytest.approx(comparison.items["model"][2]["snr"], abs=0.01)


def test_a_report_scoring_visqol_on_the_first_seconds_says_so_in_its_caption():
    from audiosr.evaluation.comparison import CAPTION
    from audiosr.training.callbacks import BaselineComparison

    assert BaselineComparison().caption == CAPTION
    assert BaselineComparison(visqol_seconds=8).caption == f"{CAPTION}, on the first 8 s of each recording"
    with pytest.raises(ValueError, match="visqol_seconds must be positive"):
        BaselineComparison(visqol_seconds=0)
