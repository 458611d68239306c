"""A streamed run's two halves on disk: the input read in shards of samples, and ``results.jsonl`` written in parts.

Reading: ``iter_shards`` re-reads the input (one record at a time) and yields the units of ``shard_size``
samples at a time, in input order; every pass reads the same samples (``load.iter_samples``).

Writing: each shard's rows go to ``OUT/results.parts/NNNNNN.jsonl``, written atomically, as soon as the shard
is scored; ``assemble`` concatenates the parts into ``results.jsonl`` (atomically: a temporary file in the parts
folder, fsynced, then renamed) and removes the folder. A killed run leaves whole parts (never a half-written
one) beside a manifest naming what they were computed from; the next run of the same command reuses each part
whose rows are all complete (a row with a failed judge call is computed again: the next run retries it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from rationalerm._util.files import _umask, atomic_write_bytes, ensure_dir, read_json, write_json
from rationalerm._util.hashing import stable_hash
from rationalerm.inputs.grids import Grid
from rationalerm.inputs.load import MAX_ITEM_CHARS, LoadState, iter_samples
from rationalerm.runs.directory import RESULTS
from rationalerm.scoring.rows import ResultRow

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
PARTS = "results.parts"


def iter_shards(paths: Sequence[Path], models: Sequence[str], shard_size: int, *, strict: bool = False,
                load: tuple[list[str] | None, str, int] = (None, "label", MAX_ITEM_CHARS)) -> Iterator[list[Grid]]:
    """The units (sample x model, models in ``models`` order) of ``shard_size`` samples at a time."""
    state = LoadState(*load)
    shard: list[Grid] = []
    n = 0
    for sample in iter_samples(list(paths), state, strict):
        shard.extend(Grid(sample, m) for m in models if m in sample.models)
        n += 1
        if n == shard_size:
            yield shard
            shard, n = [], 0
    if n:
        yield shard


def input_identity(paths: Sequence[Path]) -> list[list[Any]]:
    """Path, size and modification time of each input: a changed input never reuses old parts."""
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


class ResultParts:
    """``results.jsonl`` written a shard at a time (module docstring)."""

    def __init__(self, out: Path, key: dict[str, Any]) -> None:
        self.dir = out / PARTS
        self.dest = out / RESULTS
        self.key = stable_hash(key)
        manifest = self.dir / "manifest.json"
        if self.dir.exists() and (not manifest.exists() or read_json(manifest).get("key") != self.key):
            shutil.rmtree(self.dir)  # parts of another input or config: never reused
        ensure_dir(self.dir)
        if not manifest.exists():
            write_json(manifest, {"key": self.key})
        self.count = 0

    def _path(self, k: int) -> Path:
        return self.dir / f"{k:06d}.jsonl"

    def reusable(self, k: int) -> list[ResultRow] | None:
        """Shard ``k``'s rows from an earlier run of the same command, if whole and complete (no failed row)."""
        path = self._path(k)
        if not path.exists():
            return None
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
        if any(r.get("status") == "failed" for r in rows):
            return None
        self.count = max(self.count, k + 1)
        return rows

    def write(self, k: int, rows: Sequence[ResultRow]) -> None:
        atomic_write_bytes(self._path(k), b"".join(orjson.dumps(r, option=_OPTS) + b"\n" for r in rows))
        self.count = max(self.count, k + 1)

    def assemble(self) -> None:
        """Concatenate the parts into ``results.jsonl`` atomically, then remove the parts."""
        tmp = self.dir / ".results.jsonl.tmp"
        with tmp.open("wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            for k in range(self.count):
                with self._path(k).open("rb") as part:
                    shutil.copyfileobj(part, f, 1 << 20)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dest)
        shutil.rmtree(self.dir)
