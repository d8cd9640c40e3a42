"""Training losses: multi-resolution STFT loss plus a weighted waveform MSE.

The STFT part follows Yamamoto et al., "Parallel WaveGAN" (ICASSP 2020), as in
``kan-bayashi/ParallelWaveGAN`` (``parallel_wavegan/losses/stft_loss.py``): per
resolution a spectral convergence term and a mean absolute log-magnitude term,
each averaged over the resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MultiResolutionSTFTLoss"]

# Guards the spectral-convergence division; the magnitude floor already keeps the
# denominator at least sqrt(eps * numel), so this never changes a realistic value.
_SC_EPS = 1e-12


class MultiResolutionSTFTLoss(nn.Module):
    """``stft_weight * (sc + mag) + mse_weight * mse`` between two waveforms.

    For each resolution ``(fft_size, win_length, hop_length)`` the magnitude is
    ``|S| = sqrt(max(|STFT|^2, eps))`` with a periodic Hann window of ``win_length``
    (zero-padded to ``fft_size``) and ``center=True``. Then

    * ``sc  = || |S(y)| - |S(y_hat)| ||_F / (|| |S(y)| ||_F + 1e-12)`` over the whole batch,
    * ``mag = mean | log|S(y)| - log|S(y_hat)| |`` (natural log),

    both averaged over the resolutions, and ``mse = mean((y_hat - y)^2)`` on the
    waveform.

    Everything runs in float32 with autocast disabled, so the value under bf16/fp16
    autocast equals the float32 value and stays finite.

    Args:
        resolutions: ``(fft_size, win_length, hop_length)`` triples.
        mse_weight: weight of the waveform MSE.
        stft_weight: weight of ``sc + mag``.
        eps: floor on ``|STFT|^2``, applied before the square root and the log so
            both values and gradients stay finite on silence.
    """

    def __init__(
        self,
        resolutions: Sequence[tuple[int, int, int]] = (
            (512, 240, 50),
            (1024, 600, 120),
            (2048, 1200, 240),
        ),
        mse_weight: float = 100.0,
        stft_weight: float = 1.0,
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
                raise ValueError(
                    f"need 0 < win_length <= fft_size and hop_length > 0, got {res}"
                )
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.resolutions: tuple[tuple[int, int, int], ...] = resolutions  # type: ignore[assignment]
        self.mse_weight = float(mse_weight)
        self.stft_weight = float(stft_weight)
        self.eps = float(eps)
        for i, (_, win_length, _) in enumerate(resolutions):
            # Non-persistent: the windows follow .to(device) but stay out of
            # checkpoints, which then do not depend on the loss configuration.
            self.register_buffer(
                f"window_{i}", torch.hann_window(win_length, periodic=True), persistent=False
            )

    def _magnitude(self, x: Tensor, index: int) -> Tensor:
        """``(N, T)`` float32 -> ``(N, fft_size // 2 + 1, frames)`` floored magnitude."""
        fft_size, win_length, hop_length = self.resolutions[index]
        window: Tensor = getattr(self, f"window_{index}")
        spec = torch.stft(
            x,
            n_fft=fft_size,
            hop_length=hop_length,
            win_length=win_length,
            window=window.to(device=x.device, dtype=torch.float32),
            center=True,
            return_complex=True,
        )
        # |S|^2 from real and imaginary parts: abs() of a complex zero has a NaN
        # gradient, and the clamp must come before sqrt/log for the same reason.
        power = spec.real.square() + spec.imag.square()
        return power.clamp(min=self.eps).sqrt()

    def forward(self, prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Loss between ``prediction`` and ``target``.

        Args:
            prediction: ``(B, C, T)`` (usually ``(B, 1, T)``); any ``(..., T)`` works,
                leading axes are flattened to ``(B * C, T)``.
            target: same shape as ``prediction``.

        Returns:
            ``{"total", "mse", "sc", "mag"}``, float32 scalars; only ``total`` is
            weighted, the parts are raw.
        """
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction and target must have the same shape, got "
                f"{tuple(prediction.shape)} and {tuple(target.shape)}"
            )
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            length = prediction.shape[-1]
            y_hat = prediction.float().reshape(-1, length)
            y = target.float().reshape(-1, length)

            mse = (y_hat - y).square().mean()
            sc = y_hat.new_zeros(())
            mag = y_hat.new_zeros(())
            for i in range(len(self.resolutions)):
                # One STFT call for both signals.
                mag_hat, mag_ref = self._magnitude(torch.cat([y_hat, y]), i).chunk(2, dim=0)
                sc = sc + torch.linalg.vector_norm(mag_ref - mag_hat) / (
                    torch.linalg.vector_norm(mag_ref) + _SC_EPS
                )
                mag = mag + (mag_ref.log() - mag_hat.log()).abs().mean()
            sc = sc / len(self.resolutions)
            mag = mag / len(self.resolutions)
            total = self.stft_weight * (sc + mag) + self.mse_weight * mse
        return {"total": total, "mse": mse, "sc": sc, "mag": mag}

    def extra_repr(self) -> str:
        return (
            f"resolutions={self.resolutions}, mse_weight={self.mse_weight}, "
            f"stft_weight={self.stft_weight}, eps={self.eps}"
        )
