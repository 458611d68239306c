"""The run as it was before streaming (issue 17): every sample, matrix and row in memory, all outputs written
at the end. Kept verbatim (its judge stage, scoring and summary calls) as the oracle the streamed run must match
byte for byte; test-only, like the in-memory helpers below (the package streams shard by shard instead)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from rationalerm._util.files import ensure_dir, write_json, write_jsonl
from rationalerm.config import RunConfig
from rationalerm.inputs.grids import Grid, kept_cells
from rationalerm.inputs.load import LoadResult, load_samples
from rationalerm.judges import ListJudge, PairJudge, ProgressFactory, make_judge, null_progress
from rationalerm.judges.base import Pair, PairScore
from rationalerm.judges.cache import JudgeCache, fingerprint_id
from rationalerm.judges.prefilter import Prefilter, PrefilterStats
from rationalerm.judges.stage import JudgedPairs, judge_listwise, judge_missing
from rationalerm.scoring.rows import score_rows
from tests.helpers.batch_summary import batch_metrics


def build_units(loaded: LoadResult) -> list[Grid]:
    """Every sample x model grid of a corpus loaded whole."""
    return [Grid(s, m) for s in loaded.samples for m in loaded.models if m in s.models]


def prefilter_masks(
    units: Sequence[Grid], cfg: RunConfig, progress: ProgressFactory = null_progress
) -> tuple[list[np.ndarray], PrefilterStats]:
    """Per-unit keep masks from embedding cosines; every unique item is embedded once."""
    pf = Prefilter(cfg.prefilter, cfg.judge.device_hint(), cfg.judge.canonical_references)  # as the pipeline
    pf.prepare(list(dict.fromkeys(t for u in units for t in (*u.human, *u.items))), progress)
    masks = [pf.mask(u) for u in units]
    pf.tally(units, masks)
    return masks, pf.stats


def cellwise_matrices(
    units: Sequence[Grid], masks: list[np.ndarray] | None, scores: dict[Pair, PairScore],
) -> tuple[list[np.ndarray], list[list[list[Any]]]]:
    """The matrices and details one cell at a time (the package's ``pair_matrices`` before it worked on arrays):
    the oracle of its array version."""
    matrices = [np.zeros((len(u.human), len(u.items))) for u in units]
    details: list[list[list[Any]]] = [[[None] * len(u.items) for _ in u.human] for u in units]
    for k, i, j, h, s in kept_cells(units, masks):
        ps = scores[(h, s)]
        matrices[k][i, j] = np.nan if ps.score is None else ps.score
        details[k][i][j] = ps.detail
    return matrices, details


def cellwise_scores(
    cache: JudgeCache, units: Sequence[Grid], masks: list[np.ndarray] | None, judged: JudgedPairs,
) -> dict[Pair, PairScore]:
    """The scores of the units' pairs from the cache and the run's failures, one cell at a time."""
    pairs = list(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, masks)))
    scores = cache.get_pairs(pairs)
    scores.update((p, judged.failures[p]) for p in pairs if p in judged.failures)
    return scores


@dataclass
class Filled:
    """Per unit its score matrix (None: an invalid or failed listwise output; NaN cells: failed pairs) and what
    goes beside it in its row."""

    matrices: list[np.ndarray | None]
    extras: list[dict[str, Any]]
    """``{"details": per-cell judge details}`` (pairwise) or ``{"judge_output": ...}`` (listwise)."""
    judged: int
    cached: int
    failed: Counter[str] = field(default_factory=Counter)
    """Failed judge calls (distinct pairs, or lists) by reason kind; empty when the run is complete."""
    unit: str = "pairs"
    """What ``failed`` counts: ``pairs`` or ``lists``."""


def judge_pairwise(
    judge: PairJudge, cache: JudgeCache, units: Sequence[Grid], masks: list[np.ndarray] | None,
    chunk_size: int, progress: ProgressFactory,
) -> tuple[list[np.ndarray], list[list[list[Any]]], int, int, Counter[str]]:
    """Fill every unit's matrix; only pairs missing from the cache reach the judge, chunk by chunk, and each good
    answer is cached as it arrives. A failed pair's cell is NaN and its detail says why."""
    pairs = list(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, masks)))
    judged = judge_missing(judge, cache, pairs, chunk_size, progress)
    matrices, details = cellwise_matrices(units, masks, cellwise_scores(cache, units, masks, judged))
    return matrices, details, judged.judged, judged.cached, judged.failed()


def fill_matrices(
    judge: PairJudge | ListJudge, cache: JudgeCache, units: Sequence[Grid], masks: list[np.ndarray] | None,
    chunk_size: int, progress: ProgressFactory,
) -> Filled:
    """Every unit's matrix from ``judge`` (only the cells ``masks`` keep, when given; the rest score 0)."""
    if judge.kind == "listwise":
        mats, infos, judged, hits, failed = judge_listwise(cast(ListJudge, judge), cache, units, chunk_size, progress)
        return Filled(mats, [{"judge_output": info} for info in infos], judged, hits, failed, "lists")
    mats_p, details, judged, hits, failed = judge_pairwise(
        cast(PairJudge, judge), cache, units, masks, chunk_size, progress)
    return Filled(list(mats_p), [{"details": d} for d in details], judged, hits, failed, "pairs")


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
