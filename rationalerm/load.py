"""Load samples in the Qwen/RationaleRM format from JSONL or Parquet (DESIGN.md step 1).

A bad record never aborts a run (unless ``strict``): it becomes a ``Skipped`` entry naming the file
and line, and the good samples are scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rationalerm.config import stable_hash
from rationalerm.errors import LoadError

HUMAN_KEY = "human-checklist"
CHECKLIST_SUFFIX = "-checklist"


@dataclass(frozen=True)
class Skipped:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass
class Sample:
    id: str
    human: list[str]
    models: dict[str, list[str]]
    domain: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    line: int = 0


@dataclass
class LoadResult:
    samples: list[Sample]
    models: list[str]
    skipped: list[Skipped]
    warnings: list[Skipped] = field(default_factory=list)
    """Records that were loaded but have something the user should know (blank items)."""

    def skipped_summary(self) -> dict[str, Any]:
        return {"count": len(self.skipped), "records": [str(s) for s in self.skipped]}


def _records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(line, record, error)``; exactly one of record/error is meaningful."""
    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise LoadError(f"{path}:0: not a readable Parquet file ({e})") from e
        for i, row in enumerate(table.to_pylist(), start=1):
            yield i, row, None
        return
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                yield i, orjson.loads(raw), None
            except orjson.JSONDecodeError as e:
                yield i, None, f"invalid JSON ({e.args[0] if e.args else e})"


def _items(value: Any, key: str, blanks: list[str], allow_empty: bool = False) -> list[str]:
    """The list's items, stripped; a blank item stays in place as "" (indices keep referring to the input)."""
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list of strings, got {type(value).__name__}")
    out = []
    for k, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{key!r} item {k} is {type(item).__name__}, not a string")
        if not item.strip():
            blanks.append(f"{key!r} item {k} is blank: it keeps its position and is never matched")
        out.append(item.strip())
    if not allow_empty and not any(out):
        raise ValueError(f"{key!r} is empty" if not out else f"{key!r} has no non-blank item")
    return out


def _model_keys(rec: dict[str, Any]) -> dict[str, str]:
    """Lower-cased model name -> the record's key for that model's checklist."""
    out = {}
    for key in rec:
        low = key.lower()
        if low.endswith(CHECKLIST_SUFFIX) and low != HUMAN_KEY:
            out[low[: -len(CHECKLIST_SUFFIX)]] = key
    return out


def _parse(rec: Any, wanted: dict[str, str] | None, names: dict[str, str], blanks: list[str],
           label_field: str = "label") -> Sample:
    if not isinstance(rec, dict):
        raise ValueError(f"record must be a JSON object, got {type(rec).__name__}")
    human_key = next((k for k in rec if k.lower() == HUMAN_KEY), None)
    if human_key is None:
        raise ValueError(f"missing {HUMAN_KEY!r}")
    human = _items(rec[human_key], human_key, blanks)
    keys = _model_keys(rec)
    models: dict[str, list[str]] = {}
    for low, key in keys.items():
        if wanted is not None and low not in wanted:
            continue
        if rec[key] is None:
            continue
        name = names.setdefault(low, wanted[low] if wanted else key[: -len(CHECKLIST_SUFFIX)])
        models[name] = _items(rec[key], key, blanks, allow_empty=True)  # an empty list: no rationale given
    labels = {}
    for key, value in rec.items():
        low = key.lower()
        if low == label_field.lower() and low != "label":  # a human label under another name: kept as is
            labels[key] = value
        elif low.endswith("-label") or low == "label":
            labels[key[: -len("-label")] if low.endswith("-label") else "label"] = value
    domain = rec.get("domain")
    extra = {k: rec[k] for k in ("context", "response1", "response2") if k in rec}
    sid = rec.get("id")
    if sid is None:
        sid = "h" + stable_hash({"human": human, "models": models, "extra": extra})
    return Sample(id=str(sid), human=human, models=models, domain=None if domain is None else str(domain),
                  labels=labels, extra=extra)


def load_samples(
    paths: str | Path | list[str | Path], models: list[str] | None = None, strict: bool = False,
    label_field: str = "label",
) -> LoadResult:
    """Read every record; with ``strict`` the first bad one raises ``LoadError``."""
    path_list = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    wanted = {m.lower(): m for m in models} if models else None
    names: dict[str, str] = {}
    samples: list[Sample] = []
    skipped: list[Skipped] = []
    warnings: list[Skipped] = []
    seen_ids: dict[str, str] = {}
    for path in path_list:
        if not path.exists():
            raise LoadError(f"{path}:0: no such file")
        for line, rec, err in _records(path):
            blanks: list[str] = []
            if err is None:
                try:
                    sample = _parse(rec, wanted, names, blanks, label_field)
                    if sample.id in seen_ids:
                        raise ValueError(f"duplicate id {sample.id!r} (first at {seen_ids[sample.id]})")
                except ValueError as e:
                    err = str(e)
            if err is not None:
                bad = Skipped(str(path), line, err)
                if strict:
                    raise LoadError(str(bad))
                skipped.append(bad)
                continue
            sample.source, sample.line = str(path), line
            warnings.extend(Skipped(str(path), line, b) for b in blanks)
            seen_ids[sample.id] = f"{path}:{line}"
            samples.append(sample)
    found = list(names.values())
    if wanted is not None:
        missing = [m for low, m in wanted.items() if low not in names]
        if missing:
            raise LoadError(f"{path_list[0]}:0: no '<model>-checklist' key for model(s) {', '.join(missing)}")
        found = [wanted[low] for low in wanted]
    return LoadResult(samples=samples, models=found, skipped=skipped, warnings=warnings)
