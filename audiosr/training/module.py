"""The LightningModule: trains a generator, scores it on validation, and runs it on test recordings.

The module computes and logs every validation metric itself, ``val/score`` included
(what ``best`` checkpoints are chosen by), so any ``Trainer`` selects the same ``best``.
``test_step`` returns a :class:`UpsampledRecording`; the comparison with classical resampling and
the reports are the job of a callback (``audiosr.training.callbacks.BaselineComparison``)
that reads nothing else. The network itself is a pure ``nn.Module`` wrapped in
:class:`audiosr.models.generator.Generator`, the same object inference runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from audiosr.band import filter_each, lowpass_kernels
from audiosr.dsp import nyquist
from audiosr.evaluation.metrics import TOP_BAND_HZ, quality, selection_score
from audiosr.models.base import SuperResolutionNetwork
from audiosr.models.checkpoint import CHECKPOINT_KEY
from audiosr.models.generator import PRECISION_NAMES, Generator, ModelSpec, Normalise, Precision, inference_precision
from audiosr.output_stage import OutputStage
from audiosr.models.unet import UNet
from audiosr.training.divergence import ensure_finite, refuse_non_finite_gradients
from audiosr.training.losses import ReconstructionLoss

# The loss ignores a target's band from this far below its own edge (see `reconstruction`).
TARGET_EDGE_GUARD_HZ = 500.0


@dataclass(frozen=True)
class ValidationOutput:
    """What ``validation_step`` returns: the output ``(B, 1, T)`` float32 for callbacks that show it."""

    prediction: torch.Tensor


@dataclass(frozen=True)
class UpsampledRecording:
    """What ``test_step`` returns: one whole test recording upsampled by the model, and how.

    Attributes:
        output: ``(C, T)`` float32 at the target rate.
        seconds: wall time of the whole low-rate -> high-rate path (rough upsampling included).
        method: the row name of the comparison table, e.g. ``audiosr UNet``.
        batch_size, device, precision: how it ran (precision as the table writes it: ``fp32``, ...).
    """

    output: np.ndarray
    seconds: float
    method: str
    batch_size: int
    device: str
    precision: str


class SuperResolutionModule(L.LightningModule):
    """Trains ``network`` to turn the rough upsampled ``input`` into ``target``.

    Args:
        network: maps the rough signal ``(B, 1, T)`` to ``(B, 1, T)`` (default: reference U-Net).
        loss: named reconstruction terms with weights (default: multi-resolution STFT + 100 x MSE).
        optimizer: builds the optimizer from the generator's parameters.
        lr_scheduler: optional; stepped every optimizer step.
        source_rate, target_rate, input_filter: linked from the data module; stored in
            checkpoints so inference needs nothing else.
        normalise: scale every item (every window at inference) around the network, and
            back: ``peak`` (or ``true``) to the training peak level, ``envelope`` by a smooth
            envelope (every passage at full level); ``false``: off. The losses see the pair
            scaled the same way.
        output_stage: what happens after the network (``audiosr.output_stage.OutputStage``:
            keeping the input's band, the level ceiling, the invented band's level); stored in
            checkpoints. ``audiosr test`` / ``validate`` run a checkpoint's own stage, and a field
            given on the command line (``--model.init_args.output_stage.invented_gain_db -3``)
            overrides it.
        precision: the network's precision outside training (validation, ``audiosr
            test``): ``"32"``, ``"bf16"`` or ``"16"``; ``audiosr upsample --precision``
            is the same switch.
        test_batch_size: windows per network call in ``audiosr test`` (raise on a GPU).
    """

    def __init__(
        self,
        network: SuperResolutionNetwork | None = None,
        loss: ReconstructionLoss | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        source_rate: int = 22050,
        target_rate: int = 44100,
        input_filter: str = "kaiser_fast",
        normalise: Normalise = True,
        output_stage: OutputStage | None = None,
        precision: Precision = "32",
        test_batch_size: int = 1,
    ) -> None:
        super().__init__()
        network = network if network is not None else UNet()
        spec = ModelSpec(network.rebuild_spec(), source_rate, target_rate, input_filter, normalise,
                         output_stage if output_stage is not None else OutputStage())
        self.generator = Generator(network, spec)
        self.loss = (loss if loss is not None else ReconstructionLoss()).setup(target_rate)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        inference_precision("cpu", precision)  # validates the name
        self.precision = precision
        self.test_batch_size = test_batch_size

    @property
    def spec(self) -> ModelSpec:
        return self.generator.spec

    @property
    def network(self) -> SuperResolutionNetwork:
        return self.generator.network

    def forward(self, rough: torch.Tensor) -> torch.Tensor:
        """The generator: rough upsampled signal ``(B, 1, T)`` -> output ``(B, 1, T)``."""
        return self.generator(rough)

    def log_parts(self, stage: str, parts: dict[str, torch.Tensor], batch_size: int) -> None:
        """Logs ``{stage}/loss`` (the total, also on the progress bar) and every raw part."""
        on_step = stage == "train"
        for name, value in parts.items():
            key = "loss" if name == "total" else name
            self.log(f"{stage}/{key}", value.detach(), on_step=on_step, on_epoch=not on_step,
                     batch_size=batch_size, sync_dist=not on_step, prog_bar=key == "loss")

    def reconstruction(self, prediction: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The reconstruction loss's parts on the pair as the network sees it.

        Both signals get the generator's level gain (``Generator.level_scale``), so a quiet
        item weighs as much as a loud one and its band stays above the losses' floors. Where
        an item's target has a cliff of its own (``edge_hz``: an encoder's low-pass, found by
        ``audiosr.band.content_edge`` in ``audiosr.data.pairs``), both are low-passed
        ``TARGET_EDGE_GUARD_HZ`` below it: above, the target is empty because of the encoder,
        and the loss must not teach the network to copy that.
        """
        scale = self.generator.level_scale(batch["input"])
        prediction, target = prediction.float() * scale, batch["target"].float() * scale
        # The input goes along (scaled and cut the same way) only to a loss that compares with it.
        rough = batch["input"].float() * scale if self.loss.uses_input else None
        edges = batch.get("edge_hz")
        if edges is not None:
            cut = edges.float().reshape(-1) < nyquist(self.spec.target_rate) - 1
            if bool(cut.any()):
                kernels = lowpass_kernels(edges.float().reshape(-1)[cut] - TARGET_EDGE_GUARD_HZ, self.spec.target_rate,
                                          TARGET_EDGE_GUARD_HZ)
                prediction, target = prediction.clone(), target.clone()
                prediction[cut] = filter_each(prediction[cut], kernels)
                target[cut] = filter_each(target[cut], kernels)
                if rough is not None:
                    rough = rough.clone()
                    rough[cut] = filter_each(rough[cut], kernels)
        return self.loss(prediction, target, rough)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        parts = self.reconstruction(self(batch["input"]), batch)
        ensure_finite(self.trainer, parts)
        self.log_parts("train", parts, batch["target"].shape[0])
        return parts["total"]

    def parameter_owners(self) -> dict[str, torch.nn.Module]:
        """The networks an optimizer can train, by the name an error message gives them."""
        return {"generator": self.generator}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        refuse_non_finite_gradients(self.trainer, optimizer, self.parameter_owners())

    def _timed(self, fn: Any, *args: Any) -> tuple[Any, float]:
        sync = self.device.type == "cuda"
        if sync:
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = fn(*args)
        if sync:
            torch.cuda.synchronize(self.device)
        return out, time.perf_counter() - start

    # Validation: the losses, the quality metrics of the output and of its own rough input, speed.

    def on_validation_epoch_start(self) -> None:
        self._validation_audio_seconds = 0.0
        self._validation_network_seconds = 0.0

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> ValidationOutput:
        """Logs ``val/loss`` and its parts, ``val/{snr,lsd,lsd_hf,lsd_lf,lsd_below_edge}``, the same of the
        input as ``val/input_*``, and ``val/score`` (lower is better; ``audiosr.evaluation.metrics.selection_score``).

        LSD follows published work (``audiosr.evaluation.metrics``); every metric is per item,
        then averaged over the validation set. ``val/score`` takes the LSD below each target's own
        edge (``edge_hz``, an encoder's cut; the Nyquist frequency where there is none): above it
        the target is empty because of the encoder, and a model would be chosen for copying that.
        """
        rough, target = batch["input"], batch["target"]
        with inference_precision(self.device, self.precision):
            prediction, seconds = self._timed(self, rough)
        prediction = prediction.float()
        batch_size = target.shape[0]
        self.log_parts("val", self.reconstruction(prediction, batch), batch_size)
        with torch.no_grad():
            spec = self.spec
            edges = batch.get("edge_hz")
            edges = edges.float().reshape(-1, 1) if edges is not None else None  # (B, 1): one per item
            cutoff = self.band_split(rough)
            values = {f"val/{k}": v.flatten()
                      for k, v in quality(prediction, target, spec.target_rate, cutoff, edges).items()}
            values.update({f"val/input_{k}": v.flatten()
                           for k, v in quality(rough, target, spec.target_rate, cutoff, edges).items()})
            honest = values.get("val/lsd_below_edge", values["val/lsd"])
            values["val/score"] = selection_score(honest, values["val/snr"], values["val/input_snr"])
        for key, value in values.items():
            self.log(key, value.mean(), on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True,
                     prog_bar=key in ("val/lsd", "val/snr", "val/score"))
        self._validation_audio_seconds += batch_size * target.shape[-1] / spec.target_rate
        self._validation_network_seconds += seconds
        return ValidationOutput(prediction.detach())

    def band_split(self, rough: torch.Tensor) -> float | torch.Tensor:
        """Where ``lsd_hf`` begins: the source Nyquist frequency, or for a model for any input each
        item's own band edge ``(B, 1)`` as the output stage finds it, at most ``TOP_BAND_HZ`` under the
        Nyquist frequency (an input with nothing missing still has a top band to be scored on)."""
        spec = self.spec
        if spec.source_rate < spec.target_rate:
            return spec.cutoff_hz
        edges = self.generator.band_edges(rough.float())
        return edges.clamp(max=nyquist(spec.target_rate) - TOP_BAND_HZ).reshape(-1, 1)

    def on_validation_epoch_end(self) -> None:
        # Seconds of audio per second of the generator's forward pass (input upsampling
        # excluded; `audiosr test` times the whole path).
        if self._validation_network_seconds > 0:
            self.log("val/rtr", self._validation_audio_seconds / self._validation_network_seconds,
                     sync_dist=True, prog_bar=True)

    # Test: whole recordings through the same windowed engine as `audiosr upsample`.

    def on_test_start(self) -> None:
        from audiosr.inference.upsampler import Upsampler

        self.upsampler = Upsampler(self.generator, device=self.device, batch_size=self.test_batch_size,
                                   precision=self.precision)
        self._warm = False

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> UpsampledRecording:
        """Upsample one whole low-rate recording ``(1, 1, T_low)``, timed."""
        low = batch["low"][0].cpu().numpy()
        # The data's rate: a model for any input is tested on files at other rates too.
        rate = getattr(getattr(self._trainer, "datamodule", None), "source_rate", None) or self.spec.source_rate
        if not self._warm:  # one untimed call: allocations, kernels and caches come first
            self.upsampler.upsample(low, rate)
            self._warm = True
        output, seconds = self._timed(self.upsampler.upsample, low, rate)
        return UpsampledRecording(output, seconds, f"audiosr {type(self.network).__name__}", self.test_batch_size,
                          str(self.device), PRECISION_NAMES[self.precision])

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.generator.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.spec.to_dict()
