"""Baselines are sample-aligned and sane; the comparison table reports what it measured."""

from __future__ import annotations

import csv
import ctypes
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from audiosr.data.pairs import make_pair
from audiosr.evaluation import comparison as evaluation
from audiosr.evaluation.comparison import BASELINES, CAPTION, Comparison, Row, time_method, to_markdown, write_report
from audiosr.evaluation.metrics import lsd_bands, snr

SOURCE_RATE, TARGET_RATE = 22050, 44100


def band_limited_noise(n: int, rate: int, max_hz: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    """White noise with every FFT bin above ``max_hz`` zeroed: ``(channels, n)`` float32."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal((channels, n)), axis=-1)
    spectrum[:, np.fft.rfftfreq(n, 1 / rate) > max_hz] = 0
    x = np.fft.irfft(spectrum, n, axis=-1)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def multi_tone(n: int, rate: int, freqs: tuple[float, ...] = (220.0, 1234.5, 3456.0, 6789.0, 8800.0)) -> np.ndarray:
    """Sum of sines ``(1, n)`` float32, fixed amplitudes and phases."""
    t = np.arange(n) / rate
    return sum(0.1 * np.sin(2 * np.pi * f * t + k) for k, f in enumerate(freqs))[None].astype(np.float32)


def delay_estimate(output: np.ndarray, target: np.ndarray, max_lag: int = 16) -> tuple[int, float]:
    """Integer lag of the cross-correlation peak, and the sub-sample peak (parabolic fit)."""
    a, b = output[0], target[0]
    core = slice(max_lag + 2048, len(b) - max_lag - 2048)  # edges have resampling transients
    lags = np.arange(-max_lag, max_lag + 1)
    xcorr = np.array([np.dot(a[core.start + lag : core.stop + lag], b[core]) for lag in lags])
    i = int(np.argmax(xcorr))
    y0, y1, y2 = xcorr[i - 1], xcorr[i], xcorr[i + 1]
    return int(lags[i]), float(lags[i] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2))


def test_baselines_are_the_four_methods_of_the_table():
    assert list(BASELINES) == ["kaiser_fast", "kaiser_best", "soxr_vhq", "linear"]


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize(("source", "target", "n_low", "n_out"), [(22050, 44100, 1001, 2002), (16000, 44100, 1001, 2760)])
def test_baseline_length_dtype_and_channels(name, source, target, n_low, n_out):
    low = band_limited_noise(n_low, source, 0.4 * source, channels=2)
    out = BASELINES[name](low, source, target)
    assert out.shape == (2, n_out) == (2, math.ceil(n_low * target / source))
    assert out.dtype == np.float32
    # Channels are independent: stereo stays stereo, channel 1 is not a mix.
    np.testing.assert_allclose(out[1:], BASELINES[name](low[1:], source, target), atol=1e-6)


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize(("source", "target"), [(22050, 44100), (16000, 44100)])
def test_baseline_is_sample_aligned(name, source, target):
    # Band-limited well inside every filter's passband, so only the delay can differ.
    x = band_limited_noise(target // 2, target, 0.4 * source)
    low, _ = make_pair(x, target, source)
    out = BASELINES[name](low, source, target)
    lag, fractional = delay_estimate(out, x)
    assert lag == 0
    assert abs(fractional) < 0.01  # measured < 4e-4 samples for all


def test_resampy_and_soxr_reconstruct_band_limited_tones():
    # All components <= 8.8 kHz, inside kaiser_best's passband: its roll-off starts near
    # 10 kHz at 22.05 kHz (with tones up to 10 kHz, some draws gave only 23 dB), and
    # kaiser_fast's lower still (8.8 kHz costs it ~15 dB). Measured, ends included:
    # kaiser_best 48.6 dB, soxr_vhq 48.9 dB, kaiser_fast 34.2 dB, linear 11.7 dB.
    # The bounds leave >= 8 dB of margin for library updates.
    x = multi_tone(TARGET_RATE, TARGET_RATE)
    low, _ = make_pair(x, TARGET_RATE, SOURCE_RATE)
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    for name, fn in BASELINES.items():
        cmp.add(name, fn(low, SOURCE_RATE, TARGET_RATE), x)
    result = {row.method: row for row in cmp.rows()}
    assert result["kaiser_best"].snr > 40
    assert result["soxr_vhq"].snr > 40
    assert result["kaiser_fast"].snr > 25
    # Linear interpolation is a poor low-pass: a working but clearly worse baseline.
    assert 8 < result["linear"].snr < 20
    assert result["linear"].lsd > 5 * result["kaiser_best"].lsd


def test_delay_and_gain_errors_show_in_the_table():
    x = multi_tone(TARGET_RATE, TARGET_RATE)
    low, _ = make_pair(x, TARGET_RATE, SOURCE_RATE)
    good = BASELINES["kaiser_best"](low, SOURCE_RATE, TARGET_RATE)
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    cmp.add("good", good, x)
    cmp.add("delayed", np.pad(good, [(0, 0), (3, 0)])[:, :-3], x)
    cmp.add("half_gain", 0.5 * good, x)
    result = {row.method: row for row in cmp.rows()}
    assert result["delayed"].snr < result["good"].snr - 30
    # Error = half the signal: SNR = 20 log10(2) dB, no scale-invariant rescue.
    assert result["half_gain"].snr == pytest.approx(20 * math.log10(2), abs=0.05)
    assert result["half_gain"].lsd > result["good"].lsd + 0.2


def test_comparison_means_equal_hand_computed_means():
    rng = np.random.default_rng(1)
    target = [rng.standard_normal((c, 8192)).astype(np.float32) for c in (1, 2, 1)]
    estimate = [t + s * rng.standard_normal(t.shape).astype(np.float32) for t, s in zip(target, (0.1, 0.3, 1.0))]
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    for e, t in zip(estimate, target):
        cmp.add("m", e, torch.from_numpy(t))  # numpy and tensors both accepted
    by_hand = {"snr": [], "lsd": [], "lsd_hf": [], "lsd_lf": []}
    for e, t in zip(estimate, target):
        e, t = torch.from_numpy(e), torch.from_numpy(t)
        by_hand["snr"].append(snr(e, t).mean().item())  # channels averaged per utterance
        for k, v in lsd_bands(e, t, TARGET_RATE, SOURCE_RATE / 2).items():
            by_hand[k].append(v.mean().item())
    (row,) = cmp.rows()
    assert row.method == "m" and row.n == 3
    for k, values in by_hand.items():
        assert getattr(row, k) == pytest.approx(np.mean(values), rel=1e-6)
    assert row.rtr is None and row.device is None


def test_comparison_travels_between_processes_without_its_scorer():
    """What ``all_gather_object`` does to each process's share: pickle it, merge it."""
    rng = np.random.default_rng(2)
    target = rng.standard_normal((1, 8192)).astype(np.float32)
    estimate = target + 0.1 * rng.standard_normal(target.shape).astype(np.float32)
    scorer = ctypes.CDLL(None)  # like ViSQOL's C handles: unpicklable, yet callable
    cmp = Comparison(SOURCE_RATE, TARGET_RATE, perceptual=lambda e, t, rate: 4.0)
    cmp.perceptual.handle = scorer
    cmp.add("m", estimate, target, name="a")
    cmp.add_timing("m", 1.0, 0.5)
    received = pickle.loads(pickle.dumps(cmp))
    assert received.perceptual is None
    merged = Comparison(SOURCE_RATE, TARGET_RATE)
    merged.merge(received)
    merged.merge(pickle.loads(pickle.dumps(cmp)))  # the same named utterance is counted once
    (row,) = merged.rows()
    (original,) = cmp.rows()
    assert row == original and row.n == 1 and row.visqol == 4.0


def test_comparison_refuses_misaligned_lengths():
    with pytest.raises(ValueError):
        Comparison(SOURCE_RATE, TARGET_RATE).add("m", np.zeros((1, 4000)), np.zeros((1, 4001)))


def test_rtr_is_total_audio_over_total_wall_time():
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    cmp.add_timing("m", audio_seconds=2.0, wall_seconds=0.5, batch_size=4, device="cuda:0")
    cmp.add_timing("m", audio_seconds=1.0, wall_seconds=0.5, batch_size=2, device="cuda:0")
    (row,) = cmp.rows()
    assert row.rtr == pytest.approx(3.0)
    assert (row.batch_size, row.device, row.n) == (4, "cuda:0", 0)
    with pytest.raises(ValueError, match="one device"):
        cmp.add_timing("m", 1.0, 1.0, device="cpu")


class FakeClock:
    """``perf_counter`` stand-in: every reading is 0.5 s after the previous one."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def __call__(self) -> float:
        self.log.append("clock")
        self.now += 0.5
        return self.now


def test_time_method_excludes_warmup_and_synchronises_cuda(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(evaluation.time, "perf_counter", clock)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: clock.log.append("sync"))
    calls = []

    def fn(x):
        clock.log.append("call")
        calls.append(x)
        return x + 1

    out, seconds = time_method(fn, 1, warmup=2, sync_cuda=True)
    assert (out, seconds, len(calls)) == (2, 0.5, 3)
    # Warm-up untimed; the timed call is fenced by synchronisations inside the clock readings.
    assert clock.log == ["call", "call", "sync", "clock", "call", "sync", "clock"]


def test_evaluate_warms_up_once_per_method_and_records_rtr(monkeypatch):
    monkeypatch.setattr(evaluation.time, "perf_counter", FakeClock())
    calls = []

    def method(low, source_rate, target_rate):
        calls.append(1)
        return BASELINES["linear"](low, source_rate, target_rate)

    x = multi_tone(8820, TARGET_RATE)  # 0.2 s
    low, _ = make_pair(x, TARGET_RATE, SOURCE_RATE)
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    for _ in range(2):
        out = cmp.evaluate("linear", method, low, x)
    assert len(calls) == 3 and out.shape == x.shape
    (row,) = cmp.rows()
    assert row.n == 2
    assert row.rtr == pytest.approx(2 * 0.2 / (2 * 0.5))


@pytest.fixture
def rows() -> list[Row]:
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    rng = np.random.default_rng(2)
    t = rng.standard_normal((1, 8192)).astype(np.float32)
    for k, method in enumerate(["model", "kaiser_fast", "kaiser_best", "soxr_vhq", "linear"]):
        cmp.add(method, t + 0.1 * (k + 1) * rng.standard_normal(t.shape).astype(np.float32), t)
        if method != "linear":  # a row without timing must still write
            cmp.add_timing(method, 1.0, 0.01 * (k + 1), batch_size=8, device="cpu")
    return cmp.rows()


def test_markdown_has_one_aligned_line_per_method_and_the_conventions(rows):
    text = to_markdown(rows)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)  # header, rule, one per method
    assert len({len(line) for line in table}) == 1  # aligned
    for row in rows:
        assert sum(f"| {row.method} " in line for line in table) == 1
    assert CAPTION in text and "log10" in CAPTION and "2048/512" in CAPTION


def test_report_files_parse_back(rows, tmp_path):
    metadata = {"config": {"model": "unet"}, "checkpoint": Path("ckpt/best.ckpt"), "git_commit": "abc123", "data": "synthetic"}
    paths = write_report(rows, tmp_path / "run", metadata)
    assert {p.name for p in paths.values()} == {"comparison.md", "comparison.csv", "comparison.json"}
    with paths["csv"].open(newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["method"] for r in table] == [r.method for r in rows]
    assert set(table[0]) == {"method", "n", "snr", "lsd", "lsd_hf", "lsd_lf", "rtr", "batch_size", "device", "precision",
                             "visqol", "worse"}
    assert float(table[0]["snr"]) == pytest.approx(rows[0].snr)
    assert float(table[1]["rtr"]) == pytest.approx(50.0)
    payload = json.loads(paths["json"].read_text())
    assert payload["metadata"] == {**metadata, "checkpoint": str(Path("ckpt/best.ckpt"))}
    assert payload["caption"] == CAPTION
    assert [r["method"] for r in payload["rows"]] == [r.method for r in rows]
    assert payload["rows"][0]["lsd_hf"] == pytest.approx(rows[0].lsd_hf)
    assert payload["rows"][-1]["rtr"] is None and payload["rows"][-1]["device"] is None
    assert paths["md"].read_text() == to_markdown(rows)


def test_the_worse_column_counts_the_recordings_that_lose_more_than_3_db_against_kaiser_best():
    rng = np.random.default_rng(0)
    cmp = Comparison(22050, 44100)
    targets = [rng.standard_normal((1, 8192)).astype(np.float32) for _ in range(4)]
    # kaiser_best at 20 dB SNR on every file; the model at 25, 18, 16.5 and 10 dB: two lose > 3 dB.
    for index, (target, model_db) in enumerate(zip(targets, (25.0, 18.0, 16.5, 10.0))):
        noise = rng.standard_normal(target.shape).astype(np.float32)
        noise /= np.sqrt((noise ** 2).sum() / (target ** 2).sum())
        cmp.add("kaiser_best", target + noise * np.float32(10 ** (-20 / 20)), target, name=f"f{index}")
        cmp.add("model", target + noise * np.float32(10 ** (-model_db / 20)), target, name=f"f{index}")
    rows = {r.method: r for r in cmp.rows()}
    assert rows["model"].worse == pytest.approx(50.0)
    assert rows["kaiser_best"].worse == 0.0
    assert rows["model"].snr == pytest.approx(np.mean([25.0, 18.0, 16.5, 10.0]), abs=1e-3)
    assert "> 3 dB worse" in to_markdown(cmp.rows())
    assert cmp.rows({"f0", "f1"})[1].worse == 0.0  # per category: only those files
