"""Headless Chromium on a page opened from disk, driven over the DevTools protocol.

No driver library: Chromium runs with ``--remote-debugging-pipe`` and :class:`Browser` speaks
the protocol itself (JSON messages ending in a NUL byte, on file descriptors 3 and 4), with the
standard library. A live page rather than ``--dump-dom``: the listening page's player runs on
the real audio clock, so checking it means playing, pressing keys and waiting. Console
messages, uncaught exceptions and failed loads are gathered from the protocol's events.
``--allow-file-access-from-files`` lets a ``file://`` page see its own media from a script.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

# Every version of every recording loaded in turn through the page's own buttons, every image
# waited for: what a visitor could hear and see.
CHECK = """(async () => {
  const settle = (audio) => new Promise((done) => {  // loaded and back at its moment, or failed
    const poll = () => (audio.readyState >= 2 && !audio.seeking) || audio.error ? done() : setTimeout(poll, 10);
    poll();
  });
  const versions = [];
  for (const section of document.querySelectorAll("[data-recording]")) {
    const audio = section.querySelector("audio"), buttons = [...section.querySelectorAll(".choices button")];
    for (const button of buttons) {
      button.click();
      await settle(audio);
      versions.push({src: audio.getAttribute("src").slice(0, 80), ready: audio.readyState, duration: audio.duration,
                     error: audio.error ? audio.error.code : null});
    }
    buttons[0].click();
  }
  const images = [...document.querySelectorAll("img")];
  await Promise.all(images.map((i) => i.complete ? null
    : new Promise((done) => { i.onload = done; i.onerror = done; })));
  return {versions, images: images.map((i) => ({src: i.getAttribute("src").slice(0, 80), width: i.naturalWidth})),
          links: [...document.querySelectorAll("a[href]")].map((a) => a.getAttribute("href"))};
})()"""


def chromium() -> str:
    """The Chromium binary; skips (one line) where there is none, fails where CI requires it."""
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if found:
        return found
    if os.environ.get("AUDIOSR_REQUIRE_BROWSER"):
        pytest.fail("AUDIOSR_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium)")
    pytest.skip("no headless Chromium here (apt-get install chromium); the page was not opened in a browser")


class Browser:
    """One headless Chromium showing one page ``width`` x ``height`` CSS px; a context manager.

    ``console`` lists what a visitor's console would show: console calls, uncaught exceptions
    (rejected promises included) and warnings or errors of the browser (a file that failed to load).
    """

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 60.0) -> None:
        self.width, self.height, self.timeout = width, height, timeout
        self.console: list[str] = []
        self._events: list[dict] = []
        self._buffer = b""
        self._id = 0

    def __enter__(self) -> Browser:
        binary = chromium()
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)  # nothing written into the user's home
        self._log = open(Path(self._profile.name) / "stderr.txt", "w+b")
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def descriptors() -> None:  # the protocol's fixed numbers, whatever the pipes got; the rest
            # of this process's descriptors are not inheritable (PEP 446) and stay out of Chromium.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
             "--no-first-run", "--allow-file-access-from-files", "--remote-debugging-pipe",
             f"--user-data-dir={self._profile.name}", f"--window-size={self.width},{self.height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log, close_fds=False,
            preexec_fn=descriptors)
        os.close(to_browser)
        os.close(from_browser)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", page=True)
            self.resize(self.width, self.height)
        except BaseException:  # a start that fails half-way leaves no browser behind
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.timeout = 5.0
            self.call("Browser.close")
            self._process.wait(timeout=10)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        for fd in (self._read, self._write):
            os.close(fd)
        self._log.close()
        self._profile.cleanup()

    # The protocol.

    def call(self, method: str, page: bool = False, **params: object) -> dict:
        """Send one command (to the page's session with ``page``) and wait for its answer."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if page:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive(time.monotonic() + self.timeout)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer in time; its log ends:\n{self._stderr()}")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium went away; its log ends:\n{self._stderr()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self._note(message)
        return message

    def _note(self, event: dict) -> None:
        self._events.append(event)
        params = event.get("params", {})
        if event["method"] == "Runtime.consoleAPICalled":
            words = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"console.{params.get('type')}: {words}")
        elif event["method"] == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
        elif event["method"] == "Log.entryAdded" and params["entry"]["level"] in ("warning", "error"):
            entry = params["entry"]
            self.console.append(f"{entry['level']}: {entry['text']} {entry.get('url', '')}".strip())

    def _stderr(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    # What a test does with the page.

    def open(self, page: Path) -> None:
        """Load ``page`` from disk and wait for its load event (images and preloads started)."""
        self._events.clear()
        self.call("Page.navigate", page=True, url=page.resolve().as_uri())
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self._events):
            self._receive(deadline)

    def evaluate(self, expression: str, gesture: bool = False) -> object:
        """The value of a JavaScript expression in the page (a promise is awaited); ``gesture``
        runs it as if the visitor had clicked (what ``play()`` needs)."""
        result = self.call("Runtime.evaluate", page=True, expression=expression, awaitPromise=True,
                           returnByValue=True, userGesture=gesture, timeout=int(self.timeout * 1000))
        if "exceptionDetails" in result:
            raise RuntimeError(f"in the page: {result['exceptionDetails']}")
        return result["result"].get("value")

    def press(self, key: str) -> None:
        """A key pressed and released by the visitor (a trusted event, to whatever has focus)."""
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", page=True, type=kind, key=key, text=key if kind == "keyDown" else "",
                      code=f"Digit{key}" if key.isdigit() else f"Key{key.upper()}",
                      windowsVirtualKeyCode=ord(key.upper()))

    def resize(self, width: int, height: int, mobile: bool = False) -> None:
        """Show the page as a ``width`` x ``height`` CSS px screen (``mobile``: a phone's viewport rules)."""
        self.width, self.height = width, height
        self.call("Emulation.setDeviceMetricsOverride", page=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)
        # The page's own resize handlers run with the next frames: measuring before them is a race.
        self.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 50))))")

    def screenshot(self, path: Path, height: int | None = None, scale: float = 1.0) -> Path:
        """The top ``height`` CSS px of the page (default: the screen) as a PNG, ``scale`` px per CSS px."""
        clip = {"x": 0, "y": 0, "width": self.width, "height": height or self.height, "scale": scale}
        shot = self.call("Page.captureScreenshot", page=True, format="png", clip=clip, captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def open_page(page: Path, screenshot: Path | None = None, width: int = 412) -> dict:
    """What a browser makes of ``page``: ``{"versions", "images", "links", "console"}``, every
    version loaded through the page's own buttons; optionally a screenshot ``width`` px wide."""
    with Browser(width, 900) as browser:
        browser.open(page)
        report = browser.evaluate(CHECK)
        if screenshot is not None:
            browser.screenshot(screenshot, height=2200)
        report["console"] = list(browser.console)
    return report
