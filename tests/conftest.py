"""Shared fixtures: small audio written on the fly, and an isolated place to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def tone_mix(rate: int, seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Band-rich test audio ``(T, C)``: tones across the spectrum plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(rate * seconds)) / rate
    out = []
    for c in range(channels):
        freqs = rng.uniform(100, 0.45 * rate, size=12)
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / (1 + i) for i, f in enumerate(freqs))
        x = x + 0.01 * rng.standard_normal(t.size)
        out.append(0.5 * x / np.abs(x).max())
    return np.stack(out, axis=1).astype(np.float32)


def write_audio(path: Path, rate: int, seconds: float, seed: int = 0, channels: int = 1, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone_mix(rate, seconds, seed, channels), rate, subtype=subtype)
    return path


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running ``audiosr`` offline in ``tmp_path``."""
    env = dict(os.environ)
    env.update({
        "AUDIOSR_CACHE": str(tmp_path / "cache"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def run_audiosr(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "audiosr.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
