"""The one fingerprint-keyed SQLite store under the judge cache and the decompose cache: the files it writes have
the tables earlier versions wrote (so old caches open and hit), and answers are committed as they arrive, from any
thread."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import orjson

from rationalerm._util.hashing import stable_hash, text_hash
from rationalerm._util.sqlite_store import FingerprintStore, StoreWriter, fingerprint_id
from rationalerm.decompose.run import DecomposeCache, Decomposition
from rationalerm.judges.base import PairScore
from rationalerm.judges.cache import CacheWriter, JudgeCache
from tests.helpers.paths import ROOT

OLD_CACHE = ROOT / "tests" / "data" / "pre_layout" / "ex" / "cache.sqlite"
SCHEMA = ("CREATE TABLE IF NOT EXISTS t (fp TEXT NOT NULL, key TEXT NOT NULL, v REAL, PRIMARY KEY (fp, key)) "
          "WITHOUT ROWID")


def _master(path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute("SELECT type, name, sql FROM sqlite_master").fetchall())


def test_a_new_judge_cache_has_the_tables_of_one_written_before(tmp_path: Path) -> None:
    JudgeCache(tmp_path / "new.sqlite", {"judge": "x"}).close()
    assert _master(tmp_path / "new.sqlite") == _master(OLD_CACHE)


def test_a_decompose_cache_written_by_the_old_code_opens_and_hits(tmp_path: Path) -> None:
    """The statements the decompose cache used before it moved onto the store, verbatim."""
    path, fingerprint = tmp_path / "d.cache.sqlite", {"task": "decompose", "model": "m"}
    old = sqlite3.connect(path, timeout=60)
    old.execute("PRAGMA journal_mode=WAL")
    with old:
        old.execute("CREATE TABLE IF NOT EXISTS decompositions (fp TEXT NOT NULL, key TEXT NOT NULL, "
                    "result BLOB NOT NULL, PRIMARY KEY (fp, key)) WITHOUT ROWID")
        old.execute("INSERT OR REPLACE INTO decompositions VALUES (?, ?, ?)",
                    (stable_hash(fingerprint, 64), text_hash("a rationale", 40),
                     orjson.dumps(Decomposition(["one", "two"], None, "raw", 2).__dict__)))
    old.close()
    before = _master(path)
    cache = DecomposeCache(path, fingerprint)
    assert cache.get(["a rationale", "another"]) == {"a rationale": Decomposition(["one", "two"], None, "raw", 2)}
    cache.put("another", Decomposition(None, "boom", fault="timeout"))  # no answer at all: never stored
    cache.put("third", Decomposition(["x"]))
    cache.close()
    assert _master(path) == before
    again = DecomposeCache(path, fingerprint)
    assert set(again.get(["a rationale", "another", "third"])) == {"a rationale", "third"}
    assert DecomposeCache(path, {"task": "decompose", "model": "other"}).get(["a rationale"]) == {}


def test_the_old_judge_cache_answers_through_the_store(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copy(OLD_CACHE, path)
    with sqlite3.connect(path) as db:
        fp, blob = db.execute("SELECT fp, fingerprint FROM judges").fetchone()
        n = db.execute("SELECT COUNT(*) FROM pairs WHERE fp=?", (fp,)).fetchone()[0]
    fingerprint = orjson.loads(blob)
    assert fingerprint_id(fingerprint) == fp
    cache = JudgeCache(path, fingerprint)
    assert cache.fp == fp and cache.count() == n > 0
    cache.close()
    assert _master(path) == _master(OLD_CACHE)


def test_many_keys_last_row_wins_and_fingerprints_stay_apart(tmp_path: Path) -> None:
    a = FingerprintStore(tmp_path / "s.sqlite", {"a": 1}, SCHEMA)
    b = FingerprintStore(tmp_path / "s.sqlite", {"b": 1}, SCHEMA)
    keys = [f"k{i}" for i in range(1234)]  # more than one IN (...) batch
    a.put_many("t", [(k, float(i)) for i, k in enumerate(keys)])
    a.put_many("t", [("k0", -1.0), ("k0", -2.0)])
    assert a.get_many("t", "v", keys) == {k: (-2.0 if k == "k0" else float(i),) for i, k in enumerate(keys)}
    assert a.present("t", [*keys, "nope"]) == set(keys) and a.count("t") == 1234
    assert b.get_many("t", "v", keys) == {} and b.count("t") == 0
    a.put_many("t", [])
    a.close()
    b.close()


def test_the_writer_commits_as_answers_arrive_from_many_threads(tmp_path: Path) -> None:
    store = FingerprintStore(tmp_path / "s.sqlite", {"a": 1}, SCHEMA)
    reader = FingerprintStore(tmp_path / "s.sqlite", {"a": 1}, SCHEMA)  # another process, as it were
    with StoreWriter(store, interval_s=0.05, max_buffer=10_000) as writer:
        writer.add("t", ("first", 1.0))
        deadline = time.monotonic() + 10
        while not reader.present("t", ["first"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.present("t", ["first"])  # committed by the writer's thread, with no flush

        def add(n: int) -> None:
            for i in range(300):
                writer.add("t", (f"{n}-{i}", float(i)))

        threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert reader.count("t") == 1 + 6 * 300
    store.close()
    reader.close()


def test_a_full_buffer_is_committed_at_once(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "c.sqlite", {"judge": "x"})
    with CacheWriter(cache, interval_s=3600, max_buffer=3) as writer:
        for i in range(3):
            writer.add_pair((f"h{i}", "s"), PairScore(0.5))
        writer.add_pair(("failed", "s"), PairScore.failure("timeout", "no answer"))
        assert cache.count() == 3
    assert cache.missing_pairs([("failed", "s")]) == [("failed", "s")]
    cache.close()
