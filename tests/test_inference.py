"""Upsampler and windowing engine: windowed output is the whole-signal output; hostile input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from audiosr.audio_io import output_format
from audiosr.dsp import output_length, resample
from audiosr.evaluation.metrics import snr
from audiosr.inference.upsampler import AudioError, RateError, Upsampler
from audiosr.inference.windowing import WindowPlan, refine_in_windows
from audiosr.models.checkpoint import save_generator
from conftest import tiny_generator

SOURCE, TARGET = 22050, 44100
# Windowed and whole-signal outputs differ only by float32 rounding (convolutions over
# other lengths and batch sizes sum in another order): measured <= 2.4e-7 on signals
# peaking near 1.3. Anything from a missing context or a misaligned window is >= 1e-4.
EXACT = 1e-5


@pytest.fixture(scope="module", params=[None, (0.8, 0.9)], ids=["plain", "keep-band"])
def generator(request):
    return tiny_generator(keep_band=request.param)


def whole_signal(generator, x: np.ndarray, rate: int = SOURCE) -> np.ndarray:
    """The reference: rough-upsample all of ``x`` ``(C, T)`` and run the generator once."""
    rough = resample(x, rate, TARGET, generator.spec.input_filter, output_length(x.shape[-1], rate, TARGET))
    with torch.inference_mode():
        return generator(torch.from_numpy(rough).unsqueeze(1)).squeeze(1).numpy()


def chirp(seconds: float, rate: int = SOURCE, f0: float = 50.0, f1: float = 10_000.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2))).astype(np.float32)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_windowed_output_equals_whole_signal_output(generator, batch_size):
    x = (0.3 * np.random.default_rng(0).standard_normal((2, SOURCE + 777))).astype(np.float32)
    # Channels on their own, as `whole_signal` runs them (shared stereo: tests/test_stereo.py).
    upsampler = Upsampler(generator, device="cpu", window=0.05, overlap=0.01, batch_size=batch_size,
                          shared_stereo=False)
    y = upsampler.upsample(x, SOURCE)
    assert y.shape == (2, 2 * x.shape[1]) and y.dtype == np.float32
    assert x.shape[1] * 2 // upsampler.plan.hop > 15  # many windows, odd last one
    assert upsampler.plan.context == generator.receptive_field  # the default context
    np.testing.assert_allclose(y, whole_signal(generator, x), rtol=0, atol=EXACT)


def test_too_little_context_is_visible(generator):
    """The default context is needed: with much less, windows differ from the whole signal."""
    x = (0.3 * np.random.default_rng(0).standard_normal((1, SOURCE))).astype(np.float32)
    y = Upsampler(generator, device="cpu", window=0.05, overlap=0.0, context=0.0).upsample(x, SOURCE)
    assert np.abs(y - whole_signal(generator, x)).max() > 1e-4


def test_engine_takes_any_block_sizes(generator):
    x = (0.3 * np.random.default_rng(1).standard_normal((1, 9000))).astype(np.float32)
    upsampler = Upsampler(generator, device="cpu")
    plan = WindowPlan(SOURCE, TARGET, "soxr_vhq", 1764, 441, generator.receptive_field, align=4)
    blocks = np.split(x, [1, 2, 500, 4000, 4001], axis=1)  # includes blocks of 1 sample
    y = np.concatenate(list(refine_in_windows(blocks, plan, upsampler.refine)), axis=1)
    np.testing.assert_allclose(y, whole_signal(generator, x), rtol=0, atol=EXACT)


def test_chirp_has_no_seams_even_without_context():
    """With no context each window's edges see zero padding; the cross-fade hides it."""
    generator = tiny_generator()
    x = chirp(3.0)[None]
    reference = whole_signal(generator, x)[0]

    def seam_error(overlap: float) -> tuple[float, float]:
        upsampler = Upsampler(generator, device="cpu", window=0.2, overlap=overlap, context=0.0)
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


def test_stereo_channels_are_neither_mixed_nor_swapped(generator):
    t = np.arange(SOURCE) / SOURCE
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 3000 * t)]).astype(np.float32)
    upsampler = Upsampler(generator, device="cpu", window=0.1, overlap=0.02)
    y = upsampler.upsample(x, SOURCE)
    rough = resample(x, SOURCE, TARGET, "soxr_vhq")
    corr = np.corrcoef(np.concatenate([y, rough]))[:2, 2:]  # output channel x input channel
    assert corr[0, 0] > 0.9 and corr[1, 1] > 0.9
    assert abs(corr[0, 1]) < 0.1 and abs(corr[1, 0]) < 0.1
    # Without a shared band, channels are a batch: each is exactly what it gives on its own.
    apart = Upsampler(generator, device="cpu", window=0.1, overlap=0.02, shared_stereo=False)
    for c in range(2):
        np.testing.assert_allclose(apart.upsample(x, SOURCE)[c], apart.upsample(x[c], SOURCE), rtol=0, atol=EXACT)


def test_output_rank_and_type_follow_the_input(generator):
    upsampler = Upsampler(generator, device="cpu")
    mono = chirp(0.1)
    assert upsampler.upsample(mono, SOURCE).shape == (2 * len(mono),)
    out = upsampler.upsample(torch.from_numpy(mono)[None].double(), SOURCE)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (1, 2 * len(mono))


@pytest.mark.parametrize("rate", [8_000, 16_000, 20_000])
def test_lower_rates_are_resampled_to_the_source_rate_first_where_the_model_can_add(rate):
    """A network without band keeping changes every band: its input is the file brought to 22.05 kHz."""
    notices: list[str] = []
    upsampler = Upsampler(tiny_generator(), device="cpu", notice=notices.append)
    x = chirp(0.5, rate=rate, f1=0.45 * rate)
    y = upsampler.upsample(x, rate)
    assert notices == [f"input: resampling {rate} Hz to the model's 22050 Hz (soxr VHQ) first"]
    assert y.shape == (output_length(len(x), rate, TARGET),)
    at_source = soxr.resample(x, rate, SOURCE, quality="VHQ")
    np.testing.assert_allclose(y, upsampler.upsample(at_source, SOURCE)[: len(y)], rtol=0, atol=EXACT)


@pytest.mark.parametrize("rate", [8_000, 16_000])
def test_a_rate_whose_band_ends_below_where_the_model_fills_is_resampled_and_named(rate):
    """Band keeping from 0.8 x 11.025 kHz: an 8 or 16 kHz file has nothing there, so the network could add
    nothing; it is resampled (soxr VHQ) and said so, never passed off as upsampled by the model."""
    notices: list[str] = []
    upsampler = Upsampler(tiny_generator(keep_band=(0.8, 0.9)), device="cpu", notice=notices.append)
    x = chirp(0.5, rate=rate, f1=0.45 * rate)
    y = upsampler.upsample(x, rate)
    assert notices == [f"input: {rate} Hz input ends at {rate / 2000:.1f} kHz, below the 8.8 kHz from which this "
                       "model fills: resampled to 44100 Hz (soxr VHQ), nothing added"]
    np.testing.assert_allclose(y, soxr.resample(x, rate, TARGET, quality="VHQ")[: len(y)], rtol=0, atol=EXACT)
    at_20k = chirp(0.5, rate=20_000, f1=9_000)  # its band reaches 9 kHz: the model runs
    notices.clear()
    upsampler.upsample(at_20k, 20_000)
    assert notices == ["input: resampling 20000 Hz to the model's 22050 Hz (soxr VHQ) first"]


@pytest.mark.parametrize("rate", [32_000, 24_000])
def test_a_rate_between_source_and_target_keeps_its_own_band(rate):
    """A tone at 0.4 x the input's rate (12.8 / 9.6 kHz) survives at its level and phase."""
    upsampler = Upsampler(tiny_generator(keep_band=(0.8, 0.9)), device="cpu", notice=lambda _: None)
    n = rate  # one second
    t = np.arange(n) / rate
    high = 0.4 * rate  # inside the input's own band (kept up to 0.88 x its Nyquist frequency)
    x = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * high * t)).astype(np.float32)
    y = upsampler.upsample(x, rate)
    assert y.shape == (output_length(n, rate, TARGET),)
    direct = soxr.resample(x, rate, TARGET, quality="VHQ")[: len(y)]
    middle = slice(len(y) // 4, 3 * len(y) // 4)
    assert 10 * np.log10(np.sum(direct[middle] ** 2) / np.sum((y - direct)[middle] ** 2)) > 40
    if high > SOURCE / 2:
        # Above the model's 11.025 kHz band, the model path alone (the input brought down to
        # 22.05 kHz first) would lose the tone.
        via_source = upsampler.upsample(soxr.resample(x, rate, SOURCE, quality="VHQ"), SOURCE)[: len(y)]
        assert 10 * np.log10(np.sum(direct[middle] ** 2) / np.sum((via_source - direct)[middle] ** 2)) < 10


@pytest.mark.parametrize("rate", [TARGET, 48_000])
def test_rates_at_or_above_the_target_are_refused(generator, rate):
    with pytest.raises(RateError, match=f"{rate} Hz .* target rate {TARGET} Hz"):
        Upsampler(generator, device="cpu").upsample(np.zeros(100, np.float32), rate)


# --- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_input_fails_unless_asked_to_zero_it(generator, bad):
    x = chirp(0.3)
    x[1234] = bad
    with pytest.raises(AudioError, match="NaN or infinite samples .*sample 1234"):
        Upsampler(generator, device="cpu").upsample(x, SOURCE)
    notices: list[str] = []
    y = Upsampler(generator, device="cpu", nonfinite="zero", notice=notices.append).upsample(x, SOURCE)
    assert np.isfinite(y).all() and notices == ["input: 1 NaN or infinite samples replaced with zeros"]


@pytest.mark.parametrize("n", [1, 2, 3, 17])
def test_very_short_input_gives_ceil_n_times_ratio_samples(generator, n, tmp_path):
    upsampler = Upsampler(generator, device="cpu")
    x = np.full((1, n), 0.25, np.float32)
    assert upsampler.upsample(x, SOURCE).shape == (1, 2 * n)
    assert upsampler.upsample(np.full(n, 0.25, np.float32), 16_000).shape == (output_length(n, 16_000, TARGET),)
    sf.write(tmp_path / "short.wav", x.T, SOURCE)
    upsampler.upsample_file(tmp_path / "short.wav", tmp_path / "out.wav")
    assert sf.info(tmp_path / "out.wav").frames == 2 * n


def test_empty_input_is_refused(generator):
    with pytest.raises(AudioError, match="empty"):
        Upsampler(generator, device="cpu").upsample(np.zeros((2, 0), np.float32), SOURCE)


def test_digital_silence_stays_silent_only_with_level_normalisation():
    silence = np.zeros(SOURCE, np.float32)
    loud = Upsampler(tiny_generator(normalise=False), device="cpu").upsample(silence, SOURCE)
    assert np.abs(loud).max() > 1e-3  # the network's biases make a noise floor of their own
    quiet = Upsampler(tiny_generator(normalise=True), device="cpu").upsample(silence, SOURCE)
    assert np.abs(quiet).max() <= 1e-5


def test_level_does_not_change_the_quality_with_level_normalisation():
    rng = np.random.default_rng(4)
    t = np.arange(2 * TARGET) / TARGET
    target = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3_000 * t)
              + 0.002 * rng.standard_normal(t.size)).astype(np.float32)
    low = resample(target, TARGET, SOURCE, "kaiser_best")

    def nearly_right(normalise: bool):
        # A small residual, as a trained network's: what its biases add then shows.
        generator = tiny_generator(normalise=normalise, keep_band=(0.8, 0.9))
        with torch.no_grad():
            generator.network.head.weight.mul_(0.01)
        return generator

    def snr_db(generator, gain: float) -> float:
        y = Upsampler(generator, device="cpu").upsample(gain * low, SOURCE) / gain
        return float(snr(torch.from_numpy(y), torch.from_numpy(target)))

    normalised = nearly_right(True)
    assert abs(snr_db(normalised, 0.01) - snr_db(normalised, 1.0)) < 0.5  # -40 dBFS vs 0 dBFS
    plain = nearly_right(False)
    assert snr_db(plain, 1.0) - snr_db(plain, 0.01) > 3  # the check can fail


# --- files and checkpoints ----------------------------------------------------------------


def test_upsample_file_streams_to_the_same_samples(generator, tmp_path):
    x = (0.3 * np.random.default_rng(2).standard_normal((3, 70_000))).astype(np.float32)  # > one read
    sf.write(tmp_path / "in.wav", x.T, SOURCE, subtype="FLOAT")
    upsampler = Upsampler(generator, device="cpu", window=0.5, overlap=0.1)
    seconds: list[float] = []
    upsampler.upsample_file(tmp_path / "in.wav", tmp_path / "out" / "out.wav", on_progress=seconds.append)
    y, rate = sf.read(tmp_path / "out" / "out.wav", dtype="float32", always_2d=True)
    assert rate == TARGET and sf.info(tmp_path / "out" / "out.wav").subtype == "FLOAT"
    np.testing.assert_allclose(y.T, upsampler.upsample(x, SOURCE), rtol=0, atol=EXACT)
    assert sum(seconds) == pytest.approx(2 * x.shape[1] / TARGET)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["out.wav"]  # no partial file left


def test_a_file_that_fails_half_way_leaves_nothing(generator, tmp_path):
    x = (0.3 * np.random.default_rng(5).standard_normal((1, 200_000))).astype(np.float32)
    x[0, 150_000] = np.nan  # after the first blocks have been written
    sf.write(tmp_path / "nan.wav", x.T, SOURCE, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        Upsampler(generator, device="cpu", window=1.0).upsample_file(tmp_path / "nan.wav", tmp_path / "out" / "nan.wav")
    assert list((tmp_path / "out").iterdir()) == []


def test_checkpoints_rebuild_the_generator(generator, tmp_path):
    x = chirp(0.2)
    direct = Upsampler(generator, device="cpu").upsample(x, SOURCE)
    save_generator(tmp_path / "tiny.pt", generator)
    # A training checkpoint: Lightning's state dict with the module's prefix, plus the spec.
    state = {"generator.network." + k: v for k, v in generator.network.state_dict().items()}
    torch.save({"state_dict": state, "audiosr": generator.spec.to_dict(), "global_step": 3}, tmp_path / "train.ckpt")
    for path in ("tiny.pt", "train.ckpt"):
        upsampler = Upsampler.from_checkpoint(tmp_path / path, device="cpu")
        assert upsampler.spec == generator.spec
        np.testing.assert_array_equal(upsampler.upsample(x, SOURCE), direct)


def test_output_format_keeps_the_input_format_unless_it_cannot_hold_the_rate():
    assert output_format("WAV", "PCM_16", 2, TARGET) == ("WAV", "PCM_16")
    assert output_format("FLAC", "PCM_24", 1, TARGET) == ("FLAC", "PCM_24")
    assert output_format("OGG", "OPUS", 1, TARGET) == ("FLAC", "PCM_24")  # Opus: 8-48 kHz steps only
    # Asked for float (--overload float): the container where it has float samples, else WAV.
    assert output_format("WAV", "PCM_16", 2, TARGET, floating=True) == ("WAV", "FLOAT")
    assert output_format("AIFF", "PCM_24", 1, TARGET, floating=True) == ("AIFF", "FLOAT")
    assert output_format("FLAC", "PCM_24", 1, TARGET, floating=True) == ("WAV", "FLOAT")
    assert output_format("WAV", "DOUBLE", 1, TARGET, floating=True) == ("WAV", "DOUBLE")
    # Lossy inputs become FLAC unless `same` is asked for; `flac` / `wav` force a container.
    assert output_format("MP3", "MPEG_LAYER_III", 2, TARGET) == ("FLAC", "PCM_24")
    assert output_format("OGG", "VORBIS", 1, TARGET) == ("FLAC", "PCM_24")
    assert output_format("WAV", "ULAW", 1, TARGET) == ("FLAC", "PCM_24")
    assert output_format("MP3", "MPEG_LAYER_III", 2, TARGET, container="same") == ("MP3", "MPEG_LAYER_III")
    assert output_format("WAV", "PCM_16", 1, TARGET, container="flac") == ("FLAC", "PCM_16")
    assert output_format("FLAC", "PCM_24", 1, TARGET, container="wav") == ("WAV", "PCM_24")
    assert output_format("OGG", "VORBIS", 1, TARGET, container="wav") == ("WAV", "PCM_24")
    with pytest.raises(ValueError, match="unknown output container 'mp4'"):
        output_format("WAV", "PCM_16", 1, TARGET, container="mp4")


@pytest.mark.parametrize("input_filter", ["kaiser_fast", "soxr_vhq"])
def test_non_integer_rate_ratios_window_exactly(input_filter):
    generator = tiny_generator(source_rate=16_000, input_filter=input_filter, keep_band=(0.8, 0.9))
    x = (0.3 * np.random.default_rng(3).standard_normal((1, 16_333))).astype(np.float32)
    y = Upsampler(generator, device="cpu", window=0.1, overlap=0.02).upsample(x, 16_000)
    np.testing.assert_allclose(y, whole_signal(generator, x, 16_000), rtol=0, atol=EXACT)


def test_precision_is_one_switch_and_float32_by_default(generator):
    x = chirp(0.3)
    fp32 = Upsampler(generator, device="cpu").upsample(x, SOURCE)
    bf16 = Upsampler(generator, device="cpu", precision="bf16").upsample(x, SOURCE)
    np.testing.assert_allclose(fp32, whole_signal(generator, x[None])[0], rtol=0, atol=EXACT)
    assert np.abs(bf16 - fp32).max() > 1e-4  # bf16 really runs at another precision
    with pytest.raises(ValueError, match="precision"):
        Upsampler(generator, device="cpu", precision="8")


def test_arrays_as_soundfile_returns_them_come_back_in_their_own_layout(generator):
    """(T, C) from ``soundfile.read`` is read as frames x channels (not 22050 channels of 2 samples);
    a shape that says neither layout is refused with the layouts it takes."""
    upsampler = Upsampler(generator, device="cpu", notice=lambda _: None)
    rng = np.random.default_rng(4)
    stereo = (0.3 * rng.standard_normal((2, 22050))).astype(np.float32)
    channels_first = upsampler.upsample(stereo, 22050)
    frames_first = upsampler.upsample(np.ascontiguousarray(stereo.T), 22050)
    assert channels_first.shape == (2, 44100) and frames_first.shape == (44100, 2)
    np.testing.assert_array_equal(frames_first, channels_first.T)
    for shape in ((30, 2), (100, 100), (2, 2, 10)):  # 30 samples of 2 channels or 2 of 30? neither is guessed
        with pytest.raises(ValueError, match=r"expected \(T,\), \(C, T\) or \(T, C\)"):
            upsampler.upsample(np.zeros(shape, np.float32), 22050)


def test_upsample_file_refuses_to_replace_a_file_unless_asked(generator, tmp_path):
    upsampler = Upsampler(generator, device="cpu", notice=lambda _: None)
    sf.write(tmp_path / "in.wav", np.zeros(2205, np.float32), 22050)
    (tmp_path / "out.wav").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="out.wav exists; pass overwrite=True"):
        upsampler.upsample_file(tmp_path / "in.wav", tmp_path / "out.wav")
    assert (tmp_path / "out.wav").read_bytes() == b"keep me"
    upsampler.upsample_file(tmp_path / "in.wav", tmp_path / "out.wav", overwrite=True)
    assert sf.info(tmp_path / "out.wav").samplerate == 44100


def test_a_lossy_input_goes_into_any_container_or_the_error_names_the_choice(generator, tmp_path):
    upsampler = Upsampler(generator, device="cpu", notice=lambda _: None)
    rng = np.random.default_rng(5)
    sf.write(tmp_path / "in.mp3", (0.2 * rng.standard_normal((22050, 2))).astype(np.float32), 22050,
             format="MP3", subtype="MPEG_LAYER_III")
    upsampler.upsample_file(tmp_path / "in.mp3", tmp_path / "out.wav")  # WAV cannot hold MP3 samples: PCM
    assert sf.info(tmp_path / "out.wav").channels == 2 and sf.info(tmp_path / "out.wav").subtype == "PCM_16"
    with pytest.raises(ValueError, match="out2.wav: WAV/VORBIS cannot store 2 channels at 44100 Hz; choose another subtype="):
        upsampler.upsample_file(tmp_path / "in.mp3", tmp_path / "out2.wav", subtype="VORBIS")


def test_the_readmes_python_example_runs_as_written(tmp_path, monkeypatch):
    """The README's Python block, executed in a folder holding a 16-bit stereo talk.wav."""
    import re

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[:1]
    rng = np.random.default_rng(6)
    sf.write(tmp_path / "talk.wav", (0.2 * rng.standard_normal((22050, 2))).astype(np.float32), 22050, subtype="PCM_16")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert sf.info(tmp_path / "talk-44k.flac").samplerate == sf.info(tmp_path / "talk-44k.wav").samplerate == 44100
    assert sf.read(tmp_path / "talk-44k.flac")[0].shape == (44100, 2)


def test_windows_refined_on_several_threads_give_the_same_output_and_leave_torchs_threads_as_they_were():
    generator = tiny_generator(keep_band=(0.8, 0.9), normalise=True)
    low = np.random.default_rng(5).standard_normal((2, 22050 * 5)).astype(np.float32) * 0.1
    one = Upsampler(generator, device="cpu", window=1.0, overlap=0.1).upsample(low, 22050)
    before = torch.get_num_threads()
    several = Upsampler(generator, device="cpu", window=1.0, overlap=0.1, workers=3)
    np.testing.assert_allclose(several.upsample(low, 22050), one, atol=1e-5)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="workers"):
        Upsampler(generator, device="cpu", workers=0)
