"""Agreement between two runs (or a run and gold labels): pair, sample and model level (DESIGN.md step 8).

Model-level figures follow the paper's matcher-swap check: per-model RC under matcher A against
matcher B, with Kendall tau of the ranking and R^2 / RMSE / fitted line of the per-model values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from rationalerm.errors import RationaleRMError
from rationalerm.runs.directory import SavedRun, UnitKey
from rationalerm.runs.gold import GoldLabels, gold_cells
from rationalerm.scoring.assign import assign
from rationalerm.scoring.metrics import METRICS


def _nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def binary_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Cohen's kappa beside both base rates, and precision/recall of A's positives against B's."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = a.size
    if n == 0:
        return {"n": 0, "kappa": None, "agreement": None, "base_rate_a": None, "base_rate_b": None,
                "precision": None, "recall": None, "f1": None}
    pa, pb = a.mean(), b.mean()
    po = float((a == b).mean())
    pe = pa * pb + (1 - pa) * (1 - pb)
    kappa = 1.0 if pe == 1 else (po - pe) / (1 - pe)
    tp = int((a & b).sum())
    prec = tp / a.sum() if a.sum() else float("nan")
    rec = tp / b.sum() if b.sum() else float("nan")
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else float("nan")
    return {"n": int(n), "kappa": _nan(kappa), "agreement": po, "base_rate_a": float(pa), "base_rate_b": float(pb),
            "precision": _nan(prec), "recall": _nan(rec), "f1": _nan(f1)}


def _assigned(w: np.ndarray, threshold: float) -> np.ndarray:
    m = np.zeros(w.shape, dtype=bool)
    for i, j, s in assign(w):
        m[i, j] = s >= threshold
    return m


def _correlations(x: list[float], y: list[float]) -> dict[str, Any]:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"n": len(x), "pearson": None, "spearman": None}
    return {"n": len(x), "pearson": _nan(stats.pearsonr(x, y)[0]), "spearman": _nan(stats.spearmanr(x, y)[0])}


def model_agreement(rc_a: dict[str, float], rc_b: dict[str, float]) -> dict[str, Any]:
    """Kendall tau of the model ranking; R^2, RMSE and fitted line (B = slope * A + intercept)."""
    names = sorted(set(rc_a) & set(rc_b))
    x = np.array([rc_a[n] for n in names])
    y = np.array([rc_b[n] for n in names])
    out: dict[str, Any] = {"models": {n: {"a": rc_a[n], "b": rc_b[n]} for n in names}, "n_models": len(names)}
    out["rmse"] = float(np.sqrt(np.mean((x - y) ** 2))) if names else None
    if len(names) >= 2 and np.std(x) > 0 and np.std(y) > 0:
        fit = stats.linregress(x, y)
        out.update(kendall_tau=_nan(stats.kendalltau(x, y)[0]), r2=float(fit.rvalue**2),
                   slope=float(fit.slope), intercept=float(fit.intercept))
    else:
        out.update(kendall_tau=None, r2=None, slope=None, intercept=None)
    return out


def _common(a: SavedRun, b: SavedRun) -> list[UnitKey]:
    keys = []
    for key in sorted(set(a.units) & set(b.units)):
        ra, rb = a.units[key], b.units[key]
        if ra["human"] == rb["human"] and ra["items"] == rb["items"]:
            keys.append(key)
    return keys


def compare_runs(a: SavedRun, b: SavedRun, threshold: float = 0.5) -> dict[str, Any]:
    """A against B over the units both runs scored with identical texts and valid matrices."""
    keys = [k for k in _common(a, b) if a.matrix(k) is not None and b.matrix(k) is not None]
    if not keys:
        raise RationaleRMError(f"{a.path} and {b.path} share no scored sample x model units with the same texts")
    cells_a = np.concatenate([(a.matrix(k) >= threshold).ravel() for k in keys])
    cells_b = np.concatenate([(b.matrix(k) >= threshold).ravel() for k in keys])
    asg_a = np.concatenate([_assigned(a.matrix(k), threshold).ravel() for k in keys])
    asg_b = np.concatenate([_assigned(b.matrix(k), threshold).ravel() for k in keys])
    scores_a = np.concatenate([a.matrix(k).ravel() for k in keys])
    scores_b = np.concatenate([b.matrix(k).ravel() for k in keys])
    per_sample = {m: _correlations([a.units[k][m] for k in keys], [b.units[k][m] for k in keys]) for m in METRICS}
    models = sorted({k[1] for k in keys})
    rc_a = {m: float(np.mean([a.units[k]["recall"] for k in keys if k[1] == m])) for m in models}
    rc_b = {m: float(np.mean([b.units[k]["recall"] for k in keys if k[1] == m])) for m in models}
    return {
        "a": str(a.path), "b": str(b.path), "threshold": threshold, "units": len(keys),
        "pairs": {"cells": binary_agreement(cells_a, cells_b), "assigned": binary_agreement(asg_a, asg_b),
                  "score_correlation": _correlations(scores_a.tolist(), scores_b.tolist())},
        "per_sample": per_sample,
        "per_model_rc": model_agreement(rc_a, rc_b),
    }


def _auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return None
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def compare_with_gold(run: SavedRun, gold: GoldLabels, threshold: float = 0.5) -> dict[str, Any]:
    """A run's cells and one-to-one matches against human pair labels (unlabelled cells left out)."""
    golds = gold_cells(run, gold)
    keys = [k for k in golds if run.matrix(k) is not None]
    if not keys:
        raise RationaleRMError(f"no gold label matches a scored pair of {run.path}")
    sel = [~np.isnan(golds[k]) for k in keys]
    g = np.concatenate([golds[k][s] for k, s in zip(keys, sel)]).astype(bool)
    w = np.concatenate([run.matrix(k)[s] for k, s in zip(keys, sel)])
    asg = np.concatenate([_assigned(run.matrix(k), threshold)[s] for k, s in zip(keys, sel)])
    return {"run": str(run.path), "threshold": threshold, "units": len(keys), "labelled_pairs": int(g.size),
            "cells": binary_agreement(w >= threshold, g), "assigned": binary_agreement(asg, g),
            "auc": _auc(w, g.astype(int))}
