"""Reading a run's state from outside while it runs (the kill-and-resume tests)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def cached_pairs(db: Path) -> int:
    """Pairs committed to a run's SQLite cache so far (0 before the cache exists or while it is locked)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
