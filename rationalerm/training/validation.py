"""The figures a trained cross-encoder is judged by on its held-out human items (``training.json``'s
``validation``): AUC, the best-F1 threshold with precision / recall / F1 / kappa there, and correlations with
soft labels. numpy and scipy only (no scikit-learn at run time).

These keep the conventions training.json has always had (precision with no positive decision is 0.0; kappa
is 1.0 only when every decision agrees, else 0.0, where the chance agreement is 1).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import numpy as np
import numpy.typing as npt


class BinaryFigures(TypedDict):
    """Agreement of the decisions ``score >= threshold`` with binary labels."""

    threshold: float
    precision: float
    recall: float
    f1: float
    kappa: float


class ValidationFigures(TypedDict):
    """``training.json``'s ``validation`` (keys in this order)."""

    n: int
    positives: int
    auc: float | None
    best: BinaryFigures | None  # at the validation best-F1 threshold; None without both classes
    spearman: NotRequired[float]  # soft labels only: against the labels themselves
    pearson: NotRequired[float]
    mae: NotRequired[float]
    at_threshold: NotRequired[BinaryFigures | None]  # at the threshold the judge uses by default


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float | None:
    """Mann-Whitney AUC with average ranks for ties; None without both classes."""
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float) -> BinaryFigures:
    """Precision, recall, F1 and Cohen's kappa of ``score >= threshold``."""
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(scores, dtype=float) >= threshold
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    po = float((pred == y).mean()) if y.size else 0.0
    pe = float(pred.mean() * y.mean() + (1 - pred.mean()) * (1 - y.mean())) if y.size else 0.0
    kappa = (po - pe) / (1 - pe) if pe < 1 else (1.0 if po == 1 else 0.0)
    return {"threshold": float(threshold), "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0, "kappa": float(kappa)}


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
                              "best": binary_metrics(y, s, best_f1_threshold(y, s)) if both else None}
    if np.any((lab > 0) & (lab < 1)) and len(lab) >= 3 and np.std(lab) > 0 and np.std(s) > 0:
        from scipy.stats import pearsonr, spearmanr

        out["spearman"] = float(spearmanr(lab, s)[0])
        out["pearson"] = float(pearsonr(lab, s)[0])
        out["mae"] = float(np.abs(lab - s).mean())
    return out
