"""The figures a trained cross-encoder is judged by on its held-out human items (``training.json``'s
``validation``): AUC, the best-F1 threshold with precision / recall / F1 / kappa there, and correlations with
soft labels; and whether the model ranks held-out pairs better than chance at all (``chance_verdict``).

The figures themselves come from ``analysis/agreement.py``, the project's one agreement module, so a model
card and ``compare`` never print different numbers for the same decisions (an undefined figure is None there).
"""

from __future__ import annotations

import math
from typing import NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

from rationalerm.analysis.agreement import ThresholdMetrics, correlation, roc_auc, threshold_metrics


class ValidationFigures(TypedDict):
    """``training.json``'s ``validation`` (keys in this order)."""

    n: int
    positives: int
    auc: float | None
    auc_ci: NotRequired[list[float] | None]  # Hanley-McNeil 95% interval of the AUC (None without both classes)
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


AUC_CONFIDENCE_Z = 1.959964
"""z of the two-sided 95% interval of the AUC that the chance check reads."""


def auc_interval(auc: float | None, positives: int, negatives: int) -> list[float] | None:
    """Hanley & McNeil's (1982) 95% interval of an AUC from ``positives`` x ``negatives`` pairs (exponential
    approximation of the U statistic's variance), clipped to [0, 1]; None when the AUC is undefined."""
    if auc is None or positives < 1 or negatives < 1:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    half = AUC_CONFIDENCE_Z * math.sqrt(max(var, 0.0))
    return [max(0.0, auc - half), min(1.0, auc + half)]


def chance_verdict(figures: ValidationFigures | None) -> str | None:
    """Why the held-out figures show a model no better than chance, or None when they do not.

    The rule: the lower end of the AUC's 95% Hanley-McNeil interval is at or below 0.5 (held-out pairs are not
    ranked better than a coin would, beyond noise), or kappa at the judge's threshold is at or below 0 (its
    decisions agree with the labels no better than chance). Without held-out pairs of both classes there is
    nothing to check (None; the card says so elsewhere)."""
    if figures is None or figures["auc"] is None:
        return None
    ci = figures.get("auc_ci")
    if ci is not None and ci[0] <= 0.5:
        return (f"validation AUC {figures['auc']:.3f} (95% interval {ci[0]:.3f}-{ci[1]:.3f} on {figures['n']} "
                "held-out pairs) is no better than chance (0.5)")
    at = figures.get("at_threshold")
    if at is not None and at["kappa"] is not None and at["kappa"] <= 0:
        return (f"kappa {at['kappa']:.3f} at the saved threshold {at['threshold']:.3f}: its decisions agree with "
                "the held-out labels no better than chance")
    return None


def validation_metrics(labels: npt.ArrayLike, scores: npt.ArrayLike) -> ValidationFigures:
    """AUC, best-F1 threshold (with P/R/F1/kappa there) against labels >= 0.5; correlations for soft labels."""
    lab = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    y = (lab >= 0.5).astype(int)
    both = bool(len(y) and 0 < y.sum() < len(y))
    auc = roc_auc(y, s)
    out: ValidationFigures = {"n": int(len(y)), "positives": int(y.sum()), "auc": auc,
                              "auc_ci": auc_interval(auc, int(y.sum()), int(len(y) - y.sum())),
                              "best": threshold_metrics(y, s, best_f1_threshold(y, s)) if both else None}
    corr = correlation(lab, s)
    if np.any((lab > 0) & (lab < 1)) and corr["spearman"] is not None:
        out["spearman"], out["pearson"] = corr["spearman"], corr["pearson"]
        out["mae"] = float(np.abs(lab - s).mean())
    return out
