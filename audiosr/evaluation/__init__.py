"""Evaluation: metrics, the comparison with classical resampling, its reports and figures.

    from audiosr.evaluation import BASELINES, Comparison, to_markdown

The names below are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = "audiosr.evaluation.comparison"
__all__ = ["BASELINES", "CAPTION", "METRICS", "Comparison", "Row", "markdown_table", "time_method", "to_markdown",
           "write_report"]


def __getattr__(name: str) -> Any:
    # Every public name of audiosr/evaluation/comparison.py (what the flat module audiosr.evaluation offered).
    if not name.startswith("_"):
        try:
            return getattr(import_module(_HOME), name)
        except AttributeError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
