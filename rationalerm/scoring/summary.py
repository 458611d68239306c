"""``metrics.json``: its one builder, fed a row at a time.

A streaming run (``pipeline.py``) writes each shard's rows and forgets them; ``CorpusTally.add`` keeps from each
scored row only the few numbers the corpus figures need: its metrics (valid rows), its status, its domain and its
outcome, in flat arrays (about 50 bytes a row). A re-score or an import holds all its rows: ``summarize`` is the
same tally fed the list, so the two can never disagree.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rationalerm.scoring.outcome import is_deceptive, oa_of_hits, rc_valid, row_outcome, unparseable_labels
from rationalerm.scoring.rows import ResultRow, failed_cells, row_status
from rationalerm.scoring.sample import METRICS, SampleScore
from rationalerm.scoring.settings import OutcomeConfig, ScoringConfig
from rationalerm.scoring.stats import Bootstrap, Values

MAX_EXAMPLES = 5
"""Unparseable labels listed per model (``oa.unparseable_examples``)."""


def metric_summary(columns: Mapping[str, Values], boot: Bootstrap) -> dict[str, Any]:
    """Means of the valid samples' metric columns (``METRICS`` -> values in sample order), each with its
    bootstrap interval, and their standard deviations."""
    n = len(columns[METRICS[0]])
    out: dict[str, Any] = {"n_samples": n}
    ci: dict[str, list[float]] = {}
    for k, iv in zip(METRICS, boot.intervals([columns[k] for k in METRICS])):  # one resample draw for all four
        out[k] = iv.mean
        ci[k] = [iv.low, iv.high]
    out["ci"] = ci
    out["std"] = {k: float(np.std(np.asarray(columns[k], dtype=float))) if n else float("nan") for k in METRICS}
    return out


def corpus_summary(
    scores: Iterable[SampleScore], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Means of the valid samples' metrics, each with its bootstrap interval."""
    valid = [s for s in scores if s.valid]
    return metric_summary({k: [getattr(s, k) for s in valid] for k in METRICS}, Bootstrap(n_boot, confidence, seed))


@dataclass
class _ModelTally:
    metrics: dict[str, array] = field(default_factory=lambda: {k: array("d") for k in METRICS})
    valid_domain: array = field(default_factory=lambda: array("i"))
    """Domain code of each valid row (its metrics are at the same position)."""
    domains: set[int] = field(default_factory=set)
    """Codes of the domains of all rows whose domain is set (those get a ``by_domain`` entry)."""
    n_total: int = 0
    errors: int = 0
    excluded: int = 0
    failed_rows: int = 0
    failed_reasons: Counter[str] = field(default_factory=Counter)
    hits: array = field(default_factory=lambda: array("d"))
    """1.0 (right) or 0.0 (wrong) per row whose labels compare, in row order."""
    hit_domain: array = field(default_factory=lambda: array("i"))
    missing: int = 0
    unparseable: int = 0
    examples: list[str] = field(default_factory=list)
    right_with_rc: int = 0
    deceptive: int = 0


class CorpusTally:
    """Accumulates scored rows (in output order) and gives the ``metrics.json`` body: per model the corpus means,
    intervals, invalid count, failed judge calls (rows, pairs and pairs by reason), per-domain means, and OA."""

    def __init__(self, models: Sequence[str], scoring: ScoringConfig, outcome: OutcomeConfig) -> None:
        self.models = list(models)
        self.scoring = scoring
        self.outcome = outcome
        self.boot = scoring.bootstrap_settings()
        self._by_model: dict[str, _ModelTally] = {m: _ModelTally() for m in self.models}
        self._codes: dict[str, int] = {}

    def _code(self, domain: object) -> int:
        """The domain's code; keyed by ``str(domain)``, so a row without one joins a domain named "None" if any."""
        return self._codes.setdefault(str(domain), len(self._codes))

    def add(self, row: ResultRow) -> None:
        """One scored row (``score_rows`` has set its metrics and status); rows of other models are ignored."""
        t = self._by_model.get(str(row["model"]))
        if t is None:
            return
        code = self._code(row.get("domain"))
        if row.get("domain") is not None:
            t.domains.add(code)
        self._add_score(t, row, code)
        self._add_outcome(t, row, code)

    def extend(self, rows: Iterable[ResultRow]) -> CorpusTally:
        for row in rows:
            self.add(row)
        return self

    def _add_score(self, t: _ModelTally, row: ResultRow, code: int) -> None:
        t.n_total += 1
        status = row_status(row)
        if status == "valid":
            for k in METRICS:
                t.metrics[k].append(float(row[k]))
            t.valid_domain.append(code)
        t.errors += status == "error"
        t.excluded += status == "skipped"
        t.failed_rows += status == "failed"
        t.failed_reasons.update(failed_cells(row))

    def _add_outcome(self, t: _ModelTally, row: ResultRow, code: int) -> None:
        o = row_outcome(row, self.outcome.label_field)
        if o.status in ("correct", "wrong"):
            t.hits.append(1.0 if o.status == "correct" else 0.0)
            t.hit_domain.append(code)
        t.missing += o.status == "missing"
        if o.status == "unparseable":
            t.unparseable += 1
            for text in unparseable_labels(o):
                if text not in t.examples and len(t.examples) < MAX_EXAMPLES:
                    t.examples.append(text)
        t.right_with_rc += o.status == "correct" and rc_valid(row)
        t.deceptive += is_deceptive(row, o, self.outcome.deceptive_threshold)

    def _domains(self, t: _ModelTally) -> list[str]:
        names = list(self._codes)
        return sorted(names[c] for c in t.domains)

    def metrics(self) -> dict[str, Any]:
        """The ``metrics.json`` body of all rows added (the caller adds what is not a function of the rows)."""
        models = {m: self._summary(self._by_model[m]) for m in self.models}
        out: dict[str, Any] = {"models": models, "scoring": self.scoring.model_dump(mode="json")}
        for m in self.models:
            models[m]["oa"] = self.oa(m)
        out["outcome"] = self.outcome_settings()
        return out

    def _summary(self, t: _ModelTally) -> dict[str, Any]:
        summary = metric_summary(t.metrics, self.boot)
        summary["n_total"] = t.n_total
        summary["invalid"] = {"count": t.errors, "rate": t.errors / t.n_total if t.n_total else 0.0}
        summary["excluded"] = t.excluded
        summary["failed"] = {"rows": t.failed_rows, "pairs": sum(t.failed_reasons.values()),
                             "reasons": dict(sorted(t.failed_reasons.items()))}
        summary["by_domain"] = {d: metric_summary(
            {k: _select(t.metrics[k], t.valid_domain, self._codes[d]) for k in METRICS}, self.boot)
            for d in self._domains(t)}
        return summary

    def oa(self, model: str) -> dict[str, Any]:
        """A model's ``oa``: OA with its interval (overall and per domain), label accounting, deceptive cases."""
        t = self._by_model[model]
        oa = oa_of_hits(t.hits, self.boot)
        oa["missing"] = t.missing
        oa["unparseable"] = t.unparseable
        oa["unparseable_examples"] = list(t.examples)
        oa["by_domain"] = {d: oa_of_hits(_select(t.hits, t.hit_domain, self._codes[d]), self.boot)
                           for d in self._domains(t)}
        oa["deceptive"] = {"count": t.deceptive, "correct_with_rc": t.right_with_rc,
                           "share_of_correct": t.deceptive / t.right_with_rc if t.right_with_rc else None}
        return oa

    def outcome_settings(self) -> dict[str, Any]:
        """``metrics.json``'s ``outcome``: the settings OA was computed with."""
        return {"label_field": self.outcome.label_field, "deceptive_threshold": float(self.outcome.deceptive_threshold)}


def _select(values: array, codes: array, code: int) -> np.ndarray:
    """The values whose domain is ``code``, in order (a mask over the flat arrays, no loop over the rows)."""
    return np.frombuffer(values, dtype=np.float64)[np.frombuffer(codes, dtype=np.intc) == code]


def summarize(
    rows: Iterable[ResultRow], models: Sequence[str], scoring: ScoringConfig, outcome: OutcomeConfig
) -> dict[str, Any]:
    """The ``metrics.json`` body of scored rows held in memory (``score_rows``): the tally fed the list."""
    return CorpusTally(models, scoring, outcome).extend(rows).metrics()


def add_outcome(
    metrics: dict[str, Any], rows: Iterable[ResultRow], scoring: ScoringConfig, outcome: OutcomeConfig
) -> dict[str, Any]:
    """Set (or replace) ``oa`` of every model of a ``metrics.json`` body and its ``outcome`` settings, from the
    saved rows (a run written before OA existed, or another deceptive threshold); returns the body."""
    models = metrics.get("models", {})
    tally = CorpusTally(list(models), scoring, outcome).extend(rows)
    for name, summary in models.items():
        summary["oa"] = tally.oa(name)
    metrics["outcome"] = tally.outcome_settings()
    return metrics
