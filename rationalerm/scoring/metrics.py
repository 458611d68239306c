"""Per-sample metrics (DESIGN.md "What it computes") and corpus means with bootstrap intervals.

Scoring only needs saved judgements, so ``rationalerm score`` re-scores a run without a judge: ``score_rows``
scores ``results.jsonl`` rows from their matrices (or, under compat, their answer texts), ``summarize_rows``
turns the scored rows into ``metrics.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rationalerm.scoring.assign import Match, as_matrix, assign_stack, group_by_shape, mask_below

Compat = Literal["metajudge"] | None
Status = Literal["valid", "skipped", "error", "failed"]
"""``valid`` (scored), ``skipped`` (by rule), ``error`` (the judge's answer is unusable: an invalid listwise output),
``failed`` (some judge call got no answer that could be scored; the next run of the same command retries it)."""
METRICS = ("precision", "recall", "f1", "ap")


@dataclass(frozen=True)
class SampleScore:
    precision: float
    recall: float
    f1: float
    ap: float
    pairs: list[Match] = field(default_factory=list)
    excluded: str | None = None
    """Why the sample does not count (skipped, an error such as an invalid judge answer, or failed judge calls);
    metrics are then 0."""
    status: Status = "valid"

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def metrics(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in METRICS}

    @classmethod
    def failed(cls, status: Status, reason: str) -> SampleScore:
        """A sample that is not scored: ``skipped`` (by rule), ``error`` (no usable judgement) or ``failed``."""
        return cls(0.0, 0.0, 0.0, 0.0, [], excluded=reason, status=status)


def f1_of(p: float, r: float) -> float:
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
    return score_matrices([matrix], max_model_items=max_model_items, min_score=min_score, compat=compat)[0]


def score_matrices(
    matrices: Sequence[object],
    *,
    max_model_items: int | None = None,
    min_score: float = 0.0,
    compat: Compat = None,
) -> list[SampleScore]:
    """:func:`score_sample` of many matrices; equal shapes are matched and scored as one array (fast)."""
    if compat == "metajudge":
        from rationalerm.scoring.metajudge import score_matrix

        return [score_matrix(as_matrix(x), min_score) for x in matrices]
    if compat is not None:
        raise ValueError(f"unknown compat mode {compat!r}")
    arrays = [_array(x) for x in matrices]
    out: list[SampleScore | None] = [None] * len(arrays)
    for (n, m), idx in group_by_shape([a.shape for a in arrays]).items():
        if n == 0:
            for k in idx:
                out[k] = SampleScore.failed("error", "empty human checklist")
            continue
        stack = np.stack([arrays[k] for k in idx]) if m else np.zeros((len(idx), n, 0))
        if stack.size and (not np.all(np.isfinite(stack)) or stack.min() < 0.0 or stack.max() > 1.0):
            raise ValueError("score matrix entries must be finite and in [0, 1]")
        if max_model_items is not None:
            stack = stack[:, :, :max_model_items]  # items past the k-th can never be matched
        for k, s in zip(idx, _score_stack(mask_below(stack, min_score))):
            out[k] = s
    return out  # type: ignore[return-value]


def _array(matrix: object) -> np.ndarray:
    w = np.asarray(matrix, dtype=float)
    return w if w.ndim == 2 and w.size else as_matrix(matrix)


def _score_stack(w: np.ndarray) -> list[SampleScore]:
    """Paper metrics of same-shape matrices (B, n, m), n > 0."""
    b, n, m = w.shape
    cols = assign_stack(w)
    bi, ii = np.nonzero(cols >= 0)
    jj = cols[bi, ii]
    by_col = np.zeros((b, m))
    matched = np.zeros((b, m), dtype=bool)
    by_col[bi, jj] = w[bi, ii, jj]
    matched[bi, jj] = True
    total = by_col.sum(axis=1)
    recall = total / n
    precision = total / m if m else np.zeros(b)
    ap = ((np.cumsum(by_col, axis=1) / np.arange(1, m + 1)) * matched).sum(axis=1) / n
    row_vals = np.zeros((b, n))
    row_vals[bi, ii] = w[bi, ii, jj]
    out = []
    for c, v, p, r, a in zip(cols.tolist(), row_vals.tolist(), precision.tolist(), recall.tolist(), ap.tolist()):
        pairs = [(i, j, s) for i, (j, s) in enumerate(zip(c, v)) if j >= 0]
        out.append(SampleScore(p, r, f1_of(p, r), a, pairs))
    return out


def score_rows(rows: Sequence[dict[str, Any]], scoring: Any) -> list[SampleScore]:
    """(Re)compute every row's pairs, metrics and status in place from its saved judgement (no judge call).

    ``scoring`` is the run's ``ScoringConfig``; returns the rows' scores (for ``summarize_rows``).

    Paper mode scores the row's matrix (None = the judge gave no usable answer: an error). Under
    ``compat: metajudge`` a listwise answer is re-read from its text by the reference's rules (it may be
    valid there and invalid for the strict paper parser, or the reverse); a pairwise matrix gives best picks.
    In both modes a row with a failed judge call (a None cell, or a failed listwise request) is ``failed``: a
    None cell is never read as a number.
    """
    compat, min_score = scoring.compat, scoring.min_score
    scores: list[SampleScore | None] = [None] * len(rows)
    todo: list[int] = []
    for k, row in enumerate(rows):
        answer = _answer_text(row)
        failed = failed_cells(row)
        if failed:
            scores[k] = SampleScore.failed("failed", _failure_text(row, failed))
        elif compat == "metajudge" and answer is not None:
            from rationalerm.scoring.metajudge import score_answer

            scores[k], parsed = score_answer(answer, len(row["human"]), len(row["items"]), min_score)
            row["picks"] = [list(p) for p in parsed.picks]
        elif row.get("matrix") is None:
            scores[k] = SampleScore.failed("error", _judge_error(row))
        else:
            todo.append(k)
    done = score_matrices([rows[k]["matrix"] for k in todo], max_model_items=scoring.max_model_items,
                          min_score=min_score, compat=compat)
    for k, s in zip(todo, done):
        scores[k] = s
    for row, s in zip(rows, scores):
        assert s is not None
        row.update(pairs=[[i, j, round(v, 6)] for i, j, v in s.pairs], **s.metrics(), valid=s.valid,
                   excluded=s.excluded, status=s.status)
    return scores  # type: ignore[return-value]


def saved_scores(rows: Sequence[dict[str, Any]]) -> list[SampleScore]:
    """The scores already written in scored rows (a saved run's results.jsonl), for ``summarize_rows``
    without re-scoring. A row saved before statuses existed: no matrix = error, otherwise not valid = skipped."""
    out = []
    for r in rows:
        status = r.get("status") or ("valid" if r.get("valid", True) else "error" if r.get("matrix") is None
                                     else "skipped")
        out.append(SampleScore(float(r["precision"]), float(r["recall"]), float(r["f1"]), float(r["ap"]),
                               [tuple(p) for p in r.get("pairs") or []], r.get("excluded"), status))
    return out


def _answer_text(row: dict[str, Any]) -> str | None:
    """The listwise judge's (or an imported reference run's) answer text, if the row has one."""
    out = row.get("judge_output")
    raw = out.get("raw") if isinstance(out, dict) else None
    return raw if isinstance(raw, str) else None


def failed_cells(row: dict[str, Any]) -> Counter[str]:
    """The row's (human item, model item) cells the judge could not score, by reason kind (empty: none).

    A pairwise row marks them as None cells (the reason in ``details``); a failed listwise request fails every
    cell of its grid."""
    out = row.get("judge_output")
    if isinstance(out, dict) and out.get("failed"):
        return Counter({str(out["failed"]): max(1, len(row.get("human") or ()) * len(row.get("items") or ()))})
    matrix = row.get("matrix")
    if not isinstance(matrix, list):
        return Counter()
    details = row.get("details") if isinstance(row.get("details"), list) else None
    kinds: Counter[str] = Counter()
    for i, cells in enumerate(matrix):
        for j, x in enumerate(cells if isinstance(cells, list) else ()):
            if x is None:
                d = details[i][j] if details and i < len(details) and j < len(details[i]) else None
                kinds[str(d.get("failed") or "failed") if isinstance(d, dict) else "failed"] += 1
    return kinds


def _failure_text(row: dict[str, Any], failed: Counter[str]) -> str:
    reasons = ", ".join(f"{kind} {n}" for kind, n in sorted(failed.items(), key=lambda kv: (-kv[1], kv[0])))
    out = row.get("judge_output")
    if isinstance(out, dict) and out.get("failed"):
        return f"judge request failed ({out['failed']}): {out.get('error')}; the next run retries it"
    n = sum(failed.values())
    return f"{n} pair{'s' if n != 1 else ''} failed ({reasons}); the next run retries them"


def _judge_error(row: dict[str, Any]) -> str:
    out = row.get("judge_output")
    err = out.get("error") if isinstance(out, dict) else None
    return str(err) if err else "invalid judge output"


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


_BOOT_CELLS = 1 << 21
"""Resampled values per bootstrap block (16 MB of indices)."""


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean with a seeded percentile-bootstrap interval (degenerate when fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(x.mean())
    if x.size < 2 or n_boot == 0:
        return Interval(mean, mean, mean)
    rng = np.random.default_rng(seed)
    # Resamples in blocks of rows, so memory stays bounded at any corpus size (one (n_boot, n) index array is
    # 8 * n_boot * n bytes: 800 MB at 100k samples). The generator yields the same stream whatever the block
    # sizes, and each row's mean is its own, so the interval equals the one-block computation bit for bit.
    means = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // x.size)
    for lo in range(0, n_boot, step):
        hi = min(n_boot, lo + step)
        means[lo:hi] = x[rng.integers(0, x.size, size=(hi - lo, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(mean, float(lo), float(hi))


def corpus_summary(
    scores: Iterable[SampleScore], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, object]:
    """Means of the valid samples' metrics, each with its bootstrap interval."""
    valid = [s for s in scores if s.valid]
    return metric_summary({k: [getattr(s, k) for s in valid] for k in METRICS}, n_boot=n_boot,
                          confidence=confidence, seed=seed)


def metric_summary(
    columns: dict[str, Sequence[float]], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, object]:
    """``corpus_summary`` of the valid samples' metric columns (``METRICS`` -> values in sample order): a
    streaming run keeps only these arrays."""
    n = len(columns[METRICS[0]])
    out: dict[str, object] = {"n_samples": n}
    ci: dict[str, list[float]] = {}
    for k in METRICS:
        iv = bootstrap_mean(columns[k], n_boot=n_boot, confidence=confidence, seed=seed)
        out[k] = iv.mean
        ci[k] = [iv.low, iv.high]
    out["ci"] = ci
    out["std"] = {k: float(np.std(np.asarray(columns[k], dtype=float))) if n else float("nan") for k in METRICS}
    return out


def summarize_rows(
    rows: Sequence[dict[str, Any]], scores: Sequence[SampleScore], models: Sequence[str], scoring: object
) -> dict[str, object]:
    """``metrics.json`` body: per model the corpus means, intervals, invalid count, failed judge calls
    (``failed``: rows, pairs and pairs by reason) and per-domain means.

    ``scores[k]`` is the score of ``rows[k]`` (``score_rows``).
    """
    boot = {"n_boot": getattr(scoring, "bootstrap", 1000), "confidence": getattr(scoring, "confidence", 0.95),
            "seed": getattr(scoring, "seed", 0)}
    out: dict[str, object] = {}
    for model in models:
        mine = [(r, s) for r, s in zip(rows, scores, strict=True) if r["model"] == model]
        summary = corpus_summary([s for _, s in mine], **boot)
        errors = sum(1 for _, s in mine if s.status == "error")
        summary["n_total"] = len(mine)
        summary["invalid"] = {"count": errors, "rate": errors / len(mine) if mine else 0.0}
        summary["excluded"] = sum(1 for _, s in mine if s.status == "skipped")
        reasons: Counter[str] = Counter()
        for r, _ in mine:
            reasons.update(failed_cells(r))
        summary["failed"] = {"rows": sum(1 for _, s in mine if s.status == "failed"),
                             "pairs": sum(reasons.values()), "reasons": dict(sorted(reasons.items()))}
        domains = sorted({str(r["domain"]) for r, _ in mine if r.get("domain") is not None})
        summary["by_domain"] = {
            d: corpus_summary([s for r, s in mine if str(r.get("domain")) == d], **boot) for d in domains
        }
        out[model] = summary
    return {"models": out, "scoring": _scoring_dict(scoring)}


def _scoring_dict(scoring: object) -> dict[str, object]:
    dump = getattr(scoring, "model_dump", None)
    return dump(mode="json") if dump else {}
