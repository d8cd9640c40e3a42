"""The short-time Fourier transform the spectral parts of audiosr share, and a fast inverse.

Centred Hann frames (``n_fft // 2`` zeros each side, like ``torch.stft(center=True,
pad_mode="constant")``). The inverse is the same least-squares overlap-add as ``torch.istft``, for
a hop that divides the frame length (every geometry audiosr uses): the frames are cut into
``n_fft // hop`` hop-long pieces, and each output block is the sum of one piece of each of the
frames that cover it, a handful of shifted additions. ``torch.istft`` overlap-adds through a
general ``fold`` that cost about as much as its inverse FFTs on a CPU.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=8)
def hann(n_fft: int, device: str = "cpu") -> torch.Tensor:
    # Kept for later calls: made as a normal tensor even when the first call runs in inference mode,
    # whose tensors autograd refuses to save for a training step.
    with torch.inference_mode(False):
        return torch.hann_window(n_fft, periodic=True, device=device)


def stft(x: torch.Tensor, n_fft: int, hop: int, mirrored: bool = False) -> torch.Tensor:
    """``(B, T)`` float -> complex ``(B, n_fft // 2 + 1, 1 + T // hop)``: centred Hann frames, zeros outside
    (``mirrored``: the signal reflected at its ends, where it is long enough; :func:`istft` inverts both)."""
    mode = "reflect" if mirrored and x.shape[-1] > n_fft // 2 else "constant"
    return torch.stft(x, n_fft, hop, window=hann(n_fft, str(x.device)), center=True, pad_mode=mode,
                      return_complex=True)


def istft(spectrum: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """The inverse of :func:`stft`: complex ``(B, F, N)`` -> ``(B, length)`` float, as ``torch.istft(center=True)``.

    For a spectrum that is not the transform of any signal (a network's), the signal whose
    transform is nearest to it (Griffin and Lim's least-squares overlap-add).
    """
    if n_fft % hop:
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop})")
    pieces = n_fft // hop
    window = hann(n_fft, str(spectrum.device))
    frames = torch.fft.irfft(spectrum.transpose(1, 2), n_fft, dim=-1) * window  # (B, N, n_fft)
    batch, count = frames.shape[0], frames.shape[1]
    chunks = frames.reshape(batch, count, pieces, hop)
    # Block b of the output (samples b * hop ... (b + 1) * hop of the padded signal) holds piece j
    # of frame b - j, for every j.
    blocks = sum(F.pad(chunks[:, :, j], (0, 0, j, pieces - 1 - j)) for j in range(pieces))
    signal = blocks.reshape(batch, (count + pieces - 1) * hop)
    start = n_fft // 2
    signal = signal[:, start:start + length]
    if signal.shape[-1] < length:
        signal = F.pad(signal, (0, length - signal.shape[-1]))
    return signal / _window_sum(n_fft, hop, count, length, str(spectrum.device))


@functools.lru_cache(maxsize=32)
def _window_sum(n_fft: int, hop: int, count: int, length: int, device: str) -> torch.Tensor:
    """The overlap-added squared window over the kept samples (the least-squares normaliser)."""
    with torch.inference_mode(False):  # kept for later calls (see hann)
        return _overlapped_squares(n_fft, hop, count, length, device)


def _overlapped_squares(n_fft: int, hop: int, count: int, length: int, device: str) -> torch.Tensor:
    pieces = n_fft // hop
    squared = hann(n_fft, device).square().reshape(pieces, hop)
    blocks = sum(F.pad(squared[j].expand(count, hop), (0, 0, j, pieces - 1 - j)) for j in range(pieces))
    total = blocks.reshape(-1)[n_fft // 2: n_fft // 2 + length]
    if total.shape[-1] < length:  # beyond the last frame: nothing to normalise (the signal is zero there)
        total = F.pad(total, (0, length - total.shape[-1]), value=1.0)
    return total.clamp_min(1e-11)
