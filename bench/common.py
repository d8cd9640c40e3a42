"""Helpers shared by the benchmark sections: logging, the machine, tables, subprocesses, data."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DEFAULT_DEV_DIR = (REPO / ".." / "shared" / "data" / "dev").resolve()
SOURCE_RATE, TARGET_RATE = 22050, 44100

_T0 = time.perf_counter()


def log(message: str) -> None:
    """One progress line with the time since the script started."""
    print(f"[bench {time.perf_counter() - _T0:7.1f} s] {message}", flush=True)


def load_config(name: str) -> dict:
    import yaml

    return yaml.safe_load((CONFIGS / name).read_text())


def config_summary(config: dict) -> dict:
    """What the benchmarks need from a training config (with the data module's defaults)."""
    data, model = config.get("data", {}), config.get("model", {})
    network = model.get("network", {}).get("init_args", {})
    optimizer = model.get("optimizer", {}).get("init_args", {})
    return {
        "channels": list(network.get("channels", (16, 32, 64, 128, 256, 512, 1024, 1024))),
        "segment_seconds": float(data.get("segment_seconds", 2.0)),
        "batch_size": int(data.get("batch_size", 4)),
        "num_workers": int(data.get("num_workers", 2)),
        "lr": float(optimizer.get("lr", 1e-3)),
        "weight_decay": float(optimizer.get("weight_decay", 0.0)),
        "betas": tuple(optimizer.get("betas", (0.9, 0.999))),
        "gradient_clip_val": config.get("trainer", {}).get("gradient_clip_val"),
        "max_steps": config.get("trainer", {}).get("max_steps"),
    }


# --- the machine ---------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def loadavg() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> dict[str, str]:
    import lightning
    import resampy
    import soxr
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    memory = memory_total_gib()
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "CPU (/proc/cpuinfo model name)": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "memory": f"{memory:.1f} GiB" if memory else "n/a",
        "torch": f"{torch.__version__} ({torch.get_num_threads()} intra-op threads; CUDA available: {torch.cuda.is_available()})",
        "python / numpy / resampy / soxr / lightning": (
            f"{platform.python_version()} / {np.__version__} / {resampy.__version__} / "
            f"{soxr.__version__} / {lightning.__version__}"
        ),
        "OS": platform.platform(),
        "load average at start (1 / 5 / 15 min)": loadavg(),
    }


# --- Markdown --------------------------------------------------------------------------------

def md_table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """A Markdown table; ``right`` holds the indices of right-aligned (numeric) columns."""
    right = right if right is not None else {i for i in range(1, len(headers))}
    cells = [[str(c) for c in headers]] + [["–" if c is None else str(c) for c in row] for row in rows]
    widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + (":" if i in right else "-") for i, w in enumerate(widths)) + " |"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])]) + "\n"


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def command_line(cmd: list[str]) -> str:
    return shlex.join(str(c) for c in cmd)


def script_command() -> str:
    """The command that started this run, as typed (relative to the repository)."""
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    for i, arg in enumerate(argv):
        try:
            path = Path(arg)
            if path.is_absolute() and path.resolve().is_relative_to(REPO):
                argv[i] = str(path.resolve().relative_to(REPO))
        except (OSError, ValueError):
            pass
    return command_line(argv)


# --- subprocesses ----------------------------------------------------------------------------

@dataclass
class Measured:
    cmd: list[str]
    returncode: int
    wall_s: float
    max_rss_mib: float
    log_path: Path

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# A small Python process forks and execs the command and reports the child's rusage. Linux
# carries the RSS high-water mark of the pre-exec image (a copy of the forking process) into
# the child's ru_maxrss, so the fork must come from a small process, not from this one.
_LAUNCHER = """\
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump({"returncode": code, "wall_s": time.perf_counter() - start, "max_rss_kib": usage.ru_maxrss}, f)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_measured(cmd: list[str], log_path: Path, *, cwd: Path | None = None, env: dict | None = None,
                 timeout: float | None = None, heartbeat: float = 60.0, label: str = "") -> Measured:
    """Run ``cmd``: its exit status, wall time and peak RSS (``ru_maxrss`` of that process).

    Output goes to ``log_path``. Every ``heartbeat`` seconds one progress line is printed.
    On timeout the whole process group is killed (exit status -9).
    """
    import json
    import signal

    log_path.parent.mkdir(parents=True, exist_ok=True)
    label = label or Path(str(cmd[0])).name
    stats_path = log_path.with_suffix(".rusage.json")
    stats_path.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-c", _LAUNCHER, str(stats_path), *map(str, cmd)]
    timed_out = False
    with open(log_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(launcher, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)
        next_beat = start + heartbeat
        while proc.poll() is None:
            now = time.perf_counter()
            if timeout is not None and now - start > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            if now >= next_beat:
                last = ""
                try:
                    text = log_path.read_bytes()[-400:].decode(errors="replace")
                    last = text.replace("\r", "\n").strip().splitlines()[-1][:120] if text.strip() else ""
                except (OSError, IndexError):
                    pass
                log(f"  {label}: running for {now - start:.0f} s ... {last}")
                next_beat += heartbeat
            time.sleep(0.02)
        wall = time.perf_counter() - start
    # The command ran in its own session started by this call: whatever is left of that
    # group (the command itself if the launcher was killed, orphaned loader workers) goes too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError):
        stats = {"returncode": -9 if timed_out else proc.returncode, "wall_s": wall, "max_rss_kib": float("nan")}
    return Measured(list(map(str, cmd)), int(stats["returncode"]), float(stats["wall_s"]),
                    float(stats["max_rss_kib"]) / 1024, log_path)


def subprocess_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"AUDIOSR_CACHE": str(cache_dir), "WANDB_MODE": "disabled", "WANDB_SILENT": "true",
                "PYTHONUNBUFFERED": "1"})
    return env


def audiosr_command() -> list[str]:
    """The ``audiosr`` console script beside this interpreter, else ``python -m audiosr.cli``."""
    script = Path(sys.executable).parent / "audiosr"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "audiosr.cli"]


# --- dev recordings --------------------------------------------------------------------------

# The last 8 VCTK speakers of the published split (VCTK 0.92 mic1 without p280/p315:
# the first 100 train, the last 8 test) are the held-out speakers here too.
HELD_OUT_SPEAKERS = ("p360", "p361", "p362", "p363", "p364", "p374", "p376", "s5")
# NU-Wave 2 demo samples name no speaker; NU-Wave 2 tests on those same last 8 speakers, so
# these files are kept out of training and used for validation only.
VAL_PREFIX = "nuwave2_"
HELD_OUT_MUSIC_ENV = (
    "librosa-data/brahms_hungarian_dance_5.flac",
    "freesound-ibm/arcade_music.flac",
    "freesound-ibm/birds1.flac",
    "freesound-ibm/rain.flac",
    "freesound-ibm/typing.flac",
)


@dataclass
class DevSplit:
    root: Path
    train: list[Path]
    val: list[Path]
    test: list[Path]
    durations: dict[str, float]  # relative path -> seconds (MANIFEST.tsv)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def minutes(self, files: list[Path]) -> float:
        return sum(self.durations.get(self.rel(p), 0.0) for p in files) / 60

    def describe(self, files: list[Path]) -> str:
        """Folder / speaker summary of a file list."""
        speech: dict[str, int] = {}
        other: list[str] = []
        for path in files:
            rel = self.rel(path)
            if rel.startswith("vctk/"):
                speaker = path.stem.split("_")[0]
                speech[speaker] = speech.get(speaker, 0) + 1
            else:
                other.append(rel)
        parts = []
        if speech:
            parts.append("`vctk/` " + ", ".join(f"{s} ({n})" for s, n in sorted(speech.items())))
        if other:
            parts.append(", ".join(f"`{o}`" for o in sorted(other)))
        return "; ".join(parts)


def dev_split(root: Path) -> DevSplit | None:
    if not (root / "vctk").is_dir():
        return None
    durations = {}
    manifest = root / "MANIFEST.tsv"
    if manifest.is_file():
        lines = manifest.read_text().splitlines()
        header = lines[0].split("\t")
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t")))
            try:
                durations[row["path"]] = float(row["duration_s"])
            except (KeyError, ValueError):
                pass
    train, val, test = [], [], []
    for path in sorted(root.rglob("*.flac")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("vctk/"):
            if path.stem.startswith(VAL_PREFIX):
                val.append(path)
            elif path.stem.split("_")[0] in HELD_OUT_SPEAKERS:
                test.append(path)
            else:
                train.append(path)
        elif rel in HELD_OUT_MUSIC_ENV:
            test.append(path)
        else:
            train.append(path)
    for path in train + val + test:
        durations.setdefault(path.relative_to(root).as_posix(), _duration(path))
    return DevSplit(root, train, val, test, durations)


def _duration(path: Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


def read_mono(path: Path, seconds: float | None = None, start_s: float = 0.0) -> tuple[np.ndarray, int]:
    import soundfile as sf

    info = sf.info(str(path))
    start = int(start_s * info.samplerate)
    stop = None if seconds is None else start + int(round(seconds * info.samplerate))
    data, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate
