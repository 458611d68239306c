"""The one agreement convention (rationalerm/analysis/agreement.py): scikit-learn's values where a figure is
defined, None where it is zero over zero, on every edge: all agree, constant raters, no positives, no
predicted positives, a single class, empty input, ties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score, roc_auc_score

from rationalerm.analysis.agreement import (
    BinaryAgreement,
    Confusion,
    binary_agreement,
    correlation,
    model_agreement,
    roc_auc,
    threshold_metrics,
)


def _sk(x: float) -> float | None:
    """scikit-learn's NaN ("undefined") is our None."""
    return None if math.isnan(x) else float(x)


def sklearn_figures(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """The oracle: B is the truth, A the prediction; undefined -> NaN -> None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on exactly the cases we report as None
        kappa = cohen_kappa_score(b, a, labels=[False, True]) if a.size else math.nan
        kw = {"labels": [False, True], "zero_division": np.nan}
        return {"kappa": _sk(kappa), "precision": _sk(precision_score(b, a, **kw)),
                "recall": _sk(recall_score(b, a, **kw)), "f1": _sk(f1_score(b, a, **kw))}


def _figures(r: BinaryAgreement) -> dict[str, float | None]:
    return {"kappa": r["kappa"], "precision": r["precision"], "recall": r["recall"], "f1": r["f1"]}


def test_binary_agreement_known_values() -> None:
    a = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    b = np.array([1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    r = binary_agreement(a, b)
    # po = 6/8, pe = (3/8)(3/8) + (5/8)(5/8) = 34/64 -> kappa = (0.75 - 0.53125) / 0.46875
    assert r["kappa"] == pytest.approx((0.75 - 34 / 64) / (1 - 34 / 64))
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["base_rate_a"] == pytest.approx(3 / 8)
    assert binary_agreement(a, a)["kappa"] == pytest.approx(1.0)
    assert list(r) == ["n", "kappa", "agreement", "base_rate_a", "base_rate_b", "precision", "recall", "f1"]


def _case(a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array([c == "1" for c in a], dtype=bool), np.array([c == "1" for c in b], dtype=bool)


EDGES = {
    # name: (A, B, expected kappa, precision, recall, f1)
    "all agree, both classes": ("1100", "1100", 1.0, 1.0, 1.0, 1.0),
    "all agree, all negative": ("000", "000", None, None, None, None),
    "all agree, all positive": ("111", "111", None, 1.0, 1.0, 1.0),
    "constant raters, opposite classes": ("111", "000", 0.0, 0.0, None, 0.0),
    "A constant negative (no predicted positive)": ("0000", "0110", 0.0, None, 0.0, 0.0),
    "B constant negative (no positive in the reference)": ("0110", "0000", 0.0, 0.0, None, 0.0),
    "B a single class (all positive)": ("1010", "1111", 0.0, 1.0, 0.5, 2 / 3),
    "no common positive": ("1000", "0100", -1 / 3, 0.0, 0.0, 0.0),
    "one item": ("1", "1", None, 1.0, 1.0, 1.0),
}


@pytest.mark.parametrize("name", list(EDGES))
def test_edge_cases_follow_the_convention(name: str) -> None:
    sa, sb, kappa, precision, recall, f1 = EDGES[name]
    a, b = _case(sa, sb)
    r = binary_agreement(a, b)
    got = _figures(r)
    expected = {"kappa": kappa, "precision": precision, "recall": recall, "f1": f1}
    assert got == pytest.approx(expected)
    assert got == pytest.approx(sklearn_figures(a, b))  # the convention is scikit-learn's NaN reading
    assert r["n"] == len(sa) and r["agreement"] == pytest.approx(np.mean(a == b))


def test_empty_input_has_no_figure() -> None:
    r = binary_agreement(np.array([], dtype=bool), np.array([], dtype=bool))
    assert r == {"n": 0, "kappa": None, "agreement": None, "base_rate_a": None, "base_rate_b": None,
                 "precision": None, "recall": None, "f1": None}
    with pytest.raises(ValueError, match="3 and 2 items"):
        binary_agreement([1, 0, 1], [1, 0])


def test_random_raters_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        n = int(rng.integers(1, 12))
        a, b = rng.random(n) < rng.random(), rng.random(n) < rng.random()  # often constant: the edges
        r = binary_agreement(a, b)
        assert _figures(r) == pytest.approx(sklearn_figures(a, b)), (a, b)


def test_kappa_is_undefined_only_when_chance_agreement_is_one() -> None:
    """Decided on the integer counts: 1 - pe = (A+ * B- + B+ * A-) / n^2."""
    assert Confusion(tp=0, fp=0, fn=0, tn=5).kappa is None
    assert Confusion(tp=5, fp=0, fn=0, tn=0).kappa is None
    assert Confusion(tp=0, fp=1, fn=0, tn=0).kappa == 0.0  # one item, opposite answers
    assert Confusion(tp=0, fp=0, fn=0, tn=0).kappa is None


def test_threshold_metrics_is_the_decision_score_at_least_threshold() -> None:
    labels = [1, 0, 1, 0, 1]
    scores = [0.9, 0.5, 0.5, 0.1, 0.2]
    r = threshold_metrics(labels, scores, 0.5)
    assert list(r) == ["threshold", "precision", "recall", "f1", "kappa"]
    a = binary_agreement(np.array(scores) >= 0.5, np.array(labels, dtype=bool))
    assert r == {"threshold": 0.5, "precision": a["precision"], "recall": a["recall"], "f1": a["f1"],
                 "kappa": a["kappa"]}
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    above_all = threshold_metrics(labels, scores, 2.0)  # nothing predicted positive
    assert above_all["precision"] is None and above_all["recall"] == 0.0 and above_all["f1"] == 0.0
    assert above_all["kappa"] == 0.0


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 2, n)
        s = rng.integers(0, 4, n) / 3  # few distinct values: many ties
        if 0 < y.sum() < n:
            assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
        else:
            assert roc_auc(y, s) is None


def test_auc_edges() -> None:
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)  # all tied: a coin
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.0)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1, 1], [0.1, 0.2, 0.3]) is None  # a single class
    assert roc_auc([0, 0], [0.1, 0.2]) is None
    assert roc_auc([], []) is None


def test_correlation_edges() -> None:
    x, y = [0.1, 0.4, 0.2, 0.9], [0.2, 0.5, 0.1, 0.7]
    r = correlation(x, y)
    assert r["n"] == 4
    assert r["pearson"] == pytest.approx(stats.pearsonr(x, y)[0])
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert correlation([0.1, 0.2], [0.3, 0.1]) == {"n": 2, "pearson": None, "spearman": None}  # two points
    assert correlation([0.5] * 4, y) == {"n": 4, "pearson": None, "spearman": None}  # a constant side
    assert correlation(x, [0.5] * 4)["spearman"] is None
    assert correlation([], []) == {"n": 0, "pearson": None, "spearman": None}
    with pytest.raises(ValueError):
        correlation([1.0, 2.0, 3.0], [1.0, 2.0])


def test_model_agreement_is_the_matcher_swap_fit() -> None:
    r = model_agreement({"x": 0.2, "y": 0.4, "z": 0.6}, {"x": 0.3, "y": 0.5, "z": 0.7})
    assert r["kendall_tau"] == pytest.approx(1.0) and r["r2"] == pytest.approx(1.0)
    assert r["slope"] == pytest.approx(1.0) and r["intercept"] == pytest.approx(0.1) and r["rmse"] == pytest.approx(0.1)
    flipped = model_agreement({"x": 0.2, "y": 0.4, "z": 0.6}, {"x": 0.6, "y": 0.4, "z": 0.2})
    assert flipped["kendall_tau"] == pytest.approx(-1.0)
    assert list(r) == ["models", "n_models", "rmse", "kendall_tau", "r2", "slope", "intercept"]


def test_model_agreement_edges() -> None:
    ties = model_agreement({"w": 0.1, "x": 0.2, "y": 0.2, "z": 0.6}, {"w": 0.3, "x": 0.3, "y": 0.5, "z": 0.7})
    assert ties["kendall_tau"] == pytest.approx(stats.kendalltau([0.1, 0.2, 0.2, 0.6], [0.3, 0.3, 0.5, 0.7])[0])
    one = model_agreement({"x": 0.2}, {"x": 0.5, "other": 0.1})  # only shared models count
    assert one["n_models"] == 1 and one["rmse"] == pytest.approx(0.3)
    assert (one["kendall_tau"], one["r2"], one["slope"], one["intercept"]) == (None, None, None, None)
    flat = model_agreement({"x": 0.2, "y": 0.2}, {"x": 0.1, "y": 0.5})  # A ranks nothing
    assert flat["kendall_tau"] is None and flat["r2"] is None and flat["rmse"] is not None
    none = model_agreement({}, {})
    assert none["n_models"] == 0 and none["rmse"] is None and none["models"] == {}
