"""Listen to and look at a few validation items as training goes: audio + spectrograms.

With a ``WandbLogger`` the examples go to W&B (offline runs keep them until
``wandb sync``); with any other logger, or none, they are written into the run
directory as WAV + PNG files, one folder per global step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from audiosr.training.module import ValidationOutput
from audiosr.training.runs import run_directory

KEY_PREFIX = "val_examples"
SIGNALS = ("input", "output", "target")


class AudioExamples(Callback):
    """Logs the first ``num_items`` validation items every ``every_n_validations`` validations.

    Per item ``i`` and logged validation, at the trainer's global step:

    * ``val_examples/item{i}/output``: the network's output (audio);
    * ``val_examples/item{i}/spectrogram``: input / output / target / error
      (output - target) spectrograms side by side on one colour scale, the input's
      Nyquist frequency dashed (image);
    * ``val_examples/item{i}/reference``: input (the rough ``input_filter`` upsampling
      the network sees) and target (audio), logged only when they differ from the last
      ones logged, i.e. once with a deterministic validation set. They never change, so
      repeating them every time would triple the audio stored for nothing; the
      spectrogram image still shows all three at every step.

    Without a ``WandbLogger`` the same goes to ``<run directory>/examples/step{NNNNNNN}/``
    as ``item{i}_output.wav``, ``item{i}_spectrogram.png`` and (when new)
    ``item{i}_input.wav`` / ``item{i}_target.wav``. WAV files are 16-bit PCM, clipped to
    [-1, 1], never normalised, so loudness stays comparable across steps.

    The items are the first ones of the validation loader in its order (dataloader 0),
    taken from what ``validation_step`` returns (``ValidationOutput.prediction``): no extra forward pass. The
    sanity-check validation is skipped; only global rank zero logs.

    Args:
        num_items: how many validation items to follow (0 turns the callback off).
        every_n_validations: log at the 1st, (n+1)-th, (2n+1)-th ... validation.
        max_seconds: keep only the first seconds of each item (``None``: all of it).
    """

    def __init__(self, num_items: int = 3, every_n_validations: int = 1, max_seconds: float | None = 5.0) -> None:
        if num_items < 0:
            raise ValueError(f"num_items must be >= 0, got {num_items}")
        if every_n_validations < 1:
            raise ValueError(f"every_n_validations must be >= 1, got {every_n_validations}")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive or None, got {max_seconds}")
        self.num_items = num_items
        self.every_n_validations = every_n_validations
        self.max_seconds = max_seconds
        self.validations = 0  # finished validations, sanity check excluded; checkpointed
        self._collecting = False
        self._items: list[dict[str, np.ndarray]] = []
        self._logged_references: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def state_dict(self) -> dict[str, Any]:
        # Resumed runs keep the every_n_validations rhythm.
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))

    def _due(self, trainer: L.Trainer) -> bool:
        return self.num_items > 0 and not trainer.sanity_checking and self.validations % self.every_n_validations == 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._items = []
        self._collecting = trainer.is_global_zero and self._due(trainer)

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: ValidationOutput, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        if not self._collecting or dataloader_idx != 0 or len(self._items) >= self.num_items:
            return
        if not isinstance(outputs, ValidationOutput):  # another module's validation_step: nothing to show
            return
        frames = None if self.max_seconds is None else round(self.max_seconds * pl_module.spec.target_rate)
        tensors = {"input": batch["input"], "output": outputs.prediction, "target": batch["target"]}
        for index in range(min(batch["target"].shape[0], self.num_items - len(self._items))):
            # (1, T) float32 on the CPU: copies, so the batch can be freed.
            self._items.append({
                name: value[index, ..., :frames].detach().float().cpu().numpy().copy() for name, value in tensors.items()
            })

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        due = self._due(trainer)
        self.validations += 1
        self._collecting = False
        if not due:
            return
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        # run_directory broadcasts, so every rank asks; only rank zero writes.
        directory = None if wandb_loggers else run_directory(trainer) / "examples" / f"step{trainer.global_step:07d}"
        if not trainer.is_global_zero or not self._items:
            return
        spec = pl_module.spec
        for index, item in enumerate(self._items):
            references = self._new_references(index, item)
            figure = self._figure(index, item, spec.target_rate, spec.cutoff_hz, trainer.global_step)
            if directory is not None:
                self._write_files(directory, index, item, references, figure, spec.target_rate)
            for logger in wandb_loggers:
                self._log_wandb(logger, index, item, references, figure, spec.target_rate, trainer.global_step)
            figure.clear()  # never registered with pyplot: clearing frees it
        self._items = []

    def _new_references(self, index: int, item: dict[str, np.ndarray]) -> bool:
        """True when this item's input/target differ from the ones last logged for it."""
        previous = self._logged_references.get(index)
        if previous is not None and all(np.array_equal(a, item[k]) for a, k in zip(previous, ("input", "target"))):
            return False
        self._logged_references[index] = (item["input"], item["target"])
        return True

    @staticmethod
    def _figure(index: int, item: dict[str, np.ndarray], rate: int, cutoff_hz: float, step: int):
        from audiosr.evaluation.plots import spectrogram_figure

        signals = {name: item[name] for name in SIGNALS}
        signals["error"] = item["output"] - item["target"]
        return spectrogram_figure(signals, rate, title=f"validation item {index}, step {step}", cutoff_hz=cutoff_hz)

    @staticmethod
    def _write_files(directory: Path, index: int, item: dict[str, np.ndarray], references: bool, figure: Any, rate: int) -> None:
        import soundfile

        from audiosr.audio_io import atomic_output

        names = ("input", "output", "target") if references else ("output",)
        for name in names:
            with atomic_output(directory / f"item{index}_{name}.wav") as partial:
                soundfile.write(partial, _pcm(item[name]), rate, subtype="PCM_16", format="WAV")
        with atomic_output(directory / f"item{index}_spectrogram.png") as partial:
            figure.savefig(partial, dpi=100, format="png")

    @staticmethod
    def _log_wandb(
        logger: WandbLogger, index: int, item: dict[str, np.ndarray], references: bool, figure: Any, rate: int, step: int,
    ) -> None:
        key = f"{KEY_PREFIX}/item{index}"
        if references:
            logger.log_audio(f"{key}/reference", audios=[_pcm(item["input"]), _pcm(item["target"])], step=step,
                             sample_rate=[rate, rate], caption=["input", "target"])
        logger.log_audio(f"{key}/output", audios=[_pcm(item["output"])], step=step, sample_rate=[rate],
                         caption=[f"output, step {step}"])
        logger.log_image(f"{key}/spectrogram", images=[_rgb(figure)], step=step,
                         caption=[f"input / output / target / error, step {step}"])


def _pcm(signal: np.ndarray) -> np.ndarray:
    """``(1, T)`` or ``(C, T)`` -> ``(T,)`` / ``(T, C)`` in [-1, 1] (16-bit PCM wraps around otherwise)."""
    signal = np.clip(signal, -1.0, 1.0)
    return signal[0] if signal.shape[0] == 1 else signal.T


def _rgb(figure: Any) -> np.ndarray:
    """Render a figure (with its own Agg canvas) into an ``(H, W, 3)`` uint8 array."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
