"""The one fingerprint-keyed SQLite store under the judge cache and the decompose cache.

Every table of such a store is keyed ``(fp, key)``: ``fp`` identifies what produced the values (a judge, a
decompose prompt and model: ``fingerprint_id``), ``key`` the input (a hash of the texts). Each user passes its
own ``CREATE TABLE`` script, so the files it opens and writes keep exactly the tables they had. Writes are one
transaction per ``put``; ``StoreWriter`` buffers answers as they arrive and commits them from a background thread
at least every ``interval_s``, so a killed process loses at most the last fraction of a second.

The connection is shared by threads (a writer thread commits through it) under one lock; WAL lets other
processes read and write the same file at the same time (``timeout``: how long a writer waits for another).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from rationalerm._util.files import ensure_dir
from rationalerm._util.hashing import stable_hash
from rationalerm.errors import OutputError

Row = tuple[Any, ...]
_BATCH = 500
"""Keys per ``IN (...)`` query: well under SQLite's limit on bound parameters."""


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """The ``fp`` column of a fingerprint (a JSON-able dict of everything the stored values depend on)."""
    return stable_hash(fingerprint, 64)


def _batches(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), _BATCH):
        yield keys[start:start + _BATCH]


_SQLITE_HEADER = b"SQLite format 3\x00"
_NOT_A_CACHE = "left as it is; name a new file, or a cache file this command wrote"


def _check_not_foreign(path: Path) -> bool:
    """A store is a new file, an empty one or a SQLite database: anything else (the input JSONL given as the cache,
    a directory) is an ``OutputError`` before SQLite opens it, so it is never written to. True when the file is
    already a SQLite database."""
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; a cache is a file (e.g. {path / 'cache.sqlite'})")
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return False
    except OSError as e:
        raise OutputError(f"{path}: cannot read the cache ({e.strerror or e})") from e
    if head and head != _SQLITE_HEADER:
        raise OutputError(f"{path}: not a cache (not a SQLite database); {_NOT_A_CACHE}")
    return bool(head)


def check_store_path(path: str | Path, schema: str, shares_with: str = "") -> None:
    """What ``FingerprintStore`` refuses, checked without creating or writing anything: a command calls it before
    it loads a model, so a wrong ``--cache`` is one error line at once, not after minutes of loading."""
    path = Path(path)
    if not _check_not_foreign(path):
        return
    try:
        # immutable: no lock and no -wal/-shm files beside someone else's WAL database (what a WAL database holds
        # only in its -wal file is not read here; the store's own check, when it opens the file, reads it)
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as e:
        raise OutputError(f"{path}: cannot open the cache ({e})") from e
    try:
        _check_tables(db, path, schema, shares_with)
    except sqlite3.Error as e:
        raise OutputError(f"{path}: cannot use the cache ({e})") from e
    finally:
        db.close()


def _check_tables(db: sqlite3.Connection, path: Path, schema: str, shares_with: str = "") -> None:
    """A SQLite database with tables, none of them this store's (nor those of the stores it shares its file with,
    ``shares_with``'s schema), is someone else's: refused, never added to."""
    ours = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema + shares_with))
    theirs = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if theirs and not theirs & ours:
        raise OutputError(f"{path}: a SQLite database without this cache's tables ({', '.join(sorted(ours))}); "
                          f"{_NOT_A_CACHE}")


class FingerprintStore:
    """A SQLite file of ``(fp, key, value columns...)`` tables, read and written for one fingerprint."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any], schema: str, shares_with: str = "") -> None:
        self.path = Path(path)
        _check_not_foreign(self.path)
        ensure_dir(self.path.parent)
        self.fingerprint = fingerprint
        self.fp = fingerprint_id(fingerprint)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        except sqlite3.Error as e:
            raise OutputError(f"{self.path}: cannot open the cache ({e})") from e
        try:
            _check_tables(self._db, self.path, schema, shares_with)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash keeps every commit but the OS's last few
            self._db.executescript(schema)
        except sqlite3.Error as e:
            self._db.close()
            raise OutputError(f"{self.path}: cannot use the cache ({e})") from e
        except BaseException:
            self._db.close()
            raise

    def remember_fingerprint(self, table: str) -> None:
        """Store the fingerprint itself beside its id in ``table (fp, fingerprint)``: the file says what wrote it."""
        blob = orjson.dumps(self.fingerprint, option=orjson.OPT_SORT_KEYS)
        with self._lock, self._db:
            self._db.execute(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", (self.fp, blob))

    def get_many(self, table: str, columns: str, keys: Sequence[str]) -> dict[str, Row]:
        """``key -> (columns...)`` for the ``keys`` stored under this fingerprint (absent keys are left out)."""
        out: dict[str, Row] = {}
        with self._lock:
            for chunk in _batches(keys):
                marks = ",".join("?" * len(chunk))
                for key, *values in self._db.execute(
                        f"SELECT key, {columns} FROM {table} WHERE fp=? AND key IN ({marks})", (self.fp, *chunk)):
                    out[key] = tuple(values)
        return out

    def present(self, table: str, keys: Sequence[str]) -> set[str]:
        """The ``keys`` stored under this fingerprint (no value is read)."""
        found: set[str] = set()
        with self._lock:
            for chunk in _batches(keys):
                marks = ",".join("?" * len(chunk))
                found.update(k for (k,) in self._db.execute(
                    f"SELECT key FROM {table} WHERE fp=? AND key IN ({marks})", (self.fp, *chunk)))
        return found

    def put_many(self, table: str, rows: Sequence[Row]) -> None:
        """Store ``(key, values...)`` rows under this fingerprint in one transaction (a key's last row wins)."""
        if not rows:
            return
        marks = ",".join("?" * (len(rows[0]) + 1))
        with self._lock, self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})",
                                 [(self.fp, *row) for row in rows])

    def count(self, table: str) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table} WHERE fp=?", (self.fp,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class StoreWriter:
    """Rows for a ``FingerprintStore`` written as they arrive: buffered, committed by a background thread at least
    every ``interval_s`` (and at once when ``max_buffer`` rows wait), on ``flush`` and on ``close`` (also when the
    caller raised). Use as a context manager."""

    def __init__(self, store: FingerprintStore, interval_s: float = 0.5, max_buffer: int = 4096) -> None:
        self.store, self.interval_s, self.max_buffer = store, interval_s, max_buffer
        self._rows: dict[str, list[Row]] = {}
        self._waiting = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rationalerm-store-writer", daemon=True)
        self._thread.start()

    def add(self, table: str, row: Row) -> None:
        with self._lock:
            self._rows.setdefault(table, []).append(row)
            self._waiting += 1
            full = self._waiting >= self.max_buffer
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            tables, self._rows, self._waiting = self._rows, {}, 0
        for table, rows in tables.items():
            self.store.put_many(table, rows)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
