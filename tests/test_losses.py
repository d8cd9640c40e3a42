"""Reconstruction losses: named terms, their formulas, precision, gradients, configuration."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from audiosr.training.losses import BandExcess, LossTerm, LostSNR, MultiResolutionSTFT, MultiScaleMel, NegativeSNR, ReconstructionLoss, WaveformMSE

SMALL = ((64, 48, 16), (128, 128, 32))


def MultiResolutionSTFTLoss(resolutions=MultiResolutionSTFT.__init__.__defaults__[0], mse_weight: float = 100.0,
                            stft_weight: float = 1.0, eps: float = 1e-7) -> ReconstructionLoss:
    """The reference recipe's loss: ``stft_weight * (sc + mag) + mse_weight * mse``."""
    return ReconstructionLoss({"mrstft": MultiResolutionSTFT(resolutions, eps), "mse": WaveformMSE()},
                              {"mrstft": stft_weight, "mse": mse_weight})


def _pair(batch: int = 2, length: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(batch, 1, length, generator=gen)
    prediction = target + 0.3 * torch.randn(batch, 1, length, generator=gen)
    return prediction, target


def test_identical_inputs_give_zero_loss() -> None:
    loss = MultiResolutionSTFTLoss()
    y = torch.randn(2, 1, 4000)
    out = loss(y, y.clone())
    assert set(out) == {"total", "mse", "sc", "mag"}
    for name, value in out.items():
        assert value.shape == (), name
        assert abs(value.item()) < 1e-6, name


def test_parts_match_a_hand_computation_for_one_resolution() -> None:
    fft_size, win_length, hop = 64, 48, 16
    eps = 1e-7
    loss = MultiResolutionSTFTLoss(resolutions=[(fft_size, win_length, hop)], eps=eps)
    prediction, target = _pair(batch=2, length=300, seed=1)

    # The window written out independently: a periodic Hann of win_length centred
    # in fft_size, which is what torch.stft does with a shorter window.
    n = torch.arange(win_length, dtype=torch.float32)
    hann = 0.5 - 0.5 * torch.cos(2 * math.pi * n / win_length)
    left = (fft_size - win_length) // 2
    window = F.pad(hann, (left, fft_size - win_length - left))

    def magnitude(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        spec = torch.stft(flat, fft_size, hop, window=window, center=True, return_complex=True)
        return torch.sqrt(torch.clamp(spec.abs() ** 2, min=eps))

    mag_y, mag_hat = magnitude(target), magnitude(prediction)
    sc = torch.norm(mag_y - mag_hat, p="fro") / torch.norm(mag_y, p="fro")
    log_mag = torch.mean(torch.abs(torch.log(mag_y) - torch.log(mag_hat)))
    mse = torch.mean((prediction - target) ** 2)

    out = loss(prediction, target)
    torch.testing.assert_close(out["sc"], sc, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out["mag"], log_mag, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out["mse"], mse, rtol=1e-6, atol=0)
    assert out["sc"].item() > 0.05 and out["mag"].item() > 0.05


def test_parts_are_averaged_over_resolutions() -> None:
    prediction, target = _pair(seed=2)
    each = [MultiResolutionSTFTLoss(resolutions=[r])(prediction, target) for r in SMALL]
    both = MultiResolutionSTFTLoss(resolutions=SMALL)(prediction, target)
    for part in ("sc", "mag"):
        torch.testing.assert_close(both[part], (each[0][part] + each[1][part]) / 2)


@pytest.mark.parametrize("mse_weight,stft_weight", [(100.0, 1.0), (3.0, 0.5), (0.0, 2.0)])
def test_total_is_the_weighted_sum(mse_weight: float, stft_weight: float) -> None:
    loss = MultiResolutionSTFTLoss(SMALL, mse_weight=mse_weight, stft_weight=stft_weight)
    out = loss(*_pair(seed=3))
    expected = stft_weight * (out["sc"] + out["mag"]) + mse_weight * out["mse"]
    torch.testing.assert_close(out["total"], expected)


def test_channels_are_flattened_into_the_batch() -> None:
    loss = MultiResolutionSTFTLoss(SMALL)
    prediction, target = _pair(batch=4, seed=4)
    as_channels = loss(prediction.reshape(2, 2, -1), target.reshape(2, 2, -1))
    as_batch = loss(prediction, target)
    for name in as_batch:
        torch.testing.assert_close(as_channels[name], as_batch[name])


def test_autocast_gives_the_float32_value() -> None:
    loss = MultiResolutionSTFTLoss()
    prediction, target = _pair(length=4000, seed=5)
    reference = loss(prediction, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = loss(prediction, target)
        # A bf16 network output is upcast, not evaluated in bf16.
        from_bf16 = loss(prediction.bfloat16(), target)
    for name in reference:
        assert under_autocast[name].dtype == torch.float32
        assert torch.isfinite(from_bf16[name]), name
        torch.testing.assert_close(under_autocast[name], reference[name], rtol=1e-6, atol=0)
        torch.testing.assert_close(
            from_bf16[name], loss(prediction.bfloat16().float(), target)[name], rtol=1e-6, atol=0
        )


@pytest.mark.parametrize("target_is_silent", [False, True])
def test_gradient_is_finite_for_a_silent_prediction(target_is_silent: bool) -> None:
    loss = MultiResolutionSTFTLoss(SMALL)
    target = torch.zeros(2, 1, 600) if target_is_silent else _pair(seed=6)[1]
    prediction = torch.zeros(2, 1, 600, requires_grad=True)
    out = loss(prediction, target)
    out["total"].backward()
    assert all(torch.isfinite(v) for v in out.values())
    assert prediction.grad is not None and torch.all(torch.isfinite(prediction.grad))
    if not target_is_silent:
        assert prediction.grad.abs().sum() > 0


def test_mel_gradient_is_finite_when_part_of_the_prediction_is_silent() -> None:
    """A digitally silent stretch in a real crop once made every weight of a GAN run NaN."""
    loss = ReconstructionLoss({"mel": MultiScaleMel(window_lengths=[64, 128], n_mels=[10, 20])}).setup(22050)
    _, target = _pair(seed=6)
    prediction = target.clone()
    prediction[..., :300] = 0.0
    prediction.requires_grad_(True)
    loss(prediction, target)["total"].backward()
    assert prediction.grad is not None and torch.all(torch.isfinite(prediction.grad))
    assert prediction.grad[..., 300:].abs().sum() > 0


def test_optimising_a_waveform_lowers_the_loss() -> None:
    gen = torch.Generator().manual_seed(7)
    n = torch.arange(4096, dtype=torch.float32)

    def tone(hz: float, amplitude: float) -> torch.Tensor:
        return amplitude * torch.sin(2 * math.pi * hz * n / 44100)

    target = (tone(440, 0.4) + tone(5000, 0.2)).reshape(1, 1, -1)
    waveform = (0.05 * torch.randn(1, 1, 4096, generator=gen)).requires_grad_()
    loss = MultiResolutionSTFTLoss(SMALL)
    first = loss(waveform, target)
    # Sign gradient descent (Adam's early behaviour) by hand: constructing a
    # torch.optim optimiser imports torch._dynamo, seconds of this file's budget.
    for _ in range(30):
        (grad,) = torch.autograd.grad(loss(waveform, target)["total"], waveform)
        with torch.no_grad():
            waveform -= 1e-2 * grad.sign()
    last = loss(waveform, target)
    assert last["total"].item() < 0.5 * first["total"].item()
    assert last["mse"].item() < first["mse"].item()
    assert last["sc"].item() < first["sc"].item()


def test_default_loss_is_the_reference_recipe() -> None:
    default, reference = ReconstructionLoss(), MultiResolutionSTFTLoss()
    assert default.weights == {"mrstft": 1.0, "mse": 100.0}
    prediction, target = _pair(length=3000, seed=9)
    for name, value in reference(prediction, target).items():
        torch.testing.assert_close(default(prediction, target)[name], value)


def test_windows_stay_out_of_the_state_dict() -> None:
    loss = MultiResolutionSTFTLoss()
    assert len(list(loss.buffers())) == 3
    assert loss.state_dict() == {}
    # Moving the module in dtype must not change the float32 evaluation.
    prediction, target = _pair(length=3000, seed=8)
    reference = loss(prediction, target)["total"]
    moved = loss.to(torch.float64)(prediction, target)["total"]
    assert moved.dtype == torch.float32
    torch.testing.assert_close(moved, reference, rtol=1e-6, atol=0)


@pytest.mark.parametrize("bad", [[], [(64, 128, 16)], [(64, 48, 0)], [(64, 48)]])
def test_invalid_resolutions_are_refused(bad: list) -> None:
    with pytest.raises(ValueError):
        MultiResolutionSTFT(resolutions=bad)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="same shape"):
        MultiResolutionSTFTLoss(SMALL)(torch.zeros(1, 1, 600), torch.zeros(1, 1, 601))


def test_weights_must_name_terms_and_parts_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="unknown terms"):
        ReconstructionLoss({"mse": WaveformMSE()}, {"mel": 15.0})
    with pytest.raises(ValueError, match="distinct"):
        ReconstructionLoss({"a": WaveformMSE(), "b": WaveformMSE()})
    only_mse = ReconstructionLoss({"mse": WaveformMSE()})
    assert only_mse.weights == {"mse": 1.0}  # a term without a weight counts once


def test_mel_term_matches_a_hand_computation_for_one_scale() -> None:
    from torchaudio.functional import melscale_fbanks

    window, mels, rate = 256, 20, 16000
    term = MultiScaleMel(window_lengths=[window], n_mels=[mels])
    with pytest.raises(RuntimeError, match="setup"):
        term(torch.zeros(1, 2000), torch.zeros(1, 2000))
    term.setup(rate)
    prediction, target = (x.reshape(2, -1) for x in _pair(length=2000, seed=10))

    def log_mel(x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x, window, window // 4, window=torch.hann_window(window), center=True,
                          return_complex=True).abs()
        filters = melscale_fbanks(window // 2 + 1, 0.0, rate / 2, mels, rate, norm="slaney", mel_scale="slaney")
        return torch.log10(torch.clamp(torch.einsum("nft,fm->nmt", spec, filters), min=1e-5))

    expected = (log_mel(prediction) - log_mel(target)).abs().mean()
    torch.testing.assert_close(term(prediction, target)["mel"], expected, rtol=1e-5, atol=1e-6)
    assert term(target, target)["mel"].item() == 0.0


def test_mel_term_learns_its_rate_from_the_loss_owner() -> None:
    loss = ReconstructionLoss({"mel": MultiScaleMel(window_lengths=[64, 128], n_mels=[10, 20])}).setup(22050)
    assert loss.terms["mel"].sample_rate == 22050
    out = loss(*_pair(length=4000, seed=11))
    assert out["total"].item() == pytest.approx(out["mel"].item()) and out["mel"].item() > 0


def test_a_new_term_is_one_small_class() -> None:
    class L1(LossTerm):
        parts = ("l1",)

        def forward(self, prediction, target):
            return {"l1": (prediction - target).abs().mean()}

    loss = ReconstructionLoss({"l1": L1(), "mse": WaveformMSE()}, {"l1": 2.0})
    out = loss(*_pair(seed=12))
    torch.testing.assert_close(out["total"], 2.0 * out["l1"] + out["mse"])


def test_configurable_from_jsonargparse() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--loss", type=ReconstructionLoss)
    cfg = parser.parse_args(["--loss", """{"class_path": "audiosr.training.losses.ReconstructionLoss", "init_args": {
        "terms": {"mrstft": {"class_path": "audiosr.training.losses.MultiResolutionSTFT",
                             "init_args": {"resolutions": [[256, 128, 32], [512, 512, 64]]}},
                  "mse": "audiosr.training.losses.WaveformMSE"},
        "weights": {"mrstft": 1.0, "mse": 100.0}}}""", "--loss.init_args.weights.mse", "50"])
    loss = parser.instantiate(cfg).loss
    assert loss.terms["mrstft"].resolutions == ((256, 128, 32), (512, 512, 64))
    assert loss.weights == {"mrstft": 1.0, "mse": 50.0}


def test_negative_snr_is_minus_the_snr_over_ten_and_ignores_the_level() -> None:
    from audiosr.evaluation.metrics import snr

    prediction, target = _pair(batch=3, seed=13)
    flat_p, flat_t = prediction.reshape(3, -1), target.reshape(3, -1)
    value = NegativeSNR(eps=0.0)(flat_p, flat_t)["neg_snr"]
    torch.testing.assert_close(value, -snr(flat_p, flat_t).mean() / 10)
    torch.testing.assert_close(NegativeSNR()(0.01 * flat_p, 0.01 * flat_t)["neg_snr"], value, rtol=1e-3, atol=1e-3)
    assert torch.isfinite(NegativeSNR()(torch.zeros(1, 100), torch.zeros(1, 100))["neg_snr"])


def _band_noise(rate: int, seconds: float, low_hz: float, high_hz: float, seed: int) -> torch.Tensor:
    """``(1, T)`` noise with a flat spectrum between ``low_hz`` and ``high_hz`` and nothing else."""
    n = int(rate * seconds)
    gen = torch.Generator().manual_seed(seed)
    spectrum = torch.fft.rfft(torch.randn(n, generator=gen))
    freqs = torch.fft.rfftfreq(n, 1 / rate)
    return torch.fft.irfft(spectrum * ((freqs >= low_hz) & (freqs < high_hz)), n).unsqueeze(0)


def test_band_excess_charges_an_over_loud_band_in_bels_and_a_quiet_one_nothing() -> None:
    rate = 44100
    term = BandExcess(fft_size=2048, hop_length=512, band_hz=1000.0, low_hz=8000.0, floor_db=-60.0)
    term.setup(rate)
    bands = term.members.shape[1]
    assert bands == 15  # 8-9, ..., 21-22 kHz and the 22-22.05 kHz remainder
    # Every band of noise stays a few hundred Hz inside one band, so a window's leakage stays there too.
    low = _band_noise(rate, 1.0, 100.0, 7800.0, seed=0)
    high = _band_noise(rate, 1.0, 12200.0, 12800.0, seed=1)
    target = low + 0.1 * high  # the 12-13 kHz band 20 dB under the low band's density
    assert term(target, target)["excess"].item() == pytest.approx(0.0, abs=1e-6)
    # 10 dB too loud in one band of 15: one bel in that band, nothing elsewhere.
    too_loud = low + 0.1 * math.sqrt(10) * high
    assert term(too_loud, target)["excess"].item() == pytest.approx(1.0 / bands, rel=0.05)
    # 10 dB too quiet, or the band missing: (almost) no charge; the symmetric terms see that. What
    # is left comes from the first and last frames, where the reflect padding spreads both bands
    # everywhere and the low band's leakage and the high band's can cancel.
    for quiet in (low + 0.1 / math.sqrt(10) * high, low):
        assert term(quiet, target)["excess"].item() < 0.05 / bands
    # A band invented where the target has none costs its level above the floor, 60 dB under the
    # frame: the band holds 0.01 x 600 Hz of the frame's 7700 + 6, so log10(1 + 7.79e-4 / 1e-6) bels.
    invented = target + 0.1 * _band_noise(rate, 1.0, 16200.0, 16800.0, seed=2)
    expected = math.log10(1 + 0.01 * 600 / (7700 + 0.01 * 600) / 1e-6) / bands
    assert term(invented, target)["excess"].item() == pytest.approx(expected, rel=0.05)


def test_band_excess_pulls_an_over_loud_band_down_and_stops_at_the_target_level() -> None:
    rate = 44100
    term = BandExcess()
    term.setup(rate)
    low = _band_noise(rate, 0.5, 100.0, 8000.0, seed=3)
    high = _band_noise(rate, 0.5, 11000.0, 15000.0, seed=4)
    target = low + 0.05 * high
    gain_db = torch.tensor(12.0, requires_grad=True)
    optimiser = torch.optim.SGD([gain_db], lr=20.0)
    for _ in range(60):
        optimiser.zero_grad()
        loss = term(low + 0.05 * 10 ** (gain_db / 20) * high, target)["excess"]
        loss.backward()
        assert torch.isfinite(gain_db.grad)
        optimiser.step()
    assert -0.5 < gain_db.item() < 1.0


def test_band_excess_is_finite_on_silence_and_refuses_a_band_above_nyquist() -> None:
    term = BandExcess()
    term.setup(44100)
    prediction = torch.zeros(2, 4096, requires_grad=True)
    value = term(prediction, torch.zeros(2, 4096))["excess"]
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(prediction.grad).all()
    with pytest.raises(ValueError, match="Nyquist"):
        BandExcess(low_hz=11000.0).setup(22050)
    with pytest.raises(RuntimeError, match="setup"):
        BandExcess()(torch.zeros(1, 4096), torch.zeros(1, 4096))


def test_lost_snr_is_the_snr_lost_against_the_input_beyond_the_margin() -> None:
    rate = 44100
    low = _band_noise(rate, 0.5, 100.0, 8000.0, seed=5)
    high = _band_noise(rate, 0.5, 8000.0, 16000.0, seed=6)
    target, rough = low + 0.3 * high, low  # the input lacks the band above 8 kHz
    invented = _band_noise(rate, 0.5, 8000.0, 16000.0, seed=7)  # the band's level, not its phase
    e_in = (0.3 * high).square().sum()
    for gain, margin in ((0.3, 1.0), (0.6, 1.0), (0.6, 0.0), (0.05, 1.0)):
        prediction = low + gain * invented
        e_out = (target - prediction).square().sum()
        lost = 10 * math.log10(float(e_out / e_in))
        value = LostSNR(margin_db=margin)(prediction, target, rough)["lost_snr"].item()
        assert value == pytest.approx(max(lost - margin, 0.0) / 10, abs=2e-3)
    # At the target's level a band of unknown phase doubles the error: 3 dB lost, 2 beyond a 1 dB margin.
    at_level = LostSNR(margin_db=1.0)(low + 0.3 * invented, target, rough)["lost_snr"].item()
    assert at_level == pytest.approx(0.2, abs=0.02)
    # The input itself, or an output that does better than it, costs nothing.
    assert LostSNR()(rough, target, rough)["lost_snr"].item() == 0.0
    assert LostSNR()(target, target, rough)["lost_snr"].item() == 0.0


def test_lost_snr_is_per_item_and_finite_when_the_input_misses_nothing() -> None:
    rate = 44100
    full = _band_noise(rate, 0.5, 100.0, 20000.0, seed=8)
    sliver = 0.01 * _band_noise(rate, 0.5, 20000.0, 22000.0, seed=9)
    # An item with nothing missing: its input's error is zero, and the cap (60 dB) keeps the SNRs finite.
    prediction = (full + sliver).requires_grad_(True)
    value = LostSNR(margin_db=0.0, cap_db=60.0)(prediction, full, full)["lost_snr"]
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(prediction.grad).all()
    # The output's error, the sliver, over the input's, none, both plus the floor 60 dB under the signal.
    floor = float(full.square().sum()) * 1e-6
    expected = 10 * math.log10((float(sliver.square().sum()) + floor) / floor)
    assert 5.0 < expected < 15.0
    assert value.item() == pytest.approx(expected / 10, rel=1e-3)
    # Two items: only the one that loses counts, averaged over both.
    low = _band_noise(rate, 0.5, 100.0, 8000.0, seed=10)
    high = _band_noise(rate, 0.5, 8000.0, 16000.0, seed=11)
    targets, roughs = torch.cat([low + high, low + high]), torch.cat([low, low])
    predictions = torch.cat([low, low + 2 * _band_noise(rate, 0.5, 8000.0, 16000.0, seed=12)])
    one = LostSNR(margin_db=0.0)(predictions[1:], targets[1:], roughs[1:])["lost_snr"]
    both = LostSNR(margin_db=0.0)(predictions, targets, roughs)["lost_snr"]
    assert both.item() == pytest.approx(one.item() / 2, rel=1e-5)


def test_lost_snr_pulls_an_over_loud_band_down_until_the_item_is_within_the_margin() -> None:
    rate = 44100
    low = _band_noise(rate, 0.5, 100.0, 8000.0, seed=13)
    high = _band_noise(rate, 0.5, 8000.0, 16000.0, seed=14)
    invented = _band_noise(rate, 0.5, 8000.0, 16000.0, seed=15)
    target, rough = low + 0.5 * high, low
    term = LostSNR(margin_db=1.0)
    gain_db = torch.tensor(6.0, requires_grad=True)  # 6 dB over the target's band: about 7 dB lost
    optimiser = torch.optim.SGD([gain_db], lr=20.0)
    losses = []
    for _ in range(80):
        optimiser.zero_grad()
        loss = term(low + 0.5 * 10 ** (gain_db / 20) * invented, target, rough)["lost_snr"]
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] > 0.5 and losses[-1] == 0.0
    # 1 dB lost = the band's energy at 10^0.1 - 1 = 0.26 of the missing band's: 5.9 dB under it.
    assert -6.5 < gain_db.item() < -5.0


def test_a_loss_that_compares_with_the_input_refuses_to_run_without_it() -> None:
    loss = ReconstructionLoss({"mse": WaveformMSE(), "lost": LostSNR()})
    prediction, target = _pair()
    assert loss.uses_input and not ReconstructionLoss().uses_input
    with pytest.raises(ValueError, match="lost"):
        loss(prediction, target)
    with pytest.raises(ValueError, match="same shape"):
        loss(prediction, target, target[..., :-1])
    parts = loss(prediction, target, target)
    assert set(parts) == {"total", "mse", "lost_snr"}
    with pytest.raises(ValueError, match="margin_db"):
        LostSNR(margin_db=-1.0)
