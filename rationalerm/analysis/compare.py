"""Agreement between two runs (or a run and gold labels): pair, sample and model level (DESIGN.md step 8).

Model-level figures follow the paper's matcher-swap check: per-model RC under matcher A against
matcher B, with Kendall tau of the ranking and R^2 / RMSE / fitted line of the per-model values. Every
figure comes from ``agreement`` (its docstring says which are undefined, None, at the edges).

Runs are aligned by (sample id, model): a run with two rows for one such unit is refused, never collapsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from rationalerm.analysis.agreement import (
    BinaryAgreement,
    Correlation,
    ModelAgreement,
    binary_agreement,
    correlation,
    model_agreement,
    roc_auc,
)
from rationalerm.errors import RationaleRMError
from rationalerm.runs.directory import SavedRun, UnitKey, one_row_per_unit
from rationalerm.runs.gold import MATCH_AT, GoldLabels, gold_cells
from rationalerm.scoring.assign import assign
from rationalerm.scoring.sample import METRICS


class PairLevels(TypedDict):
    cells: BinaryAgreement
    assigned: BinaryAgreement
    score_correlation: Correlation


class RunComparison(TypedDict):
    """``compare A B``: what ``--json`` writes under ``runs``."""

    a: str
    b: str
    threshold: float
    units: int
    pairs: PairLevels
    per_sample: dict[str, Correlation]
    per_model_rc: ModelAgreement


class GoldComparison(TypedDict):
    """``compare --gold``: one run's cells and one-to-one matches against human pair labels."""

    run: str
    threshold: float
    units: int
    labelled_pairs: int
    cells: BinaryAgreement
    assigned: BinaryAgreement
    auc: float | None


Matrices = dict[UnitKey, np.ndarray]


def _assigned(w: np.ndarray, threshold: float) -> np.ndarray:
    """The cells of the one-to-one assignment whose score reaches ``threshold``."""
    m = np.zeros(w.shape, dtype=bool)
    for i, j, s in assign(w):
        m[i, j] = s >= threshold
    return m


def _matrices(run: SavedRun, keys: Sequence[UnitKey]) -> Matrices:
    """The complete score matrices of ``keys`` (units without one are left out)."""
    return {k: w for k in keys if (w := run.matrix(k)) is not None}


def _ranking_scores(run: SavedRun, key: UnitKey, w: np.ndarray) -> np.ndarray:
    """The score a cell is ranked by for AUC: the raw cosine where the row keeps it (the embedding judge's matrix
    is 0 below its threshold, a tie AUC cannot order), else the matrix score."""
    details = run.units[key].get("details")
    try:
        raw = np.array([[cell["cosine"] for cell in line] for line in details or []], dtype=float)
    except (TypeError, KeyError):
        return w
    return raw if raw.shape == w.shape else w


def _common(a: SavedRun, b: SavedRun) -> list[UnitKey]:
    keys = []
    for key in sorted(set(a.units) & set(b.units)):
        ra, rb = a.units[key], b.units[key]
        if ra["human"] == rb["human"] and ra["items"] == rb["items"]:
            keys.append(key)
    return keys


def _scores(ws: Matrices, keys: Sequence[UnitKey]) -> np.ndarray:
    return np.concatenate([ws[k].ravel() for k in keys])


def _pair_levels(wa: Matrices, wb: Matrices, keys: Sequence[UnitKey], threshold: float) -> PairLevels:
    """Every cell's decision, the one-to-one matches, and the raw scores of A against B."""
    scores_a, scores_b = _scores(wa, keys), _scores(wb, keys)
    asg_a = np.concatenate([_assigned(wa[k], threshold).ravel() for k in keys])
    asg_b = np.concatenate([_assigned(wb[k], threshold).ravel() for k in keys])
    return {"cells": binary_agreement(scores_a >= threshold, scores_b >= threshold),
            "assigned": binary_agreement(asg_a, asg_b), "score_correlation": correlation(scores_a, scores_b)}


def _model_rc(run: SavedRun, keys: Sequence[UnitKey]) -> dict[str, float]:
    """RC per model: the mean recall over ``keys``."""
    return {m: float(np.mean([run.units[k]["recall"] for k in keys if k[1] == m]))
            for m in sorted({k[1] for k in keys})}


def compare_runs(a: SavedRun, b: SavedRun, threshold: float = 0.5) -> RunComparison:
    """A against B over the units both runs scored with identical texts and valid matrices."""
    common = _common(one_row_per_unit(a, "compare"), one_row_per_unit(b, "compare"))
    wa, wb = _matrices(a, common), _matrices(b, common)
    keys = [k for k in common if k in wa and k in wb]
    if not keys:
        raise RationaleRMError(f"{a.path} and {b.path} share no scored sample x model units with the same texts")
    per_sample: dict[str, Correlation] = {m: correlation([a.units[k][m] for k in keys], [b.units[k][m] for k in keys])
                                          for m in METRICS}
    return {
        "a": str(a.path), "b": str(b.path), "threshold": threshold, "units": len(keys),
        "pairs": _pair_levels(wa, wb, keys, threshold), "per_sample": per_sample,
        "per_model_rc": model_agreement(_model_rc(a, keys), _model_rc(b, keys)),
    }


def compare_with_gold(run: SavedRun, gold: GoldLabels, threshold: float = 0.5) -> GoldComparison:
    """A run's cells and one-to-one matches against human pair labels (unlabelled cells left out)."""
    golds = gold_cells(one_row_per_unit(run, "compare"), gold)
    ws = _matrices(run, list(golds))
    keys = list(ws)
    if not keys:
        raise RationaleRMError(f"no gold label matches a scored pair of {run.path}")
    sel = [~np.isnan(golds[k]) for k in keys]
    g = np.concatenate([golds[k][s] for k, s in zip(keys, sel)]) >= MATCH_AT
    w = np.concatenate([ws[k][s] for k, s in zip(keys, sel)])
    raw = np.concatenate([_ranking_scores(run, k, ws[k])[s] for k, s in zip(keys, sel)])
    asg = np.concatenate([_assigned(ws[k], threshold)[s] for k, s in zip(keys, sel)])
    return {"run": str(run.path), "threshold": threshold, "units": len(keys), "labelled_pairs": int(g.size),
            "cells": binary_agreement(w >= threshold, g), "assigned": binary_agreement(asg, g),
            "auc": roc_auc(g, raw)}
