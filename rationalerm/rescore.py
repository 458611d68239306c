"""Re-score a saved run from its matrices: new scoring settings, no judge call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rationalerm.config import ScoringConfig, validate
from rationalerm.errors import OutputError
from rationalerm.files import read_json, read_jsonl, write_json, write_jsonl
from rationalerm.pipeline import rescore_row
from rationalerm.score import summarize_rows


def rescore_run(run_dir: str | Path, *, compat: str | None = None, max_model_items: int | None = None,
                min_score: float | None = None) -> dict[str, Any]:
    run_dir = Path(run_dir)
    for name in ("run.json", "results.jsonl", "metrics.json"):
        if not (run_dir / name).exists():
            raise OutputError(f"{run_dir / name}: missing; is {run_dir} a run directory?")
    meta = read_json(run_dir / "run.json")
    # Only the scoring section matters here: the judge section is kept as saved (re-scoring never judges).
    changes: dict[str, Any] = {}
    if compat is not None:
        changes["compat"] = None if compat.lower() == "none" else compat
    if max_model_items is not None:
        changes["max_model_items"] = max_model_items or None
    if min_score is not None:
        changes["min_score"] = min_score
    scoring = validate(ScoringConfig, {**meta["config"].get("scoring", {}), **changes}, f"{run_dir / 'run.json'} scoring")
    rows = [rescore_row(r, scoring) for r in read_jsonl(run_dir / "results.jsonl")]
    old = read_json(run_dir / "metrics.json")
    metrics = summarize_rows(rows, meta["models"], scoring)
    for key in ("skipped", "judge", "prefilter"):
        if key in old:
            metrics[key] = old[key]
    meta["config"]["scoring"] = scoring.model_dump(mode="json")
    write_jsonl(run_dir / "results.jsonl", rows)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "run.json", meta)
    return metrics
