"""The ``metrics.json`` builder as it was before the streaming tally became the only one (``summarize_rows`` +
``add_outcome``: every row in memory, per-model lists). Kept as the oracle that ``scoring.summary`` must match
byte for byte; test-only. It shares only the per-row primitives (label parsing, failed cells, the bootstrap)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rationalerm.config import RunConfig, ScoringConfig
from rationalerm.scoring.outcome import Outcome, Unparseable, normalize_label, row_outcome
from rationalerm.scoring.rows import ResultRow, failed_cells
from rationalerm.scoring.sample import SampleScore
from rationalerm.scoring.stats import bootstrap_mean
from rationalerm.scoring.summary import corpus_summary


def summarize_rows(rows: Sequence[ResultRow], scores: Sequence[SampleScore], models: Sequence[str],
                   scoring: ScoringConfig) -> dict[str, Any]:
    boot = {"n_boot": scoring.bootstrap, "confidence": scoring.confidence, "seed": scoring.seed}
    out: dict[str, Any] = {}
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
    return {"models": out, "scoring": scoring.model_dump(mode="json")}


def _rc_valid(row: ResultRow) -> bool:
    return row.get("matrix") is not None and bool(row.get("valid", True))


def _oa(outcomes: Sequence[Outcome], boot: dict[str, Any]) -> dict[str, Any]:
    hits = [1.0 if o.status == "correct" else 0.0 for o in outcomes if o.status in ("correct", "wrong")]
    if not hits:
        return {"accuracy": None, "ci": None, "n": 0, "correct": 0}
    iv = bootstrap_mean(hits, **boot)
    return {"accuracy": iv.mean, "ci": [iv.low, iv.high], "n": len(hits), "correct": int(sum(hits))}


def model_outcome(rows: Sequence[ResultRow], label_field: str, threshold: float,
                  boot: dict[str, Any]) -> dict[str, Any]:
    outs = [row_outcome(r, label_field) for r in rows]
    summary = _oa(outs, boot)
    summary["missing"] = sum(o.status == "missing" for o in outs)
    summary["unparseable"] = sum(o.status == "unparseable" for o in outs)
    examples: list[str] = []
    for o in outs:
        if o.status != "unparseable":
            continue
        for raw in (o.human_raw, o.model_raw):
            try:
                normalize_label(raw)
            except Unparseable:
                text = repr(raw)[:60]
                if text not in examples and len(examples) < 5:
                    examples.append(text)
    summary["unparseable_examples"] = examples
    domains = sorted({str(r["domain"]) for r in rows if r.get("domain") is not None})
    summary["by_domain"] = {
        d: _oa([o for r, o in zip(rows, outs) if str(r.get("domain")) == d], boot) for d in domains
    }
    right_with_rc = sum(1 for r, o in zip(rows, outs) if o.status == "correct" and _rc_valid(r))
    count = sum(1 for r, o in zip(rows, outs)
                if o.status == "correct" and _rc_valid(r) and float(r["recall"]) <= threshold + 1e-12)
    summary["deceptive"] = {"count": count, "correct_with_rc": right_with_rc,
                            "share_of_correct": count / right_with_rc if right_with_rc else None}
    return summary


def add_outcome(metrics: dict[str, Any], rows: Sequence[ResultRow], cfg: RunConfig) -> dict[str, Any]:
    scoring = cfg.scoring
    label_field, threshold = cfg.outcome.label_field, float(cfg.outcome.deceptive_threshold)
    boot = {"n_boot": scoring.bootstrap, "confidence": scoring.confidence, "seed": scoring.seed}
    by_model: dict[str, list[ResultRow]] = {}
    for r in rows:
        by_model.setdefault(str(r["model"]), []).append(r)
    for name, summary in metrics.get("models", {}).items():
        summary["oa"] = model_outcome(by_model.get(name, []), label_field, threshold, boot)
    metrics["outcome"] = {"label_field": label_field, "deceptive_threshold": threshold}
    return metrics


def batch_metrics(rows: Sequence[ResultRow], scores: Sequence[SampleScore], models: Sequence[str], cfg: RunConfig,
                  scoring: ScoringConfig | None = None) -> dict[str, Any]:
    """``add_outcome(summarize_rows(...))``: the old batch ``metrics.json`` body."""
    return add_outcome(summarize_rows(rows, scores, models, scoring or cfg.scoring), rows, cfg)
