"""Atomic output files (a reader never sees a half-written file, and a crash keeps the old one), and the one
reader of record files (JSONL, plain or compressed, or Parquet) that every input of the project goes through."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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


@contextmanager
def output_dir(path: str | Path) -> Iterator[Path]:
    """``ensure_dir`` for a command's output directory. If the command fails, the folders this call created are
    removed again while they are still empty: no empty ``--out`` left behind, never a folder that was there
    before, never one holding a file (a failed run's cache stays for the resume)."""
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    out = ensure_dir(path)
    try:
        yield out
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()  # only an empty folder goes
            except OSError:
                break
        raise


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


def _zstd(path: Path) -> io.BufferedIOBase:
    import pyarrow as pa  # a dependency already (Parquet); its stream has no readline, hence the buffer

    return io.BufferedReader(pa.input_stream(path, compression="zstd"))


_COMPRESSED: dict[bytes, tuple[str, Callable[[Path], io.BufferedIOBase] | None]] = {
    b"\x1f\x8b": ("gzip", lambda p: gzip.open(p, "rb")),
    b"BZh": ("bzip2", lambda p: bz2.open(p, "rb")),
    b"\xfd7zXZ\x00": ("xz", lambda p: lzma.open(p, "rb")),
    b"\x28\xb5\x2f\xfd": ("zstd", _zstd),
    b"PK\x03\x04": ("zip", None),
    b"7z\xbc\xaf\x27\x1c": ("7z", None),
}
"""Leading bytes of a compressed file -> its format and how to read it as a stream (None: an archive, which may
hold several files: the user extracts the one meant). Found by content, whatever the file's name says."""


def _open_lines(path: Path) -> tuple[io.BufferedIOBase, str | None]:
    """The file as a stream of bytes, decompressed on the fly if it is compressed (and the format's name)."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
        for magic, (kind, opener) in _COMPRESSED.items():
            if head.startswith(magic):
                if opener is None:
                    raise LoadError(f"{path}: a {kind} archive; extract the JSONL or Parquet file from it first")
                return opener(path), kind
        return path.open("rb"), None
    except OSError as e:
        raise LoadError(f"{path}: cannot read ({e.strerror or e})") from e


_KEY_END = re.compile(rb'"\s*:')
"""A key's closing quote and its colon: every key of a JSON text has one (a text may have more: a ``\\":`` in a
string), so fewer keys in the decoded value than matches here is the cheap hint of a repeated key."""


def _count_keys(value: Any) -> int:
    """The keys of every object in ``value`` (a loop, not recursion: orjson accepts nesting deeper than Python's
    recursion limit)."""
    n, todo = 0, [value]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            n += len(v)
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
    return n


def _no_repeated_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object: ambiguous")
        seen[key] = value
    return seen


def _decode(raw: bytes) -> Any:
    """One JSON line; an object that repeats a key is an error, never "the last one wins" (orjson's choice). The
    exact check (the standard library's parser, slower) runs only when the key count hints at a repeat."""
    value = orjson.loads(raw)
    if isinstance(value, dict | list) and len(_KEY_END.findall(raw)) > _count_keys(value):
        try:
            json.loads(raw, object_pairs_hook=_no_repeated_key)
        except RecursionError:
            raise ValueError("JSON nested too deeply to check for repeated keys") from None
    return value


def iter_records(path: str | Path) -> Iterator[Record]:
    """The records of a JSONL file (one JSON value a non-blank line; gzip, bzip2, xz or zstd compressed files are
    read as they are) or a Parquet file (one row a record), a record at a time (bounded memory). A line that is
    not JSON, or whose object repeats a key, is yielded with its ``error`` so the caller decides whether to skip it
    or stop; a file that cannot be opened or read at all is a ``LoadError``."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        yield from _parquet_records(path)
        return
    f, kind = _open_lines(path)
    i = 0
    with f:
        try:
            for i, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    yield Record(path, i, _decode(raw))
                except orjson.JSONDecodeError as e:
                    yield Record(path, i, error=f"invalid JSON ({e.args[0] if e.args else e})")
                except ValueError as e:
                    yield Record(path, i, error=str(e))
        except (OSError, EOFError, lzma.LZMAError) as e:  # a truncated or corrupt compressed stream
            raise LoadError(f"{path}:{i + 1}: cannot read the {kind or 'file'} data ({e})") from e


STDIN = "-"
"""The input name that means standard input (``rationalerm run -``)."""


def spool_stdin(dest: Path, stream: BinaryIO) -> Path:
    """Copy ``stream`` (standard input) to ``dest`` a block at a time, so that it can be read more than once and
    its bad records named ``dest:line``. A ``dest`` that already holds the same bytes is left untouched (same
    modification time: a rerun of the same piped command resumes as a file input does)."""
    ensure_dir(dest.parent)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            while block := stream.read(1 << 20):
                digest.update(block)
                f.write(block)
        if dest.is_file() and _sha256(dest) == digest.hexdigest():
            Path(tmp).unlink()
        else:
            os.replace(tmp, dest)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{dest}: cannot save standard input ({e.strerror or e})") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        batches = file.iter_batches(batch_size=1024)  # a batch at a time: bounded memory
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise LoadError(f"{path}: not a readable Parquet file ({e})") from e
    names = file.schema_arrow.names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # a row would keep one of the columns silently
        raise LoadError(f"{path}: column {repeated[0]!r} appears twice: ambiguous")
    i = 0
    while True:
        try:
            batch = next(batches, None)
            rows = [] if batch is None else batch.to_pylist()
        except Exception as e:  # corrupt pages, or columns pyarrow cannot turn into Python values
            raise LoadError(f"{path}: unreadable Parquet data ({e})") from e
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
