"""SQLite cache of judged pairs and listwise calls, keyed by the judge's fingerprint and the texts.

Each chunk of judgements is committed in one transaction, so a run killed at any point keeps every
finished chunk and loses at most the one in flight; a rerun judges only what is missing.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from rationalerm.judges.base import ListResult, ListTask, PairScore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (fp TEXT NOT NULL, key TEXT NOT NULL, score REAL NOT NULL, detail BLOB,
                                  PRIMARY KEY (fp, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lists (fp TEXT NOT NULL, key TEXT NOT NULL, result BLOB NOT NULL,
                                  PRIMARY KEY (fp, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS judges (fp TEXT PRIMARY KEY, fingerprint BLOB NOT NULL);
"""


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS)).hexdigest()


def pair_key(human: str, model: str) -> str:
    return hashlib.sha256(orjson.dumps([human, model])).hexdigest()[:40]


def task_key(task: ListTask) -> str:
    return hashlib.sha256(orjson.dumps([task.human, task.model, task.context])).hexdigest()[:40]


class JudgeCache:
    def __init__(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fp = fingerprint_id(fingerprint)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO judges VALUES (?, ?)",
                             (self.fp, orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS)))

    def _lookup(self, table: str, keys: Sequence[str]) -> dict[str, tuple[Any, ...]]:
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

    def put_pairs(self, pairs: Sequence[tuple[str, str]], scores: Sequence[PairScore]) -> None:
        rows = [(self.fp, pair_key(h, s), float(sc.score), orjson.dumps(sc.detail) if sc.detail else None)
                for (h, s), sc in zip(pairs, scores, strict=True)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO pairs VALUES (?, ?, ?, ?)", rows)

    def get_lists(self, tasks: Sequence[ListTask]) -> dict[str, ListResult]:
        found = self._lookup("lists", [task_key(t) for t in tasks])
        return {k: ListResult(**orjson.loads(blob)) for k, (blob,) in found.items()}

    def put_lists(self, tasks: Sequence[ListTask], results: Sequence[ListResult]) -> None:
        rows = [(self.fp, task_key(t), orjson.dumps(r.__dict__)) for t, r in zip(tasks, results, strict=True)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO lists VALUES (?, ?, ?)", rows)

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM pairs WHERE fp=?", (self.fp,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()
