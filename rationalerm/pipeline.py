"""The run: the stages of DESIGN.md's data flow, called in order; each stage's logic lives in its own module.

load (``load.py``) -> grids (``pairs.py``) -> prefilter (``prefilter.py``) -> judge, cached (``judges/fill.py``)
-> assign + score (``score.py``) -> files (``saved_runs.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rationalerm.cache import JudgeCache, fingerprint_id
from rationalerm.config import RunConfig
from rationalerm.errors import ConfigError
from rationalerm.files import ensure_dir
from rationalerm.judges import ProgressFactory, make_judge, null_progress
from rationalerm.judges.fill import fill_matrices
from rationalerm.load import load_samples
from rationalerm.outcome import add_outcome
from rationalerm.pairs import build_units
from rationalerm.prefilter import prefilter_masks
from rationalerm.saved_runs import write_run
from rationalerm.score import score_rows, summarize_rows


@dataclass
class RunOutcome:
    out_dir: Path
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    judged: int = 0
    cached: int = 0
    prefilter: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    """Judge calls that got no answer the judge could score (distinct pairs, or lists), by reason: never cached,
    so running the same command again retries exactly them. Empty when the run is complete."""
    failed_unit: str = "pairs"

    def failure_message(self) -> str | None:
        """``N pairs failed (reason counts); run the same command again to retry them``, or None if complete."""
        n = sum(self.failed.values())
        if not n:
            return None
        reasons = ", ".join(f"{kind}: {k}" for kind, k in sorted(self.failed.items(), key=lambda kv: (-kv[1], kv[0])))
        unit = self.failed_unit if n != 1 else self.failed_unit.rstrip("s")
        return f"{n} {unit} failed ({reasons}); run the same command again to retry them"


def run(
    inputs: str | Path | list[str | Path], cfg: RunConfig, out_dir: str | Path,
    progress: ProgressFactory | None = None, log: Callable[[str], None] = lambda _m: None,
) -> RunOutcome:
    progress = progress or null_progress
    paths = inputs if isinstance(inputs, list) else [inputs]
    out = ensure_dir(out_dir)
    t0 = time.perf_counter()
    loaded = load_samples(paths, cfg.models, cfg.strict, cfg.outcome.label_field)
    for line in loaded.skip_report():
        log(line)
    for note in loaded.warnings:
        log(f"warning: {note}")
    units = build_units(loaded)
    timings = {"load": time.perf_counter() - t0}
    judge = make_judge(cfg.judge)
    fingerprint = judge.fingerprint()
    cache = JudgeCache(cfg.cache or out / "cache.sqlite", fingerprint)
    pf_stats: dict[str, Any] | None = None
    try:
        t1 = time.perf_counter()
        masks = None
        if cfg.prefilter.enabled:
            if judge.kind == "listwise":
                raise ConfigError("the prefilter applies to pairwise judges only (judge.protocol: pairwise)")
            masks, stats = prefilter_masks(units, cfg, progress)
            pf_stats = stats.as_dict()
            log(f"prefilter kept {stats.cells_kept}/{stats.cells_total} pairs; "
                f"judge calls saved: {stats.judge_calls_saved}")
        filled = fill_matrices(judge, cache, units, masks, cfg.resolved_chunk_size(), progress)
        timings["judge"] = time.perf_counter() - t1
    finally:
        judge.close()
        cache.close()
    rows = [u.row(w, cfg.outcome.label_field, **extra) for u, w, extra in zip(units, filled.matrices, filled.extras)]
    scores = score_rows(rows, cfg.scoring)
    metrics = add_outcome(summarize_rows(rows, scores, loaded.models, cfg.scoring), rows, cfg)
    metrics["skipped"] = loaded.skipped_summary()
    # metrics.json is a function of the input and the config: how this process got there (cache hits,
    # timings) goes to run.json, so a killed and resumed run writes the same metrics.json byte for byte.
    metrics["judge"] = {"fingerprint": fingerprint_id(fingerprint)}
    if pf_stats is not None:
        metrics["prefilter"] = pf_stats
    timings["total"] = time.perf_counter() - t0
    write_run(out, inputs=paths, config=cfg.model_dump(mode="json"), rows=rows, metrics=metrics,
              fingerprint=fingerprint, models=loaded.models,
              process={"judged": filled.judged, "cache_hits": filled.cached, "failed_pairs": sum(filled.failed.values()),
                       "timings_s": {k: round(v, 3) for k, v in timings.items()}})
    return RunOutcome(out, rows, metrics, filled.judged, filled.cached, pf_stats, timings,
                      dict(filled.failed), filled.unit)
