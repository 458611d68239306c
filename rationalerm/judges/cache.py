"""SQLite cache of judged pairs and listwise calls, keyed by the judge's fingerprint and the texts.

Good answers are written as they arrive (``CacheWriter``: buffered, committed at least every
``interval_s`` = 0.5 s, at the end of each chunk and on close, also when the run is interrupted), so a run killed
at any point loses at most the last fraction of a second of answers; a rerun judges only what is missing. A *failed* pair or list
(DESIGN.md step 4: no answer the judge could score) is never written, so the next run asks again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from rationalerm._util.hashing import stable_hash
from rationalerm.judges.base import ListResult, ListTask, PairScore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (fp TEXT NOT NULL, key TEXT NOT NULL, score REAL NOT NULL, detail BLOB,
                                  PRIMARY KEY (fp, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lists (fp TEXT NOT NULL, key TEXT NOT NULL, result BLOB NOT NULL,
                                  PRIMARY KEY (fp, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS judges (fp TEXT PRIMARY KEY, fingerprint BLOB NOT NULL);
"""


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    return stable_hash(fingerprint, 64)


def pair_key(human: str, model: str) -> str:
    return stable_hash([human, model], 40)


def task_key(task: ListTask) -> str:
    return stable_hash([task.human, task.model, task.context], 40)


class JudgeCache:
    def __init__(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fp = fingerprint_id(fingerprint)
        self._lock = threading.RLock()  # the writer thread commits through the same connection
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO judges VALUES (?, ?)",
                             (self.fp, orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS)))

    def _lookup(self, table: str, keys: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        with self._lock:
            return self._lookup_locked(table, keys)

    def _lookup_locked(self, table: str, keys: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}
        cols = "key, score, detail" if table == "pairs" else "key, result"
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {cols} FROM {table} WHERE fp=? AND key IN ({marks})",
                                        (self.fp, *chunk)):
                out[row[0]] = row[1:]
        return out

    def get_pairs(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], PairScore]:
        keys = {pair_key(h, s): (h, s) for h, s in pairs}
        found = self._lookup("pairs", list(keys))
        return {keys[k]: PairScore(score, orjson.loads(detail) if detail else None)
                for k, (score, detail) in found.items()}

    def missing_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The pairs not in the cache, in the given order (keys only: no score or detail is loaded)."""
        keys = [pair_key(h, s) for h, s in pairs]
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(k for (k,) in self._db.execute(
                    f"SELECT key FROM pairs WHERE fp=? AND key IN ({marks})", (self.fp, *chunk)))
        return [p for p, k in zip(pairs, keys) if k not in found]

    def put_pairs(self, pairs: Sequence[tuple[str, str]], scores: Sequence[PairScore]) -> None:
        """Store scored pairs in one transaction; failed ones (``score`` None) are skipped, never stored."""
        rows = [(self.fp, pair_key(h, s), float(sc.score), orjson.dumps(sc.detail) if sc.detail else None)
                for (h, s), sc in zip(pairs, scores, strict=True) if sc.score is not None]
        if rows:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?)", rows)

    def get_lists(self, tasks: Sequence[ListTask]) -> dict[str, ListResult]:
        found = self._lookup("lists", [task_key(t) for t in tasks])
        return {k: ListResult(**orjson.loads(blob)) for k, (blob,) in found.items()}

    def put_lists(self, tasks: Sequence[ListTask], results: Sequence[ListResult]) -> None:
        """Store listwise results (valid and invalid answers) in one transaction; failed requests are skipped."""
        rows = [(self.fp, task_key(t), orjson.dumps(_list_blob(r)))
                for t, r in zip(tasks, results, strict=True) if not r.failed]
        if rows:
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO lists VALUES (?, ?, ?)", rows)

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM pairs WHERE fp=?", (self.fp,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _list_blob(r: ListResult) -> dict[str, Any]:
    blob = dict(r.__dict__)
    blob.pop("failed", None)  # never set here (failed results are not stored); keeps the stored shape as before
    return blob


class CacheWriter:
    """Writes answers to a ``JudgeCache`` as they arrive: buffered, committed by a background thread at least
    every ``interval_s`` (and whenever ``max_buffer`` answers wait), and on ``close`` (also on an exception).

    ``add_pair`` / ``add_list`` skip failed answers. Use as a context manager.
    """

    def __init__(self, cache: JudgeCache, interval_s: float = 0.5, max_buffer: int = 4096) -> None:
        self.cache, self.interval_s, self.max_buffer = cache, interval_s, max_buffer
        self._pairs: list[tuple[tuple[str, str], PairScore]] = []
        self._lists: list[tuple[ListTask, ListResult]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rationalerm-cache-writer", daemon=True)
        self._thread.start()

    def add_pair(self, pair: tuple[str, str], score: PairScore) -> None:
        if score.score is None:
            return
        with self._lock:
            self._pairs.append((pair, score))
            full = len(self._pairs) >= self.max_buffer
        if full:
            self.flush()

    def add_list(self, task: ListTask, result: ListResult) -> None:
        if result.failed:
            return
        with self._lock:
            self._lists.append((task, result))
            full = len(self._lists) >= self.max_buffer
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
            lists, self._lists = self._lists, []
        if pairs:
            self.cache.put_pairs([p for p, _ in pairs], [s for _, s in pairs])
        if lists:
            self.cache.put_lists([t for t, _ in lists], [r for _, r in lists])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
