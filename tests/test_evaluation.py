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
from audiosr.evaluation.metrics import lsd, lsd_bands, lsd_below, snr
from audiosr.evaluation.spread import bootstrap_interval, mean_difference, mean_ratio

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
    by_hand = {"snr": [], "lsd": [], "lsd_hf": [], "lsd_lf": [], "lsd_below_edge": []}
    for e, t in zip(estimate, target):
        e, t = torch.from_numpy(e), torch.from_numpy(t)
        by_hand["snr"].append(snr(e, t).mean().item())  # channels averaged per utterance
        for k, v in lsd_bands(e, t, TARGET_RATE, SOURCE_RATE / 2).items():
            by_hand[k].append(v.mean().item())
        by_hand["lsd_below_edge"].append(lsd(e, t).mean().item())  # white noise: no edge below Nyquist
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
    intervals = {f"{k}_vs_kaiser_best_ci_{end}" for k in ("snr", "lsd", "lsd_below_edge") for end in ("lo", "hi")}
    assert set(table[0]) == {"method", "n", "snr", "lsd", "lsd_below_edge", "lsd_hf", "lsd_lf", "rtr", "batch_size",
                             "device", "precision", "visqol", "worse", *intervals}
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


def cut_noise(n: int, edge_hz: float, seed: int) -> np.ndarray:
    """A reference an encoder cut at ``edge_hz``: ``(1, n)`` white noise, nothing above the edge."""
    return band_limited_noise(n, TARGET_RATE, edge_hz, seed)


def invented_band(n: int) -> np.ndarray:
    """``(1, n)`` tones from 18 kHz up, what a method might invent above a reference's 16 kHz edge.

    Each sits on an LSD bin and ``n = 2048 * m + 1``: the STFT's reflect padding continues them
    exactly, so they leak into no bin below (see ``tests/test_metrics.py``).
    """
    t = np.arange(n)
    return sum(0.02 * np.cos(2 * np.pi * k * t / 2048) for k in range(840, 1021, 10))[None].astype(np.float32)


def test_the_comparison_scores_below_the_edge_it_measures_on_the_reference():
    n = 16 * 2048 + 1
    target = cut_noise(n, 16000, seed=3)
    estimate = target + 0.1 * cut_noise(n, 16000, seed=4)
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    cmp.add("plain", estimate, target, "a")
    cmp.add("invented", estimate + invented_band(n), target, "a")
    plain, invented = (cmp.items[m][0] for m in ("plain", "invented"))
    assert plain["ref_edge_hz"] == invented["ref_edge_hz"] == pytest.approx(16000, abs=150)
    assert plain["ref_edge_hz"] == cmp.reference_edge(target)
    expected = lsd_below(torch.from_numpy(estimate), torch.from_numpy(target), TARGET_RATE, plain["ref_edge_hz"])
    assert plain["lsd_below_edge"] == pytest.approx(expected.item(), rel=1e-6)
    # What lies above the reference's edge moves the whole-band LSD only.
    assert invented["lsd_below_edge"] == pytest.approx(plain["lsd_below_edge"], rel=1e-4)
    assert invented["lsd"] > plain["lsd"] + 0.5
    # A full-band reference has no edge below the Nyquist frequency: both LSDs agree.
    full = band_limited_noise(n, TARGET_RATE, TARGET_RATE / 2, seed=6)
    scored = cmp.add("full", full + 0.1 * cut_noise(n, 16000, seed=7), full, "b")
    assert cmp.items["full"][0]["ref_edge_hz"] == TARGET_RATE / 2 and scored["lsd_below_edge"] == scored["lsd"]


def test_a_manifest_edge_wins_over_the_measured_one():
    n = 4 * 8192
    target = cut_noise(n, 16000, seed=3)
    estimate = target + 0.1 * cut_noise(n, 16000, seed=4)
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    scored = cmp.add("m", estimate, target, "a", edge_hz=12000.0)
    assert cmp.items["m"][0]["ref_edge_hz"] == 12000.0
    expected = lsd_below(torch.from_numpy(estimate), torch.from_numpy(target), TARGET_RATE, 12000.0).item()
    assert scored["lsd_below_edge"] == pytest.approx(expected, rel=1e-6)
    assert cmp.reference_edge(target, math.nan) == cmp.reference_edge(target) != 12000.0  # NaN: none known
    assert cmp.reference_edge(target, 30000.0) == TARGET_RATE / 2  # never above the Nyquist frequency


def test_the_test_callback_takes_the_batchs_manifest_edge_and_names_the_input_it_gave():
    from types import SimpleNamespace

    from audiosr.training.callbacks import BaselineComparison
    from audiosr.training.module import UpsampledRecording

    callback = BaselineComparison(examples=0, visqol=False, listen=0)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(test_input="16-bit PCM (rounded, no dither)"))
    module = SimpleNamespace(spec=SimpleNamespace(source_rate=SOURCE_RATE, target_rate=TARGET_RATE,
                                                  input_filter="kaiser_fast"))
    callback.on_test_epoch_start(trainer, module)
    assert callback.caption.endswith("every method's low-rate input: 16-bit PCM (rounded, no dither)")
    for name, known in (("listed", 12000.0), ("unlisted", math.nan)):
        target = cut_noise(8192, 16000, seed=8)
        low, rough = make_pair(target, TARGET_RATE, SOURCE_RATE)
        batch = {"name": [name], "low": torch.from_numpy(low)[None], "target": torch.from_numpy(target)[None],
                 "input": torch.from_numpy(rough)[None], "ref_edge_hz": torch.tensor([known])}
        callback.on_test_batch_end(trainer, module, UpsampledRecording(rough, 0.1, "model", 1, "cpu", "fp32"), batch, 0)
    edges = {(m, i["name"]): i["ref_edge_hz"] for m, items in callback.comparison.items.items() for i in items}
    assert len(edges) == 2 * (1 + len(BASELINES))
    assert all(e == 12000.0 for (_, name), e in edges.items() if name == "listed")
    assert all(e == pytest.approx(16000, abs=150) for (_, name), e in edges.items() if name == "unlisted")


def test_the_test_callback_scores_other_models_beside_the_tested_one_on_the_same_input():
    from types import SimpleNamespace

    from audiosr.inference import Upsampler
    from audiosr.training.callbacks import BaselineComparison
    from audiosr.training.module import UpsampledRecording

    for taken in ("kaiser_best", "kaiser_best v2", "model", "Model", "target", "low-rate input", "audiosr UNet"):
        with pytest.raises(ValueError, match=f"the label '{taken}' is taken"):
            BaselineComparison(models={taken: "default"})
    from audiosr.evaluation.comparison import is_reference

    assert is_reference("kaiser_best") and is_reference("kaiser_best (model input)") and not is_reference("kaiser_best v2")
    with pytest.raises(ValueError, match="is taken"):  # one name in W&B's summary for both
        BaselineComparison(models={"my model (v2)": "default", "my model (v3)": "default"})
    callback = BaselineComparison(examples=0, visqol=False, listen=0, models={"shipped model": "default"})
    trainer = SimpleNamespace(datamodule=None, is_global_zero=True, ckpt_path="runs/x/last.ckpt",
                              strategy=SimpleNamespace(root_device=torch.device("cpu")))
    module = SimpleNamespace(spec=SimpleNamespace(source_rate=SOURCE_RATE, target_rate=TARGET_RATE,
                                                  input_filter="soxr_vhq"), network=torch.nn.Identity())
    callback.on_test_epoch_start(trainer, module)
    # Said under the table (terminal, comparison.md, the page): which row is which.
    assert callback.caption.endswith(". 'audiosr Identity' is the model under test (runs/x/last.ckpt); "
                                     "'shipped model' is the model shipped with audiosr, on the same inputs")
    target = cut_noise(22050, 16000, seed=9)
    low, rough = make_pair(target, TARGET_RATE, SOURCE_RATE)
    batch = {"name": ["a"], "low": torch.from_numpy(low)[None], "target": torch.from_numpy(target)[None],
             "input": torch.from_numpy(rough)[None]}
    callback.on_test_batch_end(trainer, module, UpsampledRecording(rough, 0.1, "audiosr Identity", 1, "cpu", "fp32"), batch, 0)
    rows = callback.comparison.rows()
    assert [r.method for r in rows][:3] == ["audiosr Identity", "shipped model", "kaiser_fast"]
    shipped = Upsampler.from_checkpoint().upsample(low, SOURCE_RATE)
    assert rows[1].snr == pytest.approx(snr(torch.from_numpy(shipped), torch.from_numpy(target)).item(), abs=1e-4)
    assert rows[1].snr != pytest.approx(rows[0].snr, abs=0.01)  # not the tested model's output again

    missing = BaselineComparison(visqol=False, models={"mine": "/nowhere/model.ckpt"})
    with pytest.raises(FileNotFoundError, match="report.models: 'mine': no checkpoint at /nowhere/model.ckpt"):
        missing.on_test_epoch_start(trainer, module)


def test_the_bootstrap_interval_holds_the_true_difference_and_narrows_with_more_files():
    # Per-file SNRs of two methods: the first is 0.5 dB better on average, with a spread of 2 dB per file.
    def files(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        b = rng.normal(20.0, 5.0, n)
        return b + 0.5 + rng.normal(0.0, 2.0, n), b

    covered = [lo <= 0.5 <= hi for lo, hi in (bootstrap_interval(*files(40, seed)) for seed in range(40))]
    assert np.mean(covered) >= 0.85  # a 95 % interval, from 40 draws of 40 files
    few, many = bootstrap_interval(*files(20, 1)), bootstrap_interval(*files(500, 1))
    assert (many[1] - many[0]) < 0.4 * (few[1] - few[0])  # width ~ 1 / sqrt(files): 5 times narrower
    assert bootstrap_interval(*files(20, 1)) == few  # a fixed seed: the same interval every time
    # A ratio of means: an LSD halved on every file, whatever the file's own LSD.
    lsd_b = np.random.default_rng(2).uniform(0.5, 2.0, 50)
    lo, hi = bootstrap_interval(0.5 * lsd_b, lsd_b, mean_ratio, resamples=500, seed=3)
    assert lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    assert bootstrap_interval([1.0], [0.0], mean_difference) == (1.0, 1.0)
    with pytest.raises(ValueError, match="equally long"):
        bootstrap_interval([1.0, 2.0], [1.0])


def test_rows_carry_the_intervals_against_kaiser_best_and_the_reports_show_them(tmp_path):
    rng = np.random.default_rng(0)
    cmp = Comparison(SOURCE_RATE, TARGET_RATE)
    for index in range(12):
        target = rng.standard_normal((1, 8192)).astype(np.float32)
        noise = rng.standard_normal(target.shape).astype(np.float32)
        noise /= np.sqrt((noise ** 2).sum() / (target ** 2).sum())
        # kaiser_best at 10 dB SNR on every file, the model at 14 to 16 dB.
        cmp.add("kaiser_best", target + noise * np.float32(10 ** (-10 / 20)), target, name=f"f{index}")
        cmp.add("model", target + noise * np.float32(10 ** (-(14 + index % 3) / 20)), target, name=f"f{index}")
        cmp.add("unnamed", target, target)  # cannot be paired: no interval
    rows = {r.method: r for r in cmp.rows()}
    lo, hi = rows["model"].snr_vs_kaiser_best_ci
    assert 14 - 10 <= lo <= rows["model"].snr - rows["kaiser_best"].snr <= hi <= 16 - 10
    for key in ("lsd_vs_kaiser_best_ci", "lsd_below_edge_vs_kaiser_best_ci"):
        lo, hi = getattr(rows["model"], key)
        assert lo <= rows["model"].lsd / rows["kaiser_best"].lsd <= hi < 1  # less noise: a lower LSD
    assert rows["kaiser_best"].snr_vs_kaiser_best_ci is None and rows["unnamed"].snr_vs_kaiser_best_ci is None
    text = to_markdown(list(rows.values()))
    assert "| LSD ↓ " in text and "| LSD < ref edge ↓ " in text and "SNR − kaiser_best (dB)" in text
    assert f"+{rows['model'].snr - rows['kaiser_best'].snr:.2f} [+" in text and "95 % bootstrap interval" in text
    paths = write_report(list(rows.values()), tmp_path, {}, items=cmp.items)
    payload = json.loads(paths["json"].read_text())
    model = next(r for r in payload["rows"] if r["method"] == "model")
    assert model["snr_vs_kaiser_best_ci"] == pytest.approx(list(rows["model"].snr_vs_kaiser_best_ci))
    assert set(payload["items"]["model"][0]) >= {"lsd", "lsd_below_edge", "ref_edge_hz", "name"}
    with paths["csv"].open(newline="") as f:
        table = {r["method"]: r for r in csv.DictReader(f)}
    assert float(table["model"]["snr_vs_kaiser_best_ci_lo"]) == pytest.approx(rows["model"].snr_vs_kaiser_best_ci[0])
    assert table["kaiser_best"]["snr_vs_kaiser_best_ci_hi"] == ""
