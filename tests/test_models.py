"""Networks of every family: any length, exact windowing, receptive field, rebuild, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosr.dsp import resample
from audiosr.inference.upsampler import Upsampler
from audiosr.models import Generator, MagnitudeNetwork, MagnitudePhaseNetwork, ModelSpec, UNet, build_network
from audiosr.output_stage import KeepBand, OutputStage
from audiosr.training.losses import ReconstructionLoss

SOURCE, TARGET = 22050, 44100
FAMILIES = {
    "unet": lambda: UNet(channels=[4, 8, 8]),
    "unet-snake": lambda: UNet(channels=[4, 8, 8], activation="snake"),
    "magnitude-shift": lambda: MagnitudeNetwork(n_fft=256, hop_length=64, dim=16, blocks=2, phase="shift"),
    "magnitude-mirror": lambda: MagnitudeNetwork(n_fft=256, hop_length=64, dim=16, blocks=2, phase="mirror"),
    "magnitude-phase": lambda: MagnitudePhaseNetwork(n_fft=256, hop_length=64, dim=16, blocks=2),
    "magnitude-phase-snake": lambda: MagnitudePhaseNetwork(n_fft=256, hop_length=64, dim=16, blocks=2,
                                                           activation="snake"),
    "magnitude-phase-relative": lambda: MagnitudePhaseNetwork(n_fft=256, hop_length=64, dim=16, blocks=2,
                                                              carry_input=True, relative_magnitude=True),
}


def generator(name: str, keep_band=(0.8, 0.9)) -> Generator:
    torch.manual_seed(0)
    network = FAMILIES[name]()
    spec = ModelSpec(network.rebuild_spec(), SOURCE, TARGET, "soxr_vhq", False, OutputStage(keep_band=keep_band))
    return Generator(network, spec).eval()


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("length", [1, 7, 255, 1000, 4097])
def test_any_length_round_trips(name, length):
    with torch.no_grad():
        y = generator(name)(torch.randn(2, 1, length))
    assert y.shape == (2, 1, length) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_windowed_output_equals_whole_signal_output(name):
    g = generator(name)
    low = (0.3 * np.random.default_rng(0).standard_normal((1, 15_000))).astype(np.float32)
    windowed = Upsampler(g, device="cpu", window=0.1, overlap=0.02).upsample(low, SOURCE)
    rough = resample(low, SOURCE, TARGET, "soxr_vhq", 30_000)
    with torch.no_grad():
        whole = g(torch.from_numpy(rough)[None]).numpy()[0]
    np.testing.assert_allclose(windowed, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_receptive_field_bounds_what_an_output_sample_sees(name):
    g = generator(name)
    reach = g.receptive_field
    x = torch.randn(1, 1, 4 * reach + 512)
    probe = 2 * reach + 256  # output sample looked at
    far = x.clone()
    far[..., probe + reach + 1:] += torch.randn_like(far[..., probe + reach + 1:])
    far[..., : probe - reach] += torch.randn_like(far[..., : probe - reach])
    with torch.no_grad():
        assert torch.allclose(g(x)[..., probe], g(far)[..., probe], atol=1e-5)
        near = x.clone()
        near[..., probe - reach // 4: probe] += torch.randn(reach // 4)
        assert not torch.allclose(g(x)[..., probe], g(near)[..., probe], atol=1e-5)  # the bound is not void


@pytest.mark.parametrize("name", FAMILIES)
def test_a_network_is_rebuilt_from_its_captured_arguments(name):
    g = generator(name)
    again = Generator(build_network(g.network.rebuild_spec()), g.spec).eval()
    again.network.load_state_dict(g.network.state_dict())
    x = torch.randn(1, 1, 3000)
    with torch.no_grad():
        torch.testing.assert_close(again(x), g(x))
    assert g.network.rebuild_spec()["init_args"] == FAMILIES[name]().init_args


def test_captured_arguments_include_defaults_and_refuse_non_plain_values():
    assert MagnitudeNetwork(dim=8, blocks=1).init_args == {
        "n_fft": 1024, "hop_length": 256, "dim": 8, "blocks": 1, "expansion": 3, "activation": "gelu", "phase": "shift",
        "relative_magnitude": False}
    with pytest.raises(TypeError, match="plain values"):
        UNet(channels=torch.tensor([4, 8]))


@pytest.mark.parametrize("relative", [False, True])
def test_a_relative_magnitude_head_starts_from_the_inputs_own_level_below_its_edge(relative):
    # Untrained heads (zero weights): the absolute one invents the same magnitude whatever the
    # input; the relative one e^-3 (26 dB) under the input's RMS at 7.5-9.5 kHz, frame by frame.
    torch.manual_seed(0)
    network = MagnitudePhaseNetwork(dim=16, blocks=1, relative_magnitude=relative)
    network.bind_rates(SOURCE, TARGET)
    noise = np.random.default_rng(0).standard_normal(SOURCE).astype(np.float32)
    band = resample(resample(noise, SOURCE, 19_000, "soxr_vhq"), 19_000, SOURCE, "soxr_vhq")  # up to 9.5 kHz
    envelope = np.repeat([1.0, 0.03, 0.3, 0.01], -(-len(band) // 4))[: len(band)].astype(np.float32)
    rough = resample(0.1 * band * envelope, SOURCE, TARGET, "soxr_vhq").astype(np.float32)
    magnitudes = []
    for gain in (1.0, 0.1):
        spectrum = network.stft(torch.from_numpy(gain * rough)[None])
        with torch.no_grad():
            magnitude = network.predicted_magnitude(network.backbone(spectrum), spectrum)
        magnitudes.append(magnitude)
        above = magnitude[0, network.edge + 1 - network.first_predicted:]  # the bins above 11.025 kHz
        reference = network.reference_level(spectrum)[0, 0].exp()
        if relative:
            frames = slice(4, -4)  # frames that lie within the signal
            torch.testing.assert_close(above[:, frames], (reference[frames] * np.exp(-3.0)).expand_as(above[:, frames]),
                                       rtol=1e-4, atol=0)
    loud, quiet = magnitudes
    if relative:  # ten times quieter input, ten times quieter band; and a band that follows the envelope
        torch.testing.assert_close(quiet, 0.1 * loud, rtol=1e-3, atol=1e-7)
        assert loud[0, -1, 20].item() > 30 * loud[0, -1, -20].item()
    else:
        torch.testing.assert_close(quiet, loud)


@pytest.mark.parametrize("name", ["unet", "magnitude-shift", "magnitude-phase", "magnitude-phase-relative"])
def test_training_lowers_the_loss_on_a_real_batch(name):
    from audiosr.data import AudioPairDataModule, SyntheticCorpus

    data = AudioPairDataModule(SyntheticCorpus(train_clips=2, val_clips=1, test_clips=1, clip_seconds=1.0),
                               segment_seconds=0.25, batch_size=4, num_workers=0, input_filter="soxr_vhq")
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    g = generator(name).train()
    loss = ReconstructionLoss().setup(TARGET)
    optimizer = torch.optim.Adam(g.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        value = loss(g(batch["input"]), batch["target"])["total"]
        first = value.item() if first is None else first
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert value.item() < 0.8 * first


def test_the_known_band_is_the_input_whatever_the_network_does():
    g = generator("magnitude-phase")
    with torch.no_grad():
        for p in g.network.parameters():
            p.normal_(0, 1)  # a wild network
        g.network.magnitude.bias.fill_(2.0)  # a loud one
    t = torch.arange(TARGET) / TARGET
    rough = (0.5 * torch.sin(2 * torch.pi * 3000 * t)).reshape(1, 1, -1)
    with torch.no_grad():
        out = g(rough)
    spectrum = lambda x: torch.fft.rfft(x[0, 0, 10_000:30_000] * torch.hann_window(20_000))  # noqa: E731
    low = slice(0, int(0.8 * 11025 * 20_000 / TARGET))
    error = (spectrum(out) - spectrum(rough))[low].abs().square().sum() / spectrum(rough)[low].abs().square().sum()
    assert error < 1e-6  # below 8.8 kHz, at most -60 dB of difference


@pytest.mark.parametrize("name", ["magnitude-mirror", "magnitude-shift", "magnitude-phase"])
@pytest.mark.parametrize("source,target", [(16_000, 48_000), (24_000, 48_000), (11_025, 44_100)])
def test_spectral_families_work_at_any_rate_pair_and_keep_the_input_band(name, source, target):
    """Rates come from the data module; the network's own output (no band keeping around it)
    reproduces the input below its band edge (what an untrained network adds above it is small)."""
    torch.manual_seed(0)
    network = FAMILIES[name]()
    g = Generator(network, ModelSpec(network.rebuild_spec(), source, target, "soxr_vhq", False, OutputStage(keep_band=None))).eval()
    rng = np.random.default_rng(0)
    low = (0.3 * rng.standard_normal(source)).astype(np.float32)  # one second, full band at the source rate
    rough = resample(low, source, target, "soxr_vhq", target)
    with torch.no_grad():
        y = g(torch.from_numpy(rough)[None, None])[0, 0].numpy()
    assert y.shape == rough.shape and np.isfinite(y).all()
    freqs = np.fft.rfftfreq(len(y), 1 / target)
    spectrum_in, spectrum_out = np.fft.rfft(rough), np.fft.rfft(y)
    known = freqs < 0.6 * source / 2  # the networks write above 0.75 x the edge (less a window main lobe)
    error_db = 10 * np.log10(np.sum(np.abs(spectrum_out - spectrum_in)[known] ** 2) / np.sum(np.abs(spectrum_in[known]) ** 2))
    assert error_db < -30


def loud_generator(keep_band: KeepBand = "auto", **settings: float) -> Generator:
    """A magnitude + phase generator (fixed seed) whose band is about as loud as the input's; ``settings``: its stage's."""
    torch.manual_seed(0)
    network = FAMILIES["magnitude-phase"]()
    stage = OutputStage(keep_band=keep_band, **settings)
    g = Generator(network, ModelSpec(network.rebuild_spec(), SOURCE, TARGET, "soxr_vhq", False, stage))
    with torch.no_grad():
        g.network.magnitude.bias.fill_(-1.0)
    return g


def rough_noise(seed: int) -> torch.Tensor:
    """``(1, 1, T)``: 1 s of noise at SOURCE, soxr VHQ-upsampled to TARGET."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(resample((0.3 * rng.standard_normal(SOURCE)).astype(np.float32), SOURCE, TARGET,
                                     "soxr_vhq", TARGET))[None, None]


def windowed_spectrum(x: torch.Tensor) -> np.ndarray:
    """Hann-windowed: a plain FFT of a 1-s clip would leak its loud low band into the quiet top."""
    return np.fft.rfft(x[0, 0].numpy() * np.hanning(x.shape[-1]))


def band_power(x: np.ndarray, band: np.ndarray) -> float:
    return float(np.sum(np.abs(x[band]) ** 2))


def test_invented_gain_scales_only_the_band_above_the_inputs_edge_and_only_outside_training():
    """``invented_gain_db``: -6 dB from 300 Hz above the input's edge (found per item with ``auto``, the
    Nyquist frequency without band keeping), nothing changed below the edge (neither the input's band
    nor the network's bins near it), training unchanged (the network would learn to undo a gain it
    trained through)."""
    def loud(gain_db: float, keep_band="auto") -> Generator:
        return loud_generator(keep_band, invented_gain_db=gain_db)

    rough = rough_noise(0)
    freqs = np.fft.rfftfreq(rough.shape[-1], 1 / TARGET)
    reference = windowed_spectrum(rough)
    power = band_power

    def spectrum(g: Generator, training: bool = False) -> np.ndarray:
        g.train(training)
        with torch.no_grad():
            return windowed_spectrum(g(rough))

    for keep_band, expected_edge in (("auto", (10_000, 10_900)), (None, (SOURCE / 2, SOURCE / 2))):
        edge = float(loud(0.0, keep_band).band_edges(rough)[0])
        assert expected_edge[0] <= edge <= expected_edge[1]
        below, above = (freqs > 8_000) & (freqs < edge - 100), freqs > edge + 400
        plain, quieter = spectrum(loud(0.0, keep_band)), spectrum(loud(-6.0, keep_band))
        assert power(plain, above) > 0
        assert 10 * np.log10(power(quieter, above) / power(plain, above)) == pytest.approx(-6.0, abs=0.05)
        assert power(quieter - plain, below) < 1e-6 * power(plain, below)  # the band below is untouched (-60 dB)
    kept = spectrum(loud(-6.0))
    low = freqs < 9_000
    assert power(kept - reference, low) < 1e-5 * power(reference, low)  # the input's band is the input (-50 dB)
    assert spectrum(loud(-6.0), training=True) == pytest.approx(spectrum(loud(0.0), training=True), rel=1e-5)
    spec = loud(-6.0).spec
    assert "band above the edge -6 dB" in spec.describe()
    with pytest.raises(ValueError, match="between -60 and 0"):
        OutputStage(keep_band="auto", invented_gain_db=3.0)
    assert ModelSpec.from_dict(spec.to_dict()).stage.invented_gain_db == -6.0


def test_the_phase_of_two_outputs_is_their_angle_and_zero_where_both_are():
    from audiosr.models.spectral import unit_phasor

    real, imag = torch.randn(3, 50), torch.randn(3, 50)
    real[0, :5] = imag[0, :5] = 0.0
    expected = torch.polar(torch.ones_like(real), torch.atan2(imag, real))
    assert torch.allclose(unit_phasor(real, imag), expected, atol=1e-6)
    assert torch.equal(unit_phasor(real, imag)[0, :5], torch.ones(5, dtype=torch.complex64))
