"""ViSQOL: its own invariants, and a single line when the optional package is absent."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from audiosr.evaluation.comparison import Comparison, to_markdown
from audiosr.evaluation.perceptual import MISSING, visqol_scorer

RATE = 44100


@pytest.fixture(scope="module")
def visqol():
    scorer = visqol_scorer()
    if scorer is None:
        pytest.skip(MISSING)
    return scorer


def music(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    notes = sum(np.sin(2 * np.pi * f * t) * np.exp(-((t % 0.5) * 4)) for f in (220, 330, 440, 660, 5000, 12000))
    return (0.1 * notes + 0.005 * rng.standard_normal(t.size)).astype(np.float32)[None]


def test_identical_signals_score_highest_and_noise_lowers_the_score(visqol):
    x = music()
    rng = np.random.default_rng(1)
    identical = visqol(x, x, RATE)
    slightly = visqol(x + 0.003 * rng.standard_normal(x.shape).astype(np.float32), x, RATE)
    heavily = visqol(x + 0.03 * rng.standard_normal(x.shape).astype(np.float32), x, RATE)
    assert 1.0 <= heavily < slightly < identical <= 5.0


def test_a_scorer_of_the_first_seconds_sees_nothing_after_them():
    scorer = visqol_scorer(seconds=1.0)
    if scorer is None:
        pytest.skip(MISSING)
    x = music(2.0)
    damaged = x.copy()
    damaged[..., RATE + RATE // 10:] = 0.0  # silence from 1.1 s on
    assert scorer(damaged, x, RATE) == pytest.approx(scorer(x, x, RATE), abs=1e-6)
    assert visqol_scorer()(damaged, x, RATE) < scorer(x, x, RATE) - 0.1  # the whole clip does see it
    with pytest.raises(ValueError, match="seconds must be positive"):
        visqol_scorer(seconds=0.0)


def test_the_table_gains_a_visqol_column_only_when_scored(visqol):
    x = music(2.0)
    plain, scored = Comparison(22050, RATE), Comparison(22050, RATE, visqol)
    for comparison in (plain, scored):
        comparison.add("identity", x, x)
    assert "ViSQOL" not in to_markdown(plain.rows()).splitlines()[0]
    assert "ViSQOL" in to_markdown(scored.rows()).splitlines()[0] and scored.rows()[0].visqol > 4.0


def test_without_the_package_one_line_says_so(monkeypatch):
    real_import = builtins.__import__

    def no_visqol(name, *args, **kwargs):
        if name == "visqol" or name.startswith("visqol."):
            raise ImportError("No module named 'visqol'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_visqol)
    lines: list[str] = []
    assert visqol_scorer(notice=lines.append) is None
    assert lines == [MISSING] and "pip install" in lines[0]
