"""Evaluation: metrics, the comparison with classical resampling, its reports and figures.

    from audiosr.evaluation import BASELINES, Comparison, to_markdown

The names below are imported on first use.
"""

from __future__ import annotations

from audiosr._lazy import forward_to

__all__ = ["BASELINES", "CAPTION", "METRICS", "Comparison", "Row", "markdown_table", "time_method", "to_markdown",
           "write_report"]
__getattr__ = forward_to(__name__, "audiosr.evaluation.comparison")
