"""Agreement statistics, written once: two binary raters (Cohen's kappa, precision / recall / F1), scores
against labels (AUC), paired values (Pearson / Spearman) and two model rankings (Kendall tau, R^2, the fitted
line). ``compare`` and ``calibrate`` read their figures from here, and ``threshold_metrics`` / ``roc_auc`` /
``correlation`` have the shapes the trainer's validation needs, so no two commands print different numbers for
the same decisions.

Convention: a figure whose formula is zero over zero is *undefined* and is None (JSON ``null``, printed
``—``), never a made-up 0 or 1. This is scikit-learn's reading with ``zero_division=np.nan`` and
``replace_undefined_by=np.nan`` (``roc_auc_score`` calls a one-class AUC undefined too), and where a figure is
defined its value is scikit-learn's (the tests use it as the oracle):

- kappa ``(po - pe) / (1 - pe)`` is None when ``pe == 1``: both raters give the same single class to every
  item. They agree completely, but nothing tells skill from chance; ``agreement`` (po) says they agree. Tested
  on the integer counts, so no rounding decides it.
- precision ``TP / (TP + FP)`` is None when A marks no positive; recall ``TP / (TP + FN)`` when B has none.
- F1 ``2TP / (2TP + FP + FN)`` (equal to ``2PR / (P + R)``, computed so where both are defined) is None only
  when neither side has a positive; positives on one side and no common one give 0.0.
- AUC (Mann-Whitney U over ``n_pos * n_neg``: a tie between a positive and a negative counts one half) is
  None without both classes.
- Pearson / Spearman are None below three pairs (two points always lie on a line) or with a constant side;
  Kendall tau, R^2 and the fitted line of a ranking need two models and no constant side; RMSE one model.
- Empty input: ``n`` 0 and every figure None.

A 0.0 (the trainer's old choice) reads as "no agreement" and a 1.0 (compare's old kappa) as "perfect": both
claim what the data cannot say, and both silently move a mean or an arg-max (calibrate's best threshold).
In A-against-B figures A is the rater under test and B the reference: precision is the share of A's positives
that B also marks, recall the share of B's positives that A finds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from rationalerm._util.numbers import none_if_nan


class BinaryAgreement(TypedDict):
    """Two binary raters over the same items (``compare``'s pair levels, ``calibrate``'s grid rows)."""

    n: int
    kappa: float | None
    agreement: float | None
    base_rate_a: float | None
    base_rate_b: float | None
    precision: float | None
    recall: float | None
    f1: float | None


class ThresholdMetrics(TypedDict):
    """``score >= threshold`` against labels, in the shape of the cross-encoder's model card."""

    threshold: float
    precision: float | None
    recall: float | None
    f1: float | None
    kappa: float | None


class Correlation(TypedDict):
    n: int
    pearson: float | None
    spearman: float | None


class ModelPair(TypedDict):
    a: float
    b: float


class ModelAgreement(TypedDict):
    """Per-model values under A and under B (the paper's matcher swap): ranking and fit, B = slope * A + intercept."""

    models: dict[str, ModelPair]
    n_models: int
    rmse: float | None
    kendall_tau: float | None
    r2: float | None
    slope: float | None
    intercept: float | None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Confusion:
    """A (the rater under test) against B (the reference): ``tp`` both positive, ``fp`` A only, ``fn`` B only."""

    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def of(cls, a: ArrayLike, b: ArrayLike) -> Confusion:
        x, y = np.asarray(a, dtype=bool).ravel(), np.asarray(b, dtype=bool).ravel()
        if x.shape != y.shape:
            raise ValueError(f"the two raters judged {x.size} and {y.size} items")
        tp, fp, fn = (int(np.count_nonzero(m)) for m in (x & y, x & ~y, ~x & y))
        return cls(tp, fp, fn, x.size - tp - fp - fn)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def base_rate_a(self) -> float | None:
        return _share(self.tp + self.fp, self.n)

    @property
    def base_rate_b(self) -> float | None:
        return _share(self.tp + self.fn, self.n)

    @property
    def agreement(self) -> float | None:
        return _share(self.tp + self.tn, self.n)

    @property
    def precision(self) -> float | None:
        return _share(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _share(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        if self.tp == 0:
            return 0.0 if self.fp + self.fn else None
        p, r = self.tp / (self.tp + self.fp), self.tp / (self.tp + self.fn)
        return 2 * p * r / (p + r)

    @property
    def kappa(self) -> float | None:
        # 1 - pe is (A's positives * B's negatives + B's positives * A's negatives) / n^2: zero exactly when
        # both raters give one and the same class to everything (or n is 0). The value itself is the float
        # formula both former implementations used, so figures written before keep their last digits.
        if (self.tp + self.fp) * (self.fp + self.tn) + (self.tp + self.fn) * (self.fn + self.tn) == 0:
            return None
        rate_a, rate_b, po = (self.tp + self.fp) / self.n, (self.tp + self.fn) / self.n, (self.tp + self.tn) / self.n
        pe = rate_a * rate_b + (1 - rate_a) * (1 - rate_b)
        return (po - pe) / (1 - pe)


def binary_agreement(a: ArrayLike, b: ArrayLike) -> BinaryAgreement:
    """Cohen's kappa beside both base rates (a rare class moves kappa a lot), and A's precision / recall / F1
    against B."""
    c = Confusion.of(a, b)
    return {"n": c.n, "kappa": c.kappa, "agreement": c.agreement, "base_rate_a": c.base_rate_a,
            "base_rate_b": c.base_rate_b, "precision": c.precision, "recall": c.recall, "f1": c.f1}


def threshold_metrics(labels: ArrayLike, scores: ArrayLike, threshold: float) -> ThresholdMetrics:
    """Precision, recall, F1 and kappa of the decision ``score >= threshold`` against ``labels`` (truthy = match)."""
    c = Confusion.of(np.asarray(scores, dtype=float) >= threshold, labels)
    return {"threshold": float(threshold), "precision": c.precision, "recall": c.recall, "f1": c.f1,
            "kappa": c.kappa}


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the ROC curve: the chance that a random positive outscores a random negative (ties: one half)."""
    y = np.asarray(labels, dtype=bool).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    pos, neg = s[y], s[~y]
    if not pos.size or not neg.size:
        return None
    u = stats.mannwhitneyu(pos, neg, method="asymptotic").statistic
    return none_if_nan(float(u) / (pos.size * neg.size))


def _varies(x: np.ndarray) -> bool:
    return bool(np.std(x) > 0)


def correlation(x: ArrayLike, y: ArrayLike) -> Correlation:
    """Pearson and Spearman correlation of paired values (per-sample metrics of two runs, scores of two judges)."""
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"{xa.size} values paired with {ya.size}")
    if xa.size < 3 or not _varies(xa) or not _varies(ya):
        return {"n": int(xa.size), "pearson": None, "spearman": None}
    return {"n": int(xa.size), "pearson": none_if_nan(stats.pearsonr(xa, ya).statistic),
            "spearman": none_if_nan(stats.spearmanr(xa, ya).statistic)}


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None, float | None, float | None]:
    """(Kendall tau, R^2, slope, intercept); all None below two points or with a constant side."""
    if x.size < 2 or not _varies(x) or not _varies(y):
        return None, None, None, None
    fit = stats.linregress(x, y)
    return none_if_nan(stats.kendalltau(x, y).statistic), float(fit.rvalue**2), float(fit.slope), float(fit.intercept)


def model_agreement(values_a: Mapping[str, float], values_b: Mapping[str, float]) -> ModelAgreement:
    """Kendall tau (tau-b: ties allowed) of the models' ranking under A and B, R^2, RMSE and the fitted line
    ``B = slope * A + intercept``, over the models both have."""
    names = sorted(set(values_a) & set(values_b))
    x = np.array([values_a[n] for n in names], dtype=float)
    y = np.array([values_b[n] for n in names], dtype=float)
    tau, r2, slope, intercept = _fit(x, y)
    return {"models": {n: {"a": values_a[n], "b": values_b[n]} for n in names}, "n_models": len(names),
            "rmse": float(np.sqrt(np.mean((x - y) ** 2))) if names else None,
            "kendall_tau": tau, "r2": r2, "slope": slope, "intercept": intercept}
