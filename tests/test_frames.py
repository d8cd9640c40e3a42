"""The shared short-time transform: its inverse is torch.istft's, for any spectrum, and trains after inference."""

from __future__ import annotations

import pytest
import torch

from audiosr.frames import istft, stft


@pytest.mark.parametrize(("n_fft", "hop", "length"), [(1024, 256, 44_100 + 123), (1024, 512, 5000), (2048, 512, 777),
                                                      (1024, 256, 100)])
def test_the_inverse_is_torch_istft_for_a_signals_spectrum_and_for_a_networks(n_fft, hop, length):
    torch.manual_seed(0)
    x = torch.randn(2, length)
    spectrum = stft(x, n_fft, hop)
    scrambled = spectrum * torch.exp(1j * torch.randn(spectrum.shape))  # no signal has this spectrum
    window = torch.hann_window(n_fft)
    for z in (spectrum, scrambled):
        expected = torch.istft(z, n_fft, hop, window=window, center=True, length=length)
        assert torch.allclose(istft(z, n_fft, hop, length), expected, atol=1e-5)
    assert torch.allclose(istft(spectrum, n_fft, hop, length), x, atol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        istft(spectrum, n_fft, 300, length)


def test_a_training_step_after_an_inference_call_can_differentiate_through_it():
    # The window and the normaliser are cached: made in inference mode, autograd would refuse them.
    with torch.inference_mode():
        istft(stft(torch.randn(1, 3000), 512, 128), 512, 128, 3000)
    x = torch.randn(1, 3000, requires_grad=True)
    istft(2 * stft(x, 512, 128), 512, 128, 3000).square().sum().backward()
    assert torch.allclose(x.grad, 8 * x.detach(), atol=1e-4)
