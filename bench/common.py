"""What the benchmark sections share: the run's context, logging, the machine, subprocesses, data.

Tables are written with ``audiosr.evaluation.comparison.markdown_table``, checkpoints with
``audiosr.models.checkpoint.save_generator``, training runs through ``audiosr fit`` / ``audiosr
test``: the benchmarks measure the project's own code paths, never copies of them.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DEFAULT_DEV_DIR = (REPO / ".." / "shared" / "data" / "dev").resolve()

_T0 = time.perf_counter()


# The quality bar (issue 17), against kaiser_best measured in the same run: SNR at most 1 dB
# below, LSD at most 0.55 of it, at most 2 % of files more than 3 dB below it, and ViSQOL at
# least 0.5 above it (where a run measured those two).
BAR_SNR_DB, BAR_LSD_RATIO, BAR_WORSE_PERCENT, BAR_VISQOL = 1.0, 0.55, 2.0, 0.5


def bar_checks(model: dict, kaiser_best: dict) -> list[tuple[bool, str]]:
    """Each part of the bar that the rows can tell: ``(met, what was measured)``."""
    m, kb = model, kaiser_best
    checks = [(m["snr"] >= kb["snr"] - BAR_SNR_DB, f"SNR {m['snr'] - kb['snr']:+.2f} dB"),
              (m["lsd"] <= BAR_LSD_RATIO * kb["lsd"], f"LSD x{m['lsd'] / kb['lsd']:.2f}")]
    if m.get("lsd_below_edge") is not None and kb.get("lsd_below_edge"):  # a cut reference's empty band is no truth
        checks.append((m["lsd_below_edge"] <= BAR_LSD_RATIO * kb["lsd_below_edge"],
                       f"LSD below the reference's edge x{m['lsd_below_edge'] / kb['lsd_below_edge']:.2f}"))
    if m.get("worse") is not None:
        checks.append((m["worse"] <= BAR_WORSE_PERCENT, f"{m['worse']:.1f} % of files > 3 dB worse"))
    if m.get("visqol") is not None and kb.get("visqol") is not None:
        checks.append((m["visqol"] >= kb["visqol"] + BAR_VISQOL, f"ViSQOL {m['visqol'] - kb['visqol']:+.2f}"))
    return checks


def meets_bar(model: dict, kaiser_best: dict) -> bool:
    return all(met for met, _ in bar_checks(model, kaiser_best))


def bar_verdict(model: dict, kaiser_best: dict) -> str:
    """``yes (SNR +0.28 dB, LSD x0.37, ...)``, each missed part marked with a cross."""
    checks = bar_checks(model, kaiser_best)
    parts = ", ".join(text + ("" if met else " ✗") for met, text in checks)
    return f"{'yes' if all(met for met, _ in checks) else 'no'} ({parts})"


def log(message: str) -> None:
    """One progress line with the time since the benchmarks started."""
    print(f"[bench {time.perf_counter() - _T0:7.1f} s] {message}", flush=True)


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.{digits}f}"


@dataclass
class Context:
    """What every section gets: the options, a temporary folder, the dev split, shared results."""

    args: Any
    tmp: Path
    dev: DevSplit | None
    results: dict[str, Any] = field(default_factory=dict)  # sections hand figures to later ones
    problems: list[str] = field(default_factory=list)  # failures inside the current section
    skipped: str = ""  # why the current section measured nothing

    @property
    def cache_dir(self) -> Path:
        return self.tmp / "cache"


# --- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "CPU (/proc/cpuinfo model name)": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable by this process",
        "GPU": gpu,
        "torch": f"{torch.__version__} ({torch.get_num_threads()} intra-op threads)",
        "python / numpy / resampy / soxr / lightning": (
            f"{platform.python_version()} / {np.__version__} / {resampy.__version__} / {soxr.__version__} / "
            f"{lightning.__version__}"),
        "OS": platform.platform(),
        "load average at start (1 / 5 / 15 min)": loadavg(),
    }


def portable(text: str, dev_dir: Path, tmp: Path) -> str:
    """Reports name paths relative to the repository, never this machine's own."""
    text = text.replace(str(dev_dir.resolve()), "../shared/data/dev")
    text = text.replace(str(tmp), "$TMP")
    text = text.replace(str(REPO) + "/", "").replace(str(REPO), ".")
    return re.sub(r"\S*/\.venv/bin/", ".venv/bin/", text)


def command_line(cmd: list[str]) -> str:
    return shlex.join(str(c) for c in cmd)


def script_command() -> str:
    """The command that started this run, as typed (paths relative to the repository)."""
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    for i, arg in enumerate(argv):
        path = Path(arg)
        if path.is_absolute() and path.resolve().is_relative_to(REPO):
            argv[i] = str(path.resolve().relative_to(REPO))
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

    Output goes to ``log_path``; one progress line every ``heartbeat`` seconds. On timeout
    the whole process group is killed (exit status -9).
    """
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
                text = log_path.read_bytes()[-400:].decode(errors="replace").replace("\r", "\n").strip()
                last = text.splitlines()[-1][:120] if text else ""
                log(f"  {label}: running for {now - start:.0f} s ... {last}")
                next_beat += heartbeat
            time.sleep(0.05)
        wall = time.perf_counter() - start
    try:  # orphaned loader workers of the command's session go too
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
    """The environment of the commands: this one, with the run's cache and W&B off."""
    env = dict(os.environ)
    env.update({"AUDIOSR_CACHE": str(cache_dir), "WANDB_MODE": "disabled", "WANDB_SILENT": "true",
                "PYTHONUNBUFFERED": "1"})
    env.pop("PYTHONSAFEPATH", None)  # it would keep `python -m` from putting the repository on sys.path
    return env


def audiosr_command() -> list[str]:
    """The ``audiosr`` console script beside this interpreter, else ``python -m audiosr.cli``."""
    script = Path(sys.executable).parent / "audiosr"
    return [str(script)] if script.is_file() else audiosr_module_command()


def audiosr_module_command() -> list[str]:
    """``python -m audiosr.cli``: the installed package, for commands run from the repository root.

    ``python -m`` puts the working directory on ``sys.path`` (the console script puts its own
    folder there), so a command run with ``cwd=REPO`` finds the benchmarks' own callbacks
    (``--trainer.callbacks+=bench.runs.Elapsed``), and the printed command works as typed there.
    """
    return [sys.executable, "-m", "audiosr.cli"]


# --- dev recordings --------------------------------------------------------------------------

# Test music and sounds: five files of different kinds kept out of training.
HELD_OUT_MUSIC_ENV = (
    "librosa-data/brahms_hungarian_dance_5.flac",
    "freesound-ibm/arcade_music.flac",
    "freesound-ibm/birds1.flac",
    "freesound-ibm/rain.flac",
    "freesound-ibm/typing.flac",
)
# NU-Wave 2's demo samples name no speaker; NU-Wave 2 tests on the published test speakers, so
# these files may share a speaker with the test split or with training: they are used nowhere.
UNUSED_PREFIX = "nuwave2_"
# Validation speakers: VCTK speakers of the dev set outside the published test speakers with one
# or two utterances each (nine voices, ten files); p232 and p257 (22 files) train.
VAL_SPEAKERS = ("p238", "p255", "p286", "p301", "p314", "p317", "p330", "p335", "p339")


@dataclass
class DevSplit:
    """The dev recordings split by speaker and file (see ``dev_split``)."""

    root: Path
    train: list[Path]
    val: list[Path]
    test: list[Path]
    durations: dict[str, float]  # relative path -> seconds

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def minutes(self, files: list[Path]) -> float:
        return sum(self.durations[self.rel(p)] for p in files) / 60

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

    def lists(self, folder: Path) -> dict[str, Path]:
        """``train`` / ``val`` / ``test`` ``.txt`` lists of paths for ``audiosr.data.AudioFolders``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for split in ("train", "val", "test"):
            paths[split] = folder / f"{split}.txt"
            paths[split].write_text("".join(f"{p}\n" for p in getattr(self, split)))
        return paths

    def data_args(self, folder: Path) -> list[str]:
        """``audiosr fit/test`` arguments that train, validate and test on this split."""
        lists = self.lists(folder)
        return ["--data.corpus", "audiosr.data.AudioFolders", "--data.corpus.train", f"[{lists['train']}]",
                "--data.corpus.val", f"[{lists['val']}]", "--data.corpus.test", f"[{lists['test']}]"]


def dev_split(root: Path) -> DevSplit | None:
    """Test: the published VCTK test speakers and five music/sound files; val: ``VAL_SPEAKERS``, no
    speaker on two sides; NU-Wave 2's samples (speakers unknown) nowhere."""
    from audiosr.data.corpora import VCTK

    if not (root / "vctk").is_dir():
        return None
    import soundfile as sf

    train, val, test, durations = [], [], [], {}
    for path in sorted(root.rglob("*.flac")):
        rel = path.relative_to(root).as_posix()
        durations[rel] = sf.info(str(path)).duration
        speaker = path.stem.split("_")[0]
        if rel.startswith("vctk/") and path.stem.startswith(UNUSED_PREFIX):
            continue
        if rel.startswith("vctk/") and speaker in VAL_SPEAKERS:
            val.append(path)
        elif (rel.startswith("vctk/") and path.stem.split("_")[0] in VCTK.PUBLISHED_TEST_SPEAKERS) \
                or rel in HELD_OUT_MUSIC_ENV:
            test.append(path)
        else:
            train.append(path)
    return DevSplit(root, train, val, test, durations)


def read_mono(path: Path, seconds: float | None = None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    info = sf.info(str(path))
    stop = None if seconds is None else int(round(seconds * info.samplerate))
    data, rate = sf.read(str(path), stop=stop, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


# --- the recipes -------------------------------------------------------------------------------

# The study's reference recipe: a section that measures no recipe of its own (the classical
# methods' speed) takes its rates from this one.
REFERENCE_RECIPE = "unet.yaml"
# Table labels by network class (the family is the network); another class is labelled by its name.
LABELS = {"UNet": "U-Net", "MagnitudeNetwork": "magnitude", "MagnitudePhaseNetwork": "magnitude + phase"}
# Adversarial training of any recipe at CPU size: the GAN overlay and its CPU-sized discriminators.
GAN_CPU = ["overlays/gan.yaml", "overlays/gan-cpu.yaml"]


@dataclass(frozen=True)
class Recipe:
    """One model family: a top-level ``configs/*.yaml`` and the overlay that makes it CPU-sized."""

    label: str
    config: str  # relative to configs/
    network: str  # class name of the network the parser resolves
    cpu_overlay: str | None  # relative to configs/; None: the recipe has no CPU size
    includes_recipe: bool  # built on another recipe (magnitude.yaml is magphase.yaml with another head)

    @property
    def reference(self) -> list[str]:
        return [self.config]

    @property
    def cpu(self) -> list[str]:
        assert self.cpu_overlay is not None, f"{self.config} has no CPU-size overlay"
        return [self.config, self.cpu_overlay]


def config_args(configs: list[str]) -> list[str]:
    return [arg for name in configs for arg in ("--config", str(CONFIGS / name))]


def _parsed(configs: list[str], *extra: str):
    """The config a composition makes, parsed and linked by the CLI's own parser; nothing is built.

    Raises ``argparse.ArgumentError`` (quietly: nothing printed) where the parser refuses it.
    """
    from audiosr.training.cli import AudioSRCLI

    class ParseOnly(AudioSRCLI):
        """Parses and links, then stops: no run folder, no classes built."""

        def before_instantiate_classes(self) -> None:
            pass

        def instantiate_classes(self) -> None:
            pass

    parsed = ParseOnly(args=[*config_args(configs), *extra], run=False, parser_kwargs={"exit_on_error": False})
    return parsed.config


def _accepts(configs: list[str]) -> bool:
    import argparse

    try:
        _parsed(configs)
    except argparse.ArgumentError:
        return False
    return True


@functools.cache
def recipes() -> tuple[Recipe, ...]:
    """The model families, discovered in ``configs/`` (the reference recipe first, then by name).

    The recipes are the top-level ``configs/*.yaml``. A recipe's CPU size is the one
    ``configs/overlays/*-cpu.yaml`` that the CLI's parser accepts on top of it, among those that
    size a recipe: ``overlays/X-cpu.yaml`` beside an ``overlays/X.yaml`` is the CPU size of that
    overlay (``gan-cpu.yaml``: the GAN's discriminators), not of a recipe. A size overlay sets the
    ``init_args`` of one network class (``channels`` of the U-Net; ``hop_length``, ``dim``, ``blocks``
    of the spectral networks) and the parser refuses arguments that the recipe's network has not,
    so the rule needs no list of which overlay goes with which recipe.
    """
    import yaml

    overlays = sorted(p for p in (CONFIGS / "overlays").glob("*-cpu.yaml")
                      if not p.with_name(p.name.removesuffix("-cpu.yaml") + ".yaml").is_file())
    files = sorted(CONFIGS.glob("*.yaml"), key=lambda p: (p.name != REFERENCE_RECIPE, p.name))
    found = []
    for path in files:
        network = _parsed([path.name]).model.init_args.network.class_path.rpartition(".")[2]
        fits = [f"overlays/{o.name}" for o in overlays if _accepts([path.name, f"overlays/{o.name}"])]
        if len(fits) > 1:
            raise ValueError(f"configs/{path.name}: more than one CPU-size overlay fits it: {', '.join(fits)}")
        if not fits:
            log(f"configs/{path.name} has no CPU-size overlay among configs/overlays/*-cpu.yaml: reference size only")
        includes = "config" in (yaml.safe_load(path.read_text()) or {})
        found.append(Recipe(LABELS.get(network, network), path.name, network, fits[0] if fits else None, includes))
    # Two recipes of one network class (another loss, say) are told apart by their file.
    labels = [r.label for r in found]
    return tuple(replace(r, label=f"{r.label} ({Path(r.config).stem})") if labels.count(r.label) > 1 else r
                 for r in found)


def cpu_recipes() -> dict[str, list[str]]:
    """Every family at CPU size (the candidates for a CPU-trained model): label -> config files."""
    return {r.label: r.cpu for r in recipes() if r.cpu_overlay is not None}


def reference_recipes() -> dict[str, list[str]]:
    """Every family at reference size: label -> config files."""
    return {r.label: r.reference for r in recipes()}


def cli(configs: list[str], *extra: str):
    """The ``AudioSRCLI`` of a config composition, built (model, data module, trainer), not run."""
    from audiosr.training.cli import AudioSRCLI

    return AudioSRCLI(args=[*config_args(configs), "--trainer.logger", "false", *extra], run=False)


def build(configs: list[str], *extra: str):
    """The LightningModule and data module a config composition makes, as ``audiosr fit`` would.

    Returns ``(module, datamodule)``; nothing is trained and nothing is written.
    """
    built = cli(configs, *extra)
    return built.model, built.datamodule


def rates(configs: list[str] | tuple[str, ...] = (REFERENCE_RECIPE,), *extra: str) -> tuple[int, int]:
    """``(source, target)`` rates in Hz of a composition's data module, as the CLI builds it.

    The data module owns the rates (the model is linked to them): the benchmarks never copy them.
    """
    return _rates(tuple(configs), extra)


@functools.cache
def _rates(configs: tuple[str, ...], extra: tuple[str, ...]) -> tuple[int, int]:
    _, data = build(list(configs), *extra)
    return int(data.source_rate), int(data.target_rate)


def khz(rate: float) -> str:
    """``22050`` -> ``22.05``: a rate in kHz for the report's text."""
    return f"{rate / 1000:g}"
