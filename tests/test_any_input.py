"""A model for any input (issue 36): inputs at the target rate whose band ends anywhere.

Degradations that make such inputs the way users' files are made, the network told each item's
edge, the output stage that leaves a complete input as it is, the data module at equal rates, the
upsampler that takes every rate, and the per-item band split of the metrics.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from audiosr.band import content_edge
from audiosr.data import AnyBand, AudioPairDataModule, LowRate, SyntheticCorpus
from audiosr.dsp import resample
from audiosr.evaluation.metrics import lsd_bands
from audiosr.models.generator import Generator, ModelSpec
from audiosr.models.spectral import MagnitudePhaseNetwork
from audiosr.output_stage import OutputStage

RATE = 44100
SEARCH_FROM = 0.136  # configs/overlays/any-input.yaml


def noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((1, round(seconds * RATE)))).astype(np.float32)


def edge_of(x: np.ndarray) -> float:
    return float(content_edge(torch.from_numpy(x), RATE, 3000.0, RATE / 2)[0])


def any_generator(seed: int = 0, **network) -> Generator:
    torch.manual_seed(seed)
    net = MagnitudePhaseNetwork(dim=16, blocks=1, any_band=True, carry_input=True, relative_magnitude=True, **network)
    spec = ModelSpec(net.rebuild_spec(), RATE, RATE, "soxr_vhq", "envelope",
                     OutputStage(keep_band="auto", edge_search_from=SEARCH_FROM))
    return Generator(net, spec).eval()


@pytest.mark.parametrize("rate, edge", [(8000, 4000), (16000, 8000), (22050, 11025), (32000, 16000)])
def test_a_low_rate_file_brought_back_ends_at_its_nyquist_frequency(rate, edge):
    x = noise()
    low, gain = LowRate(rate, "kaiser_best", "soxr_vhq", 16)(x, RATE, RATE, np.random.default_rng(0))
    assert gain == 1.0 and low.shape == x.shape
    assert 0.85 * edge < edge_of(low) <= edge
    # Below the edge it is the original: aligned, not delayed.
    band = resample(resample(x, RATE, rate, "kaiser_best"), rate, RATE, "soxr_vhq", x.shape[-1])
    assert np.corrcoef(band[0, 2000:-2000], low[0, 2000:-2000])[0, 1] > 0.999


def test_a_low_rate_file_is_on_the_16_bit_grid_before_it_is_brought_back():
    x = noise()
    rng = np.random.default_rng(0)
    pcm = LowRate(16000, bits=16)(x, RATE, RATE, rng)[0]
    flt = LowRate(16000, bits=None)(x, RATE, RATE, rng)[0]
    error = pcm - flt
    assert 0 < np.sqrt(np.mean(error ** 2)) < 2 ** -15  # rounding noise, about -101 dB, and no more


def test_any_band_draws_every_kind_aligned_and_as_long_as_the_target():
    x = noise(0.75)
    degradation = AnyBand(gain_db=(0.0, 0.0))
    seen = {}
    for index in range(60):
        rng = np.random.default_rng([3, index])
        rng.uniform()  # the gain comes first
        kind, made = degradation.draw(rng, RATE)
        if kind in seen or (kind == "codec" and made.codec == "opus"):
            continue  # one of each (the Opus detour through 48 kHz: tests/test_degradations.py)
        low, gain = degradation(x, RATE, RATE, np.random.default_rng([3, index]))
        seen[kind] = (low, made)
        assert low.shape == x.shape and gain == 1.0 and np.isfinite(low).all()
    assert set(seen) == set(AnyBand.KINDS)
    complete, _ = seen["complete"]
    np.testing.assert_allclose(complete, x, atol=1e-6)  # nothing lost
    for kind in ("rate", "lowpass", "codec"):
        low, made = seen[kind]
        lag = np.argmax(np.correlate(low[0, 5000:25000], x[0, 5000 - 40:25000 + 40], mode="valid")) - 40
        assert lag == 0, f"{kind} ({made.describe()}) is {lag} samples off"
        if kind == "lowpass":  # a gentle one may fall too slowly for a cliff: its band is gone all the same
            f = np.fft.rfftfreq(x.shape[-1], 1 / RATE)
            above = f > 1.5 * made.cutoff * RATE / 2
            ratio = np.sum(np.abs(np.fft.rfft(low[0]))[above] ** 2) / np.sum(np.abs(np.fft.rfft(x[0]))[above] ** 2)
            assert ratio < 1e-4, f"{kind} ({made.describe()}) lost nothing"
        else:
            assert edge_of(low) < 21000, f"{kind} ({made.describe()}) lost nothing"


def test_any_band_is_only_for_inputs_at_the_target_rate():
    with pytest.raises(ValueError, match="source_rate must equal target_rate"):
        AnyBand()(noise(0.2), 22050, RATE, np.random.default_rng(0))
    with pytest.raises(ValueError, match="CODEC:KBPS"):
        AnyBand(codecs=("mp3",))


def test_the_network_is_told_the_edge_and_sees_nothing_above_it():
    generator = any_generator()
    net = generator.network
    x = torch.from_numpy(resample(resample(noise(), RATE, 16000, "kaiser_best"), 16000, RATE, "soxr_vhq", RATE))[None]
    edges = torch.tensor([7600.0])
    known = net.known_bins(edges, 1, x.device)
    assert int(known.sum()) == int(7600 * net.n_fft / RATE) + 1
    # A tone far above the edge changes nothing the network makes: it is not shown to it (away from
    # the ends, where the frames' zero padding cuts the tone and spreads it over every bin).
    t = torch.arange(RATE) / RATE
    louder = x + 0.05 * torch.sin(2 * torch.pi * 15000 * t)
    with torch.no_grad():
        base, other = net(x, edges), net(louder, edges)
    middle = slice(net.receptive_field + net.n_fft, -net.receptive_field - net.n_fft)
    assert float((other - base)[..., middle].abs().max()) < 0.005 * 0.05  # float32 rounding: -46 dB under the tone
    assert float((other - base).abs().max()) > 1e-3  # the ends show that the tone was really there
    with pytest.raises(ValueError, match="band edge"):
        net(x)


def test_any_band_and_rate_pairs_do_not_mix():
    with pytest.raises(ValueError, match="any_band"):
        MagnitudePhaseNetwork(dim=16, blocks=1, any_band=True).bind_rates(22050, RATE)
    with pytest.raises(ValueError, match="any_band"):
        MagnitudePhaseNetwork(dim=16, blocks=1).bind_rates(RATE, RATE)
    net = MagnitudePhaseNetwork(dim=16, blocks=1, any_band=True)
    with pytest.raises(ValueError, match="keep_band: auto"):
        Generator(net, ModelSpec(net.rebuild_spec(), RATE, RATE, "soxr_vhq", "envelope", OutputStage(keep_band=None)))


def test_a_complete_input_comes_out_bit_for_bit_and_a_cut_one_keeps_its_band():
    generator = any_generator()
    full = torch.from_numpy(noise(1.0, seed=1))[None]
    cut = torch.from_numpy(LowRate(16000)(noise(1.0, seed=1), RATE, RATE, np.random.default_rng(0))[0])[None]
    with torch.no_grad():
        out = generator(torch.cat([full, cut]))
    assert torch.equal(out[0], full[0])  # nothing missing, nothing added
    assert not torch.equal(out[1], cut[0])
    # Below the edge (less the stage's guard) the cut input is its own output, to the crossover's
    # stop band (80 dB) times what the untrained network made.
    spectrum = lambda s: np.fft.rfft(s.numpy()[0])  # noqa: E731
    freqs = np.fft.rfftfreq(RATE, 1 / RATE)
    below = freqs < 7000
    error = np.sum(np.abs(spectrum(out[1] - cut[0])[below]) ** 2) / np.sum(np.abs(spectrum(cut[0])[below]) ** 2)
    assert error < 1e-5
    above = (freqs > 9000) & (freqs < 20000)
    assert np.abs(spectrum(out[1])[above]).mean() > 10 * np.abs(spectrum(cut[0])[above]).mean()  # something was added


def test_the_upsampler_of_a_model_for_any_input_takes_every_rate():
    from audiosr.inference import Upsampler

    notices: list[str] = []
    upsampler = Upsampler(any_generator(), notice=notices.append)
    x = noise(2.0, seed=2)
    for rate in (8000, 22050, 48000, 96000):
        low = resample(x, RATE, rate, "soxr_vhq")
        out = upsampler.upsample(low, rate)
        assert out.shape == (1, int(np.ceil(low.shape[-1] * RATE / rate))) and np.isfinite(out).all()
        assert f"resampling {rate} Hz to the model's {RATE} Hz" in notices[-1]
    assert "not kept" in notices[-1]  # 96 kHz: what lies above 22.05 kHz is said to be dropped
    notices.clear()
    out = upsampler.upsample(x, RATE)
    np.testing.assert_array_equal(out, x)
    assert notices == ["input: its content already reaches 22.05 kHz: nothing added"]
    notices.clear()
    upsampler.upsample(resample(x, RATE, 4000, "soxr_vhq"), 4000)
    assert "nothing added" in notices[-1] and "below the 3.0 kHz" in notices[-1]


def test_the_data_module_makes_pairs_at_the_target_rate_with_their_edges(tmp_path):
    data = AudioPairDataModule(SyntheticCorpus(train_clips=2, val_clips=2, test_clips=1, clip_seconds=1.0),
                               source_rate=RATE, target_rate=RATE, segment_seconds=0.5, batch_size=2, num_workers=0,
                               train_items_per_epoch=4, train_degradation=AnyBand(), val_degradation=AnyBand(),
                               cache_dir=str(tmp_path))
    data.prepare_data()
    data.setup("fit")
    for split in ("train", "val"):
        item = data.datasets[split][0]
        assert item["input"].shape == item["target"].shape == item["low"].shape == (1, RATE // 2)
        assert 3000 <= float(item["edge_hz"]) <= RATE / 2
    assert "any band" in data.describe()
    with pytest.raises(ValueError, match="source_rate <= target_rate"):
        AudioPairDataModule(source_rate=48000, target_rate=RATE)


def test_the_band_split_of_lsd_can_be_one_per_item():
    rng = np.random.default_rng(0)
    target = torch.from_numpy((0.1 * rng.standard_normal((2, RATE))).astype(np.float32))
    estimate = target + 0.05 * torch.from_numpy(rng.standard_normal((2, RATE)).astype(np.float32))
    per_item = lsd_bands(estimate, target, RATE, torch.tensor([8000.0, 16000.0]))
    for i, cutoff in enumerate((8000.0, 16000.0)):
        alone = lsd_bands(estimate[i], target[i], RATE, cutoff)
        for key in ("lsd", "lsd_hf", "lsd_lf"):
            assert float(per_item[key][i]) == pytest.approx(float(alone[key]), rel=1e-5)


def test_an_input_at_the_target_rate_is_compared_with_itself():
    from audiosr.evaluation.comparison import AS_IS, Comparison, baselines, to_markdown

    assert list(baselines(RATE, RATE)) == [AS_IS]
    assert "kaiser_best" in baselines(22050, RATE)
    target = noise(1.0, seed=3)
    low = LowRate(16000)(target, RATE, RATE, np.random.default_rng(0))[0]
    comparison = Comparison(RATE, RATE)
    assert 7000 < comparison.band_split(low) <= 8000  # LSD-HF starts at the input's own edge
    assert comparison.band_split(target) == RATE / 2 - 1000  # nothing missing: the top kHz
    for name in ("a", "b", "c"):
        comparison.evaluate(AS_IS, baselines(RATE, RATE)[AS_IS], low, target, name=name)
        comparison.add("model", target, target, name, split_hz=comparison.band_split(low))
    with pytest.raises(ValueError, match="split_hz"):
        comparison.add("model", target, target, "d")
    text = to_markdown(comparison.rows())
    assert "SNR − input as is (dB)" in text and "below input as is's" in text and "kaiser_best" not in text


@pytest.mark.slow
def test_a_model_for_any_input_trains_and_is_tested_on_files_of_every_kind(tmp_path, cli_env):
    import json

    from conftest import CONFIGS, run_audiosr

    recipe = [a for c in ("magphase.yaml", "overlays/spectral-cpu.yaml", "overlays/any-input.yaml", "overlays/debug.yaml")
              for a in ("--config", str(CONFIGS / c))]
    fitted = run_audiosr(["fit", *recipe, "--trainer.logger", "false"], tmp_path, cli_env)
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    rows = {}
    for preset in ("rate-16k", "mp3-64k"):
        tested = run_audiosr(["test", *recipe, "--config", str(CONFIGS / "inputs" / "any-input" / f"{preset}.yaml"),
                              "--ckpt_path", "last", "--trainer.logger", "false", "--report.visqol", "false"],
                             tmp_path, cli_env)
        assert tested.returncode == 0, tested.stderr[-3000:]
        (report,) = sorted(tmp_path.rglob("comparison.json"), key=lambda p: p.stat().st_mtime_ns)[-1:]
        rows[preset] = {r["method"]: r for r in json.loads(report.read_text())["rows"]}
    # 16 kHz files: the classical resamplers upsample them, kaiser_best is the reference.
    assert {"kaiser_best", "soxr_vhq (model input)"} <= set(rows["rate-16k"])
    assert rows["rate-16k"]["audiosr MagnitudePhaseNetwork"]["snr_vs_kaiser_best_ci"] is not None
    # 44.1 kHz MP3s: the decoded file as it is is what the model must beat.
    assert set(rows["mp3-64k"]) == {"audiosr MagnitudePhaseNetwork", "input as is"}
    assert rows["mp3-64k"]["audiosr MagnitudePhaseNetwork"]["snr_vs_kaiser_best_ci"] is not None


def test_a_model_for_any_input_shares_one_band_between_the_channels():
    """Issue 37's rule holds for it too: a delayed pair keeps its coherence in the band invented above the edge."""
    from audiosr.inference import Upsampler
    from bench.stereo import LOW_RATE, cases, coherence, low_16bit

    full = cases()["right = left delayed 30 samples"][:, : 3 * RATE]
    low = low_16bit(full)
    shared = Upsampler(any_generator(), notice=lambda _: None).upsample(low, LOW_RATE)
    apart = Upsampler(any_generator(), notice=lambda _: None, shared_stereo=False).upsample(low, LOW_RATE)
    assert coherence(shared) >= 0.9 and coherence(shared) > coherence(apart) + 0.1


def test_a_shared_stereo_band_starts_above_where_each_channel_keeps_its_input():
    """Kept to its last cliff, a pair whose channels fall onto a hiss under the filter keeps both
    channels' hiss: the band shared between them starts above it, not at the first cliff."""
    from test_band import crickets, eight_khz

    from audiosr.inference import Upsampler

    pair = np.concatenate([crickets(3.0), 0.5 * crickets(3.0)])
    pair[1] = shaped_noise_like(pair[1], seed=7)  # quieter, and not the same noise
    low = np.round(np.stack([resample(c, RATE, 8000, "kaiser_best") for c in pair]) * 32767) / 32767
    rough = np.stack([eight_khz(c[None], "kaiser_best")[0] for c in pair])
    generator = any_generator()
    generator.spec = dataclasses.replace(generator.spec, stage=generator.spec.stage.replace(keep_to_last_cliff=True))
    out = Upsampler(generator, notice=lambda _: None).upsample(low.astype(np.float32), 8000)
    f = np.fft.rfftfreq(out.shape[-1], 1 / RATE)
    hiss = (f > 3300) & (f < 3420)  # above the first cliff (3.1 kHz), kept below the last (3.7 kHz) less its guard
    for c in range(2):
        own, kept = np.fft.rfft(rough[c])[hiss], np.fft.rfft(out[c])[hiss]
        # Each channel's own hiss, to the crossover's precision; shared from the louder channel above
        # the first cliff, the quieter one's came out 19 dB off its own.
        assert 10 * np.log10(np.sum(np.abs(kept - own) ** 2) / np.sum(np.abs(own) ** 2)) < -28, c


def shaped_noise_like(x: np.ndarray, seed: int) -> np.ndarray:
    """Noise with ``x``'s magnitude spectrum and another phase: the same band plan, uncorrelated."""
    spectrum = np.fft.rfft(x)
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(spectrum.shape))
    return np.fft.irfft(np.abs(spectrum) * phase, x.shape[-1]).astype(np.float32)


def test_the_worse_share_counts_snrs_up_to_60_db():
    """An input with nothing missing kept to -71 dB is not "worse"; a file losing 4 dB at 30 dB is."""
    from audiosr.evaluation.comparison import AS_IS, Comparison

    comparison = Comparison(RATE, RATE)
    for name, (model, reference) in {"kept": (71.0, float("inf")), "lost": (26.0, 30.0), "same": (30.0, 30.0)}.items():
        for method, value in (("model", model), (AS_IS, reference)):
            comparison.items.setdefault(method, []).append(
                {"name": name, "snr": value, "lsd": 1.0, "lsd_below_edge": 1.0, "lsd_hf": 1.0, "lsd_lf": 1.0})
    model_row = next(r for r in comparison.rows() if r.method == "model")
    assert model_row.worse == pytest.approx(100 / 3)


def test_inputs_at_the_target_rate_need_a_degradation_that_cuts_the_band():
    with pytest.raises(ValueError, match="train_degradation and a val_degradation"):
        AudioPairDataModule(source_rate=RATE, target_rate=RATE)


def test_an_input_whose_band_reaches_complete_from_hz_is_passed_and_said_to_lack_nothing():
    from audiosr.data import Lowpass
    from audiosr.inference import Upsampler

    # Content to about 20.5 kHz, then a cliff: a converter's or a 320 kbps encoder's edge.
    x = Lowpass("ellip", 8, 20500 / (RATE / 2), 0.5, 80.0, "soxr_vhq")(noise(1.0, seed=4), RATE, RATE, None)[0]
    assert 19500 < edge_of(x) < 21000
    generator = any_generator()
    with torch.no_grad():
        filled = generator(torch.from_numpy(x)[None])
    assert not torch.equal(filled[0], torch.from_numpy(x))  # by default the model fills above 20.5 kHz
    generator.spec = dataclasses.replace(generator.spec, stage=generator.spec.stage.replace(complete_from_hz=19500))
    notices: list[str] = []
    out = Upsampler(generator, notice=notices.append).upsample(x, RATE)
    np.testing.assert_array_equal(out, x)
    assert notices == ["input: its content already reaches 19.5 kHz: nothing added"]
    cut = LowRate(32000)(x, RATE, RATE, np.random.default_rng(0))[0]  # 16 kHz: still filled
    assert not np.array_equal(Upsampler(generator).upsample(cut, RATE), cut)
    with pytest.raises(ValueError, match="complete_from_hz"):
        OutputStage(keep_band="auto", complete_from_hz=0)


def test_level_from_edge_gives_every_edge_the_same_level_the_same_distance_above_it():
    net = any_generator(level_from_edge=True).network
    assert net.magnitude.out_features == 2 * net.bins - 1
    with torch.no_grad():  # the head says: -20 dB under the reference level five bins above the edge, -60 elsewhere
        net.magnitude.weight.zero_()
        net.magnitude.bias.fill_(-60 * np.log(10) / 20)
        net.magnitude.bias[net.bins - 1 + 5] = -20 * np.log(10) / 20
    x = torch.from_numpy(noise())[None]
    spectrum = net.stft(x.reshape(1, -1))
    for edge_hz in (4000.0, 16000.0):
        known = net.known_bins(torch.tensor([edge_hz]), 1, x.device)
        with torch.no_grad():
            h = net.backbone(spectrum, known)
            level = net.predicted_magnitude(h, spectrum, known).log() - net.reference_level(spectrum, known)
        edge_bin = int(known.sum()) - 1
        db = 20 * level[0, :, 3] / np.log(10)
        assert float(db[edge_bin + 5]) == pytest.approx(-20.0, abs=1e-3)
        assert float(db[edge_bin + 4]) == pytest.approx(-60.0, abs=1e-3)
    # Rebuilt from its checkpoint's description, it is the same network; it needs a band per item.
    from audiosr.models.base import build_network
    assert build_network(net.rebuild_spec()).level_from_edge
    with pytest.raises(ValueError, match="level_from_edge"):
        MagnitudePhaseNetwork(relative_magnitude=True, level_from_edge=True)
