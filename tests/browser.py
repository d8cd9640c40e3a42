"""Headless Chromium on a page opened from disk: console messages, decoded audio, loaded images, a screenshot.

No driver library: Chromium's own ``--dump-dom`` runs a small harness page beside the
report, which loads it in a frame (``--allow-file-access-from-files`` makes the two
``file://`` pages one origin), waits for every ``<audio>`` to decode and every image to
load, and writes what it found into its own DOM; console messages come from Chromium's log.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

HARNESS = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="page" src="%s" style="width:412px;height:900px"></iframe>
<script>
const frame = document.getElementById("page");
frame.addEventListener("load", async () => {
  const doc = frame.contentDocument;
  const audios = [...doc.querySelectorAll("audio")], images = [...doc.querySelectorAll("img")];
  await Promise.all(audios.map(a => new Promise(done => {
    if (a.readyState >= 2) return done();
    a.addEventListener("loadeddata", done); a.addEventListener("error", done);
    a.preload = "auto"; a.load();
  })));
  await Promise.all(images.map(i => i.complete ? null : new Promise(done => { i.onload = done; i.onerror = done; })));
  document.getElementById("result").textContent = JSON.stringify({
    audios: audios.map(a => ({src: a.getAttribute("src").slice(0, 80), ready: a.readyState, duration: a.duration,
                               error: a.error ? a.error.code : null})),
    images: images.map(i => ({src: i.getAttribute("src").slice(0, 80), width: i.naturalWidth})),
    links: [...doc.querySelectorAll("a[href]")].map(a => a.getAttribute("href")),
  });
});
</script></body></html>"""


def chromium() -> str:
    """The Chromium binary; skips (one line) where there is none, fails where CI requires it."""
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if found:
        return found
    if os.environ.get("AUDIOSR_REQUIRE_BROWSER"):
        pytest.fail("AUDIOSR_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium)")
    pytest.skip("no headless Chromium here (apt-get install chromium); the page was not opened in a browser")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:  # nothing written into the user's home
        base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--user-data-dir={profile}", "--allow-file-access-from-files", "--enable-logging=stderr", "--v=0",
                "--virtual-time-budget=30000"]
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)


def open_page(page: Path, screenshot: Path | None = None, width: int = 412) -> dict:
    """What a browser makes of ``page``: ``{"audios", "images", "links", "console"}``; optionally a screenshot."""
    page = page.resolve()
    harness = page.parent / "_browser_check.html"
    harness.write_text(HARNESS % page.name, encoding="utf-8")
    try:
        result = _run(["--dump-dom", harness.as_uri()])
    finally:
        harness.unlink()
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.S)
    assert found and found.group(1) != "pending", f"the harness did not finish:\n{result.stderr[-2000:]}"
    report = json.loads(html.unescape(found.group(1)))
    report["console"] = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        shot = _run([f"--screenshot={screenshot}", f"--window-size={width},2200", page.as_uri()])
        assert screenshot.is_file(), shot.stderr[-2000:]
    return report
