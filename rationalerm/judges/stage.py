"""Filling the score matrices (DESIGN.md step 4): the cache first, the judge for what is missing.

Pairwise judges see each distinct (human item, model item) text pair of the run once; listwise judges each
distinct grid once. Answers are committed to the cache as they arrive (``CacheWriter``: at least every 0.5 s,
and at the end of each chunk), so an interrupted run resumes where it stopped, and the matrices are assembled
from the cache's and the judge's answers.

A pair the judge could not score is *failed* (DESIGN.md step 4): its cell is NaN in the matrix (``null`` in
``results.jsonl``) and its details say why; a failed list has no matrix and its ``judge_output`` says why.
Failures are never cached, so the next run of the same command asks exactly them again; ``Filled.failed``
counts them (distinct judge calls, by reason).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from rationalerm.inputs.grids import Unit, kept_cells
from rationalerm.judges.base import ListJudge, ListResult, ListTask, PairJudge, PairScore, ProgressFactory
from rationalerm.judges.cache import CacheWriter, JudgeCache, task_key


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


def fill_matrices(
    judge: PairJudge | ListJudge, cache: JudgeCache, units: Sequence[Unit], masks: list[np.ndarray] | None,
    chunk_size: int, progress: ProgressFactory,
) -> Filled:
    """Every unit's matrix from ``judge`` (only the cells ``masks`` keep, when given; the rest score 0)."""
    if judge.kind == "listwise":
        mats, infos, judged, hits, failed = judge_listwise(cast(ListJudge, judge), cache, units, chunk_size, progress)
        return Filled(mats, [{"judge_output": info} for info in infos], judged, hits, failed, "lists")
    mats_p, details, judged, hits, failed = judge_pairwise(
        cast(PairJudge, judge), cache, units, masks, chunk_size, progress)
    return Filled(list(mats_p), [{"details": d} for d in details], judged, hits, failed, "pairs")


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


@dataclass
class JudgedPairs:
    """What the judge stage did with a run's distinct pairs: good answers are in the cache; failed ones only here
    (never cached, so the next run asks them again)."""

    judged: int
    cached: int
    failures: dict[tuple[str, str], PairScore] = field(default_factory=dict)

    def failed(self) -> Counter[str]:
        return Counter(ps.failed for ps in self.failures.values() if ps.failed)


def judge_missing(
    judge: PairJudge, cache: JudgeCache, pairs: Sequence[tuple[str, str]], chunk_size: int, progress: ProgressFactory,
) -> JudgedPairs:
    """Judge the distinct ``pairs`` the cache lacks, chunk by chunk, caching each good answer as it arrives.

    Only the failures stay in memory: the scores are read back from the cache shard by shard."""
    todo = cache.missing_pairs(pairs)
    if todo:
        # The run's whole text set at once (e.g. embedded in one call): batches (and so the floats) then do not
        # depend on where an interrupted run stopped, and a resumed run writes byte-identical files.
        judge.prepare(list(dict.fromkeys(t for p in pairs for t in p)), progress)
    failures: dict[tuple[str, str], PairScore] = {}
    with progress("judging pairs", len(todo)) as advance, CacheWriter(cache) as writer:
        for chunk in _chunks(todo, chunk_size):
            arrived: set[int] = set()

            def on_score(k: int, score: PairScore, chunk: Sequence[tuple[str, str]] = chunk,
                         arrived: set[int] = arrived) -> None:
                if k in arrived:
                    return
                arrived.add(k)
                writer.add_pair(chunk[k], score)
                advance(1)

            scores = judge.score_pairs(list(chunk), on_score=on_score)
            for k, score in enumerate(scores):  # a judge that did not stream its answers
                on_score(k, score)
            writer.flush()  # a chunk is never lost once judged, however fast the judge
            failures.update((p, ps) for p, ps in zip(chunk, scores) if ps.failed)
    return JudgedPairs(len(todo), len(pairs) - len(todo), failures)


def pair_matrices(
    units: Sequence[Unit], masks: list[np.ndarray] | None, scores: dict[tuple[str, str], PairScore],
) -> tuple[list[np.ndarray], list[list[list[Any]]]]:
    """The units' matrices and per-cell details from the pairs' scores (a failed pair's cell is NaN)."""
    matrices = [np.zeros((len(u.human), len(u.items))) for u in units]
    details: list[list[list[Any]]] = [[[None] * len(u.items) for _ in u.human] for u in units]
    for k, i, j, h, s in kept_cells(units, masks):
        ps = scores[(h, s)]
        matrices[k][i, j] = np.nan if ps.score is None else ps.score
        details[k][i][j] = ps.detail
    return matrices, details


def shard_scores(
    cache: JudgeCache, units: Sequence[Unit], masks: list[np.ndarray] | None, judged: JudgedPairs,
    memo: dict[tuple[str, str], PairScore] | None = None, memo_size: int = 100_000,
) -> dict[tuple[str, str], PairScore]:
    """The scores of a shard's pairs: from the cache, and this run's failures (which the cache never holds).

    ``memo`` keeps up to ``memo_size`` scores read for earlier shards (pairs recur across shards), so memory
    stays bounded while a corpus with a recurring vocabulary reads each pair from SQLite once."""
    pairs = list(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, masks)))
    memo = {} if memo is None else memo
    scores = {p: memo[p] for p in pairs if p in memo}
    read = cache.get_pairs([p for p in pairs if p not in scores])
    for p, ps in read.items():
        if len(memo) < memo_size:
            memo[p] = ps
    scores.update(read)
    scores.update((p, judged.failures[p]) for p in pairs if p in judged.failures)
    return scores


def judge_pairwise(
    judge: PairJudge, cache: JudgeCache, units: Sequence[Unit], masks: list[np.ndarray] | None,
    chunk_size: int, progress: ProgressFactory,
) -> tuple[list[np.ndarray], list[list[list[Any]]], int, int, Counter[str]]:
    """Fill every unit's matrix; only pairs missing from the cache reach the judge, chunk by chunk, and each good
    answer is cached as it arrives. A failed pair's cell is NaN and its detail says why."""
    pairs = list(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, masks)))
    judged = judge_missing(judge, cache, pairs, chunk_size, progress)
    matrices, details = pair_matrices(units, masks, shard_scores(cache, units, masks, judged))
    return matrices, details, judged.judged, judged.cached, judged.failed()


def judge_listwise(
    judge: ListJudge, cache: JudgeCache, units: Sequence[Unit], chunk_size: int, progress: ProgressFactory,
) -> tuple[list[np.ndarray | None], list[dict[str, Any]], int, int, Counter[str]]:
    tasks = [ListTask(tuple(u.human), tuple(u.items), u.sample.extra.get("context")) for u in units]
    unique = list({task_key(t): t for t in tasks}.items())
    known = cache.get_lists([t for _, t in unique])
    todo = [(k, t) for k, t in unique if k not in known]
    with progress("judging lists", len(todo)) as advance, CacheWriter(cache) as writer:
        for chunk in _chunks(todo, chunk_size):
            arrived: set[int] = set()

            def on_result(k: int, result: ListResult, chunk: Sequence[tuple[str, ListTask]] = chunk,
                          arrived: set[int] = arrived) -> None:
                if k in arrived:
                    return
                arrived.add(k)
                writer.add_list(chunk[k][1], result)
                advance(1)

            results = judge.judge_lists([t for _, t in chunk], on_result=on_result)
            for k, r in enumerate(results):  # a judge that did not stream its results
                on_result(k, r)
            writer.flush()
            known.update((k, r) for (k, _), r in zip(chunk, results))
    failed = Counter(r.failed for r in known.values() if r.failed)
    matrices, infos = [], []
    for t in tasks:
        r = known[task_key(t)]
        w = np.asarray(r.matrix, dtype=float).reshape(len(t.human), len(t.model)) if r.valid and r.matrix is not None else None
        if w is not None:  # blank items are never matched, whatever the answer said
            w[[i for i, h in enumerate(t.human) if not h], :] = 0.0
            w[:, [j for j, x in enumerate(t.model) if not x]] = 0.0
        matrices.append(w)
        info = {"valid": r.valid, "attempts": r.attempts, "error": r.error, "raw": r.raw}
        if r.failed:
            info["failed"] = r.failed
        infos.append(info)
    return matrices, infos, len(todo), len(unique) - len(todo), failed
