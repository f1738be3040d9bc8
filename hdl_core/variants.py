"""The labeling variants by name, for the estimator, the CLI, the workspace and the app.

"reach" (`hdl_core.reach`, the default), "balanced" (`hdl_core.balanced`) and "paper"
(`hdl_core.hdl`, Algorithm 1). Each labels with the same arguments: ``(X, y, *, k, graph,
metric, bridge)``; ``prepared`` takes rows the metric has already prepared.
"""
from __future__ import annotations

from typing import Callable

from .config import VARIANTS
from .hdl import LabelingResult

# what the app calls each variant in a sentence
DESCRIPTIONS = {
    "reach": "reach-ordered HDL",
    "balanced": "class-balanced HDL",
    "paper": "the paper's HDL (Algorithm 1)",
}


def check_variant(variant) -> str:
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, VARIANTS))}, "
                         f"got {variant!r}")
    return variant


def label_function(variant: str) -> Callable[..., LabelingResult]:
    """The variant's labeling function on embeddings (`reach_label`, `balanced_label`,
    `hdl_label`)."""
    check_variant(variant)
    if variant == "reach":
        from .reach import reach_label
        return reach_label
    if variant == "balanced":
        from .balanced import balanced_label
        return balanced_label
    from .hdl import hdl_label
    return hdl_label


def prepared_function(variant: str) -> Callable[..., LabelingResult]:
    """The variant's labeling function on rows the metric has prepared (no copy of them)."""
    check_variant(variant)
    if variant == "reach":
        from .reach import label_prepared_rows
        return label_prepared_rows
    if variant == "balanced":
        from .balanced import label_prepared_rows
        return label_prepared_rows
    from .hdl import label_prepared_rows
    return label_prepared_rows


def has_own_k(variant: str) -> bool:
    """True when "auto" means the variant's own k (`hdl_core.balanced.auto_k`: 10, fewer for
    small classes) rather than the paper's `choose_k` over the seeds."""
    return check_variant(variant) != "paper"
