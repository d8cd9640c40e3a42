"""Listening reports: loudness-matched versions, worst and best kept, one player per recording
that switches versions at the same moment and loops, checked in a real browser."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr.evaluation.listening import (
    LOUDNESS_LUFS,
    MAX_BOOST_DB,
    PEAK_LIMIT,
    ListeningReport,
    Table,
    category_of,
    keep_extremes,
    loudest_span,
    matched_gains,
)
from audiosr.evaluation.metrics import k_weighting, loudness
from audiosr.evaluation.plots import PANEL_DPI, PANEL_FONT_PT
from browser import Browser, open_page
from conftest import run_audiosr, tone_mix, write_audio

RATE, LOW = 44100, 22050


def sine(rate: int, seconds: float, hz: float = 997.0, amplitude: float = 1.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(round(rate * seconds)) / rate))[None]


def test_the_excerpt_is_the_loudest_stretch():
    x = np.zeros((1, 20 * RATE), np.float32)
    x[0, 12 * RATE:13 * RATE] = 0.5  # one loud second at 12 s
    start, end = loudest_span(x, RATE, 6.0)
    assert end - start == pytest.approx(6.0) and start <= 12.0 and end >= 13.0
    assert loudest_span(x[:, :RATE], RATE, 6.0) == (0.0, 1.0)  # shorter than an excerpt: all of it


def test_loudness_is_itu_r_bs1770():
    # The standard's own table at 48 kHz, and its calibration: a full-scale 997-Hz sine reads -3.01 LUFS.
    (shelf_b, shelf_a), (high_b, high_a) = k_weighting(48000)
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(high_b, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(high_a, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)
    for rate, within in ((48000, 0.005), (44100, 0.01), (22050, 0.05)):  # the shelf warps near a low Nyquist
        assert loudness(sine(rate, 3.0), rate) == pytest.approx(-3.01, abs=within)
    tone = sine(RATE, 3.0, amplitude=0.1)
    assert loudness(np.concatenate([tone, tone]), RATE) == pytest.approx(loudness(tone, RATE) + 3.01, abs=0.01)
    # Gated: 10 s of silence around 3 s of tone move it by under 0.5 LU (a plain mean drops 6.4 dB);
    # K-weighted: 10 kHz counts more than 100 Hz.
    padded = np.concatenate([np.zeros((1, 5 * RATE)), tone, np.zeros((1, 5 * RATE))], axis=-1)
    assert loudness(padded, RATE) == pytest.approx(loudness(tone, RATE), abs=0.5)
    assert loudness(sine(RATE, 3.0, 10000.0), RATE) > loudness(sine(RATE, 3.0, 100.0), RATE) + 3
    assert loudness(np.zeros((1, RATE)), RATE) == -math.inf
    assert math.isfinite(loudness(tone[:, :RATE // 10], RATE))  # shorter than one 400-ms block


def test_versions_are_brought_to_one_loudness_and_lowered_together_to_spare_peaks():
    gains, level = matched_gains([-30.0, -20.0, -math.inf, -90.0], [0.05, 0.2, 0.0, 1e-4])
    assert gains == [pytest.approx(LOUDNESS_LUFS + 30), pytest.approx(LOUDNESS_LUFS + 20), 0.0, MAX_BOOST_DB]
    assert level == LOUDNESS_LUFS
    # A version whose peak would pass full scale lowers every version by the same amount.
    gains, level = matched_gains([-20.0, -20.0], [0.5, 2.0])
    lowered = 20 * math.log10(2.0 / PEAK_LIMIT)
    assert gains == [pytest.approx(-lowered)] * 2 and level == pytest.approx(LOUDNESS_LUFS - lowered)


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


WIDE = ["method", "n", *(f"metric {i}" for i in range(11))]  # wider than a phone


def page(tmp_path: Path, excerpt: float = 1.0, seconds: tuple[float, ...] = (1.5, 1.5)) -> Path:
    """A report of recordings ``seconds`` long: a low-rate input, two methods and the target each."""
    report = ListeningReport(tmp_path / "report", "a test page", excerpt_seconds=excerpt)
    report.tables.append(Table("All", WIDE, [["model", "2", *["17.10"] * 11], ["kaiser_best", "2", *["16.90"] * 11]]))
    report.summary = ["2 written, 0 failed"]
    for index, length in enumerate(seconds):
        target = tone_mix(RATE, length, seed=index).T
        low = target[:, ::2].copy()
        report.add_recording(f"speech/clip{index}.wav", {"low-rate input": (low, LOW), "model": (0.5 * target, RATE),
                                                         "Model": (0.8 * target, RATE), "target": (target, RATE)},
                             "target", RATE, LOW / 2, why="model vs kaiser_best: +0.2 dB SNR",
                             notes={"model": "SNR 17.1 dB"})
    report.write()
    return report.directory / "report.html"


def sources(html: str) -> list[str]:
    return re.findall(r'(?:src|data-src)="([^"]+)"', html)


def test_the_page_links_only_files_beside_it_and_plays_every_version_at_one_loudness(tmp_path):
    html = page(tmp_path, seconds=(1.5, 0.5)).read_text()
    linked = sources(html)
    # Per recording: the player's first version, the other versions' buttons, a panel per version, the colour scale.
    assert len(linked) == 2 * (1 + 3 + 4 + 1) and not any(re.match(r"[a-z]+:|/", s) for s in linked)
    assert all((tmp_path / "report" / s).is_file() for s in linked)
    assert "http" not in html  # nothing fetched from a network
    model, _ = sf.read(tmp_path / "report/media/00-1-model.flac")
    target, rate = sf.read(tmp_path / "report/media/00-3-target.flac")
    low, low_rate = sf.read(tmp_path / "report/media/00-0-low-rate-input.flac")
    assert rate == RATE and len(target) == RATE and low_rate == LOW and len(low) == LOW  # 1-s excerpts
    # Loudness-matched: the half-level model is written as loud as the target, and the page says by how much.
    for version in (model, target, low):
        assert loudness(version.T, rate if len(version) == RATE else LOW) == pytest.approx(LOUDNESS_LUFS, abs=0.05)
    np.testing.assert_allclose(model, target, atol=2e-4)
    assert len(re.findall(r"gain ([+-][0-9.]+) dB", html)) == 8
    model_gain, target_gain = (float(re.findall(r"gain ([+-][0-9.]+) dB", html)[i]) for i in (1, 3))
    assert model_gain - target_gain == pytest.approx(20 * math.log10(2), abs=0.1)
    assert "Loudness-matched: every version brought to -20.0 LUFS" in html
    # Captions say what is played: the loudest 1 s of a 1.5-s recording, all of a 0.5-s one.
    assert "Plays the loudest 1 s of the recording" in html and "Plays all 0.5 s of the recording" in html
    assert "6 s" not in html
    other, _ = sf.read(tmp_path / "report/media/00-2-model.flac")  # "Model" slugs like "model": its own file
    assert other.shape == model.shape
    # The page moved elsewhere still works: every link is relative.
    moved = shutil.copytree(tmp_path / "report", tmp_path / "elsewhere")
    assert all((moved / s).is_file() for s in linked)
    # A second page in the same folder leaves no excerpt of the first behind, and nothing else goes.
    (tmp_path / "report/media/01-intro.flac").write_bytes(b"a user's own file")
    ListeningReport(tmp_path / "report", "again").write()
    assert [p.name for p in (tmp_path / "report/media").iterdir()] == ["01-intro.flac"]


def test_a_loud_version_lowers_the_level_and_the_caption_says_so(tmp_path):
    report = ListeningReport(tmp_path, "peaks", excerpt_seconds=1.0)
    target = tone_mix(RATE, 1.0).T
    spiky = target.copy()
    spiky[0, 100] = 3.0  # at the matched level this peak would pass full scale
    recording = report.add_recording("x", {"target": (target, RATE), "spiky": (spiky, RATE)}, "target", RATE, None)
    assert recording.level < LOUDNESS_LUFS - 1
    assert "so that no peak clips" in recording.caption
    written, _ = sf.read(tmp_path / "media/00-1-spiky.flac")
    assert np.abs(written).max() == pytest.approx(PEAK_LIMIT, abs=1e-3)


def test_the_inline_page_is_one_file(tmp_path):
    page(tmp_path)
    report = ListeningReport(tmp_path / "one", "inline", excerpt_seconds=0.5)
    report.add_recording("x", {"target": (tone_mix(RATE, 1.0).T, RATE)}, "target", RATE, LOW / 2)
    html = report.render(inline=True)
    assert re.findall(r'src="([^":]+)"', html) == []  # no relative links left
    assert html.count('src="data:audio/flac;base64,') == 1  # the first version is the player's own source, once
    assert html.count('src="data:image/png;base64,') == 2  # the version's spectrogram and the colour scale


@pytest.mark.slow
def test_the_page_opens_from_disk_in_headless_chromium(tmp_path):
    shot = tmp_path / "report.png"
    seen = open_page(page(tmp_path), screenshot=shot)
    assert seen["console"] == [], seen["console"]
    assert len(seen["versions"]) == 8 and all(v["ready"] >= 2 and v["duration"] > 0 and v["error"] is None
                                               for v in seen["versions"]), seen["versions"]
    assert len(seen["images"]) == 10 and all(i["width"] > 0 for i in seen["images"]), seen["images"]
    assert shot.read_bytes()[:4] == b"\x89PNG"


# In the page: wait until recording r's player, switched by the next key, holds file media/<r>-<n>-...
# loaded and put back at its moment (the first seek after the key: the page's own); its time.
ARM = """window.arrived = false;
addEventListener("keydown", () => document.querySelectorAll("[data-recording] audio")[%d]
  .addEventListener("seeked", () => { arrived = true; }, {once: true}), {capture: true, once: true})"""
SETTLED = """new Promise((done, fail) => {
  const audio = document.querySelectorAll("[data-recording] audio")[%d], want = "media/%02d-%d-";
  const until = performance.now() + 10000;
  const poll = () => {
    if (arrived && audio.getAttribute("src").startsWith(want) && audio.readyState >= 2 && !audio.seeking) {
      return done(audio.currentTime);
    }
    if (performance.now() > until) return fail(new Error("version never came in"));
    setTimeout(poll, 5);
  };
  poll();
})"""


def switch(browser: Browser, key: str, recording: int = 0) -> float:
    """Press number ``key`` and wait for that version of ``recording``; the player's time then."""
    browser.evaluate(ARM % recording)
    browser.press(key)
    return browser.evaluate(SETTLED % (recording, recording, int(key) - 1))


@pytest.mark.slow
def test_the_player_switches_versions_at_the_same_moment_and_loops_a_stretch(tmp_path):
    with Browser(1280, 900) as browser:
        browser.open(page(tmp_path, excerpt=3.0, seconds=(3.0, 3.0)))
        audio = 'document.querySelector("[data-recording] audio")'
        # Paused: key 3 brings version 3 in at the same moment, still paused.
        browser.evaluate(f"new Promise(d => {{ const a = {audio}; a.addEventListener('seeked', d, {{once: true}}); "
                         "a.currentTime = 1.234; })")
        assert switch(browser, "3") == pytest.approx(1.234, abs=0.05)
        assert browser.evaluate(f"{audio}.paused") is True
        # Playing: the position when the key goes down is where the next version starts.
        browser.evaluate(f"{audio}.play()", gesture=True)
        browser.evaluate(f"new Promise(d => {{ const a = {audio}; "
                         "const w = () => a.currentTime > 1.6 ? d() : setTimeout(w, 5); w(); })")
        browser.evaluate(f"""window.moments = {{}};
            addEventListener("keydown", () => {{ moments.before = {audio}.currentTime; }},
                             {{capture: true, once: true}});
            {audio}.addEventListener("seeked", () => {{ moments.after = {audio}.currentTime; }}, {{once: true}})""")
        switch(browser, "2")
        moments = browser.evaluate("moments")
        assert moments["after"] == pytest.approx(moments["before"], abs=0.05), moments
        time_then = browser.evaluate(f"new Promise(d => setTimeout(() => d({audio}.currentTime), 300))")
        assert time_then > moments["after"] + 0.08 and browser.evaluate(f"{audio}.paused") is False  # and it plays on
        # Loop 0.5-1.0 s (A and B set at the position, paused), then switch inside it: it keeps looping.
        loop = 'document.querySelector("[data-recording] [data-loop=%s]")'
        browser.evaluate(f"{audio}.pause()")
        for at, which in ((0.5, "a"), (1.0, "b")):
            browser.evaluate(f"new Promise(d => {{ const a = {audio}; a.addEventListener('seeked', () => "
                             f"{{ {loop % which}.click(); d(); }}, {{once: true}}); a.currentTime = {at}; }})")
        assert browser.evaluate(f"{loop % 'on'}.checked") is True
        assert browser.evaluate('document.querySelector(".loop output").textContent') == "loop 0.50–1.00 s"
        browser.evaluate(f"{audio}.play()", gesture=True)
        sample = f"""new Promise(d => {{ const out = [], a = {audio}, t0 = performance.now();
            const take = () => {{
              out.push(a.currentTime);
              performance.now() - t0 < 1600 ? setTimeout(take, 10) : d(out);
            }};
            take(); }})"""
        for key in (None, "4"):
            if key:
                switch(browser, key)
            times = browser.evaluate(sample)
            # The page wraps on a 20 ms timer: a busy machine may overshoot B a little, never run on.
            assert min(times) >= 0.5 - 0.01 and max(times) <= 1.0 + 0.25, (min(times), max(times))
            assert sum(b < a - 0.3 for a, b in zip(times, times[1:])) >= 2  # wrapped back to A twice or more
        # Keys go to the recording last used; starting one recording pauses the other.
        browser.evaluate('document.querySelectorAll("[data-recording]")[1].querySelector("button").focus()')
        switch(browser, "4", recording=1)
        assert browser.evaluate(f"{audio}.getAttribute('src')").endswith("00-3-target.flac")
        browser.evaluate('document.querySelectorAll("[data-recording] audio")[1].play()', gesture=True)
        assert browser.evaluate(f"{audio}.paused") is True
        assert browser.console == [], browser.console


LAYOUT = """(() => {
  const view = document.documentElement.clientWidth;
  const outside = [...document.querySelectorAll("h1, h2, h3, p, .table, .deck, .version, img.scale")]
    .map((e) => [e.className || e.tagName, e.getBoundingClientRect()])
    .filter(([, r]) => r.left < -0.5 || r.right > view + 0.5).map(([name, r]) => `${name}: ${r.left}-${r.right}`);
  const cue = document.querySelector(".table .cue");
  return {view, page: document.documentElement.scrollWidth, outside, cue: getComputedStyle(cue).display !== "none",
          scales: [...document.querySelectorAll(".spec img")].map((i) => i.clientWidth / i.naturalWidth)};
})()"""


@pytest.mark.slow
def test_the_page_fits_a_phone_and_its_spectrogram_text_is_legible(tmp_path, request):
    smallest_text_px = PANEL_FONT_PT * PANEL_DPI / 72
    html = page(tmp_path)
    with Browser(1280, 900) as browser:
        browser.open(html)
        wide = browser.evaluate(LAYOUT)
        assert wide["outside"] == [] and wide["page"] <= wide["view"] and not wide["cue"]  # the table fits
        assert min(wide["scales"]) * smallest_text_px >= 11, wide["scales"]
        browser.resize(390, 844, mobile=True)
        phone = browser.evaluate(LAYOUT)
        assert phone["view"] == 390 and phone["page"] <= 390, phone  # nothing sticks out sideways ...
        assert phone["outside"] == [], phone["outside"]  # ... every panel in view, stacked
        assert phone["cue"]  # the table scrolls in its box, and says so
        assert min(phone["scales"]) * smallest_text_px >= 11, phone["scales"]
        assert browser.console == [], browser.console


@pytest.mark.slow
def test_the_checker_sees_a_broken_page(tmp_path):
    """The browser check can fail: a missing excerpt, a missing figure and a script error are all seen."""
    broken = page(tmp_path)
    (broken.parent / "media/00-1-model.flac").unlink()
    (broken.parent / "media/01-2-model.png").unlink()
    broken.write_text(broken.read_text().replace("</body>", "<script>nosuch();</script></body>"))
    seen = open_page(broken)
    assert any("nosuch" in line for line in seen["console"])
    assert sum(v["error"] is not None for v in seen["versions"]) == 1
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
    assert seen["console"] == [] and len(seen["versions"]) == 4 and len(seen["images"]) == 2 * 3  # + colour scale
    assert all(v["ready"] >= 2 and v["duration"] > 0 for v in seen["versions"])
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
