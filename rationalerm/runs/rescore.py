"""``rationalerm score``: re-score a saved run from its judgements with new scoring settings (no judge call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rationalerm._util.files import ensure_dir, write_json, write_jsonl
from rationalerm.config import OutcomeConfig, ScoringConfig, validate
from rationalerm.runs.directory import METRICS, RESULTS, RUN_JSON, RunJson, load_run
from rationalerm.scoring.rows import score_rows
from rationalerm.scoring.summary import summarize


def rescored_dir(run_dir: Path) -> Path:
    """The default output of ``rationalerm score``: a new directory beside the run (never the run itself). A path
    with no name of its own (``.``, ``..``) is resolved first: ``score .`` inside ``runs/mine`` writes
    ``runs/mine-rescored``."""
    if run_dir.name in ("", ".."):
        run_dir = run_dir.resolve()
    k = 1
    while True:
        cand = run_dir.parent / f"{run_dir.name}-rescored{'' if k == 1 else f'-{k}'}"
        if not cand.exists():
            return cand
        k += 1


def scoring_changes(compat: str | None, max_model_items: int | None, min_score: float | None) -> dict[str, Any]:
    """The scoring keys the command line sets (0 items: no cut; compat 'none': off), checked on their own."""
    changes: dict[str, Any] = {}
    if compat is not None:
        changes["compat"] = None if compat.lower() == "none" else compat
    if max_model_items is not None:
        changes["max_model_items"] = max_model_items or None
    if min_score is not None:
        changes["min_score"] = min_score
    validate(ScoringConfig, {**ScoringConfig().model_dump(), **changes}, "command-line options")
    return changes


def rescore_run(run_dir: str | Path, out_dir: str | Path | None = None, *, compat: str | None = None,
                max_model_items: int | None = None, min_score: float | None = None) -> tuple[Path, dict[str, Any]]:
    """Re-score a saved run from its judgements with new scoring settings (no judge call).

    Writes results.jsonl, metrics.json and run.json to ``out_dir`` (default: ``rescored_dir``; the run's own
    directory only when named explicitly). Returns (the directory written, the metrics)."""
    run_dir = Path(run_dir)
    changes = scoring_changes(compat, max_model_items, min_score)
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else rescored_dir(run_dir)
    meta = run.meta
    # Only the scoring section matters here: the judge section is kept as saved (re-scoring never judges).
    saved = meta.get("config", {})
    scoring = validate(ScoringConfig, {**saved.get("scoring", {}), **changes}, f"{run_dir / RUN_JSON} scoring")
    outcome = validate(OutcomeConfig, saved.get("outcome") or {}, f"{run_dir / RUN_JSON} outcome")
    rows = run.rows
    score_rows(rows, scoring)
    old = run.metrics
    metrics = summarize(rows, meta["models"], scoring, outcome)
    for key in ("skipped", "judge", "prefilter"):
        if key in old:
            metrics[key] = old[key]
    new_meta = RunJson(**{**meta, "config": {**saved, "scoring": scoring.model_dump(mode="json")}})
    if out.resolve() != run_dir.resolve():
        new_meta["rescored_from"] = str(run_dir)
    ensure_dir(out)
    write_jsonl(out / RESULTS, rows)
    write_json(out / METRICS, metrics)
    write_json(out / RUN_JSON, new_meta)
    return out, metrics
