"""The reconstruction loss: small named terms, weighted in YAML.

    loss:
      class_path: audiosr.training.losses.ReconstructionLoss
      init_args:
        terms:
          mrstft: audiosr.training.losses.MultiResolutionSTFT
          mse: audiosr.training.losses.WaveformMSE
        weights: {mrstft: 1.0, mse: 100.0}

Each term (:mod:`audiosr.training.loss_terms`, re-exported here so configs name every loss by
``audiosr.training.losses.<Name>``) maps ``(prediction, target)``, both ``(N, T)`` float32, to
its raw parts; the term's value is the sum of its parts, and ``total = sum(weight * term)``.
Every part is logged raw, under its own name. Everything runs in float32 with autocast off, so
a value under bf16/fp16 autocast equals the float32 value and stays finite.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audiosr.training.loss_terms import (
    BandExcess, LossTerm, LostSNR, MultiResolutionSTFT, MultiScaleMel, NegativeSNR, WaveformL1, WaveformMSE,
)

__all__ = [
    "BandExcess", "LossTerm", "LostSNR", "MultiResolutionSTFT", "MultiScaleMel", "NegativeSNR", "ReconstructionLoss", "WaveformL1",
    "WaveformMSE",
]


class ReconstructionLoss(nn.Module):
    """``total = sum(weights[name] * sum(parts of terms[name]))`` between two waveforms.

    Args:
        terms: name -> term (default: ``mrstft`` and ``mse``, the reference recipe).
        weights: name -> weight; a term without one has weight 1.
    """

    def __init__(self, terms: dict[str, LossTerm] | None = None, weights: dict[str, float] | None = None) -> None:
        super().__init__()
        if terms is None:
            terms = {"mrstft": MultiResolutionSTFT(), "mse": WaveformMSE()}
            weights = {"mrstft": 1.0, "mse": 100.0} if weights is None else weights
        if not terms:
            raise ValueError("a reconstruction loss needs at least one term")
        self.terms = nn.ModuleDict(terms)
        weights = dict(weights or {})
        unknown = set(weights) - set(terms)
        if unknown:
            raise ValueError(f"weights for unknown terms {sorted(unknown)}; terms are {sorted(terms)}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in terms}
        parts = [p for term in terms.values() for p in term.parts]
        if len(parts) != len(set(parts)) or "total" in parts:
            raise ValueError(f"loss parts must have distinct names other than 'total', got {parts}")

    def extended(self, terms: dict[str, LossTerm], weights: dict[str, float], scale: float = 1.0) -> ReconstructionLoss:
        """This loss with more terms (how the GAN adds its mel term); the present weights times ``scale``."""
        clash = set(terms) & set(self.terms)
        if clash:
            raise ValueError(f"the loss already has terms {sorted(clash)}")
        return ReconstructionLoss({**self.terms, **terms},
                                  {**{n: w * scale for n, w in self.weights.items()}, **weights})

    def setup(self, sample_rate: int) -> ReconstructionLoss:
        """Tell every term the signals' rate; returns self."""
        for term in self.terms.values():
            term.setup(sample_rate)
        return self

    @property
    def uses_input(self) -> bool:
        """Whether a term compares the output with the network's input (``forward`` then needs ``rough``)."""
        return any(term.uses_input for term in self.terms.values())

    def forward(self, prediction: Tensor, target: Tensor, rough: Tensor | None = None) -> dict[str, Tensor]:
        """Loss between ``prediction`` and ``target``, both ``(B, C, T)`` (any ``(..., T)``); ``rough``, the
        network's input of the same shape, for terms with ``uses_input``.

        Returns:
            ``{"total", <every part>}``, float32 scalars; only ``total`` is weighted.
        """
        if prediction.shape != target.shape or (rough is not None and rough.shape != target.shape):
            raise ValueError(f"prediction, target (and rough input) must have the same shape, got "
                             f"{tuple(prediction.shape)}, {tuple(target.shape)}"
                             + ("" if rough is None else f" and {tuple(rough.shape)}"))
        if rough is None and self.uses_input:
            raise ValueError(f"terms {sorted(n for n, t in self.terms.items() if t.uses_input)} need the rough input")
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            length = prediction.shape[-1]
            y_hat = prediction.float().reshape(-1, length)
            y = target.float().reshape(-1, length)
            x = rough.float().reshape(-1, length) if rough is not None else None
            values: dict[str, Tensor] = {}
            total = y_hat.new_zeros(())
            for name, term in self.terms.items():
                parts = term(y_hat, y, x) if term.uses_input else term(y_hat, y)
                values.update(parts)
                total = total + self.weights[name] * sum(parts.values())
        return {"total": total, **values}

    def extra_repr(self) -> str:
        return f"weights={self.weights}"
