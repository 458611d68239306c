"""The run as it was before streaming (issue 17): every sample, matrix and row in memory, all outputs written
at the end. Kept verbatim (its judge stage, scoring and summary calls) as the oracle the streamed run must match
byte for byte; test-only."""

from __future__ import annotations

from pathlib import Path

from rationalerm._util.files import ensure_dir, write_json, write_jsonl
from rationalerm.config import RunConfig
from rationalerm.inputs.grids import build_units
from rationalerm.inputs.load import load_samples
from rationalerm.judges import make_judge, null_progress
from rationalerm.judges.cache import JudgeCache, fingerprint_id
from rationalerm.judges.prefilter import prefilter_masks
from rationalerm.judges.stage import fill_matrices
from rationalerm.scoring.rows import score_rows
from tests.helpers.batch_summary import batch_metrics


def reference_run(inputs: list[Path], cfg: RunConfig, out_dir: Path) -> None:
    """Write ``results.jsonl`` and ``metrics.json`` the pre-streaming way."""
    out = ensure_dir(out_dir)
    loaded = load_samples(inputs, cfg.models, cfg.strict, cfg.outcome.label_field)
    units = build_units(loaded)
    judge = make_judge(cfg.judge)
    fingerprint = judge.fingerprint()
    cache = JudgeCache(cfg.cache or out / "cache.sqlite", fingerprint)
    pf_stats = None
    try:
        masks = None
        if cfg.prefilter.enabled:
            masks, stats = prefilter_masks(units, cfg, null_progress)
            pf_stats = stats.as_dict()
        filled = fill_matrices(judge, cache, units, masks, cfg.resolved_chunk_size(), null_progress)
    finally:
        judge.close()
        cache.close()
    rows = [u.row(w, cfg.outcome.label_field, **extra) for u, w, extra in zip(units, filled.matrices, filled.extras)]
    scores = score_rows(rows, cfg.scoring)
    metrics = batch_metrics(rows, scores, loaded.models, cfg)
    metrics["skipped"] = loaded.skipped_summary()
    metrics["judge"] = {"fingerprint": fingerprint_id(fingerprint)}
    if pf_stats is not None:
        metrics["prefilter"] = pf_stats
    write_jsonl(out / "results.jsonl", rows)
    write_json(out / "metrics.json", metrics)
