"""Upsampler and windowing engine: windowed output is the whole-signal output."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from audiosr.checkpoint import ModelSpec, network_spec
from audiosr.data.pairs import resample
from audiosr.inference import RateError, Upsampler, output_format
from audiosr.models.unet import UNet
from audiosr.windowing import WindowPlan, upsample_blocks

SOURCE, TARGET = 22050, 44100
# Windowed and whole-signal outputs differ only by float32 rounding (convolutions over
# other lengths and batch sizes sum in another order): measured <= 2.4e-7 on signals
# peaking near 1.3. Anything from a missing context or a misaligned window is >= 1e-4.
EXACT = 1e-5


@pytest.fixture(scope="module")
def network() -> UNet:
    torch.manual_seed(0)
    net = UNet(channels=[4, 8, 8])
    with torch.no_grad():
        # Residual U-Net: a random head makes output = input + a real, non-zero residual.
        net.head.weight.normal_(0.0, 0.5)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def spec(network: UNet) -> ModelSpec:
    return ModelSpec(network=network_spec(network), source_rate=SOURCE, target_rate=TARGET, input_filter="kaiser_fast")


def whole_signal(network: UNet, x: np.ndarray) -> np.ndarray:
    """The reference: rough-upsample all of ``x`` ``(C, T)`` and run the network once."""
    rough = resample(x, SOURCE, TARGET, "kaiser_fast", -(-x.shape[-1] * TARGET // SOURCE))
    with torch.inference_mode():
        return network(torch.from_numpy(rough).unsqueeze(1)).squeeze(1).numpy()


def chirp(seconds: float, rate: int = SOURCE, f0: float = 50.0, f1: float = 10_000.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2))).astype(np.float32)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_windowed_output_equals_whole_signal_output(network, spec, batch_size):
    x = (0.3 * np.random.default_rng(0).standard_normal((2, SOURCE + 777))).astype(np.float32)
    upsampler = Upsampler(network, spec, device="cpu", window=0.05, overlap=0.01, context=0.01, batch_size=batch_size)
    y = upsampler.upsample(x, SOURCE)
    assert y.shape == (2, 2 * x.shape[1]) and y.dtype == np.float32
    assert x.shape[1] * 2 // upsampler.plan.hop > 15  # many windows, odd last one
    np.testing.assert_allclose(y, whole_signal(network, x), rtol=0, atol=EXACT)


def test_engine_takes_any_block_sizes(network, spec):
    x = (0.3 * np.random.default_rng(1).standard_normal((1, 9000))).astype(np.float32)
    plan = WindowPlan.from_seconds(SOURCE, TARGET, "kaiser_fast", 0.04, 0.01, 0.01, align=4)
    upsampler = Upsampler(network, spec, device="cpu")
    blocks = np.split(x, [1, 2, 500, 4000, 4001], axis=1)  # includes blocks of 1 sample
    y = np.concatenate(list(upsample_blocks(blocks, plan, upsampler.refine)), axis=1)
    np.testing.assert_allclose(y, whole_signal(network, x), rtol=0, atol=EXACT)


def test_chirp_has_no_seams_even_without_context(network, spec):
    """With no context each window's edges see zero padding; the cross-fade hides it."""
    x = chirp(3.0)[None]
    reference = whole_signal(network, x)[0]

    def seam_error(overlap: float) -> tuple[float, float]:
        upsampler = Upsampler(network, spec, device="cpu", window=0.2, overlap=overlap, context=0.0)
        y = upsampler.upsample(x, SOURCE)[0]
        hop, fade = upsampler.plan.hop, upsampler.plan.overlap
        seams = [b for k in range(1, len(y) // hop + 1) for b in (k * hop, k * hop + fade) if b < len(y) - 8]
        error = max(np.abs(y - reference)[b - 8:b + 8].max() for b in seams)
        jump = max(np.abs(np.diff(y))[b - 8:b + 8].max() / np.abs(np.diff(reference))[b - 8:b + 8].max()
                   for b in seams)
        return error, jump

    error, jump = seam_error(overlap=0.002)
    assert error < 1e-4 and jump < 1.0001
    # The check can see a seam: butt-joined windows without context do leave one.
    assert seam_error(overlap=0.0)[0] > 1e-4


def test_stereo_channels_are_neither_mixed_nor_swapped(network, spec):
    t = np.arange(SOURCE) / SOURCE
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 3000 * t)]).astype(np.float32)
    upsampler = Upsampler(network, spec, device="cpu", window=0.1, overlap=0.02)
    y = upsampler.upsample(x, SOURCE)
    rough = resample(x, SOURCE, TARGET, "kaiser_fast")
    corr = np.corrcoef(np.concatenate([y, rough]))[:2, 2:]  # output channel x input channel
    assert corr[0, 0] > 0.9 and corr[1, 1] > 0.9
    assert abs(corr[0, 1]) < 0.1 and abs(corr[1, 0]) < 0.1
    # Channels are a batch: each is exactly what it gives on its own.
    for c in range(2):
        np.testing.assert_allclose(y[c], upsampler.upsample(x[c], SOURCE), rtol=0, atol=EXACT)


def test_output_rank_and_type_follow_the_input(network, spec):
    upsampler = Upsampler(network, spec, device="cpu")
    mono = chirp(0.1)
    assert upsampler.upsample(mono, SOURCE).shape == (2 * len(mono),)
    out = upsampler.upsample(torch.from_numpy(mono)[None].double(), SOURCE)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (1, 2 * len(mono))
    assert upsampler.upsample(np.zeros((2, 0), np.float32), SOURCE).shape == (2, 0)


def test_other_rates_are_resampled_to_the_source_rate_first(network, spec):
    notices: list[str] = []
    upsampler = Upsampler(network, spec, device="cpu", notice=notices.append)
    x = chirp(0.5, rate=16_000, f1=7_000)
    y = upsampler.upsample(x, 16_000)
    assert len(notices) == 1 and "16000 Hz" in notices[0] and "22050 Hz" in notices[0]
    at_source = soxr.resample(x, 16_000, SOURCE, quality="VHQ")
    np.testing.assert_allclose(y, upsampler.upsample(at_source, SOURCE), rtol=0, atol=EXACT)


@pytest.mark.parametrize("rate", [TARGET, 48_000])
def test_rates_at_or_above_the_target_are_refused(network, spec, rate):
    with pytest.raises(RateError, match=f"{rate} Hz .* target rate {TARGET} Hz"):
        Upsampler(network, spec, device="cpu").upsample(np.zeros(100, np.float32), rate)


def test_upsample_file_streams_to_the_same_samples(network, spec, tmp_path):
    x = (0.3 * np.random.default_rng(2).standard_normal((3, 70_000))).astype(np.float32)  # > one read
    sf.write(tmp_path / "in.wav", x.T, SOURCE, subtype="FLOAT")
    upsampler = Upsampler(network, spec, device="cpu", window=0.5, overlap=0.1)
    seconds: list[float] = []
    upsampler.upsample_file(tmp_path / "in.wav", tmp_path / "out" / "out.wav", on_progress=seconds.append)
    y, rate = sf.read(tmp_path / "out" / "out.wav", dtype="float32", always_2d=True)
    assert rate == TARGET and sf.info(tmp_path / "out" / "out.wav").subtype == "FLOAT"
    np.testing.assert_allclose(y.T, upsampler.upsample(x, SOURCE), rtol=0, atol=EXACT)
    assert sum(seconds) == pytest.approx(2 * x.shape[1] / TARGET)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["out.wav"]  # no partial file left


def test_from_checkpoint_rebuilds_the_network(network, spec, tmp_path):
    state = {"network." + k: v for k, v in network.state_dict().items()}
    torch.save({"state_dict": state, "audiosr": spec.to_dict()}, tmp_path / "tiny.ckpt")
    upsampler = Upsampler.from_checkpoint(tmp_path / "tiny.ckpt", device="cpu")
    x = chirp(0.2)
    direct = Upsampler(network, spec, device="cpu")
    np.testing.assert_array_equal(upsampler.upsample(x, SOURCE), direct.upsample(x, SOURCE))


def test_output_format_keeps_the_input_format_unless_it_cannot_hold_the_rate():
    assert output_format("WAV", "PCM_16", 2, TARGET) == ("WAV", "PCM_16")
    assert output_format("FLAC", "PCM_24", 1, TARGET) == ("FLAC", "PCM_24")
    assert output_format("OGG", "OPUS", 1, TARGET) == ("FLAC", "PCM_24")  # Opus: 8-48 kHz steps only


def test_non_integer_rate_ratios_window_exactly(network):
    spec = ModelSpec(network=network_spec(network), source_rate=16_000, target_rate=TARGET, input_filter="kaiser_fast")
    x = (0.3 * np.random.default_rng(3).standard_normal((1, 16_333))).astype(np.float32)
    y = Upsampler(network, spec, device="cpu", window=0.1, overlap=0.02, context=0.01).upsample(x, 16_000)
    rough = resample(x, 16_000, TARGET, "kaiser_fast", -(-x.shape[1] * TARGET // 16_000))
    with torch.inference_mode():
        reference = network(torch.from_numpy(rough).unsqueeze(1)).squeeze(1).numpy()
    np.testing.assert_allclose(y, reference, rtol=0, atol=EXACT)
