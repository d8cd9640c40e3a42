"""Degradations carried out on the model's device (audiosr.data.on_device) against the loader's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import welch

from audiosr.band import content_edge
from audiosr.data import AnyBand, AudioPairDataModule, Lowpass, LowRate, Resample, SyntheticCorpus
from audiosr.data.degradations import Codec
from audiosr.data.on_device import PLAN_SIZE, apply_plans, keep_plan, plan_of, to_grid
from audiosr.data.pairs import PairMaker, target_edges, to_pcm

RATE = 44100


def noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((1, round(seconds * RATE)))).astype(np.float32)


def on_device(degradation, x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    plan = torch.from_numpy(plan_of(degradation, RATE, RATE, gain)[None])
    return apply_plans(torch.from_numpy(x[None] * np.float32(gain)), plan, RATE)[0].numpy()


def edge_of(x: np.ndarray) -> float:
    return float(content_edge(torch.from_numpy(x), RATE, 3000.0, RATE / 2)[0])


def db(x: float) -> float:
    return 10 * np.log10(max(x, 1e-30))


@pytest.mark.parametrize("family, order, corner", [("ellip", 10, 3500.0), ("butter", 6, 15000.0), ("cheby2", 8, 9000.0)])
def test_a_low_pass_on_the_device_is_the_loaders_zero_phase_filter(family, order, corner):
    x = noise(0.75)
    lowpass = Lowpass(family, order, corner / (RATE / 2), 0.5, 60.0, "soxr_vhq")
    cpu = lowpass(x, RATE, RATE, np.random.default_rng(0))[0]
    device = on_device(lowpass, x)
    middle = slice(2000, x.shape[-1] - 2000)  # sosfiltfilt pads its ends its own way
    error = np.sum((device[:, middle] - cpu[:, middle]) ** 2) / np.sum(cpu[:, middle] ** 2)
    assert db(error) < -70
    assert db(np.sum((device - cpu) ** 2) / np.sum(cpu ** 2)) < -30


@pytest.mark.parametrize("rate", [8000, 22050])
@pytest.mark.parametrize("resampler", ["kaiser_best", "kaiser_fast", "soxr_vhq", "soxr_hq"])
def test_a_lower_rate_on_the_device_cuts_where_the_loaders_resampler_cuts(rate, resampler):
    x = np.concatenate([noise(1.0, seed) for seed in range(3)], axis=-1)
    low_rate = LowRate(rate, bits=None, made_by=Resample(resampler))
    cpu = low_rate(x, RATE, RATE, np.random.default_rng(0))[0]
    device = on_device(low_rate, x)
    assert device.shape == cpu.shape == x.shape
    f, reference = welch(x[0], RATE, nperseg=4096)
    responses = [10 * np.log10(welch(y[0], RATE, nperseg=4096)[1] / reference) for y in (cpu, device)]
    # Where the loader's response is above -60 dB, the device's follows it within a few dB.
    shown = (responses[0] > -60) & (f > 0.7 * rate / 2)
    assert np.max(np.abs(responses[1][shown] - responses[0][shown])) < 5.0
    assert np.all(responses[1][f > 1.05 * rate / 2] < -80)  # nothing above the file's band
    assert abs(edge_of(device) - edge_of(cpu)) < 0.03 * rate / 2


def test_a_16_bit_file_on_the_device_is_rounded_as_the_loaders():
    x = torch.from_numpy(noise(0.1) * 3).clamp(-1.2, 1.2)
    assert torch.equal(to_grid(x, 16), torch.from_numpy(to_pcm(x.numpy(), 16)))
    low_rate = LowRate(16000, bits=16, made_by=Resample("kaiser_best"))
    quiet = noise(0.5) * np.float32(1e-3)  # rms 1e-4, about 2 steps of 16 bits once at 16 kHz: the rounding shows
    float_file = on_device(LowRate(16000, bits=None, made_by=Resample("kaiser_best")), quiet, gain=0.5)
    pcm_file = on_device(low_rate, quiet, gain=0.5)
    error = db(np.mean((pcm_file - float_file) ** 2) / np.mean(float_file ** 2))
    # Rounding (noise of 1 / sqrt(12) step rms) leaves it about -17 dB under a signal of 2 steps: at the file's
    # own level, whatever the gain applied after.
    assert -24 < error < -11


def test_the_plans_of_a_batch_each_do_their_own_item():
    x = noise(0.75)
    degradations = [Resample("soxr_vhq"), Lowpass("cheby1", 8, 6000 / (RATE / 2), 0.5, 60.0, "soxr_vhq"),
                    LowRate(8000, bits=16, made_by=Lowpass("ellip", 8, 0.95, 0.5, 60.0, "kaiser_best")),
                    LowRate(32000, bits=None, made_by=Resample("soxr_hq"))]
    gains = [1.0, 0.5, 0.25, 0.8]
    plans = torch.from_numpy(np.stack([plan_of(d, RATE, RATE, g) for d, g in zip(degradations, gains)]))
    batch = torch.from_numpy(np.stack([x * np.float32(g) for g in gains]))
    together = apply_plans(batch, plans, RATE)
    for i, (d, g) in enumerate(zip(degradations, gains)):
        alone = on_device(d, x, g)
        np.testing.assert_allclose(together[i].numpy(), alone, atol=1e-6)
    np.testing.assert_array_equal(together[0].numpy(), batch[0].numpy())  # nothing lost: kept as it is
    edges = [edge_of(together[i].numpy() / g) for i, g in enumerate(gains)]
    assert edges[0] == RATE / 2 and 5000 < edges[1] < 6500 and 3500 < edges[2] < 4000 and 15000 < edges[3] < 16000
    with pytest.raises(ValueError, match="plans of shape"):
        apply_plans(batch, plans[:2], RATE)
    with pytest.raises(ValueError, match="cannot run"):
        plan_of(Codec("mp3", 64, "soxr_vhq"), RATE, RATE, 1.0)


def test_any_band_draws_the_same_items_whether_the_loader_or_the_device_degrades():
    target = noise(0.75)
    loader, device = (PairMaker(RATE, RATE, "soxr_vhq", AnyBand(), on_device=flag) for flag in (False, True))
    done_on_device = 0
    for seed in range(24):
        made, planned = loader(target, np.random.default_rng(seed)), device(target, np.random.default_rng(seed))
        assert "device_plan" not in made and planned["device_plan"].shape == (PLAN_SIZE,)
        torch.testing.assert_close(planned["target"], made["target"])  # the same gain
        assert np.isnan(float(planned["edge_hz"]))  # found on the device, from the target at its own level:
        gain = float(planned["device_plan"][1])
        assert float(target_edges(planned["target"] / gain, RATE, RATE)[0]) == float(made["edge_hz"])
        degraded = apply_plans(planned["input"][None], planned["device_plan"][None], RATE)[0]
        if torch.equal(planned["device_plan"], torch.from_numpy(keep_plan(float(planned["device_plan"][1])))):
            torch.testing.assert_close(degraded, made["input"])  # a codec: done in the loader, exactly
            continue
        done_on_device += 1
        assert abs(edge_of(degraded.numpy() / gain) - edge_of(made["input"].numpy() / gain)) < 600
    assert done_on_device >= 12


def test_a_codec_round_trip_made_beforehand_is_used_instead_of_encoding():
    target = noise(0.75)
    prepared = {"mp3:64": Codec("mp3", 64, "soxr_vhq")(target, RATE, RATE, np.random.default_rng(0))[0]}
    any_band = AnyBand(weights=(0, 0, 1, 0))
    low, gain = any_band(target, RATE, RATE, np.random.default_rng(3), prepared=prepared)
    np.testing.assert_array_equal(low, prepared["mp3:64"] * np.float32(gain))
    # Without one, the same draw encodes (with the codec the draw names, so in general not mp3:64).
    encoded, same_gain = any_band(target, RATE, RATE, np.random.default_rng(3))
    assert same_gain == gain and encoded.shape == low.shape


def test_the_data_module_degrades_training_batches_on_the_device(tmp_path):
    data = AudioPairDataModule(SyntheticCorpus(train_clips=2, val_clips=2, test_clips=1, clip_seconds=1.0),
                               source_rate=RATE, target_rate=RATE, segment_seconds=0.5, batch_size=8, num_workers=0,
                               train_items_per_epoch=8, train_degradation=AnyBand(weights=(0.5, 0.5, 0, 0)),
                               val_degradation=AnyBand(), cache_dir=str(tmp_path), degrade_on_device=True)
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert torch.equal(batch["input"], batch["target"])  # the loader left it undone
    gains = batch["device_plan"][:, 1].float().reshape(-1, 1)
    edges = target_edges(batch["target"][:, 0] / gains, RATE, RATE)
    batch = data.on_after_batch_transfer(batch, 0)
    torch.testing.assert_close(batch["edge_hz"], edges)
    assert "device_plan" not in batch and batch["input"].shape == batch["target"].shape
    assert torch.equal(batch["input"], batch["low"])
    for i in range(8):  # every item lost its band above an edge under the target's own
        assert edge_of(batch["input"][i].numpy()) < min(0.95 * RATE / 2, float(batch["edge_hz"][i]))
    val = next(iter(data.val_dataloader()))
    assert "device_plan" not in val  # validation is made in the loader, as it always was
    with pytest.raises(ValueError, match="AnyBand"):
        AudioPairDataModule(degrade_on_device=True)
