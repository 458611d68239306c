"""SQLite cache of judged pairs and listwise calls, keyed by the judge's fingerprint and the texts.

Good answers are written as they arrive (``CacheWriter``: buffered, committed at least every 0.5 s, at the end
of each chunk and on close, also when the run is interrupted), so a run killed at any point loses at most the
last fraction of a second of answers; a rerun judges only what is missing. A *failed* pair or list (DESIGN.md
step 4: no answer the judge could score) is never written, so the next run asks again. The file format (tables,
columns, keys) is that of every earlier version: old caches are reused as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from rationalerm._util.hashing import stable_hash
from rationalerm._util.sqlite_store import FingerprintStore, Row, StoreWriter, check_store_path, fingerprint_id
from rationalerm.judges.base import ListResult, ListTask, Pair, PairScore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (fp TEXT NOT NULL, key TEXT NOT NULL, score REAL NOT NULL, detail BLOB,
                                  PRIMARY KEY (fp, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lists (fp TEXT NOT NULL, key TEXT NOT NULL, result BLOB NOT NULL,
                                  PRIMARY KEY (fp, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS judges (fp TEXT PRIMARY KEY, fingerprint BLOB NOT NULL);
"""
VECTORS_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (fp TEXT NOT NULL, key TEXT NOT NULL, vec BLOB NOT NULL,
                                    PRIMARY KEY (fp, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS encoders (fp TEXT PRIMARY KEY, fingerprint BLOB NOT NULL);
"""
"""The vector store's tables (``judges/vectors.py``), kept in the judge cache's file: a file holding either set is
a rationalerm cache, so neither store refuses the other's file."""
PAIRS_SCHEMA = _SCHEMA


def pair_key(human: str, model: str) -> str:
    return stable_hash([human, model], 40)


def task_key(task: ListTask) -> str:
    return stable_hash([task.human, task.model, task.context], 40)


def _pair_row(pair: Pair, score: PairScore) -> Row:
    assert score.score is not None, "a failed pair is never stored"
    return pair_key(*pair), float(score.score), orjson.dumps(score.detail) if score.detail else None


def _list_row(task: ListTask, result: ListResult) -> Row:
    blob = dict(result.__dict__)
    blob.pop("failed", None)  # never set here (failed results are not stored); keeps the stored shape as before
    return task_key(task), orjson.dumps(blob)


class JudgeCache:
    """One judge's answers (its fingerprint's rows) in a cache file that may hold other judges' too."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        self.store = FingerprintStore(path, fingerprint, _SCHEMA, shares_with=VECTORS_SCHEMA)
        self.store.remember_fingerprint("judges")
        self.path, self.fp = self.store.path, self.store.fp

    @staticmethod
    def check(path: str | Path) -> None:
        """Refuse a path this cache would refuse (``OutputError``), creating nothing: before a model loads."""
        check_store_path(path, _SCHEMA, shares_with=VECTORS_SCHEMA)

    def get_pairs(self, pairs: Sequence[Pair]) -> dict[Pair, PairScore]:
        keys = {pair_key(h, s): (h, s) for h, s in pairs}
        found = self.store.get_many("pairs", "score, detail", list(keys))
        return {keys[k]: PairScore(score, orjson.loads(detail) if detail else None)
                for k, (score, detail) in found.items()}

    def missing_pairs(self, pairs: Sequence[Pair]) -> list[Pair]:
        """The pairs not in the cache, in the given order (keys only: no score or detail is loaded)."""
        keys = [pair_key(h, s) for h, s in pairs]
        found = self.store.present("pairs", keys)
        return [p for p, k in zip(pairs, keys) if k not in found]

    def put_pairs(self, pairs: Sequence[Pair], scores: Sequence[PairScore]) -> None:
        """Store scored pairs in one transaction; failed ones (``score`` None) are skipped, never stored."""
        self.store.put_many("pairs", [_pair_row(p, sc) for p, sc in zip(pairs, scores, strict=True)
                                      if sc.score is not None])

    def get_lists(self, tasks: Sequence[ListTask]) -> dict[str, ListResult]:
        found = self.store.get_many("lists", "result", [task_key(t) for t in tasks])
        return {k: ListResult(**orjson.loads(blob)) for k, (blob,) in found.items()}

    def put_lists(self, tasks: Sequence[ListTask], results: Sequence[ListResult]) -> None:
        """Store listwise results (valid and invalid answers) in one transaction; failed requests are skipped."""
        self.store.put_many("lists", [_list_row(t, r) for t, r in zip(tasks, results, strict=True) if not r.failed])

    def count(self) -> int:
        return self.store.count("pairs")

    def close(self) -> None:
        self.store.close()


class CacheWriter:
    """Writes answers to a ``JudgeCache`` as they arrive (``StoreWriter``: committed at least every
    ``interval_s``, on ``flush`` and on ``close``); ``add_pair`` / ``add_list`` skip failed answers."""

    def __init__(self, cache: JudgeCache, interval_s: float = 0.5, max_buffer: int = 4096) -> None:
        self._writer = StoreWriter(cache.store, interval_s, max_buffer)

    def add_pair(self, pair: Pair, score: PairScore) -> None:
        if score.score is not None:
            self._writer.add("pairs", _pair_row(pair, score))

    def add_list(self, task: ListTask, result: ListResult) -> None:
        if not result.failed:
            self._writer.add("lists", _list_row(task, result))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


__all__ = ["CacheWriter", "JudgeCache", "fingerprint_id", "pair_key", "task_key"]
