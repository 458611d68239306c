"""Per-sample metrics (DESIGN.md "What it computes") and corpus means with bootstrap intervals.

Scoring only needs saved matrices, so ``rationalerm score`` re-scores a run without a judge: ``score_row``
scores one ``results.jsonl`` row from its matrix, ``summarize_rows`` turns the scored rows into ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rationalerm.assign import Match, as_matrix, assign, best_pick

Compat = Literal["metajudge"] | None
METRICS = ("precision", "recall", "f1", "ap")
METAJUDGE_TOP = 5
METAJUDGE_MAX_ITEMS = 10


@dataclass(frozen=True)
class SampleScore:
    precision: float
    recall: float
    f1: float
    ap: float
    pairs: list[Match] = field(default_factory=list)
    excluded: str | None = None
    """Why the sample does not count (e.g. metajudge skips > 10 model items); metrics are then 0."""

    @property
    def valid(self) -> bool:
        return self.excluded is None

    def metrics(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in METRICS}


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def score_sample(
    matrix: object,
    *,
    max_model_items: int | None = None,
    min_score: float = 0.0,
    compat: Compat = None,
) -> SampleScore:
    """Precision, recall (Rationale Consistency), F1 and AP of one sample's score matrix.

    Rows are human items, columns model items in the model's order of importance.
    """
    w = as_matrix(matrix)
    n, m = w.shape
    if compat == "metajudge":
        return _score_metajudge(w, min_score)
    if compat is not None:
        raise ValueError(f"unknown compat mode {compat!r}")
    if n == 0:
        return SampleScore(0.0, 0.0, 0.0, 0.0, [], excluded="empty human checklist")
    pairs = assign(w, min_score)
    total = sum(s for _, _, s in pairs)
    recall = total / n
    denom = min(m, max_model_items) if max_model_items else m
    precision = total / denom if denom else 0.0
    by_col = np.zeros(m)
    matched = np.zeros(m, dtype=bool)
    for _, j, s in pairs:
        by_col[j], matched[j] = s, True
    prec_at_k = np.cumsum(by_col) / np.arange(1, m + 1)
    ap = float(prec_at_k[matched].sum() / n)
    return SampleScore(precision, recall, _f1(precision, recall), ap, pairs)


def _score_metajudge(w: np.ndarray, min_score: float) -> SampleScore:
    """The public reference script: best pick per human item, top-5 precision, position-free AP."""
    n, m = w.shape
    if m > METAJUDGE_MAX_ITEMS:
        return SampleScore(0.0, 0.0, 0.0, 0.0, [], excluded=f"more than {METAJUDGE_MAX_ITEMS} model items")
    if n == 0:
        return SampleScore(0.0, 0.0, 0.0, 0.0, [], excluded="empty human checklist")
    pairs = [p for p in best_pick(w, min_score) if p[1] < METAJUDGE_TOP]
    recall = sum(s for _, _, s in pairs) / n
    best_per_item: dict[int, float] = {}
    for _, j, s in pairs:
        best_per_item[j] = max(best_per_item.get(j, 0.0), s)
    denom = min(m, METAJUDGE_TOP)
    precision = sum(best_per_item.values()) / denom if denom else 0.0
    ranked = sorted(best_per_item.values(), reverse=True)
    ap = float((np.cumsum(ranked) / np.arange(1, len(ranked) + 1)).sum() / n) if ranked else 0.0
    return SampleScore(precision, recall, _f1(precision, recall), ap, pairs)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean with a seeded percentile-bootstrap interval (degenerate when fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(x.mean())
    if x.size < 2 or n_boot == 0:
        return Interval(mean, mean, mean)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(mean, float(lo), float(hi))


def corpus_summary(
    scores: Iterable[SampleScore], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, object]:
    """Means of the valid samples' metrics, each with its bootstrap interval."""
    valid = [s for s in scores if s.valid]
    out: dict[str, object] = {"n_samples": len(valid)}
    ci: dict[str, list[float]] = {}
    for k in METRICS:
        iv = bootstrap_mean([getattr(s, k) for s in valid], n_boot=n_boot, confidence=confidence, seed=seed)
        out[k] = iv.mean
        ci[k] = [iv.low, iv.high]
    out["ci"] = ci
    return out


def score_row(row: dict[str, Any], scoring: Any) -> SampleScore:
    """(Re)compute a results row's pairs and metrics from its matrix, in place; judge-invalid rows stay invalid.

    ``scoring`` is the run's ``ScoringConfig``. Returns the row's score for ``summarize_rows``.
    """
    if row.get("matrix") is None:
        s = SampleScore(0.0, 0.0, 0.0, 0.0, [], excluded=row.get("excluded") or "invalid judge output")
    else:
        s = score_sample(row["matrix"], max_model_items=scoring.max_model_items, min_score=scoring.min_score,
                         compat=scoring.compat)
    row.update(pairs=[[i, j, round(v, 6)] for i, j, v in s.pairs], **s.metrics(), valid=s.valid, excluded=s.excluded)
    return s


def summarize_rows(
    rows: Sequence[dict[str, Any]], scores: Sequence[SampleScore], models: Sequence[str], scoring: object
) -> dict[str, object]:
    """``metrics.json`` body: per model the corpus means, intervals, invalid count and per-domain means.

    ``scores[k]`` is the score of ``rows[k]`` (``score_row``).
    """
    boot = {"n_boot": getattr(scoring, "bootstrap", 1000), "confidence": getattr(scoring, "confidence", 0.95),
            "seed": getattr(scoring, "seed", 0)}
    out: dict[str, object] = {}
    for model in models:
        mine = [(r, s) for r, s in zip(rows, scores, strict=True) if r["model"] == model]
        summary = corpus_summary([s for _, s in mine], **boot)
        invalid = sum(1 for r, _ in mine if r.get("matrix") is None)
        summary["n_total"] = len(mine)
        summary["invalid"] = {"count": invalid, "rate": invalid / len(mine) if mine else 0.0}
        summary["excluded"] = sum(1 for r, _ in mine if r.get("matrix") is not None and not r.get("valid", True))
        domains = sorted({str(r["domain"]) for r, _ in mine if r.get("domain") is not None})
        summary["by_domain"] = {
            d: corpus_summary([s for r, s in mine if str(r.get("domain")) == d], **boot) for d in domains
        }
        out[model] = summary
    return {"models": out, "scoring": _scoring_dict(scoring)}


def _scoring_dict(scoring: object) -> dict[str, object]:
    dump = getattr(scoring, "model_dump", None)
    return dump(mode="json") if dump else {}
