"""Atomic output files (a reader never sees a half-written file, and a crash keeps the old one), and the one
reader of record files (JSONL or Parquet) that every input of the project goes through."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
    """Write ``data`` to ``path`` through a temporary file renamed over it; a path that is a directory or cannot
    be written is an ``OutputError`` (and whatever was there is kept)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name")
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
    except OSError as e:  # e.g. a directory appeared at ``path`` meanwhile
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=_OPTS | orjson.OPT_INDENT_2) + b"\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    atomic_write_bytes(path, b"".join(orjson.dumps(r, option=_OPTS) + b"\n" for r in rows))


def read_json(path: str | Path) -> Any:
    return orjson.loads(Path(path).read_bytes())


PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})


@dataclass(frozen=True)
class Record:
    """One record of a record file: where it is (``path:line``; a Parquet row counts as a line, from 1), and
    either its decoded value or why it could not be decoded (then ``value`` is None)."""

    path: Path
    line: int
    value: Any = None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def decoded(self) -> Any:
        """The value; an undecodable record is a ``LoadError`` naming ``path:line``."""
        if self.error is not None:
            raise LoadError(f"{self.where}: {self.error}")
        return self.value


def iter_records(path: str | Path) -> Iterator[Record]:
    """The records of a JSONL file (one JSON value a non-blank line) or a Parquet file (one row a record), a
    record at a time (bounded memory). A line that is not JSON is yielded with its ``error`` so the caller
    decides whether to skip it or stop; a file that cannot be opened or read at all is a ``LoadError``."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        yield from _parquet_records(path)
        return
    try:
        f = path.open("rb")
    except OSError as e:
        raise LoadError(f"{path}:0: cannot read ({e.strerror or e})") from e
    with f:
        for i, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                yield Record(path, i, orjson.loads(raw))
            except orjson.JSONDecodeError as e:
                yield Record(path, i, error=f"invalid JSON ({e.args[0] if e.args else e})")


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)  # a batch at a time: bounded memory
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise LoadError(f"{path}:0: not a readable Parquet file ({e})") from e
    i = 0
    while True:
        try:
            batch = next(batches, None)
            rows = [] if batch is None else batch.to_pylist()
        except Exception as e:  # corrupt pages, or columns pyarrow cannot turn into Python values
            raise LoadError(f"{path}:0: unreadable Parquet data ({e})") from e
        if batch is None:
            return
        for row in rows:
            i += 1
            yield Record(path, i, row)


def read_jsonl(path: str | Path) -> list[Any]:
    """Every record of a file the project wrote itself; any bad line is a ``LoadError`` naming ``path:line``."""
    if not Path(path).is_file():
        raise LoadError(f"{path}: no such file")
    return [rec.decoded() for rec in iter_records(path)]
