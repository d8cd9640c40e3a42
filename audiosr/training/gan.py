"""Adversarial training for any generator: the Descript Audio Codec's recipe.

    audiosr fit --config configs/<generator>.yaml --config configs/overlays/gan.yaml

:class:`GANModule` is the :class:`SuperResolutionModule` (same generator, validation,
test and checkpoints) with discriminators, two optimizers and manual optimisation. Each
training step (after ``warmup_steps`` reconstruction-only steps):

1. discriminators: ``d_loss`` on real targets and detached outputs; clipped at
   ``discriminator_clip_norm`` (unscaled gradients); their optimizer steps;
2. generator: the reconstruction loss (the recipe's own terms, times
   ``reconstruction_weight``, plus the multi-scale ``mel`` term, weight ``mel_weight``: one
   loss, logged part by part) + ``adversarial_weight x g_adv`` + ``feature_matching_weight
   x fm``; clipped at ``generator_clip_norm``; its optimizer steps.

The discriminators are a list in YAML (``discriminators``), any subclasses of
:class:`audiosr.models.discriminators.Discriminator`; their sub-discriminators' outputs are
summed over by the adversarial and feature-matching losses at the end of this file.

DAC's weights are mel 15, feature matching 2, adversarial 1; its discriminators are the
multi-period and multi-band STFT ones of ``audiosr.models.discriminators``. Lightning does
not clip gradients under manual optimisation, so the module clips, and the overlay leaves
``trainer.gradient_clip_val`` unset. It clips in ``on_before_optimizer_step``, which
Lightning calls after a 16-bit mixed-precision grad scaler has unscaled the gradients:
clipping right after ``manual_backward`` would clip the scaled ones (x 65536 at first),
every step and by an amount that follows the scaler, not the gradient. Under manual optimisation Lightning's ``global_step``
(and so ``trainer.max_steps``) counts the steps of both optimizers: two per batch once the
discriminators train; ``warmup_steps`` counts batches. ``audiosr upsample`` and the Python API read only the
generator's weights from the checkpoint; discriminators and their optimizer stay behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from audiosr.models.discriminators import Discriminator, Discriminators
from audiosr.training.divergence import ensure_finite
from audiosr.training.losses import MultiScaleMel
from audiosr.training.module import SuperResolutionModule


class GANModule(SuperResolutionModule):
    """A generator trained with reconstruction, mel, adversarial and feature-matching losses.

    Args:
        discriminators: a list of discriminators (default: DAC's multi-period + multi-band STFT).
        discriminator_optimizer: builds the discriminators' optimizer.
        discriminator_lr_scheduler: optional; stepped every step, like the generator's.
        adversarial: ``lsgan`` (DAC) or ``hinge`` (Vocos, AP-BWE).
        mel: the multi-scale mel term added to the reconstruction loss (DAC's scales by default).
        mel_weight, adversarial_weight, feature_matching_weight: DAC's 15, 1 and 2 (``mel_weight: 0``
            leaves the mel term out).
        reconstruction_weight: scales the recipe's own reconstruction terms.
        warmup_steps: reconstruction-only steps before the discriminators start.
        generator_clip_norm, discriminator_clip_norm: gradient-norm clipping (DAC: 1000, 10).
        **kwargs: the arguments of :class:`SuperResolutionModule` (network, loss, optimizer, ...).
    """

    def __init__(
        self,
        *args: Any,
        discriminators: Sequence[Discriminator] | None = None,
        discriminator_optimizer: OptimizerCallable = torch.optim.AdamW,
        discriminator_lr_scheduler: LRSchedulerCallable | None = None,
        adversarial: Literal["lsgan", "hinge"] = "lsgan",
        mel: MultiScaleMel | None = None,
        mel_weight: float = 15.0,
        adversarial_weight: float = 1.0,
        feature_matching_weight: float = 2.0,
        reconstruction_weight: float = 1.0,
        warmup_steps: int = 0,
        generator_clip_norm: float | None = 1000.0,
        discriminator_clip_norm: float | None = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False
        self.discriminators = Discriminators(discriminators)
        self.discriminator_optimizer = discriminator_optimizer
        self.discriminator_lr_scheduler = discriminator_lr_scheduler
        if adversarial not in ("lsgan", "hinge"):
            raise ValueError(f"adversarial must be lsgan or hinge, got {adversarial!r}")
        self.adversarial = adversarial
        if mel_weight and any(isinstance(term, MultiScaleMel) for term in self.loss.terms.values()):
            raise ValueError("the recipe's loss already has a multi-scale mel term; give the GAN mel_weight: 0 "
                             "to train with the recipe's own")
        # The recipe's terms as it weights them: what `train/reconstruction` logs, as it always has.
        self.recipe_terms = {name: (weight, self.loss.terms[name].parts) for name, weight in self.loss.weights.items()}
        extra = {"mel": mel if mel is not None else MultiScaleMel()} if mel_weight else {}
        self.loss = self.loss.extended(extra, {"mel": mel_weight} if extra else {},
                                       scale=reconstruction_weight).setup(self.spec.target_rate)
        self.weights = {"g_adv": adversarial_weight, "fm": feature_matching_weight}
        self.warmup_steps = warmup_steps
        self.generator_clip_norm = generator_clip_norm
        self.discriminator_clip_norm = discriminator_clip_norm
        # Batches trained, saved with the checkpoint: Lightning's global_step counts every
        # optimizer's steps (two per batch once the discriminators train).
        self.register_buffer("batches_trained", torch.zeros((), dtype=torch.long))
        self._scheduler_owners: list[str] = []

    def configure_optimizers(self) -> Any:
        generator = self.optimizer(self.generator.parameters())
        discriminators = self.discriminator_optimizer(self.discriminators.parameters())
        schedulers, self._scheduler_owners = [], []
        for owner, optimizer, build in (("generator", generator, self.lr_scheduler),
                                         ("discriminators", discriminators, self.discriminator_lr_scheduler)):
            if build is not None:
                schedulers.append({"scheduler": build(optimizer), "interval": "step"})
                self._scheduler_owners.append(owner)
        return [generator, discriminators], schedulers

    def parameter_owners(self) -> dict[str, torch.nn.Module]:
        return {**super().parameter_owners(), "discriminators": self.discriminators}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        super().on_before_optimizer_step(optimizer)  # refuses non-finite gradients first
        g_optimizer, _ = self.optimizers()
        norm = self.generator_clip_norm if optimizer is g_optimizer.optimizer else self.discriminator_clip_norm
        if norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=norm, gradient_clip_algorithm="norm")

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        g_optimizer, d_optimizer = self.optimizers()
        target = batch["target"]
        output = self(batch["input"])
        adversarial = int(self.batches_trained) >= self.warmup_steps
        self.batches_trained += 1
        logged: dict[str, torch.Tensor] = {}

        if adversarial:
            real, fake = self.discriminators(target), self.discriminators(output.detach())
            d_loss = discriminator_loss([r[0] for r in real], [f[0] for f in fake], self.adversarial)
            ensure_finite(self.trainer, {"d_loss": d_loss})
            d_optimizer.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            d_optimizer.step()  # clipped in on_before_optimizer_step
            logged["d_loss"] = d_loss

        parts = self.reconstruction(output, batch)
        total = parts["total"]
        logged.update({k: v for k, v in parts.items() if k != "total"})
        logged["reconstruction"] = sum(weight * sum(parts[p] for p in names) for weight, names in self.recipe_terms.values())
        if adversarial:
            real, fake = self.discriminators(target), self.discriminators(output)
            g_adv = generator_adversarial_loss([f[0] for f in fake], self.adversarial)
            fm = feature_matching_loss([r[1] for r in real], [f[1] for f in fake])
            total = total + self.weights["g_adv"] * g_adv + self.weights["fm"] * fm
            logged.update({"g_adv": g_adv, "fm": fm})
        ensure_finite(self.trainer, {"total": total, **logged})
        g_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        g_optimizer.step()  # clipped in on_before_optimizer_step
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []
        for scheduler, owner in zip(schedulers, self._scheduler_owners):
            if owner == "generator" or adversarial:  # the discriminators' only while they train
                scheduler.step()

        self.log_parts("train", {"total": total, **logged}, target.shape[0])
        return total


# --- adversarial losses ---------------------------------------------------------------------
# Each takes the sub-discriminators' logits (or feature lists) in a fixed order and sums over
# them, as the Descript Audio Codec does (``dac/nn/loss.py``); "lsgan" is its least-squares
# GAN, "hinge" the hinge loss of Vocos and AP-BWE.


def discriminator_loss(real: Sequence[Tensor], fake: Sequence[Tensor], kind: str = "lsgan") -> Tensor:
    """``sum_k [(1 - D_k(y))^2 + D_k(y_hat)^2]`` (lsgan) or ``relu(1 - D(y)) + relu(1 + D(y_hat))`` (hinge)."""
    total = real[0].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        r, f = r.float(), f.float()
        if kind == "lsgan":
            total = total + (1 - r).square().mean() + f.square().mean()
        elif kind == "hinge":
            total = total + torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
        else:
            raise ValueError(f"unknown adversarial loss {kind!r}; choose lsgan or hinge")
    return total


def generator_adversarial_loss(fake: Sequence[Tensor], kind: str = "lsgan") -> Tensor:
    """``sum_k (1 - D_k(y_hat))^2`` (lsgan) or ``sum_k relu(1 - D_k(y_hat))`` (hinge)."""
    total = fake[0].new_zeros(())
    for f in fake:
        f = f.float()
        if kind == "lsgan":
            total = total + (1 - f).square().mean()
        elif kind == "hinge":
            total = total + torch.relu(1 - f).mean()
        else:
            raise ValueError(f"unknown adversarial loss {kind!r}; choose lsgan or hinge")
    return total


def feature_matching_loss(real: Sequence[Sequence[Tensor]], fake: Sequence[Sequence[Tensor]]) -> Tensor:
    """``sum_k sum_j mean|F_kj(y) - F_kj(y_hat)|``: L1 between hidden activations, targets detached."""
    total = fake[0][0].new_zeros(())
    for real_features, fake_features in zip(real, fake, strict=True):
        for r, f in zip(real_features, fake_features, strict=True):
            total = total + (r.detach().float() - f.float()).abs().mean()
    return total
