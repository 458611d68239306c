"""Re-score a saved run from its matrices: new scoring settings, no judge call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rationalerm.config import RunConfig
from rationalerm.io import read_json, read_jsonl, write_json, write_jsonl
from rationalerm.outcome import add_outcome
from rationalerm.pipeline import rescore_row
from rationalerm.score import summarize_rows


def rescore_run(run_dir: str | Path, *, compat: str | None = None, max_model_items: int | None = None,
                min_score: float | None = None) -> dict[str, Any]:
    run_dir = Path(run_dir)
    for name in ("run.json", "results.jsonl", "metrics.json"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name}: missing; is {run_dir} a run directory?")
    meta = read_json(run_dir / "run.json")
    cfg = RunConfig.model_validate(meta["config"])
    if compat is not None:
        cfg.scoring.compat = None if compat.lower() == "none" else compat  # type: ignore[assignment]
    if max_model_items is not None:
        cfg.scoring.max_model_items = max_model_items or None
    if min_score is not None:
        cfg.scoring.min_score = min_score
    rows = [rescore_row(r, cfg) for r in read_jsonl(run_dir / "results.jsonl")]
    old = read_json(run_dir / "metrics.json")
    metrics = add_outcome(summarize_rows(rows, meta["models"], cfg.scoring), rows, cfg)
    for key in ("skipped", "judge", "prefilter"):
        if key in old:
            metrics[key] = old[key]
    meta["config"] = cfg.model_dump(mode="json")
    write_jsonl(run_dir / "results.jsonl", rows)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "run.json", meta)
    return metrics
