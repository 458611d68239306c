"""Driving runs from outside: the CLI in a fresh process, and a run's cache while it runs (kill-and-resume tests)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
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


def run_cli(args: tuple[str, ...], env: dict[str, str], cwd: Path, check: bool = True,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -m rationalerm ARGS`` in a fresh process; with ``check``, a non-zero exit fails with its output."""
    proc = subprocess.run([sys.executable, "-m", "rationalerm", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
