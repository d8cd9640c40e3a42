"""Spectral families: networks that work on STFT frames of the rough input, at frame rate.

Both take the rough upsampled signal ``(B, 1, T)``, compute its STFT (Hann, ``n_fft``,
``hop_length``), run a ConvNeXt backbone over the frames (features: log-magnitude and the
cosine and sine of the phase of the bins the input really has, up to its band edge),
predict the bins above ``PREDICTED_FROM x`` the band edge, and turn the spectrum back into
a waveform with the inverse STFT, as Vocos's ISTFT head does (``vocos/heads.py``). Bins
below are the input's own. The band edge follows from the rates (``bind_rates``, called
by the ``Generator``), so a network never repeats a rate in its configuration.

* :class:`MagnitudeNetwork` predicts the log-magnitude (a residual on the input's) and
  *reuses a phase*: the input's own band, copied up in frequency (``phase="shift"``:
  single-sideband shift by a multiple of ``n_fft / hop_length`` bins, so that every
  copied bin keeps a consistent phase advance from frame to frame) or mirrored about the
  band edge (``"mirror"``, as aliasing would). Both are functions of the input alone, so
  long files cut into windows get the same phase as whole ones (a random phase would not).
* :class:`MagnitudePhaseNetwork` predicts magnitude and phase, the phase as the angle of
  two linear outputs (AP-BWE's parameterisation, ``yxlu-0102/AP-BWE``, ``models/model.py``).

``any_band: true`` makes one network for every input (any rate from 8 kHz up, codec files
whose encoder cut the band), trained with its input already at the target rate: each item's
band edge is found from the input (the ``Generator`` passes it), the network sees the bins
below it (and a mask saying which they are) and predicts every bin above. Only
:class:`MagnitudePhaseNetwork` offers it: reusing the input's phase needs one edge for all.

Working at frame rate (a few hundred frames per second instead of 44 100 samples) makes
them much cheaper than a waveform U-Net. Like every network of audiosr they are wrapped
in the ``Generator``, which keeps the input's band and normalises the level.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from audiosr import frames
from audiosr.models.base import SuperResolutionNetwork
from audiosr.models.layers import Activation, ConvNeXtBlock

PhaseChoice = Literal["shift", "mirror"]
LOG_FLOOR = math.log(1e-5)  # log-magnitude of an empty bin (the input above its band edge)
LOG_CEILING = 8.0  # e^8: far above any bin of a full-scale signal at these FFT sizes
# The networks predict the bins above this fraction of the input's band edge: below any
# `keep_band` a Generator uses, so the crossover always has the network's output to use.
PREDICTED_FROM = 0.75
# A quiet bin to start from (e^-6, about -70 dB below a full-scale sine's peak bin at
# n_fft 1024): the predicted band begins near silence and grows where the loss asks.
INITIAL_LOG_MAGNITUDE = -6.0
# `relative_magnitude`: the band each frame's reference level is measured in, as fractions of the
# input's band edge (7.5-9.5 kHz at 22.05 kHz): below the corner of every degradation audiosr
# trains with (0.9 x Nyquist and up), so every input has it; and where the invented band starts
# relative to it (e^-3, about -26 dB).
REFERENCE_BAND = (0.68, 0.86)
INITIAL_RELATIVE_LOG_MAGNITUDE = -3.0
# `carry_input`: the gain on the input's own bins stays within e^-6 .. e^6 (about +-52 dB) unless
# `carry_gain_max_db` bounds it lower.
CARRY_GAIN_LOG = 6.0

class SpectralNetwork(SuperResolutionNetwork):
    """STFT -> ConvNeXt backbone over frames -> a family's head -> inverse STFT.

    Args:
        n_fft: FFT size (and Hann window length) at the target rate.
        hop_length: frame step; ``n_fft / hop_length`` must be an integer.
        dim: channels of the backbone.
        blocks: ConvNeXt blocks.
        expansion: width of each block's MLP, in multiples of ``dim``.
        activation: ``gelu`` (ConvNeXt's) or ``snake``.
        relative_magnitude: predict each frame's log-magnitude *relative to the input's own
            level* in ``REFERENCE_BAND`` (just below the band edge, in the same frame) instead of
            in absolute terms. The band a recording lacks is best guessed from the band it has
            next to it: a frame with little content at 7.5-9.5 kHz (clean speech) starts from a
            quiet band, a bright one (rain, cymbals) from a loud one, and the network learns
            how each kind of content falls off above it. The absolute head has to recover the
            level through the backbone's layer norms, which discard it, and lands near the
            training set's average band (10-20 dB too loud on clean speech, too quiet on rain).
        any_band: one network for inputs of any band edge, at the target rate (see the module
            docstring): ``forward`` takes each item's edge; the source rate must equal the target rate.
        level_from_edge: (``any_band`` with ``relative_magnitude``) the magnitude head's outputs stand
            for bins counted from each item's edge rather than for fixed frequencies: one row for "this
            many bins above the edge", whatever the edge. How a spectrum falls off above where the
            input ends depends on the distance from there; indexed by frequency, one row has to serve
            an 8 kHz file's band 9 kHz above its edge and an MP3's 1 kHz above it.
    """

    tiny_args = {"dim": 16, "blocks": 1}

    def __init__(self, n_fft: int = 1024, hop_length: int = 256, dim: int = 128, blocks: int = 4,
                 expansion: int = 3, activation: Activation = "gelu", relative_magnitude: bool = False,
                 any_band: bool = False, level_from_edge: bool = False) -> None:
        super().__init__()
        if n_fft % hop_length:
            raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop_length ({hop_length})")
        if level_from_edge and not (any_band and relative_magnitude):
            raise ValueError("level_from_edge counts bins from each item's edge: it needs any_band and relative_magnitude")
        self.level_from_edge = bool(level_from_edge)
        self.n_fft, self.hop_length, self.dim = n_fft, hop_length, dim
        self.relative_magnitude = bool(relative_magnitude)
        self.any_band = bool(any_band)
        self.rate = 0
        self.bins = n_fft // 2 + 1
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, expansion, layer_scale=1.0 / max(blocks, 1), act=activation) for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.reach_frames = 3 * blocks  # each block's depthwise kernel reaches 3 frames each side
        # Sized when the rates are known (the band edge decides the bins in and out).
        self.embed: nn.Module | None = None
        self.edge = self.first_predicted = 0

    @property
    def length_multiple(self) -> int:  # type: ignore[override]
        # Frames sit on multiples of the hop: a shift by one hop shifts the frames exactly.
        return self.hop_length

    @property
    def receptive_field(self) -> int:
        return self.n_fft + self.hop_length * self.reach_frames

    @property
    def needs_edges(self) -> bool:  # type: ignore[override]
        return self.any_band

    def bind_rates(self, source_rate: int, target_rate: int) -> None:
        if self.any_band != (source_rate == target_rate):
            raise ValueError(
                f"{type(self).__name__}: any_band networks take their input at the target rate (source_rate = "
                f"target_rate), networks of one rate pair a lower source rate; got any_band {self.any_band}, "
                f"{source_rate} -> {target_rate} Hz")
        edge = math.floor(self.n_fft * (source_rate / 2) / target_rate)  # last bin the input has
        if self.embed is not None and edge == self.edge and target_rate == self.rate:
            return
        if self.embed is not None:
            raise ValueError(f"{type(self).__name__} was built for another rate pair")
        self.edge, self.rate = edge, target_rate
        # Any band: every bin may be missing, so every bin is predicted; the known ones come with a mask.
        self.first_predicted = 0 if self.any_band else math.floor(PREDICTED_FROM * edge)
        features = 4 * (edge + 1) if self.any_band else 3 * (edge + 1)
        self.embed = nn.Conv1d(features, self.dim, kernel_size=1)
        self.build_head(self.bins - self.first_predicted)

    def known_bins(self, edges: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
        """``(B, F, 1)`` float: 1 for the bins at or below each item's edge (``any_band``); None otherwise."""
        if not self.any_band:
            return None
        if edges is None:
            raise ValueError(f"{type(self).__name__} (any_band) needs each item's band edge: call it through the "
                             "Generator, which finds them")
        last = torch.floor(edges.float().reshape(-1, 1) * self.n_fft / self.rate).to(device)
        if last.shape[0] != batch:
            raise ValueError(f"{last.shape[0]} edges for a batch of {batch}")
        k = torch.arange(self.bins, device=device, dtype=torch.float32)
        return (k[None, :] <= last).float()[..., None]

    def build_head(self, predicted_bins: int) -> None:
        raise NotImplementedError

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> complex ``(B, bins, frames)``, centred frames (zeros outside)."""
        return frames.stft(x, self.n_fft, self.hop_length)

    def istft(self, spectrum: torch.Tensor, length: int) -> torch.Tensor:
        return frames.istft(spectrum, self.n_fft, self.hop_length, length)

    def backbone(self, spectrum: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Complex ``(B, F, N)`` -> frame features ``(B, N, dim)`` from the bins the input has
        (``known``: :meth:`known_bins`, for ``any_band``)."""
        if self.embed is None:
            raise RuntimeError(f"{type(self).__name__} needs the rates: call bind_rates (the Generator does)")
        band = spectrum[:, : self.edge + 1]
        magnitude = band.abs()
        unit = band / magnitude.clamp_min(1e-5)
        log_magnitude = magnitude.clamp_min(1e-5).log()
        if known is None:
            features = [log_magnitude, unit.real, unit.imag]
        else:  # above its edge an input holds a filter's stop band or a codec's residue: not shown
            features = [known * log_magnitude + (1 - known) * LOG_FLOOR, known * unit.real,
                        known * unit.imag, known.expand_as(log_magnitude)]
        # The embedding (a 1x1 convolution) as one matrix product on frames (B, N, features): the
        # convolution's general path costs several times more on a CPU.
        joined = torch.cat([f.transpose(1, 2) for f in features], dim=-1)
        h = self.norm(F.linear(joined, self.embed.weight[..., 0], self.embed.bias)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        return self.final_norm(h.transpose(1, 2))

    def head(self, h: torch.Tensor, spectrum: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Frame features ``(B, N, dim)`` -> the predicted bins ``(B, F - first_predicted, N)``."""
        raise NotImplementedError

    def predicted_magnitude(self, h: torch.Tensor, spectrum: torch.Tensor,
                            known: torch.Tensor | None = None) -> torch.Tensor:
        """The invented bins' magnitude ``(B, F - first_predicted, N)`` (see ``relative_magnitude``)."""
        log_magnitude = self.magnitude(h).transpose(1, 2).float()
        if self.level_from_edge:
            # Row (bins - 1) + d of the head is the bin d above the item's last known bin (d < 0: below it).
            edge = known.sum(dim=1) - 1  # (B, 1)
            k = torch.arange(self.bins, device=log_magnitude.device)
            index = (k[None, :] - edge.long() + self.bins - 1)[:, :, None].expand(-1, -1, log_magnitude.shape[-1])
            log_magnitude = torch.gather(log_magnitude, 1, index)
        if self.relative_magnitude:
            log_magnitude = log_magnitude + self.reference_level(spectrum, known)
        return log_magnitude.clamp(LOG_FLOOR, LOG_CEILING).exp()

    def reference_level(self, spectrum: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 1, N)``: each frame's RMS log-magnitude in ``REFERENCE_BAND`` of the item's edge
        (``LOG_FLOOR`` if silent)."""
        power = spectrum.abs().square()
        if known is None:
            lo, hi = (max(1, round(f * self.edge)) for f in REFERENCE_BAND)
            band = power[:, lo: hi + 1].mean(dim=1, keepdim=True)
        else:
            edge = known.sum(dim=1, keepdim=True) - 1  # (B, 1, 1): each item's last known bin
            k = torch.arange(power.shape[1], device=power.device, dtype=torch.float32)[None, :, None]
            inside = ((k >= (REFERENCE_BAND[0] * edge).round().clamp_min(1))
                      & (k <= (REFERENCE_BAND[1] * edge).round().clamp_min(1))).float()
            band = (power * inside).sum(dim=1, keepdim=True) / inside.sum(dim=1, keepdim=True).clamp_min(1)
        return (0.5 * band.clamp_min(1e-30).log()).clamp_min(LOG_FLOOR)

    def _magnitude_layer(self, predicted_bins: int) -> nn.Linear:
        if self.level_from_edge:  # every distance from an edge, below and above it
            predicted_bins = 2 * self.bins - 1
        layer = nn.Linear(self.dim, predicted_bins)
        nn.init.zeros_(layer.weight)
        start = INITIAL_RELATIVE_LOG_MAGNITUDE if self.relative_magnitude else INITIAL_LOG_MAGNITUDE
        nn.init.constant_(layer.bias, start)
        return layer

    def forward(self, x: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 1, T)`` rough input -> ``(B, 1, T)`` full-band estimate (``edges`` ``(B,)`` Hz: ``any_band``)."""
        length = x.shape[-1]
        # The STFT and its inverse run in float32 (no half-precision FFTs on CPUs).
        with torch.autocast(x.device.type, enabled=False):
            spectrum = self.stft(x.reshape(-1, length).float())
        known = self.known_bins(edges, spectrum.shape[0], spectrum.device)
        predicted = self.head(self.backbone(spectrum, known), spectrum, known)
        with torch.autocast(x.device.type, enabled=False):
            # Joined frame by frame (the STFT's own memory order, frames outer): the inverse's FFTs then
            # run over contiguous frames.
            full = torch.cat([spectrum.transpose(1, 2)[..., : self.first_predicted],
                              predicted.to(torch.complex64).transpose(1, 2)], dim=-1).transpose(1, 2)
            return self.istft(full, length).reshape(x.shape)


class MagnitudeNetwork(SpectralNetwork):
    """Predicts the log-magnitude of the missing band and reuses a phase (see the module docstring).

    Args:
        phase: ``shift`` (the input's band copied up) or ``mirror`` (reflected about the band
            edge); see the module docstring.
    """

    def __init__(self, n_fft: int = 1024, hop_length: int = 256, dim: int = 128, blocks: int = 4,
                 expansion: int = 3, activation: Activation = "gelu", phase: PhaseChoice = "shift",
                 relative_magnitude: bool = False) -> None:
        super().__init__(n_fft, hop_length, dim, blocks, expansion, activation, relative_magnitude)
        if phase not in ("shift", "mirror"):
            raise ValueError(f"phase must be shift or mirror, got {phase!r}")
        self.phase = phase

    def build_head(self, predicted_bins: int) -> None:
        self.magnitude = self._magnitude_layer(predicted_bins)

    def head(self, h, spectrum, known=None):
        return torch.polar(self.predicted_magnitude(h, spectrum), self.reused_phase(spectrum)[:, self.first_predicted:])

    def reused_phase(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The phase ``(B, F, N)`` for every bin: the input's below the band edge, reused above."""
        angle = spectrum.angle()
        period = self.n_fft // self.hop_length  # bins per whole turn of phase advance per frame
        out = angle.clone()
        bins = angle.shape[1]
        if self.phase == "shift":
            # Copy bin k - s to bin k, s a multiple of `period`: a frequency shift whose
            # frame-to-frame phase advance stays consistent.
            s = max(period, self.edge // period * period)
            for start in range(s, bins, s):
                stop = min(start + s, bins)
                out[:, start:stop] = angle[:, start - s: stop - s]
        else:  # mirror about c, with 2c a multiple of `period`: what aliasing would give
            c = max(period, self.edge // period * period) // 2 * 2
            k = torch.arange(c, bins, device=angle.device)
            out[:, c:] = -angle[:, (2 * c - k).clamp(min=0)]
        return out


class MagnitudePhaseNetwork(SpectralNetwork):
    """Predicts magnitude and phase of the missing band at frame rate (AP-BWE / Vocos-style head).

    The phase is ``atan2`` of two linear outputs, which needs no wrapping and is defined
    everywhere.

    Args:
        carry_input: also pass the input's own bins on, times a predicted gain (one per bin
            and frame, ``e^[-6, 6]``, starting at 1): ``Y = g X + |m| e^(i phi)``. Where the
            input has the band, attenuated by the filter that made it, the network can
            restore its level with the input's own phase instead of inventing one; above
            the input's band ``X`` is empty and only the invented part remains.
        carry_gain_max_db: the most that gain may raise a bin (dB; default about +52). Above the
            input's edge its bins are the stop band of a filter the network does not know: a
            steep resampler (``kaiser_best``) leaves 30-100 dB less there than a gentle filter,
            so a gain learned on gentle filters makes a steep one's input far too loud (on
            clean speech, 6-10 dB above the target's own level between the edge and the
            input's Nyquist frequency). ``0`` lets the gain only lower the input's bins; the
            invented part, with its own phase, then fills what is missing.
    """

    def __init__(self, n_fft: int = 1024, hop_length: int = 256, dim: int = 128, blocks: int = 4,
                 expansion: int = 3, activation: Activation = "gelu", carry_input: bool = False,
                 carry_gain_max_db: float | None = None, relative_magnitude: bool = False,
                 any_band: bool = False, level_from_edge: bool = False) -> None:
        super().__init__(n_fft, hop_length, dim, blocks, expansion, activation, relative_magnitude, any_band,
                         level_from_edge)
        self.carry_input = bool(carry_input)
        ceiling = CARRY_GAIN_LOG if carry_gain_max_db is None else float(carry_gain_max_db) * math.log(10) / 20
        if not -CARRY_GAIN_LOG < ceiling <= CARRY_GAIN_LOG:
            raise ValueError(f"carry_gain_max_db must be above -52 dB and at most +52 dB, got {carry_gain_max_db!r}")
        self.carry_gain_ceiling = ceiling

    def build_head(self, predicted_bins: int) -> None:
        self.magnitude = self._magnitude_layer(predicted_bins)
        self.phase_real = nn.Linear(self.dim, predicted_bins)
        self.phase_imag = nn.Linear(self.dim, predicted_bins)
        if self.carry_input:
            self.input_gain = nn.Linear(self.dim, predicted_bins)
            nn.init.zeros_(self.input_gain.weight)
            nn.init.zeros_(self.input_gain.bias)

    def head(self, h, spectrum, known=None):
        phase = unit_phasor(self.phase_real(h).transpose(1, 2).float(), self.phase_imag(h).transpose(1, 2).float())
        invented = self.predicted_magnitude(h, spectrum, known) * phase
        if not self.carry_input:
            return invented
        gain = self.input_gain(h).transpose(1, 2).clamp(-CARRY_GAIN_LOG, self.carry_gain_ceiling).float().exp()
        carried = spectrum[:, self.first_predicted:]
        if known is not None:  # only the band the input has (above it: a stop band, a codec's residue)
            carried = carried * known[:, self.first_predicted:]
        return invented + gain * carried


def unit_phasor(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """``exp(i atan2(imag, real))``, complex: the phase of two outputs without the angle (a division instead
    of an arctangent, a cosine and a sine); ``1`` where both are zero, as ``atan2(0, 0) = 0`` gives."""
    size = torch.hypot(real, imag)
    zero = size == 0
    return torch.complex(torch.where(zero, 1.0, real / torch.where(zero, 1.0, size)),
                         torch.where(zero, 0.0, imag / torch.where(zero, 1.0, size)))
