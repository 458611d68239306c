"""The held-out figures of ``training.json`` (AUC, best-F1 threshold, binary metrics) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from rationalerm.analysis.agreement import roc_auc
from rationalerm.analysis.agreement import threshold_metrics as binary_metrics
from rationalerm.training.validation import best_f1_threshold, validation_metrics


def test_metric_helpers_match_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.3 * y, 2)  # ties included
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))

    f1s = {t: binary_metrics(y, s, t)["f1"] for t in sorted(set(s.tolist()))}
    best = max(f1s.values())
    assert best_f1_threshold(y, s) == max(t for t, f in f1s.items() if f == best)


def test_binary_metrics_edge_conventions() -> None:
    """The project's one convention (analysis/agreement.py): a figure that is zero over zero is None, in a model
    card as in compare. No positive decision -> precision None; a chance agreement of 1 -> kappa None."""
    assert binary_metrics([1, 0], [0.1, 0.2], 0.5) == {"threshold": 0.5, "precision": None, "recall": 0.0,
                                                       "f1": 0.0, "kappa": 0.0}
    assert binary_metrics([0, 0], [0.1, 0.2], 0.5)["kappa"] is None  # all negative, all agree: pe == 1
    assert binary_metrics([1, 1], [0.9, 0.1], 0.5)["kappa"] == 0.0  # labels one class, decisions two
    assert binary_metrics([], [], 0.5)["kappa"] is None


def test_validation_metrics_keys_and_soft_labels() -> None:
    one_class = validation_metrics([1.0, 1.0, 1.0], [0.2, 0.5, 0.9])
    assert one_class == {"n": 3, "positives": 3, "auc": None, "best": None}
    soft = validation_metrics([0.1, 0.4, 0.6, 0.9], [0.2, 0.3, 0.7, 0.8])
    assert list(soft) == ["n", "positives", "auc", "best", "spearman", "pearson", "mae"]  # training.json's order
    assert soft["spearman"] == pytest.approx(1.0) and soft["mae"] == pytest.approx(0.1)
    assert soft["best"] is not None and soft["best"]["f1"] == 1.0
