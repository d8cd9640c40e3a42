"""Reconstruction loss terms: each maps ``(prediction, target)`` to its raw, named parts.

A term takes both signals as ``(N, T)`` float32 and returns ``{part: scalar}``; a term with
``uses_input`` also takes the network's rough input, scaled and filtered as the pair are. Its ``parts``
name what it returns (the multi-resolution STFT term has two: ``sc`` and ``mag``), and its value
is their sum. :class:`audiosr.training.losses.ReconstructionLoss` weights and sums the terms, in
float32 with autocast off; configs name the terms through ``audiosr.training.losses``, which
re-exports them.

The STFT term follows Yamamoto et al., "Parallel WaveGAN" (ICASSP 2020), as in
``kan-bayashi/ParallelWaveGAN`` (``parallel_wavegan/losses/stft_loss.py``); the mel term
follows the Descript Audio Codec (``dac/nn/loss.py``, ``conf/base.yml``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from audiosr.torchaudio_check import load_torchaudio

__all__ = [
    "BandExcess", "LossTerm", "LostSNR", "MultiResolutionSTFT", "MultiScaleMel", "NegativeSNR", "WaveformL1", "WaveformMSE",
]

# Guards the spectral-convergence division; the magnitude floor already keeps the
# denominator at least sqrt(eps * numel), so this never changes a realistic value.
_SC_EPS = 1e-12


def _power(x: Tensor, n_fft: int, hop_length: int, window: Tensor) -> Tensor:
    """``(N, T)`` -> ``(N, n_fft // 2 + 1, frames)`` power ``|STFT|^2``."""
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop_length, win_length=window.shape[-1],
                      window=window.to(device=x.device, dtype=torch.float32), center=True, return_complex=True)
    # From real and imaginary parts: abs() of a complex zero has a NaN gradient.
    return spec.real.square() + spec.imag.square()


def _magnitude(x: Tensor, n_fft: int, hop_length: int, window: Tensor, eps: float) -> Tensor:
    """``(N, T)`` -> ``(N, n_fft // 2 + 1, frames)`` magnitude floored at ``sqrt(eps)``."""
    # The clamp comes before sqrt/log: their gradients at zero are infinite.
    return _power(x, n_fft, hop_length, window).clamp(min=eps).sqrt()


class LossTerm(nn.Module, ABC):
    """One named reconstruction term; ``parts`` names what :meth:`forward` returns."""

    parts: tuple[str, ...] = ()
    # True for a term that compares the output with the network's own input (``forward``'s ``rough``).
    uses_input: bool = False

    def setup(self, sample_rate: int) -> None:
        """Told the signals' rate once, by the module that owns the loss (the data's target rate)."""

    @abstractmethod
    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        """``(N, T)`` float32 prediction and target -> ``{part: scalar}`` (a term with ``uses_input``
        takes a third, ``rough``, the same shape)."""


class WaveformMSE(LossTerm):
    """``mean((y_hat - y)^2)``: the only term that sees phase directly."""

    parts = ("mse",)

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"mse": (prediction - target).square().mean()}


class WaveformL1(LossTerm):
    """``mean|y_hat - y|``."""

    parts = ("l1",)

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"l1": (prediction - target).abs().mean()}


class NegativeSNR(LossTerm):
    """``-SNR / 10``: minus the signal-to-noise ratio in dB, per item, averaged, divided by 10.

    A waveform term whose scale does not depend on the level or length of the signal
    (unlike the MSE, whose per-sample gradient shrinks with both until the spectral terms'
    swamp it): it pulls the output toward the target's phase wherever that phase can be
    predicted, and toward silence where it cannot, which is what SNR rewards.

    Args:
        eps: added to both energies, so silent items stay finite.
    """

    parts = ("neg_snr",)

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        signal = target.square().sum(dim=-1) + self.eps
        error = (target - prediction).square().sum(dim=-1) + self.eps
        return {"neg_snr": -(10 * torch.log10(signal / error)).mean() / 10}


class LostSNR(LossTerm):
    """How many dB of SNR the output loses against its own input, beyond ``margin_db``, per item:
    ``mean relu(SNR(rough) - SNR(output) - margin_db) / 10``, both SNRs capped at ``cap_db``.

    The price of a band invented too loud, charged where it is paid. Below its edge the output is
    the input's own, so the difference is what the invented band does to the item's error: a band
    at the right level with a phase it cannot know adds its energy to the error, and an item whose
    original holds much above the edge (an 8 kHz voice line with loud sibilants) loses dB where an
    encoder-cut item, whose missing band is narrow, loses a fraction of one. ``NegativeSNR`` weighs
    each dB alike in every item; this term is zero until an item loses more than the margin, so it
    charges only the items that would be counted as made worse. (A network that sets one level for
    every kind of input still moves the others' level with it: ``bench/ANY-INPUT.md`` compares the
    term with a gain set by hand.)

    Args:
        margin_db: SNR an item may lose before it costs anything.
        cap_db: both SNRs are counted up to this (an error this far below the signal counts as this
            far), as the evaluation counts them; it also keeps an input with nothing missing, whose
            own error is zero, finite.
    """

    parts = ("lost_snr",)
    uses_input = True

    def __init__(self, margin_db: float = 1.0, cap_db: float = 60.0) -> None:
        super().__init__()
        if margin_db < 0:
            raise ValueError(f"margin_db must be >= 0, got {margin_db}")
        self.margin_db, self.cap_db = float(margin_db), float(cap_db)

    def forward(self, prediction: Tensor, target: Tensor, rough: Tensor | None = None) -> dict[str, Tensor]:
        if rough is None:
            raise ValueError("LostSNR compares the output with its input: pass the rough input")
        signal = target.square().sum(dim=-1)
        floor = signal * 10 ** (-self.cap_db / 10) + 1e-12
        error = (target - prediction).square().sum(dim=-1) + floor
        error_in = (target - rough).square().sum(dim=-1) + floor
        lost_db = 10 * torch.log10(error / error_in)
        return {"lost_snr": torch.relu(lost_db - self.margin_db).mean() / 10}

    def extra_repr(self) -> str:
        return f"margin_db={self.margin_db:g}, cap_db={self.cap_db:g}"


class MultiResolutionSTFT(LossTerm):
    """Spectral convergence ``sc`` and log-magnitude ``mag``, averaged over resolutions.

    For each ``(fft_size, win_length, hop_length)``, with ``|S| = sqrt(max(|STFT|^2, eps))``
    (periodic Hann window of ``win_length`` zero-padded to ``fft_size``, ``center=True``):

    * ``sc  = || |S(y)| - |S(y_hat)| ||_F / (|| |S(y)| ||_F + 1e-12)`` over the whole batch,
    * ``mag = mean | log|S(y)| - log|S(y_hat)| |`` (natural log).

    Args:
        resolutions: ``(fft_size, win_length, hop_length)`` triples (default: the reference's).
        eps: floor on ``|STFT|^2``, so values and gradients stay finite on silence.
    """

    parts = ("sc", "mag")

    def __init__(
        self,
        resolutions: Sequence[tuple[int, int, int]] = ((512, 240, 50), (1024, 600, 120), (2048, 1200, 240)),
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        resolutions = tuple(tuple(int(v) for v in r) for r in resolutions)
        if not resolutions:
            raise ValueError("at least one STFT resolution is needed")
        for res in resolutions:
            if len(res) != 3:
                raise ValueError(f"a resolution is (fft_size, win_length, hop_length), got {res}")
            fft_size, win_length, hop_length = res
            if not (0 < win_length <= fft_size and hop_length > 0):
                raise ValueError(f"need 0 < win_length <= fft_size and hop_length > 0, got {res}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.resolutions: tuple[tuple[int, int, int], ...] = resolutions  # type: ignore[assignment]
        self.eps = float(eps)
        for i, (_, win_length, _) in enumerate(resolutions):
            # Non-persistent: the windows follow .to(device) but stay out of checkpoints.
            self.register_buffer(f"window_{i}", torch.hann_window(win_length, periodic=True), persistent=False)

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        sc = prediction.new_zeros(())
        mag = prediction.new_zeros(())
        for i, (fft_size, _, hop_length) in enumerate(self.resolutions):
            # One STFT call for both signals.
            both = _magnitude(torch.cat([prediction, target]), fft_size, hop_length, getattr(self, f"window_{i}"), self.eps)
            mag_hat, mag_ref = both.chunk(2, dim=0)
            sc = sc + torch.linalg.vector_norm(mag_ref - mag_hat) / (torch.linalg.vector_norm(mag_ref) + _SC_EPS)
            mag = mag + (mag_ref.log() - mag_hat.log()).abs().mean()
        n = len(self.resolutions)
        return {"sc": sc / n, "mag": mag / n}

    def extra_repr(self) -> str:
        return f"resolutions={self.resolutions}, eps={self.eps}"


class MultiScaleMel(LossTerm):
    """DAC's multi-scale mel loss: ``mean_i L1(log10 M_i(y_hat), log10 M_i(y))``, summed over scales.

    Per scale ``i``: Hann window of ``window_lengths[i]``, hop a quarter of it, magnitude
    (not power) through ``n_mels[i]`` Slaney mel filters from 0 Hz to Nyquist, clamped at
    ``clamp_eps`` before the log10.

    The filters depend on the sample rate, which the owning module passes to :meth:`setup`
    (the data module's target rate: a rate is never configured twice).
    """

    parts = ("mel",)

    def __init__(
        self,
        window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
        n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
        clamp_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if len(window_lengths) != len(n_mels) or not window_lengths:
            raise ValueError("window_lengths and n_mels need one entry per scale")
        self.window_lengths = tuple(int(w) for w in window_lengths)
        self.n_mels = tuple(int(m) for m in n_mels)
        self.clamp_eps = float(clamp_eps)
        self.sample_rate: int | None = None
        for i, window in enumerate(self.window_lengths):
            self.register_buffer(f"window_{i}", torch.hann_window(window, periodic=True), persistent=False)

    def setup(self, sample_rate: int) -> None:
        melscale_fbanks = load_torchaudio().functional.melscale_fbanks
        self.sample_rate = int(sample_rate)
        for i, (window, mels) in enumerate(zip(self.window_lengths, self.n_mels)):
            filters = melscale_fbanks(window // 2 + 1, 0.0, sample_rate / 2, mels, self.sample_rate,
                                      norm="slaney", mel_scale="slaney")
            self.register_buffer(f"filters_{i}", filters, persistent=False)  # (freqs, mels)

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        if self.sample_rate is None:
            raise RuntimeError("MultiScaleMel.setup(sample_rate) must be called before use")
        total = prediction.new_zeros(())
        for i, window in enumerate(self.window_lengths):
            # Floored at the log's own floor: sqrt's gradient at an exactly silent bin is infinite,
            # and the clamp below would turn it into NaN (inf x 0), poisoning every weight.
            both = _magnitude(torch.cat([prediction, target]), window, window // 4, getattr(self, f"window_{i}"),
                              self.clamp_eps ** 2)
            mel = torch.einsum("nft,fm->nmt", both, getattr(self, f"filters_{i}"))
            log_mel = mel.clamp(min=self.clamp_eps).log10()
            hat, ref = log_mel.chunk(2, dim=0)
            total = total + (hat - ref).abs().mean()
        return {"mel": total}


class BandExcess(LossTerm):
    """How much louder than the target the output's high bands are: ``mean relu(log10 E_hat - log10 E)``.

    Per STFT frame and per band of ``band_hz`` from ``low_hz`` to Nyquist, ``E`` is the band's
    power plus a floor ``floor_db`` below the target frame's total power. Only excess counts, in
    bels (1.0 = 10 dB too loud), so together with the symmetric ``mag`` term an over-loud band
    costs more than an equally quiet one. That is the asymmetry SNR has: an invented band whose
    phase cannot be predicted adds its whole energy to the error, and a recording with little
    above its edge (a chime, a clean voice clip) loses many dB to a band at the level of a
    bright one. The floor keeps a frame's inaudible residue, far below its own level, free.

    Args:
        fft_size, hop_length: the STFT (periodic Hann window of ``fft_size``, ``center=True``).
        band_hz: width of each band.
        low_hz: the lowest band's lower edge (below it the generator passes the input).
        floor_db: the floor added to both band powers, relative to the target frame's power.
    """

    parts = ("excess",)

    def __init__(self, fft_size: int = 2048, hop_length: int = 512, band_hz: float = 1000.0, low_hz: float = 8000.0,
                 floor_db: float = -60.0) -> None:
        super().__init__()
        if not (fft_size > 0 and hop_length > 0 and band_hz > 0 and low_hz >= 0):
            raise ValueError(f"need positive fft_size, hop_length, band_hz and low_hz >= 0, got "
                             f"{fft_size}, {hop_length}, {band_hz}, {low_hz}")
        self.fft_size, self.hop_length = int(fft_size), int(hop_length)
        self.band_hz, self.low_hz, self.floor_db = float(band_hz), float(low_hz), float(floor_db)
        self.sample_rate: int | None = None
        self.register_buffer("window", torch.hann_window(self.fft_size, periodic=True), persistent=False)

    def setup(self, sample_rate: int) -> None:
        nyquist = sample_rate / 2
        if self.low_hz + self.band_hz > nyquist:
            raise ValueError(f"no band of {self.band_hz:g} Hz fits between low_hz={self.low_hz:g} and Nyquist {nyquist:g}")
        self.sample_rate = int(sample_rate)
        freqs = torch.arange(self.fft_size // 2 + 1) * sample_rate / self.fft_size
        index = ((freqs - self.low_hz) / self.band_hz).floor().long()
        bands = int(index.max().item()) + 1
        members = torch.zeros(freqs.numel(), bands)
        inside = index >= 0
        members[inside.nonzero().squeeze(1), index[inside]] = 1.0
        self.register_buffer("members", members, persistent=False)  # (freqs, bands)

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        if self.sample_rate is None:
            raise RuntimeError("BandExcess.setup(sample_rate) must be called before use")
        power = _power(torch.cat([prediction, target]), self.fft_size, self.hop_length, self.window)  # (2N, F, T)
        band = torch.einsum("nft,fb->nbt", power, self.members)
        band_hat, band_ref = band.chunk(2, dim=0)
        frame_ref = power.chunk(2, dim=0)[1].sum(dim=1, keepdim=True)
        floor = frame_ref * 10 ** (self.floor_db / 10) + 1e-12
        excess = torch.relu(torch.log10(band_hat + floor) - torch.log10(band_ref + floor))
        return {"excess": excess.mean()}

    def extra_repr(self) -> str:
        return (f"fft_size={self.fft_size}, hop_length={self.hop_length}, band_hz={self.band_hz:g}, "
                f"low_hz={self.low_hz:g}, floor_db={self.floor_db:g}")
