"""The figures a trained cross-encoder is judged by on its held-out human items (``training.json``'s
``validation``): AUC, the best-F1 threshold with precision / recall / F1 / kappa there, and correlations with
soft labels.

The figures themselves come from ``analysis/agreement.py``, the project's one agreement module, so a model
card and ``compare`` never print different numbers for the same decisions (an undefined figure is None there).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

from rationalerm.analysis.agreement import ThresholdMetrics, correlation, roc_auc, threshold_metrics


class ValidationFigures(TypedDict):
    """``training.json``'s ``validation`` (keys in this order)."""

    n: int
    positives: int
    auc: float | None
    best: ThresholdMetrics | None  # at the validation best-F1 threshold; None without both classes
    spearman: NotRequired[float | None]  # soft labels only: against the labels themselves
    pearson: NotRequired[float | None]
    mae: NotRequired[float]
    at_threshold: NotRequired[ThresholdMetrics | None]  # at the threshold the judge uses by default


def best_f1_threshold(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """The score cut ``score >= t`` with the highest F1 (ties: the higher t), over every distinct score."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]  # end of each run of equal scores
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    pos = y.sum()
    f1 = np.where(tp > 0, 2 * tp / np.maximum(tp + fp + pos, 1), 0.0)
    best = int(np.flatnonzero(f1 == f1.max())[0])  # first = highest threshold among the best
    return float(s_sorted[last[best]])


def validation_metrics(labels: npt.ArrayLike, scores: npt.ArrayLike) -> ValidationFigures:
    """AUC, best-F1 threshold (with P/R/F1/kappa there) against labels >= 0.5; correlations for soft labels."""
    lab = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    y = (lab >= 0.5).astype(int)
    both = bool(len(y) and 0 < y.sum() < len(y))
    out: ValidationFigures = {"n": int(len(y)), "positives": int(y.sum()), "auc": roc_auc(y, s),
                              "best": threshold_metrics(y, s, best_f1_threshold(y, s)) if both else None}
    corr = correlation(lab, s)
    if np.any((lab > 0) & (lab < 1)) and corr["spearman"] is not None:
        out["spearman"], out["pearson"] = corr["spearman"], corr["pearson"]
        out["mae"] = float(np.abs(lab - s).mean())
    return out
