"""The judge stage (DESIGN.md step 4): the cache first, the judge for what is missing, answers cached as they come.

Pairwise judges see each distinct (human item, model item) text pair once (``judge_missing``: a run's pairs, or
a reward batch's); listwise judges each distinct grid once (``judge_listwise``). Both send their work in chunks
and commit each answer to the cache as it arrives (``CacheWriter``: at least every 0.5 s, and at the end of each
chunk), so an interrupted run resumes where it stopped; the matrices are then assembled from the cache.

A pair the judge could not score is *failed* (DESIGN.md step 4): its cell is NaN in the matrix (``null`` in
``results.jsonl``) and its details say why; a failed list has no matrix and its ``judge_output`` says why.
Failures are never cached, so the next run of the same command asks exactly them again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from rationalerm.inputs.grids import Grid
from rationalerm.judges.base import (
    ListJudge,
    ListResult,
    ListTask,
    Pair,
    PairJudge,
    PairScore,
    ProgressFactory,
    null_progress,
)
from rationalerm.judges.cache import CacheWriter, JudgeCache, task_key

T = TypeVar("T")
A = TypeVar("A")


@dataclass
class JudgedPairs:
    """What the judge stage did with a run's distinct pairs: good answers are in the cache; failed ones only here
    (never cached, so the next run asks them again)."""

    judged: int
    cached: int
    failures: dict[Pair, PairScore] = field(default_factory=dict)

    def failed(self) -> Counter[str]:
        return Counter(ps.failed for ps in self.failures.values() if ps.failed)


def _chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _streamed(call: Callable[[list[T], Callable[[int, A], None]], list[A]], chunk: Sequence[T],
              sink: Callable[[T, A], None]) -> list[A]:
    """The answers to one judge call on ``chunk``; ``sink`` gets each item's answer once, as soon as it arrives
    (after the call, for a judge that does not stream its answers)."""
    arrived: set[int] = set()

    def on_answer(k: int, answer: A) -> None:
        if k not in arrived:
            arrived.add(k)
            sink(chunk[k], answer)

    answers = call(list(chunk), on_answer)
    for k, answer in enumerate(answers):
        on_answer(k, answer)
    return answers


def _writer(cache: JudgeCache | None) -> AbstractContextManager[CacheWriter | None]:
    return CacheWriter(cache) if cache is not None else nullcontext()


def judge_missing(
    judge: PairJudge, cache: JudgeCache | None, pairs: Sequence[Pair], chunk_size: int,
    progress: ProgressFactory = null_progress, on_score: Callable[[Pair, PairScore], None] | None = None,
) -> JudgedPairs:
    """Judge the distinct ``pairs`` the cache lacks (all of them without a cache), chunk by chunk; each good answer
    is cached, and each answer given to ``on_score``, as it arrives.

    Only the failures stay in memory: a run reads the scores back from the cache shard by shard."""
    todo = cache.missing_pairs(pairs) if cache is not None else list(pairs)
    if todo:
        # The whole text set at once (e.g. embedded in one call): batches (and so the floats) then do not depend on
        # chunking or on where an interrupted run stopped, and a resumed run writes byte-identical files.
        judge.prepare(list(dict.fromkeys(t for p in pairs for t in p)), progress)
    failures: dict[Pair, PairScore] = {}
    with progress("judging pairs", len(todo)) as advance, _writer(cache) as writer:
        def sink(pair: Pair, score: PairScore) -> None:
            if writer is not None:
                writer.add_pair(pair, score)
            if on_score is not None:
                on_score(pair, score)
            advance(1)

        for chunk in _chunks(todo, chunk_size):
            scores = _streamed(lambda ps, cb: judge.score_pairs(ps, on_score=cb), chunk, sink)
            if writer is not None:
                writer.flush()  # a chunk is never lost once judged, however fast the judge
            failures.update((p, ps) for p, ps in zip(chunk, scores) if ps.failed)
    return JudgedPairs(len(todo), len(pairs) - len(todo), failures)


@dataclass(frozen=True)
class ShardCells:
    """Every cell of a shard's grids as flat arrays (unit after unit, row-major): the read-back from the cache and
    the matrix fill are array operations on them, with Python work per distinct text and per distinct pair only.
    """

    texts: list[str]
    """The shard's distinct texts; the arrays below hold indices into it."""
    human: np.ndarray
    """Per cell: its human item (an index into ``texts``)."""
    model: np.ndarray
    """Per cell: its model item."""
    kept: np.ndarray
    """Per cell: judged (two non-blank items, kept by the prefilter when it ran)."""
    shapes: list[tuple[int, int]]
    """Per unit: (human items, model items)."""

    @classmethod
    def of(cls, units: Sequence[Grid], masks: list[np.ndarray] | None) -> ShardCells:
        ids: dict[str, int] = {}
        human = [[ids.setdefault(t, len(ids)) for t in u.human] for u in units]
        model = [[ids.setdefault(t, len(ids)) for t in u.items] for u in units]
        shapes = [(len(h), len(m)) for h, m in zip(human, model)]
        n = np.array([a for a, _ in shapes], dtype=np.int64)
        m = np.array([b for _, b in shapes], dtype=np.int64)
        unit = np.repeat(np.arange(len(units)), n * m)  # each cell's unit
        local = np.arange(unit.size) - np.repeat(np.cumsum(n * m) - n * m, n * m)  # its index inside the unit
        width = np.maximum(m, 1)[unit]
        rows = (np.cumsum(n) - n)[unit] + local // width  # the cell's human item among all the shard's
        cols = (np.cumsum(m) - m)[unit] + local % width
        h = np.array([i for x in human for i in x], dtype=np.int64)[rows]
        s = np.array([j for x in model for j in x], dtype=np.int64)[cols]
        texts = list(ids)
        filled = np.fromiter((bool(t) for t in texts), dtype=bool, count=len(texts))  # a blank item is never judged
        kept = filled[h] & filled[s] if unit.size else np.zeros(0, dtype=bool)
        if masks is not None and unit.size:
            kept &= np.concatenate([np.asarray(x, dtype=bool).ravel() for x in masks])
        return cls(texts, h, s, kept, shapes)

    @cached_property
    def pairs(self) -> tuple[list[Pair], np.ndarray]:
        """The distinct pairs of the kept cells, and each kept cell's index into them (found once per shard)."""
        code = self.human[self.kept] * len(self.texts) + self.model[self.kept]
        distinct, which = np.unique(code, return_inverse=True)
        t = self.texts
        return [(t[c // len(t)], t[c % len(t)]) for c in distinct.tolist()], which.reshape(-1)

    def fill(self, values: np.ndarray, which: np.ndarray, blank: object) -> np.ndarray:
        """Per cell: ``values[which]`` for the kept cells in order, ``blank`` elsewhere."""
        out = np.full(self.kept.size, blank, dtype=values.dtype)
        out[self.kept] = values[which]
        return out

    def per_unit(self, flat: np.ndarray) -> list[np.ndarray]:
        """``flat`` (one value per cell) cut into the units' ``(n, m)`` matrices."""
        ends = np.cumsum([n * m for n, m in self.shapes]).tolist()
        return [flat[end - n * m:end].reshape(n, m) for end, (n, m) in zip(ends, self.shapes)]


def pair_matrices(
    units: Sequence[Grid], masks: list[np.ndarray] | None, scores: dict[Pair, PairScore],
    cells: ShardCells | None = None,
) -> tuple[list[np.ndarray], list[list[list[Any]]]]:
    """The units' matrices and per-cell details from the pairs' scores (a failed pair's cell is NaN); scattered
    from the distinct pairs to the cells by index arrays."""
    cells = cells or ShardCells.of(units, masks)
    pairs, which = cells.pairs
    found = [scores[p] for p in pairs]
    values = np.fromiter((np.nan if ps.score is None else ps.score for ps in found), dtype=float, count=len(found))
    details = np.fromiter((ps.detail for ps in found), dtype=object, count=len(found))
    matrices = cells.per_unit(cells.fill(values, which, 0.0))
    return matrices, [d.tolist() for d in cells.per_unit(cells.fill(details, which, None))]


def shard_scores(
    cache: JudgeCache, units: Sequence[Grid], masks: list[np.ndarray] | None, judged: JudgedPairs,
    memo: dict[Pair, PairScore] | None = None, memo_size: int = 100_000, cells: ShardCells | None = None,
) -> dict[Pair, PairScore]:
    """The scores of a shard's pairs: from the cache, and this run's failures (which the cache never holds).

    ``memo`` keeps up to ``memo_size`` scores read for earlier shards (pairs recur across shards), so memory
    stays bounded while a corpus with a recurring vocabulary reads each pair from SQLite once."""
    pairs, _ = (cells or ShardCells.of(units, masks)).pairs
    memo = {} if memo is None else memo
    known = [memo.get(p) for p in pairs]
    scores = {p: ps for p, ps in zip(pairs, known) if ps is not None}
    read = cache.get_pairs([p for p, ps in zip(pairs, known) if ps is None])
    for p, ps in read.items():
        if len(memo) < memo_size:
            memo[p] = ps
    scores.update(read)
    if judged.failures:
        scores.update((p, judged.failures[p]) for p in pairs if p in judged.failures)
    return scores


def read_matrices(
    cache: JudgeCache, units: Sequence[Grid], masks: list[np.ndarray] | None, judged: JudgedPairs,
    memo: dict[Pair, PairScore] | None = None,
) -> tuple[list[np.ndarray], list[list[list[Any]]]]:
    """A shard's matrices and details read back from the cache (``shard_scores`` then ``pair_matrices``, on the
    shard's cells found once)."""
    cells = ShardCells.of(units, masks)
    return pair_matrices(units, masks, shard_scores(cache, units, masks, judged, memo, cells=cells), cells)


def _judge_missing_lists(
    judge: ListJudge, cache: JudgeCache, tasks: Sequence[ListTask], chunk_size: int, progress: ProgressFactory,
) -> tuple[dict[str, ListResult], int, int]:
    """Every distinct task's result by ``task_key`` (the cache's, else the judge's, cached as it arrives); then how
    many went to the judge and how many came from the cache."""
    unique = list({task_key(t): t for t in tasks}.items())
    known = cache.get_lists([t for _, t in unique])
    todo = [(k, t) for k, t in unique if k not in known]
    with progress("judging lists", len(todo)) as advance, CacheWriter(cache) as writer:
        def sink(item: tuple[str, ListTask], result: ListResult) -> None:
            writer.add_list(item[1], result)
            advance(1)

        for chunk in _chunks(todo, chunk_size):
            results = _streamed(lambda items, cb: judge.judge_lists([t for _, t in items], on_result=cb), chunk, sink)
            writer.flush()
            known.update((k, r) for (k, _), r in zip(chunk, results))
    return known, len(todo), len(unique) - len(todo)


def _list_matrix(task: ListTask, r: ListResult) -> np.ndarray | None:
    """A listwise answer's matrix (None when invalid or failed); blank items are never matched, whatever it said."""
    if not r.valid or r.matrix is None:
        return None
    w = np.asarray(r.matrix, dtype=float).reshape(len(task.human), len(task.model))
    w[[i for i, h in enumerate(task.human) if not h], :] = 0.0
    w[:, [j for j, x in enumerate(task.model) if not x]] = 0.0
    return w


def _list_info(r: ListResult) -> dict[str, Any]:
    """The row's ``judge_output``."""
    info: dict[str, Any] = {"valid": r.valid, "attempts": r.attempts, "error": r.error, "raw": r.raw}
    if r.failed:
        info["failed"] = r.failed
    return info


def judge_listwise(
    judge: ListJudge, cache: JudgeCache, units: Sequence[Grid], chunk_size: int, progress: ProgressFactory,
) -> tuple[list[np.ndarray | None], list[dict[str, Any]], int, int, Counter[str]]:
    """Per unit its matrix and ``judge_output``; then the lists judged, those from the cache, the failed ones."""
    tasks = [ListTask(tuple(u.human), tuple(u.items), u.sample.extra.get("context")) for u in units]
    known, judged, cached = _judge_missing_lists(judge, cache, tasks, chunk_size, progress)
    failed = Counter(r.failed for r in known.values() if r.failed)
    results = [known[task_key(t)] for t in tasks]
    matrices = [_list_matrix(t, r) for t, r in zip(tasks, results)]
    return matrices, [_list_info(r) for r in results], judged, cached, failed
