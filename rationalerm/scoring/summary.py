"""Corpus figures of a streamed run: per model, the few numbers per row that ``metrics.json`` needs.

A streaming run (``pipeline.py``) writes each shard's rows and forgets them; ``CorpusTally.add`` keeps from each
scored row only its metrics (valid rows), its status, its domain and its outcome, in flat arrays (about 50 bytes a
row), and ``metrics`` gives what ``summarize_rows`` + ``add_outcome`` give over all rows at once, byte for byte
(same values in the same order through the same summary functions; ``tests/test_stream.py`` checks it).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rationalerm.scoring.metrics import METRICS, _scoring_dict, failed_cells, metric_summary
from rationalerm.scoring.outcome import Unparseable, normalize_label, oa_of_hits, outcome_settings, row_outcome


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
    hit_domain: array = field(default_factory=lambda: array("i"))
    missing: int = 0
    unparseable: int = 0
    examples: list[str] = field(default_factory=list)
    right_with_rc: int = 0
    deceptive: int = 0


class CorpusTally:
    """Accumulates scored rows (in output order) and gives the ``metrics.json`` body."""

    def __init__(self, models: Sequence[str], scoring: Any, outcome_cfg: Any) -> None:
        self.models = list(models)
        self.scoring = scoring
        self.label_field, self.threshold = outcome_settings(outcome_cfg)
        self._by_model: dict[str, _ModelTally] = {m: _ModelTally() for m in self.models}
        self._codes: dict[str, int] = {}
        self._names: list[str] = []

    def _code(self, domain: Any) -> int:
        key = str(domain)  # summarize_rows compares str(row["domain"]): None is "None"
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = len(self._names)
            self._names.append(key)
        return code

    def add(self, row: dict[str, Any]) -> None:
        """One scored row (``score_rows`` has set its metrics and status)."""
        t = self._by_model.get(str(row["model"]))
        if t is None:
            return
        code = self._code(row.get("domain"))
        if row.get("domain") is not None:
            t.domains.add(code)
        t.n_total += 1
        status = row["status"]
        if status == "valid":
            for k in METRICS:
                t.metrics[k].append(float(row[k]))
            t.valid_domain.append(code)
        t.errors += status == "error"
        t.excluded += status == "skipped"
        t.failed_rows += status == "failed"
        t.failed_reasons.update(failed_cells(row))
        self._add_outcome(t, row, code)

    def _add_outcome(self, t: _ModelTally, row: dict[str, Any], code: int) -> None:
        o = row_outcome(row, self.label_field)
        if o.status in ("correct", "wrong"):
            t.hits.append(1.0 if o.status == "correct" else 0.0)
            t.hit_domain.append(code)
        t.missing += o.status == "missing"
        if o.status == "unparseable":
            t.unparseable += 1
            for raw in (o.human_raw, o.model_raw):
                try:
                    normalize_label(raw)
                except Unparseable:
                    text = repr(raw)[:60]
                    if text not in t.examples and len(t.examples) < 5:
                        t.examples.append(text)
        rc_valid = row.get("matrix") is not None and bool(row.get("valid", True))
        if o.status == "correct" and rc_valid:
            t.right_with_rc += 1
            t.deceptive += float(row["recall"]) <= self.threshold + 1e-12

    def _domains(self, t: _ModelTally) -> list[str]:
        return sorted(self._names[c] for c in t.domains)

    def _boot(self) -> dict[str, Any]:
        s = self.scoring
        return {"n_boot": getattr(s, "bootstrap", 1000), "confidence": getattr(s, "confidence", 0.95),
                "seed": getattr(s, "seed", 0)}

    def metrics(self) -> dict[str, Any]:
        """``add_outcome(summarize_rows(rows, ...), rows, cfg)`` of all rows added."""
        boot = self._boot()
        out: dict[str, Any] = {}
        for model in self.models:
            t = self._by_model[model]
            summary = metric_summary({k: t.metrics[k] for k in METRICS}, **boot)
            summary["n_total"] = t.n_total
            summary["invalid"] = {"count": t.errors, "rate": t.errors / t.n_total if t.n_total else 0.0}
            summary["excluded"] = t.excluded
            summary["failed"] = {"rows": t.failed_rows, "pairs": sum(t.failed_reasons.values()),
                                 "reasons": dict(sorted(t.failed_reasons.items()))}
            summary["by_domain"] = {d: metric_summary(
                {k: _select(t.metrics[k], t.valid_domain, self._codes[d]) for k in METRICS}, **boot)
                for d in self._domains(t)}
            out[model] = summary
        metrics: dict[str, Any] = {"models": out, "scoring": _scoring_dict(self.scoring)}
        for model in self.models:
            t = self._by_model[model]
            oa = oa_of_hits(t.hits, boot)
            oa["missing"] = t.missing
            oa["unparseable"] = t.unparseable
            oa["unparseable_examples"] = list(t.examples)
            oa["by_domain"] = {d: oa_of_hits(_select(t.hits, t.hit_domain, self._codes[d]), boot)
                               for d in self._domains(t)}
            oa["deceptive"] = {"count": t.deceptive, "correct_with_rc": t.right_with_rc,
                               "share_of_correct": t.deceptive / t.right_with_rc if t.right_with_rc else None}
            out[model]["oa"] = oa
        metrics["outcome"] = {"label_field": self.label_field, "deceptive_threshold": self.threshold}
        return metrics


def _select(values: array, codes: array, code: int) -> array:
    return array("d", (v for v, c in zip(values, codes) if c == code))
