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


def cli_environment(folder: Path) -> dict[str, str]:
    """Environment for running ``audiosr`` offline in ``folder``."""
    env = dict(os.environ)
    env.update({
        "AUDIOSR_CACHE": str(folder / "cache"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(folder),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running ``audiosr`` offline in ``tmp_path``."""
    return cli_environment(tmp_path)


def run_audiosr(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "audiosr.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def tiny_generator(source_rate: int = 22050, target_rate: int = 44100, input_filter: str = "soxr_vhq",
                   keep_band: tuple[float, float] | None = None, normalise: bool = False, seed: int = 0):
    """A small random U-Net generator whose output really differs from its input.

    BatchNorm statistics and the head are randomised, so the residual is non-zero and the
    network has the level-dependent offsets a trained one has.
    """
    import torch

    from audiosr.models.generator import Generator, ModelSpec
    from audiosr.models.unet import UNet
    from audiosr.output_stage import OutputStage

    torch.manual_seed(seed)
    net = UNet(channels=[4, 8, 8])
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.5)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    spec = ModelSpec(net.rebuild_spec(), source_rate, target_rate, input_filter, normalise, OutputStage(keep_band=keep_band))
    return Generator(net, spec).eval()
