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
    assert one_class == {"n": 3, "positives": 3, "auc": None, "auc_ci": None, "best": None}
    soft = validation_metrics([0.1, 0.4, 0.6, 0.9], [0.2, 0.3, 0.7, 0.8])
    # training.json's order
    assert list(soft) == ["n", "positives", "auc", "auc_ci", "best", "spearman", "pearson", "mae"]
    assert soft["spearman"] == pytest.approx(1.0) and soft["mae"] == pytest.approx(0.1)
    assert soft["best"] is not None and soft["best"]["f1"] == 1.0


def test_auc_interval_is_hanley_mcneil() -> None:
    """Hanley & McNeil (1982), eq. 2: AUC 0.8 on 50 positives x 50 negatives has SE 0.0445 (by hand:
    Q1 = 0.8 / 1.2, Q2 = 1.28 / 1.8, SE^2 = (0.16 + 49 (Q1 - 0.64) + 49 (Q2 - 0.64)) / 2500)."""
    from rationalerm.training.validation import auc_interval

    ci = auc_interval(0.8, 50, 50)
    assert ci is not None
    assert (ci[1] - ci[0]) / 2 / 1.959964 == pytest.approx(0.04450, abs=5e-5)
    assert sum(ci) / 2 == pytest.approx(0.8)
    assert auc_interval(None, 5, 5) is None and auc_interval(0.7, 0, 5) is None
    assert auc_interval(1.0, 3, 3) == [1.0, 1.0] and auc_interval(0.5, 1, 1) == [0.0, 1.0]


def test_chance_verdict() -> None:
    """No better than chance: the AUC interval reaches 0.5, or kappa at the judge's threshold is <= 0."""
    from rationalerm.training.validation import chance_verdict

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    noise = validation_metrics(y, rng.random(400))
    assert noise["auc_ci"] is not None and noise["auc_ci"][0] <= 0.5
    assert "no better than chance" in (chance_verdict(noise) or "")
    good = validation_metrics(y, 0.6 * y + 0.5 * rng.random(400))
    good["at_threshold"] = binary_metrics(y, 0.6 * y + 0.5 * rng.random(400), 0.5)
    assert good["auc"] is not None and good["auc"] > 0.9 and chance_verdict(good) is None
    good["at_threshold"] = binary_metrics(y, np.zeros(400), 0.5)  # ranks well, but says "no match" to every pair
    assert "kappa 0.000 at the saved threshold 0.500" in (chance_verdict(good) or "")
    small = validation_metrics([1, 0, 1, 0, 1, 0], [0.9, 0.1, 0.8, 0.2, 0.7, 0.3])  # perfect, but 3 x 3 pairs
    assert small["auc"] == 1.0 and chance_verdict(small) is None  # the interval of a perfect AUC is [1, 1]
    shaky = validation_metrics([1, 0, 1, 0, 1, 0], [0.9, 0.1, 0.8, 0.85, 0.2, 0.3])
    assert "no better than chance" in (chance_verdict(shaky) or "")  # AUC 0.67 on 9 pairs: within noise
    assert chance_verdict(None) is None and chance_verdict(validation_metrics([1, 1], [0.2, 0.3])) is None
