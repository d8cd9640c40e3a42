"""Stereo that stays stereo: the band invented above the edge keeps the channels' relations.

A network upsamples one channel at a time, so the bands it invents for two channels are two
independent guesses: a pair recorded with spaced microphones, or mixed with delays and reverbs,
loses its image above the edge, and its mono fold-down comb-filters there. Here every channel of
a window shares one band edge (the loudest channel's), the band above it is taken from the
loudest channel (the reference), and every other channel gets that band as its own input relates
to the reference's just below the edge (``REFERENCE_BAND_HZ``):

- delayed by the lag that best aligns the two there (at most ``MAX_LAG_S`` either way);
- scaled, block by block (``GAIN_BLOCK`` samples, smoothed over ``GAIN_SMOOTH`` blocks each
  side), to its level relative to the reference's there, and filtered so that its spectrum over
  the window follows the band the network invented for the channel itself (each side keeps its
  own balance of highs; a filter on one side leaves the pair's coherence as it is);
- where the two are only partly coherent there (correlation ``r`` below 1 at that lag), mixed
  with the band the network invented for the channel itself, less its part in common with the
  shared band, at the same level, in the proportion ``r : sqrt(1 - r^2)``, which keeps that
  coherence.

Why not mid/side: the mid of a delayed pair is comb-filtered below the edge, and the network
would extend the comb; a real channel is the better source. A channel whose input is silent gets
silence (its gain is zero); a mono input is never touched. The relations are measured once per
window (6 s by default), the levels per block: a source moving within a window keeps its level
per side, its delay is the window's.
"""

from __future__ import annotations

import math

import torch

from audiosr.band import filter_each, lowpass_kernels
from audiosr.dsp import best_lag

# The band below the edge the channels' relations are measured in: from this far below it to this far.
REFERENCE_BAND_HZ = (2000.0, 300.0)
# Transition width of the filters that split off the band above the edge and the reference band.
SPLIT_WIDTH_HZ = 300.0
# The largest inter-channel delay looked for (spaced microphones a metre apart: about 3 ms).
MAX_LAG_S = 0.003
# Level ratios per block of this many samples, averaged over GAIN_SMOOTH blocks each side.
GAIN_BLOCK, GAIN_SMOOTH = 256, 4
TINY = 1e-12


def stereo_reach(rate: int) -> int:
    """Samples each side that sharing the band adds to what one output sample depends on."""
    from audiosr.band import kernel_taps

    return kernel_taps(rate, SPLIT_WIDTH_HZ) + round(MAX_LAG_S * rate) + GAIN_BLOCK * (GAIN_SMOOTH + 1)


def _lowpass(x: torch.Tensor, cutoff_hz: float, rate: int) -> torch.Tensor:
    kernel = lowpass_kernels(torch.tensor([cutoff_hz], device=x.device), rate, SPLIT_WIDTH_HZ)[0]
    return filter_each(x[:, None], kernel)[:, 0]


def above_edge(x: torch.Tensor, edge_hz: float, rate: int) -> torch.Tensor:
    """``(C, T)`` -> the part above ``edge_hz`` (the transition spans the edge and 300 Hz above it)."""
    return x - _lowpass(x, edge_hz + SPLIT_WIDTH_HZ / 2, rate)


def reference_band(x: torch.Tensor, edge_hz: float, rate: int) -> torch.Tensor:
    """``(C, T)`` -> the band just below the edge where the channels' relations are measured (one
    band-pass: the difference of two low-passes of one length)."""
    far, near = REFERENCE_BAND_HZ
    cutoffs = torch.tensor([edge_hz - near - SPLIT_WIDTH_HZ / 2, edge_hz - far], device=x.device)
    upper, lower = lowpass_kernels(cutoffs, rate, SPLIT_WIDTH_HZ)
    return filter_each(x[:, None], upper - lower)[:, 0]


def delayed(x: torch.Tensor, lag: int) -> torch.Tensor:
    """``x`` later by ``lag`` samples (earlier if negative), zeros shifted in."""
    if lag == 0:
        return x
    out = torch.zeros_like(x)
    if lag > 0:
        out[lag:] = x[:-lag]
    else:
        out[:lag] = x[-lag:]
    return out


def level_ratio(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x``'s amplitude over ``reference``'s, per sample, from block powers smoothed over neighbours."""
    n = x.shape[-1]
    blocks = -(-n // GAIN_BLOCK)

    def power(signal: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(signal.square(), (0, blocks * GAIN_BLOCK - n))
        per_block = padded.reshape(1, 1, blocks, GAIN_BLOCK).mean(dim=-1)[0]
        width = 2 * GAIN_SMOOTH + 1
        return torch.nn.functional.avg_pool1d(torch.nn.functional.pad(per_block, (GAIN_SMOOTH, GAIN_SMOOTH),
                                                                      mode="replicate"), width, 1)[0]

    ratio = ((power(x) + TINY) / (power(reference) + TINY)).sqrt()
    ratio = torch.where(power(x) <= TINY, torch.zeros_like(ratio), ratio)  # a silent side stays silent
    # Linear between block centres, held beyond the first and last.
    per_sample = torch.nn.functional.interpolate(ratio[None, None], size=blocks * GAIN_BLOCK, mode="linear",
                                                 align_corners=False)
    return per_sample[0, 0, :n]


# `matched_tilt`: the shared band's spectrum over the window is brought to the channel's own band's,
# in bands this wide, by at most this much either way.
TILT_BAND_HZ, TILT_MAX_DB = 1000.0, 12.0


def matched_tilt(shared: torch.Tensor, own: torch.Tensor, edge_hz: float, rate: int) -> torch.Tensor:
    """``shared`` filtered so its spectrum over the window follows ``own``'s (bands of ``TILT_BAND_HZ``
    above the edge, linear between band centres): each side keeps the balance of highs the network
    gave it, and a filter on one side changes nothing of the pair's coherence."""
    import numpy as np

    n = shared.shape[-1]
    spectra = torch.fft.rfft(torch.stack([shared, own]))
    power = (spectra.real.square() + spectra.imag.square()).cpu().numpy()
    freqs = np.fft.rfftfreq(n, 1 / rate)
    lows = np.arange(edge_hz, rate / 2, TILT_BAND_HZ)
    starts = np.searchsorted(freqs, lows)
    starts = starts[starts < freqs.size]
    if starts.size == 0:
        return shared
    counts = np.diff(np.append(starts, freqs.size))
    means = np.add.reduceat(power, starts, axis=1) / np.maximum(counts, 1)  # (2, bands)
    limit = 10 ** (TILT_MAX_DB / 20)
    gains = np.sqrt(means[1] / np.maximum(means[0], TINY)).clip(1 / limit, limit)
    gains[means[1] <= TINY] = 0.0  # a silent own band: nothing shared either
    centres = lows[: starts.size] + TILT_BAND_HZ / 2
    curve = torch.from_numpy(np.interp(freqs, centres, gains).astype(np.float32)).to(shared.device)
    return torch.fft.irfft(spectra[0] * curve, n)


def share_band(outputs: torch.Tensor, rough: torch.Tensor, edge_hz: float, rate: int) -> torch.Tensor:
    """The channels' outputs ``(C, T)`` with the band above ``edge_hz`` shared as the module says.

    ``rough``: the channels' inputs at the output rate ``(C, T)``, whose band below the edge the
    relations are measured on.
    """
    channels = outputs.shape[0]
    if channels < 2 or edge_hz + SPLIT_WIDTH_HZ >= rate / 2:
        return outputs
    high = above_edge(outputs, edge_hz, rate)
    below = reference_band(rough, edge_hz, rate)
    ref = int(torch.argmax(below.square().sum(dim=-1)))
    shared_out = outputs.clone()
    max_lag = round(MAX_LAG_S * rate)
    for c in range(channels):
        if c == ref:
            continue
        lag, correlation = best_lag(below[c].cpu().numpy(), below[ref].cpu().numpy(), max_lag)
        coherent = min(max(correlation, 0.0), 1.0)
        gain = level_ratio(below[c], delayed(below[ref], lag))
        shared = matched_tilt(gain * delayed(high[ref], lag), high[c], edge_hz, rate)
        # The channel's own band, less what it shares with the reference's (it was made from a
        # partly common input): what is left is independent, so the mix has the coherence asked for.
        own = high[c] - float((high[c] * shared).sum()) / max(float(shared.square().sum()), TINY) * shared
        own_level, shared_level = float(own.square().mean().sqrt()), float(shared.square().mean().sqrt())
        own = own * (shared_level / own_level) if own_level > TINY else torch.zeros_like(own)
        band = coherent * shared + math.sqrt(1.0 - coherent ** 2) * own
        shared_out[c] = outputs[c] - high[c] + band
    return shared_out
