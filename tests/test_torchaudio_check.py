"""torch and torchaudio load together, or the user reads one line naming both versions."""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

import audiosr.torchaudio_check as check
from conftest import CONFIGS, run_audiosr

LINKER_ERROR = "/venv/torchaudio/lib/libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace"


def test_torchaudio_compiled_operators_load_and_compute_with_this_torch():
    """Fails with the one line of TorchaudioUnavailable when the installed pair does not load."""
    torchaudio = check.load_torchaudio()
    # lfilter's inner loop is one of torchaudio's compiled operators; scipy is the reference.
    a, b = [1.0, -0.5, 0.25], [0.2, 0.3, 0.1]
    x = np.random.default_rng(0).standard_normal(256)
    out = torchaudio.functional.lfilter(torch.from_numpy(x), torch.tensor(a, dtype=torch.float64),
                                        torch.tensor(b, dtype=torch.float64), clamp=False)
    np.testing.assert_allclose(out.numpy(), lfilter(b, a, x), rtol=1e-9, atol=1e-12)


def test_a_mismatched_pair_is_one_line_naming_both_versions(monkeypatch):
    def broken(name):
        # How torch reports it: a vague message, caused by the linker's own.
        raise OSError("Could not load this library: /venv/torchaudio/lib/libtorchaudio.so") from OSError(LINKER_ERROR)

    monkeypatch.setattr(check.importlib, "import_module", broken)
    with pytest.raises(check.TorchaudioUnavailable) as raised:
        check.load_torchaudio()
    message = str(raised.value)
    assert "\n" not in message
    assert f"torchaudio {metadata.version('torchaudio')} does not load with torch {metadata.version('torch')}" in message
    assert "(libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace)" in message
    assert "requirements.lock" in message


def test_a_missing_torchaudio_says_so(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError("No module named 'torchaudio'")

    monkeypatch.setattr(check.importlib, "import_module", missing)
    monkeypatch.setattr(check, "installed_version", lambda package: None if package == "torchaudio" else "2.11.0")
    with pytest.raises(check.TorchaudioUnavailable, match=r"^torchaudio is not installed \(torch 2\.11\.0\)"):
        check.load_torchaudio()


@pytest.mark.slow
def test_fit_with_a_mismatched_pair_stops_with_that_line(tmp_path, cli_env):
    """The GAN recipe needs torchaudio (its mel loss); a broken install gives one line, exit 1."""
    shadow = tmp_path / "shadow" / "torchaudio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(f"raise OSError({LINKER_ERROR!r})\n")
    cli_env["PYTHONPATH"] = f"{shadow.parent}:{cli_env.get('PYTHONPATH', '')}"
    result = run_audiosr(["fit", "--config", str(CONFIGS / "unet.yaml"), "--config", str(CONFIGS / "overlays/gan.yaml"),
                          "--config", str(CONFIGS / "overlays/gan-cpu.yaml"), "--config", str(CONFIGS / "overlays/debug.yaml"),
                          "--trainer.logger", "false"], tmp_path, cli_env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (f"audiosr: error: torchaudio {metadata.version('torchaudio')} does not load with "
            f"torch {metadata.version('torch')}") in result.stderr
