"""What every super-resolution network promises, so that configs can swap backbones.

A network is a pure ``nn.Module`` (no Lightning) that maps the rough upsampled signal
``(B, 1, T)`` at the target rate to a full-band estimate ``(B, 1, T)``, for any ``T``. It
declares what inference needs to cut long signals into windows, and it can be rebuilt
from its constructor arguments, which are captured automatically: a new family is one
file in ``models/`` and one YAML, nothing to register.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn


def _plain(value: Any) -> Any:
    """Constructor arguments as YAML/JSON values (tuples become lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"network constructor arguments must be plain values (numbers, strings, lists, dicts) "
        f"so that a checkpoint can rebuild the network; got {type(value).__name__}"
    )


class SuperResolutionNetwork(nn.Module, ABC):
    """A waveform-to-waveform network at the target rate.

    Subclasses implement ``forward`` and may refine two facts that inference relies on:

    * ``length_multiple``: inputs are padded to, and the network only commutes with shifts
      by, multiples of this many samples (``2**depth`` for a U-Net, the hop for an STFT);
    * ``receptive_field``: how many samples on each side one output sample depends on
      (an upper bound); inference gives every window at least this much context.

    ``init_args`` holds the constructor arguments (captured when the object is made), so
    ``build_network({"class_path": ..., "init_args": ...})`` rebuilds it without Lightning.
    """

    length_multiple: int = 1
    # Constructor arguments of the smallest network of this design that still trains: what
    # `tiny: true` (configs/overlays/debug.yaml) sets, so a smoke run keeps the recipe's family.
    tiny_args: ClassVar[dict[str, Any]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> SuperResolutionNetwork:
        self = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(self, *args, **kwargs)
        except TypeError:
            # Wrong arguments: __init__ raises the real error next. (copy and pickle also
            # call __new__ without arguments, then restore `_init_args` with the state.)
            return self
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(arguments)))  # `self`
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if parameter.kind is parameter.VAR_KEYWORD:
                arguments.update(arguments.pop(name))
            elif parameter.kind is parameter.VAR_POSITIONAL:
                raise TypeError(f"{cls.__name__}: *args cannot be captured for rebuilding")
        object.__setattr__(self, "_init_args", _plain(arguments))
        return self

    @property
    def init_args(self) -> dict[str, Any]:
        return dict(self._init_args)

    @property
    def class_path(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def rebuild_spec(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: what :func:`build_network` needs."""
        return {"class_path": self.class_path, "init_args": self.init_args}

    @property
    def receptive_field(self) -> int:
        """Samples on each side that one output sample depends on (an upper bound)."""
        return 0

    @property
    def needs_edges(self) -> bool:
        """Whether ``forward(x, edges)`` needs each item's band edge ``(B,)`` in Hz (a network for
        inputs of any band); the ``Generator`` finds them with its output stage and passes them."""
        return False

    def bind_rates(self, source_rate: int, target_rate: int) -> None:
        """Told the rates it runs at (by the ``Generator``); networks that need them keep them.

        A rate stays a fact of the data, never a network argument written a second time.
        """

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map the rough signal ``(B, 1, T)`` to the full-band estimate ``(B, 1, T)``."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_network(spec: dict[str, Any]) -> SuperResolutionNetwork:
    """Rebuild a network from ``{"class_path": "module.Class", "init_args": {...}}``."""
    import importlib

    module_name, _, class_name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, SuperResolutionNetwork)):
        raise TypeError(f"{spec['class_path']} is not a SuperResolutionNetwork")
    return cls(**spec.get("init_args", {}))
