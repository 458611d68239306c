"""Filling the score matrices (DESIGN.md step 4): the cache first, the judge for what is missing.

Pairwise judges see each distinct (human item, model item) text pair of the run once; listwise judges each
distinct grid once. Work is committed to the cache chunk by chunk, so an interrupted run resumes where it
stopped, and the matrices are assembled from the cache's and the judge's answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from rationalerm.cache import JudgeCache, task_key
from rationalerm.judges.base import ListJudge, ListTask, PairJudge, PairScore, ProgressFactory
from rationalerm.pairs import Unit, kept_cells


@dataclass
class Filled:
    """Per unit its score matrix (None: an invalid listwise output) and what goes beside it in its row."""

    matrices: list[np.ndarray | None]
    extras: list[dict[str, Any]]
    """``{"details": per-cell judge details}`` (pairwise) or ``{"judge_output": ...}`` (listwise)."""
    judged: int
    cached: int


def fill_matrices(
    judge: PairJudge | ListJudge, cache: JudgeCache, units: Sequence[Unit], masks: list[np.ndarray] | None,
    chunk_size: int, progress: ProgressFactory,
) -> Filled:
    """Every unit's matrix from ``judge`` (only the cells ``masks`` keep, when given; the rest score 0)."""
    if judge.kind == "listwise":
        mats, infos, judged, hits = judge_listwise(cast(ListJudge, judge), cache, units, chunk_size, progress)
        return Filled(mats, [{"judge_output": info} for info in infos], judged, hits)
    mats_p, details, judged, hits = judge_pairwise(cast(PairJudge, judge), cache, units, masks, chunk_size, progress)
    return Filled(list(mats_p), [{"details": d} for d in details], judged, hits)


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def judge_pairwise(
    judge: PairJudge, cache: JudgeCache, units: Sequence[Unit], masks: list[np.ndarray] | None,
    chunk_size: int, progress: ProgressFactory,
) -> tuple[list[np.ndarray], list[list[list[Any]]], int, int]:
    """Fill every unit's matrix; only pairs missing from the cache reach the judge, chunk by chunk."""
    pairs = list(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, masks)))
    known: dict[tuple[str, str], PairScore] = cache.get_pairs(pairs)
    todo = [p for p in pairs if p not in known]
    if todo:
        # The run's whole text set at once (e.g. embedded in one call): batches (and so the floats) then do not
        # depend on where an interrupted run stopped, and a resumed run writes byte-identical files.
        judge.prepare(list(dict.fromkeys(t for p in pairs for t in p)), progress)
    with progress("judging pairs", len(todo)) as advance:
        for chunk in _chunks(todo, chunk_size):
            scores = judge.score_pairs(list(chunk))
            cache.put_pairs(chunk, scores)
            known.update(zip(chunk, scores))
            advance(len(chunk))
    matrices = [np.zeros((len(u.human), len(u.items))) for u in units]
    details: list[list[list[Any]]] = [[[None] * len(u.items) for _ in u.human] for u in units]
    for k, i, j, h, s in kept_cells(units, masks):
        ps = known[(h, s)]
        matrices[k][i, j], details[k][i][j] = ps.score, ps.detail
    return matrices, details, len(todo), len(pairs) - len(todo)


def judge_listwise(
    judge: ListJudge, cache: JudgeCache, units: Sequence[Unit], chunk_size: int, progress: ProgressFactory,
) -> tuple[list[np.ndarray | None], list[dict[str, Any]], int, int]:
    tasks = [ListTask(tuple(u.human), tuple(u.items), u.sample.extra.get("context")) for u in units]
    unique = list({task_key(t): t for t in tasks}.items())
    known = cache.get_lists([t for _, t in unique])
    todo = [(k, t) for k, t in unique if k not in known]
    with progress("judging lists", len(todo)) as advance:
        for chunk in _chunks(todo, chunk_size):
            results = judge.judge_lists([t for _, t in chunk])
            cache.put_lists([t for _, t in chunk], results)
            known.update((k, r) for (k, _), r in zip(chunk, results))
            advance(len(chunk))
    matrices, infos = [], []
    for t in tasks:
        r = known[task_key(t)]
        w = np.asarray(r.matrix, dtype=float).reshape(len(t.human), len(t.model)) if r.valid and r.matrix is not None else None
        if w is not None:  # blank items are never matched, whatever the answer said
            w[[i for i, h in enumerate(t.human) if not h], :] = 0.0
            w[:, [j for j, x in enumerate(t.model) if not x]] = 0.0
        matrices.append(w)
        infos.append({"valid": r.valid, "attempts": r.attempts, "error": r.error, "raw": r.raw})
    return matrices, infos, len(todo), len(unique) - len(todo)
