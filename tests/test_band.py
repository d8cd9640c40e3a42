"""Where the input's band ends, the band kept there, and levels: behaviour on generated signals.

The signals are made here: white or coloured noise, band-limited with ideal FFT masks, then
made low-rate by real resamplers and filters (resampy, soxr, scipy), as in training and test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosr.band import CEILING_NEAR_HZ, content_edge, filter_each, level_ceiling, lowpass_kernels, mean_power
from audiosr.data.degradations import Lowpass, Resample
from audiosr.dsp import resample
from audiosr.evaluation.metrics import quality, selection_score
from audiosr.models.generator import Generator, ModelSpec, envelope
from audiosr.output_stage import EDGE_GUARD_HZ, OutputStage
from audiosr.models.spectral import MagnitudePhaseNetwork

SOURCE, TARGET = 22050, 44100


def noise(seconds: float = 2.0, seed: int = 0, top_hz: float = TARGET / 2, tilt_db_per_khz: float = -1.0) -> np.ndarray:
    """``(1, T)`` noise with a gently falling spectrum (as real recordings have), nothing above ``top_hz``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * TARGET)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / TARGET)
    spectrum *= 10 ** (tilt_db_per_khz * f / 1000 / 20) * (f <= top_hz)
    x = np.fft.irfft(spectrum, n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)[np.newaxis]


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    power = mean_power(torch.from_numpy(np.ascontiguousarray(x)))[0].numpy()
    f = np.arange(power.shape[-1]) * TARGET / 2048
    return float(10 * np.log10(power[(f >= lo) & (f < hi)].sum() + 1e-30))


def rough_of(target: np.ndarray, degradation) -> np.ndarray:
    low, _ = degradation(target, SOURCE, TARGET, np.random.default_rng(0))
    return resample(low, SOURCE, TARGET, "soxr_vhq", target.shape[-1])


def response_db(degradation, frequency: float) -> float:
    """The level of a rough input relative to its target at ``frequency`` (white noise, 40 Hz bins)."""
    target = noise(4.0, seed=3, tilt_db_per_khz=0.0)
    return band_db(rough_of(target, degradation), frequency - 20, frequency + 20) - band_db(target, frequency - 20,
                                                                                            frequency + 20)


@pytest.mark.parametrize(("degradation", "kept_loss_db"), [
    (Resample("kaiser_best"), 3.0), (Resample("soxr_vhq"), 1.0), (Lowpass("cheby1", 8, 0.95, 0.05), 1.0),
    # A gentle filter: its roll-off starts 1.5 kHz below its cliff, so the input is kept through
    # most of it, real signal though attenuated (measured -8.3 dB at the kept band's top).
    (Resample("kaiser_fast"), 9.0),
], ids=["kaiser_best", "soxr_vhq", "cheby1", "kaiser_fast"])
def test_the_edge_is_where_the_filter_that_made_the_input_falls_off(degradation, kept_loss_db):
    edge = float(content_edge(torch.from_numpy(rough_of(noise(), degradation)), TARGET, 0.8 * SOURCE / 2, SOURCE / 2))
    # The edge is about the filter's -10 dB point, so its transition band is kept; the input is
    # kept whole up to a guard below it, and 300 Hz above the edge the filter has taken it all.
    assert -16 < response_db(degradation, edge) < -6
    assert response_db(degradation, edge - EDGE_GUARD_HZ) > -kept_loss_db
    assert response_db(degradation, edge + 300) < -20


def test_a_recording_without_a_cliff_has_its_edge_at_the_top_and_an_encoders_cliff_is_found():
    full = torch.from_numpy(noise(tilt_db_per_khz=-2.0))
    assert float(content_edge(full, TARGET, 12000, TARGET / 2)) == TARGET / 2
    encoded = torch.from_numpy(noise(top_hz=16000, tilt_db_per_khz=-2.0))
    assert abs(float(content_edge(encoded, TARGET, 12000, TARGET / 2)) - 16000) < 300
    silent = torch.zeros(1, TARGET)
    assert float(content_edge(silent, TARGET, 12000, TARGET / 2)) == TARGET / 2


def shaped_noise(gain_db, seconds: float = 2.0, seed: int = 4) -> np.ndarray:
    """``(1, T)`` noise whose spectrum is ``gain_db(f)`` (dB, ``f`` in Hz), peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * TARGET)
    f = np.fft.rfftfreq(n, 1 / TARGET)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * 10 ** (gain_db(f) / 20), n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)[np.newaxis]


def test_a_natural_dip_or_steep_fall_is_not_taken_for_the_filters_cliff():
    # A 25 dB gap 500 Hz wide, as between formants, in a full-band recording: the spectrum
    # comes back above it, so it is no encoder's cut-off.
    gap = shaped_noise(lambda f: -1.0 * f / 1000 - 25.0 * ((f > 12500) & (f < 13000)))
    assert float(content_edge(torch.from_numpy(gap), TARGET, 12000, TARGET / 2)) == TARGET / 2
    # A chime: loud up to 8.2 kHz, then falling 20 dB per kHz with a 20 dB notch at 8.6-8.8 kHz
    # (measured on a real one that lost 21 dB against kaiser_best when its band was cut at
    # 8.2 kHz). Made low-rate by kaiser_best, its edge is kaiser_best's, not the fall's.
    chime = shaped_noise(lambda f: -20.0 * np.clip(f - 8200, 0, None) / 1000 - 20.0 * ((f > 8600) & (f < 8800)))
    rough = rough_of(chime, Resample("kaiser_best"))
    edge = float(content_edge(torch.from_numpy(rough), TARGET, 0.8 * SOURCE / 2, SOURCE / 2))
    assert 9700 < edge < 10300


def eight_khz(x: np.ndarray, method: str) -> np.ndarray:
    """``x`` as an 8 kHz 16-bit file made by ``method``, brought back to 44.1 kHz with soxr VHQ."""
    low = np.round(resample(x, TARGET, 8000, method) * 32767) / 32767
    return resample(low, 8000, TARGET, "soxr_vhq", x.shape[-1]).astype(np.float32)


def crickets(seconds: float = 2.0) -> np.ndarray:
    """Loud up to 3.1 kHz, then a hiss 35 dB under it up to the top (a night ambience, measured on a real one)."""
    return shaped_noise(lambda f: -35.0 * (f > 3100), seconds)


@pytest.mark.parametrize("method", ["kaiser_best", "soxr_vhq"])
def test_the_last_cliff_is_the_filters_when_a_recording_falls_onto_a_level_band_under_it(method):
    rough = torch.from_numpy(eight_khz(crickets(), method))
    first = float(content_edge(rough, TARGET, 3000, TARGET / 2))
    last = float(content_edge(rough, TARGET, 3000, TARGET / 2, last=True))
    assert 3000 < first < 3250  # the recording's own fall
    # The filter's edge, as an 8 kHz file of plain noise made the same way has it.
    plain = float(content_edge(torch.from_numpy(eight_khz(noise(tilt_db_per_khz=0.0), method)), TARGET, 3000, TARGET / 2))
    assert abs(last - plain) < 3 * TARGET / 2048
    assert 3650 < last < 3900


@pytest.mark.parametrize(("make", "method"), [
    (lambda: rough_of(noise(), Resample("kaiser_fast")), None),  # a gentle roll-off, 1.5 kHz long
    (lambda: rough_of(noise(), Resample("kaiser_best")), None),
    (lambda: rough_of(noise(), Lowpass("cheby1", 8, 0.95, 0.05)), None),
    # falling 20 dB per kHz into the filter's cliff, as a voice line does
    (lambda: eight_khz(shaped_noise(lambda f: -20.0 * np.clip(f - 3000, 0, None) / 1000), "kaiser_best"), 3000),
    (lambda: eight_khz(noise(), "kaiser_fast"), 3000),
], ids=["kaiser_fast", "kaiser_best", "cheby1", "steep-fall-8k", "kaiser_fast-8k"])
def test_a_roll_off_or_a_steady_fall_has_no_further_cliff(make, method):
    rough = torch.from_numpy(make())
    lowest = method or 0.8 * SOURCE / 2
    top = TARGET / 2 if method else SOURCE / 2
    assert float(content_edge(rough, TARGET, lowest, top, last=True)) == float(content_edge(rough, TARGET, lowest, top))


@pytest.mark.parametrize("transform", ["fir", "stft"])
def test_keep_to_last_cliff_keeps_the_band_under_the_filter_and_tells_the_network_the_first(transform):
    rough = torch.from_numpy(eight_khz(crickets(), "kaiser_best"))[None]
    estimate = torch.zeros_like(rough)  # a network that adds nothing: what is kept is the input
    rate, nyquist_hz = TARGET, TARGET / 2
    kept = {}
    for last in (False, True):
        stage = OutputStage(keep_band="auto", edge_search_from=3000 / nyquist_hz, transform=transform, keep_to_last_cliff=last)
        edges = stage.edges(rough, rate, nyquist_hz)
        assert 3000 < float(edges[0]) < 3250  # what the network is told either way
        output = stage(rough, estimate, rate, nyquist_hz, training=False, edges=edges)[0].numpy()
        kept[last] = band_db(output, 3300, 3420) - band_db(rough[0].numpy(), 3300, 3420)
    assert kept[True] > -0.5  # the hiss under the filter's edge is the input's own
    assert kept[False] < -20  # without: replaced by the network's band (here nothing)


def test_per_item_lowpasses_pass_below_and_stop_above_their_own_cut_off():
    x = torch.from_numpy(np.concatenate([noise(seed=1), noise(seed=2)]))[:, None]  # (2, 1, T)
    kernels = lowpass_kernels(torch.tensor([9000.0, 15000.0]), TARGET, 400.0)
    y = filter_each(x, kernels).numpy()
    for item, cutoff in enumerate((9000.0, 15000.0)):
        assert abs(band_db(y[item], 2000, cutoff - 300) - band_db(x[item].numpy(), 2000, cutoff - 300)) < 0.01
        assert band_db(y[item], cutoff + 300, TARGET / 2) < band_db(x[item].numpy(), cutoff + 300, TARGET / 2) - 60


def auto_generator(normalise="envelope", seed: int = 0, transform: str = "fir") -> Generator:
    """A random (untrained) magnitude + phase generator: its output differs from its input everywhere it may."""
    torch.manual_seed(seed)
    network = MagnitudePhaseNetwork(1024, 256, 16, 1, carry_input=True)
    stage = OutputStage(keep_band="auto", transform=transform)
    spec = ModelSpec(network.rebuild_spec(), SOURCE, TARGET, "soxr_vhq", normalise, stage)
    generator = Generator(network, spec).eval()
    with torch.no_grad():
        for layer in (network.magnitude, network.input_gain):
            layer.weight.normal_(0.0, 0.3)
        network.magnitude.bias.fill_(-2.0)
    return generator


@pytest.mark.parametrize("transform", ["fir", "stft"])
@pytest.mark.parametrize("method", ["kaiser_best", "soxr_vhq"])
def test_keep_band_auto_outputs_the_input_up_to_its_own_edge_and_the_network_above(method, transform):
    target = noise(top_hz=10800)
    rough = torch.from_numpy(rough_of(target, Resample(method)))[None]
    generator = auto_generator(transform=transform)
    with torch.no_grad():
        output = generator(rough)[0].numpy()
        raw = (generator.network(rough * generator.level_scale(rough)) / generator.level_scale(rough))[0].numpy()
    edge = float(generator.band_edges(rough)[0])
    assert edge > 9900  # both resamplers keep the band to about 10 kHz or above
    spectrum = lambda x: np.fft.rfft(x[0])  # noqa: E731
    f = np.fft.rfftfreq(target.shape[-1], 1 / TARGET)
    kept, filled = (f > 1000) & (f < edge - EDGE_GUARD_HZ - 50), (f > edge + 50)
    rough_np = rough[0].numpy()
    # Below the guard: the input itself (the network's departure from it removed to 60 dB and
    # more: the crossover's ripple); above the edge: the network's own output.
    error = np.abs(spectrum(output) - spectrum(rough_np))[kept]
    departure = np.abs(spectrum(raw) - spectrum(rough_np))[kept]
    assert error.max() < 1e-3 * departure.max()
    assert np.allclose(spectrum(output)[filled], spectrum(raw)[filled], atol=1e-2 * np.abs(spectrum(raw)[filled]).max())
    # The random network does change both bands, so neither check is vacuous.
    assert np.abs(spectrum(raw) - spectrum(rough_np))[kept].max() > 0.1 * np.abs(spectrum(rough_np)[kept]).max()


@pytest.mark.parametrize("cap_db", [None, 0.0])
def test_a_capped_carry_gain_never_raises_the_inputs_stop_band(cap_db):
    # A head asking for the largest gain on the input's own bins (+52 dB) and inventing nothing:
    # uncapped, kaiser_best's stop band above its edge comes out about 52 dB louder; capped at
    # 0 dB, the output there is never louder than the input.
    torch.manual_seed(0)
    network = MagnitudePhaseNetwork(1024, 256, 16, 1, carry_input=True, carry_gain_max_db=cap_db)
    generator = Generator(network, ModelSpec(network.rebuild_spec(), SOURCE, TARGET, "soxr_vhq", False, OutputStage(keep_band="auto"))).eval()
    with torch.no_grad():
        network.input_gain.bias.fill_(10.0)
        network.magnitude.bias.fill_(-100.0)  # clamped to the floor: nothing invented
    rough = torch.from_numpy(rough_of(noise(top_hz=10800), Resample("kaiser_best")))[None]
    with torch.no_grad():
        output = generator(rough)[0].numpy()
    edge = float(generator.band_edges(rough)[0])
    above = (edge + 100, 11000)
    raised = band_db(output, *above) - band_db(rough[0].numpy(), *above)
    if cap_db is None:
        assert raised > 45
    else:
        assert raised < 0.1


def with_band(low: np.ndarray, seed: int, lo_hz: float, level_db: float, reference_hz: float | None = None) -> np.ndarray:
    """``low`` plus white noise above ``lo_hz``, ``level_db`` (per Hz) from ``low``'s level in the 300 Hz
    below ``reference_hz`` (default: ``lo_hz``)."""
    band = noise(seed=seed, tilt_db_per_khz=0.0)
    f = np.fft.rfftfreq(band.shape[-1], 1 / TARGET)
    band = np.fft.irfft(np.fft.rfft(band[0]) * (f >= lo_hz), band.shape[-1])[None].astype(np.float32)
    top = lo_hz if reference_hz is None else reference_hz
    gain = band_db(low, top - 300, top) - band_db(band, lo_hz, lo_hz + 300) + level_db
    return low + band * np.float32(10 ** (gain / 20))


def ceiling(output: np.ndarray, rough: np.ndarray, edge: float, margin_db: float = 0.0) -> np.ndarray:
    return level_ceiling(torch.from_numpy(output)[None], torch.from_numpy(rough)[None], torch.tensor([edge]),
                         TARGET, margin_db)[0].numpy()


def falling(top_hz: float, steep_db_per_khz: float, steep_from_hz: float = 8000.0) -> np.ndarray:
    """``noise`` that falls ``steep_db_per_khz`` more from ``steep_from_hz`` up, nothing above ``top_hz``."""
    x = noise(seed=1, top_hz=top_hz)
    f = np.fft.rfftfreq(x.shape[-1], 1 / TARGET)
    shape = 10 ** (steep_db_per_khz * np.clip(f - steep_from_hz, 0, None) / 1000 / 20)
    return np.fft.irfft(np.fft.rfft(x[0]) * shape, x.shape[-1])[None].astype(np.float32)


@pytest.mark.parametrize("tilt", [0.0, -20.0])
def test_the_level_ceiling_lowers_a_band_louder_than_the_inputs_own_spectrum_continued(tilt):
    # An input whose spectrum goes on falling gently (an ordinary recording) or steeply (a chime,
    # a clean voice: 20 dB more per kHz) up to its edge at 10 kHz; an output that adds a band 20 dB
    # above the input's level just below the edge (a bump): it comes down to the input's spectrum
    # continued, within a few dB (the reference is the loudest of 5 frames: a little above).
    edge = 10000.0
    rough = falling(edge, tilt)
    loud = with_band(rough, seed=2, lo_hz=edge, level_db=20.0)
    limited = ceiling(loud, rough, edge)
    near = band_db(rough, edge - 600, edge - 300)
    continued = near + (tilt - 1.0) * 0.6  # from the near band's middle (450 Hz below the edge) to 150 Hz above it
    assert band_db(loud, edge, edge + 300) - continued > 15
    assert -1 < band_db(limited, edge, edge + 300) - continued < 4
    # Far above the edge the ceiling holds the level the continued slope reached 1 kHz above the near band.
    assert band_db(limited, 14000, 14300) < near + (tilt - 1.0) + 3
    # Below the ceiling's start the output is untouched, and a band under the ceiling is left as it is.
    below = (100, edge - CEILING_NEAR_HZ[1] - 100)
    assert abs(band_db(limited, *below) - band_db(loud, *below)) < 0.01
    quiet = with_band(rough, seed=2, lo_hz=edge + 1500, level_db=-6.0 + (tilt - 1.0) * 1.5, reference_hz=edge - 300)
    assert abs(band_db(ceiling(quiet, rough, edge), edge + 1500, 20000) - band_db(quiet, edge + 1500, 20000)) < 0.5


def test_the_level_ceiling_leaves_the_band_below_its_start_alone_and_follows_no_level():
    rough = noise(seed=3, top_hz=10500)
    output = with_band(rough, seed=4, lo_hz=10500, level_db=15.0)
    limited = ceiling(output, rough, 10500.0)
    assert band_db(limited, 11000, 20000) < band_db(output, 11000, 20000) - 10  # it did act above
    assert band_db(limited - output, 100, 9900) < band_db(output, 100, 9900) - 100
    # Scale-free: 40 dB quieter in, 40 dB quieter out, the same shape.
    scaled = ceiling(output * 0.01, rough * 0.01, 10500.0)
    assert np.allclose(scaled, limited * 0.01, atol=1e-6)
    # Digital silence in the input: nothing above its edge can be supported.
    silent = ceiling(output, np.zeros_like(rough), 10500.0)
    assert band_db(silent, 11000, 20000) < band_db(output, 11000, 20000) - 60


def test_the_generator_applies_the_level_ceiling_outside_training_only():
    torch.manual_seed(0)
    network = MagnitudePhaseNetwork(1024, 256, 16, 1, carry_input=True)
    spec = ModelSpec(network.rebuild_spec(), SOURCE, TARGET, "soxr_vhq", False, OutputStage(keep_band="auto", level_ceiling_db=0.0))
    generator = Generator(network, spec)
    plain = Generator(network, ModelSpec(network.rebuild_spec(), SOURCE, TARGET, "soxr_vhq", False, OutputStage(keep_band="auto")))
    with torch.no_grad():
        network.magnitude.bias.fill_(0.0)  # a loud invented band, far above a steeply falling input
    rough = torch.from_numpy(rough_of(noise(top_hz=10800, tilt_db_per_khz=-8.0), Resample("kaiser_best")))[None]
    with torch.no_grad():
        trained = generator.train()(rough)[0].numpy()
        run = generator.eval()(rough)[0].numpy()
        unlimited = plain.eval()(rough)[0].numpy()
    assert np.allclose(trained, unlimited, atol=1e-6)  # training: the network's own band, for the loss
    assert band_db(run, 12000, 20000) < band_db(unlimited, 12000, 20000) - 10
    assert generator.receptive_field > plain.receptive_field
    assert "continued upwards (+0 dB)" in spec.describe()
    assert ModelSpec.from_dict(spec.to_dict()).stage.level_ceiling_db == 0.0
    with pytest.raises(ValueError, match="level_ceiling_db"):
        OutputStage(keep_band="auto", level_ceiling_db=50.0)


def test_envelope_normalisation_never_lets_a_loud_passage_change_a_quiet_one_a_second_away():
    quiet = noise(2.0, seed=4) * np.float32(0.003)  # about -56 dBFS
    loud = noise(1.0, seed=5)
    rough_alone = rough_of(quiet, Resample("soxr_vhq"))
    both = np.concatenate([rough_of(loud, Resample("soxr_vhq")), rough_alone], axis=-1)
    generator = auto_generator(normalise="envelope")
    peak_generator = auto_generator(normalise="peak")
    with torch.no_grad():
        alone = generator(torch.from_numpy(rough_alone)[None])[0].numpy()
        together = generator(torch.from_numpy(both)[None])[0].numpy()[:, TARGET:]
        peak_alone = peak_generator(torch.from_numpy(rough_alone)[None])[0].numpy()
        peak_together = peak_generator(torch.from_numpy(both)[None])[0].numpy()[:, TARGET:]
    # Compared away from where the two signals meet (the envelope reaches ~64 ms, the network ~0.1 s).
    part = slice(TARGET // 2, -TARGET // 4)
    top = (12000, 20000)
    assert abs(band_db(together[:, part], *top) - band_db(alone[:, part], *top)) < 0.5
    # A peak-normalised item does not have that property: the check can fail.
    assert abs(band_db(peak_together[:, part], *top) - band_db(peak_alone[:, part], *top)) > 3


def test_the_envelope_is_never_below_the_signal_and_follows_it_within_tens_of_milliseconds():
    x = torch.from_numpy(np.concatenate([noise(0.5, seed=6), noise(0.5, seed=7) * 0.001], axis=-1))[None]
    e = envelope(x.abs())
    assert bool((e >= x.abs() * (1 - 1e-6)).all())  # up to float rounding
    later = e[..., int(0.6 * TARGET):]
    assert float(later.max()) < 0.01  # 100 ms after the loud part ended, the envelope is the quiet one's


def module_for_losses():
    from audiosr.training.module import SuperResolutionModule

    network = MagnitudePhaseNetwork(1024, 256, 16, 1, carry_input=True)
    return SuperResolutionModule(network, source_rate=SOURCE, target_rate=TARGET, input_filter="soxr_vhq",
                                 output_stage=OutputStage(keep_band="auto"), normalise="envelope")


def test_the_losses_see_the_level_normalised_pair_so_a_quiet_item_weighs_as_much_as_a_loud_one():
    module = module_for_losses()
    target = torch.from_numpy(noise(1.0, seed=8))[None]
    rough = torch.from_numpy(rough_of(target[0].numpy(), Resample("kaiser_best")))[None]
    prediction = rough + 0.01 * torch.from_numpy(noise(1.0, seed=9))[None]
    loud = module.reconstruction(prediction, {"input": rough, "target": target})
    quiet = module.reconstruction(prediction * 0.001, {"input": rough * 0.001, "target": target * 0.001})
    for part in ("sc", "mag", "mse"):  # the MSE would be a million times smaller at -60 dB unscaled
        assert float(quiet[part]) == pytest.approx(float(loud[part]), rel=1e-3, abs=1e-4)


def test_the_losses_ignore_the_band_above_a_targets_own_edge():
    module = module_for_losses()
    target = torch.from_numpy(noise(1.0, seed=10, top_hz=16000))[None]
    extra = torch.from_numpy(noise(1.0, seed=11)).numpy()
    f = np.fft.rfftfreq(extra.shape[-1], 1 / TARGET)
    above = np.fft.irfft(np.fft.rfft(extra) * (f > 16500), extra.shape[-1]).astype(np.float32)
    prediction = target + torch.from_numpy(above)[None]
    batch = {"input": target, "target": target, "edge_hz": torch.tensor([16000.0])}
    masked = module.reconstruction(prediction, batch)
    unmasked = module.reconstruction(prediction, {"input": target, "target": target})
    same = module.reconstruction(target, batch)
    assert float(masked["mag"]) < 0.05 * float(unmasked["mag"])
    assert float(masked["total"]) == pytest.approx(float(same["total"]), abs=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_selection_score_prefers_the_true_band_level_over_half_or_twice_it(seed):
    """Bands with a random phase (what an invented band has): only their level differs."""
    target = torch.from_numpy(noise(2.0, seed=20 + seed, tilt_db_per_khz=-1.5))
    rough = torch.from_numpy(rough_of(target.numpy(), Resample("kaiser_best")))
    f = np.fft.rfftfreq(target.shape[-1], 1 / TARGET)
    high = torch.from_numpy(noise(2.0, seed=40 + seed, tilt_db_per_khz=-1.5))
    high_part = np.fft.irfft(np.fft.rfft(high.numpy()) * (f > SOURCE / 2), target.shape[-1]).astype(np.float32)
    target_high = np.fft.irfft(np.fft.rfft(target.numpy()) * (f > SOURCE / 2), target.shape[-1])
    # The random band at the target's own level, then halved and doubled.
    level = np.sqrt((target_high ** 2).sum() / (high_part ** 2).sum())
    scores = {}
    input_snr = quality(rough, target, TARGET, SOURCE / 2)["snr"]
    for gain in (0.5, 1.0, 2.0):
        output = rough + torch.from_numpy(high_part * np.float32(level * gain))
        values = quality(output, target, TARGET, SOURCE / 2)
        scores[gain] = float(selection_score(values["lsd"], values["snr"], input_snr))
    assert scores[1.0] < scores[0.5] and scores[1.0] < scores[2.0]


def test_the_selection_score_counts_no_loss_beyond_60_db():
    """An input with nothing missing, changed 70 dB down (a sliver filled near the top), costs nothing;
    the same change on an input at 40 dB costs what it loses."""
    lsd = torch.tensor([0.1, 0.1])
    transparent = selection_score(lsd, torch.tensor([70.0, 30.0]), torch.tensor([150.0, 40.0]))
    assert float(transparent[0]) == pytest.approx(0.1)
    assert float(transparent[1]) == pytest.approx(0.1 + 0.5 * (40 - 30 - 3))


def test_test_recordings_are_scored_at_their_own_level(tmp_path):
    import soundfile as sf

    from audiosr.data.corpora import AudioFolders
    from audiosr.data.datamodule import AudioPairDataModule

    quiet = noise(1.0, seed=30)[0] * np.float32(0.05)
    sf.write(tmp_path / "quiet.wav", quiet, TARGET, subtype="FLOAT")
    files = [str(tmp_path / "quiet.wav")]
    data = AudioPairDataModule(AudioFolders(files, files, files), segment_seconds=0.5, num_workers=0,
                               cache_dir=str(tmp_path / "cache"))
    data.setup("test")
    data.setup("fit")
    test_item, val_item = data.datasets["test"][0], data.datasets["val"][0]
    assert float(test_item["target"].abs().max()) == pytest.approx(float(np.abs(quiet).max()), rel=1e-5)
    assert float(val_item["target"].abs().max()) > 0.5  # training and validation crops stay normalised


def test_a_loss_that_compares_with_the_input_gets_it_scaled_and_cut_as_the_pair_are():
    from audiosr.training.losses import LostSNR, ReconstructionLoss, WaveformMSE
    from audiosr.training.module import SuperResolutionModule

    network = MagnitudePhaseNetwork(1024, 256, 16, 1, carry_input=True)
    module = SuperResolutionModule(network, ReconstructionLoss({"mse": WaveformMSE(), "lost": LostSNR(margin_db=0.0)}),
                                   source_rate=SOURCE, target_rate=TARGET, input_filter="soxr_vhq",
                                   output_stage=OutputStage(keep_band="auto"), normalise="envelope")
    target = torch.from_numpy(noise(1.0, seed=12))[None]
    rough = torch.from_numpy(rough_of(target[0].numpy(), Resample("kaiser_best")))[None]
    # The input costs nothing against itself, at any level.
    for level in (1.0, 0.001):
        same = module.reconstruction(rough * level, {"input": rough * level, "target": target * level})
        assert float(same["lost_snr"]) == pytest.approx(0.0, abs=1e-6)
    loud = rough + 3 * (target - rough)  # the missing band three times too loud
    lost = module.reconstruction(loud, {"input": rough, "target": target})
    assert float(lost["lost_snr"]) == pytest.approx(10 * np.log10(4.0) / 10, abs=0.02)
    # Above a target's own edge nothing counts: there the input, the target and the output are cut alike.
    batch = {"input": rough, "target": target, "edge_hz": torch.tensor([SOURCE / 2 - 200.0])}
    assert float(module.reconstruction(loud, batch)["lost_snr"]) < float(lost["lost_snr"])
