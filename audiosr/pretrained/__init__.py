"""The default model that ships with audiosr: upsample a file before training anything.

``default.pt`` is a generator file (see ``audiosr.models.checkpoint``); ``MODEL_CARD.md`` beside
it says what it was trained on (with the data's attribution), for how long, with which
config, and how it compares with classical resampling.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "default.pt"


def default_model_path() -> Path:
    """Path of the shipped default model; a clear error if this installation lacks it."""
    path = Path(__file__).with_name(DEFAULT_MODEL)
    if not path.is_file():
        raise FileNotFoundError(
            f"the default model {path} is missing from this installation; reinstall audiosr, "
            "or give a checkpoint with --ckpt_path"
        )
    return path


def model_card_path() -> Path:
    return Path(__file__).with_name("MODEL_CARD.md")
