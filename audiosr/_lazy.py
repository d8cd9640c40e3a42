"""Package attributes imported on first use (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def forward_to(package: str, home: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that finds every public name of module ``home``.

    ``audiosr.inference`` and ``audiosr.evaluation`` were flat modules; their names still come
    from there, while ``audiosr.inference.command`` (``audiosr upsample --help``) imports no torch.
    """

    def __getattr__(name: str) -> Any:
        if not name.startswith("_"):
            try:
                return getattr(import_module(home), name)
            except AttributeError:
                pass
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
