"""Evaluation: metrics, the comparison with classical resampling, its reports and figures.

    from audiosr.evaluation import BASELINES, Comparison, to_markdown

The names below are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {name: "audiosr.evaluation.comparison" for name in (
    "BASELINES", "CAPTION", "METRICS", "Comparison", "Row", "markdown_table", "time_method", "to_markdown", "write_report")}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
