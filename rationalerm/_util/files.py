"""Atomic output files (a reader never sees a half-written file, and a crash keeps the old one) and JSON reading."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from rationalerm.errors import LoadError, OutputError

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def ensure_dir(path: str | Path) -> Path:
    """Create an output directory (and its parents); a path that cannot be one is an ``OutputError``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path}: cannot create the output directory ({e.strerror or e})") from e
    return path


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp creates the file 0600; an output file gets the mode open() would give it (0666 - umask),
            # so a shared run directory stays readable to colleagues.
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=_OPTS | orjson.OPT_INDENT_2) + b"\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    atomic_write_bytes(path, b"".join(orjson.dumps(r, option=_OPTS) + b"\n" for r in rows))


def read_json(path: str | Path) -> Any:
    return orjson.loads(Path(path).read_bytes())


def read_jsonl(path: str | Path) -> list[Any]:
    rows = []
    if not Path(path).is_file():
        raise LoadError(f"{path}: no such file")
    with Path(path).open("rb") as f:
        for i, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(orjson.loads(line))
                except orjson.JSONDecodeError as e:
                    raise LoadError(f"{path}:{i}: invalid JSON ({e})") from e
    return rows
