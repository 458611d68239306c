"""Driving runs from outside: the CLI in a fresh process, and a run's cache while it runs (kill-and-resume tests)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path


def cached_pairs(db: Path, table: str = "pairs") -> int:
    """Rows committed to ``table`` of a run's SQLite cache so far (``pairs``: judged pairs; ``vectors``: embedded
    texts); 0 before the cache exists, while the run creates it, or while it is locked."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:  # not created yet, being created by the run (a partial first page), or locked
        return 0


def run_cli(args: tuple[str, ...], env: dict[str, str], cwd: Path, check: bool = True,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -m rationalerm ARGS`` in a fresh process; with ``check``, a non-zero exit fails with its output."""
    proc = subprocess.run([sys.executable, "-m", "rationalerm", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def differences(a: object, b: object, tol: float, where: str = "") -> list[str]:
    """Where two parsed JSON values differ: structure, strings and ints exactly, floats beyond ``tol`` (absolute).

    For engines that are not bit-deterministic (vLLM's last digits follow how prompts were batched): everything but
    the numbers must still be identical."""
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) \
            and not isinstance(b, bool) and abs(a - b) <= tol
        return [] if ok else [f"{where}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in differences(a[k], b[k], tol, f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, tol, f"{where}[{i}]")]
    return [] if type(a) is type(b) and a == b else [f"{where}: {a!r} != {b!r}"]


def output_differences(a: Path, b: Path, names: tuple[str, ...], tol: float) -> list[str]:
    """``differences`` over the outputs ``names`` of two run directories (JSONL row by row, else one JSON)."""
    found: list[str] = []
    for name in names:
        texts = [(d / name).read_text(encoding="utf-8") for d in (a, b)]
        docs = [[json.loads(line) for line in t.splitlines()] if name.endswith(".jsonl") else json.loads(t)
                for t in texts]
        found += differences(docs[0], docs[1], tol, name)
    return found
