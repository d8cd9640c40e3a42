"""The output stage: validated once, stored in checkpoints, read back, and replaced (never added to) by overrides."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosr.inference.upsampler import Upsampler
from audiosr.models.checkpoint import CHECKPOINT_KEY
from audiosr.models.generator import Generator, ModelSpec
from audiosr.output_stage import OutputStage, parse_setting, stage_from_legacy
from conftest import tiny_generator

SOURCE, TARGET = 22050, 44100


def test_settings_are_checked_once_by_the_stage_with_the_name_and_the_range():
    assert OutputStage(keep_band=[0.7, 0.9]).keep_band == (0.7, 0.9)
    for bad, match in (({"keep_band": (0.9, 0.8)}, "keep_band"), ({"keep_band": "edge"}, "keep_band"),
                       ({"invented_gain_db": 1.0}, "invented_gain_db must be between -60 and 0"),
                       ({"level_ceiling_db": 31.0}, "level_ceiling_db must be between -30 and 30")):
        with pytest.raises(ValueError, match=match):
            OutputStage(**bad)
    with pytest.raises(ValueError, match="no setting top_band_gain_db"):
        OutputStage().replace(top_band_gain_db=-12.0)
    assert OutputStage(level_ceiling_db=3.0).replace(invented_gain_db=-6.0) == OutputStage(level_ceiling_db=3.0,
                                                                                          invented_gain_db=-6.0)
    assert [parse_setting(t) for t in ("off", "auto", "-3", "0.8,0.9", "[0.7, 0.95]")] == [
        None, "auto", -3.0, (0.8, 0.9), (0.7, 0.95)]
    with pytest.raises(ValueError, match="expected a number, auto, LO,HI or off"):
        parse_setting("loud")
    # Settings that take words: each its own.
    assert parse_setting("STFT", "transform") == "stft" and parse_setting("fir", "transform") == "fir"
    assert [parse_setting(t, "keep_to_last_cliff") for t in ("true", "yes", "false", "off")] == [True, True, False, False]
    with pytest.raises(ValueError, match="expected fir or stft"):
        parse_setting("wavelet", "transform")
    with pytest.raises(ValueError, match="expected true or false"):
        parse_setting("2", "keep_to_last_cliff")
    with pytest.raises(ValueError, match="keep_to_last_cliff must be true or false"):
        OutputStage(keep_to_last_cliff="yes")


def test_every_stage_setting_can_be_given_to_audiosr_upsample():
    from audiosr.inference.command import build_parser, stage_changes

    argv = ["in.wav", "--output_dir", "out", "--transform", "stft", "--keep_to_last_cliff", "true", "--keep_band", "auto",
            "--invented_gain_db", "-3", "--level_ceiling_db", "off"]
    args = build_parser().parse_args(argv)
    args._given = {a[2:] for a in argv if a.startswith("--")}
    assert OutputStage().replace(**stage_changes(args)) == OutputStage(
        keep_band="auto", transform="stft", keep_to_last_cliff=True, invented_gain_db=-3.0, level_ceiling_db=None)


def test_a_spec_round_trips_its_stage_and_an_older_flat_spec_is_read_without_the_fixed_step():
    spec = tiny_generator().spec.with_stage(keep_band="auto", level_ceiling_db=3.0, invented_gain_db=-4.0)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    flat = {k: v for k, v in spec.to_dict().items() if k != "stage"}
    flat.update(keep_band=[0.8, 0.9], level_ceiling_db=0.0, invented_gain_db=-3.0, top_band_gain_db=-12.0)
    old = ModelSpec.from_dict(flat)
    assert old.stage == OutputStage(keep_band=(0.8, 0.9), level_ceiling_db=0.0, invented_gain_db=-3.0)
    assert stage_from_legacy({}) == OutputStage(keep_band=None)  # the oldest specs had no band keeping


def test_a_training_checkpoint_stores_the_stage_validation_ran():
    from audiosr.training.module import SuperResolutionModule

    stage = OutputStage(keep_band="auto", level_ceiling_db=2.0, invented_gain_db=-5.0)
    module = SuperResolutionModule(tiny_generator().network, source_rate=SOURCE, target_rate=TARGET,
                                   input_filter="soxr_vhq", output_stage=stage)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert ModelSpec.from_dict(checkpoint[CHECKPOINT_KEY]).stage == stage == module.spec.stage


def upsampled(generator: Generator, low: np.ndarray, **options) -> np.ndarray:
    return Upsampler(generator, device="cpu", notice=lambda _: None, **options).upsample(low, SOURCE)


def test_an_override_replaces_the_stored_setting_and_leaves_the_others_as_stored():
    """Stored: ceiling +6 dB, band above the edge -3 dB (neither is the default nor the override)."""
    from test_models import loud_generator  # a band about as loud as the input's, so both settings act

    # Noise whose spectrum falls 25 dB per kHz above 8 kHz: the ceiling, continuing that fall, acts.
    rng = np.random.default_rng(0)
    f = np.fft.rfftfreq(SOURCE, 1 / SOURCE)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(SOURCE)) * 10 ** (-25 * np.clip(f - 8000, 0, None) / 20_000), SOURCE)
    low = (0.3 * x / np.abs(x).max()).astype(np.float32)

    def stored(**settings) -> Generator:
        return loud_generator("auto", **settings).eval()

    shipped = stored(level_ceiling_db=6.0, invented_gain_db=-3.0)
    as_stored = upsampled(shipped, low)
    np.testing.assert_array_equal(as_stored, upsampled(stored(level_ceiling_db=6.0, invented_gain_db=-3.0), low))
    gain = upsampled(shipped, low, output_stage={"invented_gain_db": -6.0})
    np.testing.assert_allclose(gain, upsampled(stored(level_ceiling_db=6.0, invented_gain_db=-6.0), low), atol=1e-6)
    ceiling = upsampled(shipped, low, output_stage={"level_ceiling_db": -6.0})
    np.testing.assert_allclose(ceiling, upsampled(stored(level_ceiling_db=-6.0, invented_gain_db=-3.0), low), atol=1e-6)
    off = upsampled(shipped, low, output_stage={"level_ceiling_db": None})
    np.testing.assert_allclose(off, upsampled(stored(invented_gain_db=-3.0), low), atol=1e-6)
    # Each override changes what it names: the band above the edge moves, the kept band does not.
    window = np.hanning(2 * SOURCE)
    spectra = {name: np.abs(np.fft.rfft(x * window)) ** 2 for name, x in
               (("stored", as_stored), ("gain", gain), ("ceiling", ceiling), ("off", off))}
    freqs = np.fft.rfftfreq(2 * SOURCE, 1 / TARGET)
    high, low_band = (freqs > 11_500) & (freqs < 20_000), freqs < 8_000

    def level_db(name: str, band: np.ndarray) -> float:
        return 10 * np.log10(spectra[name][band].sum())

    assert level_db("off", high) > level_db("off", low_band) - 40  # without the ceiling the band is loud
    # Measured: stored 1.1, gain -1.9, ceiling -10.9, off 43.8 dB.
    assert level_db("gain", high) == pytest.approx(level_db("stored", high) - 3.0, abs=0.3)  # -6, not -9
    assert level_db("ceiling", high) < level_db("stored", high) - 1 < level_db("off", high) - 1
    for name in ("gain", "ceiling", "off"):
        assert level_db(name, low_band) == pytest.approx(level_db("stored", low_band), abs=0.01)
    assert shipped.spec.stage == OutputStage(keep_band="auto", level_ceiling_db=6.0, invented_gain_db=-3.0)


def test_the_stage_runs_in_float32_outside_training_only():
    generator = tiny_generator(keep_band=(0.8, 0.9))
    generator = Generator(generator.network, generator.spec.with_stage(invented_gain_db=-20.0))
    rough = torch.randn(1, 1, TARGET)
    generator.train()
    training = generator(rough)
    generator.eval()
    with torch.no_grad():
        quieter = generator(rough)
    assert training.dtype == quieter.dtype == torch.float32
    assert not torch.allclose(training.detach(), quieter, atol=1e-4)


def test_a_fixed_crossover_reaches_as_far_as_its_kernel_and_windowing_changes_nothing():
    """The crossover's fractions are of the input's Nyquist frequency: read as Hz, a 0.1 Hz
    transition asked for 25 s of context each side of every 6-s window."""
    from audiosr.dsp import crossover_kernel

    generator = tiny_generator(keep_band=(0.8, 0.9))
    kernel = crossover_kernel(0.8 * SOURCE / 2, 0.9 * SOURCE / 2, TARGET)
    assert generator.receptive_field - generator.network.receptive_field == kernel.shape[-1] // 2 < TARGET // 50
    low = np.random.default_rng(3).standard_normal(SOURCE * 3).astype(np.float32) * 0.1
    whole = Upsampler(generator, window=60.0).upsample(low, SOURCE)
    windowed = Upsampler(generator, window=1.0, overlap=0.1).upsample(low, SOURCE)
    assert np.max(np.abs(windowed - whole)) < 1e-4 * np.max(np.abs(whole))


def band_levels_db(x: np.ndarray, edges_hz: list[float]) -> np.ndarray:
    """The level (dB) of ``x`` in each band between consecutive ``edges_hz``."""
    power = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]))) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / TARGET)
    return np.array([10 * np.log10(power[(freqs >= lo) & (freqs < hi)].sum()) for lo, hi in zip(edges_hz, edges_hz[1:])])


@pytest.mark.parametrize("settings", [{}, {"level_ceiling_db": 0.0, "invented_gain_db": -3.0}], ids=["keep", "all"])
def test_the_stage_in_frames_does_what_the_fir_stage_does_and_windowing_changes_nothing(settings):
    """``transform: stft`` replaces the FIR filters by their responses on the ceiling's frames: the same
    output within a few hundredths of a dB per band, the input kept below its edge, and a reach that
    makes windowed output equal to whole output."""
    from test_models import loud_generator

    rng = np.random.default_rng(1)
    f = np.fft.rfftfreq(2 * SOURCE, 1 / SOURCE)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(2 * SOURCE)) * 10 ** (-6 * np.clip(f - 8000, 0, None) / 20_000))
    low = (0.3 * x / np.abs(x).max()).astype(np.float32)
    fir = upsampled(loud_generator("auto", **settings).eval(), low, window=60.0)
    frames = loud_generator("auto", transform="stft", **settings).eval()
    whole = upsampled(frames, low, window=60.0)
    bands = [100, 4000, 8000, 10000, 11000, 12000, 14000, 17000, 20000, 22000]
    assert np.abs(band_levels_db(whole, bands) - band_levels_db(fir, bands)).max() < 0.05
    from audiosr.dsp import resample

    rough = resample(low, SOURCE, TARGET, "soxr_vhq", whole.shape[-1])  # what the network was given
    below = [100, 2000, 5000, 8000, 9500]
    assert (band_levels_db(whole - rough, below) < band_levels_db(rough, below) - 60).all()
    windowed = upsampled(frames, low, window=1.0, overlap=0.1)
    assert np.max(np.abs(windowed - whole)) < 1e-4 * np.max(np.abs(whole))
    assert "per bin of 1024-point frames" in frames.spec.describe()
    assert ModelSpec.from_dict(frames.spec.to_dict()).stage.transform == "stft"
    with pytest.raises(ValueError, match="transform must be fir or stft"):
        OutputStage(transform="fft")


def test_a_file_cut_mid_cycle_gets_no_click_at_its_ends_from_the_stage_in_frames():
    """A step into silence has a band above the edge; scaled by the band's gain, part of it would stay
    as a click at each end (measured 15 dB more than the FIR stage leaves, with zeros outside)."""
    rate, edges = TARGET, torch.tensor([10_200.0])
    t = np.arange(rate // 2) / rate
    x = (0.5 * np.sin(2 * np.pi * 1000 * t + 1.0)).astype(np.float32)  # starts and ends mid-cycle
    rough = torch.from_numpy(x)[None, None]
    freqs = np.fft.rfftfreq(441, 1 / rate)

    def end_levels_db(transform: str) -> np.ndarray:
        stage = OutputStage(keep_band="auto", invented_gain_db=-6.0, transform=transform)
        added = stage(rough, rough.clone(), rate, rate / 2, False, edges)[0, 0].numpy() - x  # nothing invented
        return np.array([10 * np.log10(np.sum(np.abs(np.fft.rfft(part))[freqs > 12_000] ** 2) + 1e-20)
                         for part in (added[:441], added[-441:])])

    assert (end_levels_db("stft") < end_levels_db("fir") + 1.0).all()


@pytest.mark.parametrize("keep_band", [None, (0.8, 0.9), "auto"], ids=["no-keeping", "fixed", "auto"])
def test_the_stage_in_frames_follows_the_fir_stage_for_every_keeping_and_each_item_its_own_edge(keep_band):
    """Two items of one batch with edges 2 kHz apart, the ceiling and the gain on: each item's band levels
    as the FIR stage gives them, and as the item alone gives them."""
    rng = np.random.default_rng(4)
    rough = torch.from_numpy(rng.standard_normal((2, 1, TARGET)).astype(np.float32) * 0.1)
    estimate = torch.from_numpy(rng.standard_normal((2, 1, TARGET)).astype(np.float32) * 0.05)
    edges = torch.tensor([9_000.0, 11_000.0])
    settings = {"keep_band": keep_band, "level_ceiling_db": 0.0, "invented_gain_db": -3.0}
    fir = OutputStage(**settings)(rough, estimate, TARGET, SOURCE / 2, False, edges).numpy()
    frames = OutputStage(**settings, transform="stft")(rough, estimate, TARGET, SOURCE / 2, False, edges).numpy()
    bands = [100, 4000, 8000, 8500, 9500, 10500, 11500, 14000, 18000, 22000]
    for item in range(2):
        assert np.abs(band_levels_db(frames[item, 0], bands) - band_levels_db(fir[item, 0], bands)).max() < 0.1
        alone = OutputStage(**settings, transform="stft")(rough[item:item + 1], estimate[item:item + 1], TARGET,
                                                        SOURCE / 2, False, edges[item:item + 1]).numpy()
        np.testing.assert_allclose(frames[item, 0], alone[0, 0], atol=1e-4 * np.abs(alone).max())
