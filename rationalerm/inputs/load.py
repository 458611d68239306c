"""Load samples in the Qwen/RationaleRM format from JSONL or Parquet (DESIGN.md step 1).

A bad record never aborts a run (unless ``strict``): it becomes a ``Skipped`` entry naming the file
and line, and the good samples are scored.
"""

from __future__ import annotations

import difflib
import re
import shlex
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rationalerm._util.files import STDIN, iter_records
from rationalerm._util.hashing import stable_hash
from rationalerm.errors import LoadError

HUMAN_KEY = "human-checklist"
CHECKLIST_SUFFIX = "-checklist"
MAX_ITEM_CHARS = 100_000
"""The default longest item (characters, config key ``max_item_chars``): a longer one makes its record a bad
record before anything embeds or tokenises it, so no judge ever holds more than the limit per item. Reading the
record itself still costs a few times its size, once (a 200 MB item: about 0.7 GB at the peak, then freed)."""


@dataclass(frozen=True)
class Skipped:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"

    @property
    def kind(self) -> str:
        """The reason without its particulars (positions, item numbers), to count skips by reason."""
        return re.sub(r"\d+", "N", self.reason.split(" (")[0])


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

    def skip_report(self, first: int = 10) -> list[str]:
        """The first skipped records in full, then the rest counted by reason (a wrong file gives a few lines,
        not one per line of it)."""
        lines = [f"skipped {s}" for s in self.skipped[:first]]
        rest = self.skipped[first:]
        if rest:
            kinds = Counter(s.kind for s in rest)
            lines.append(f"... and {len(rest)} more skipped: "
                         + "; ".join(f"{n} x {kind}" for kind, n in kinds.most_common()))
        return lines

    def skipped_summary(self) -> dict[str, Any]:
        return {"count": len(self.skipped), "records": [str(s) for s in self.skipped]}


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C (composed: "e" + U+0301 becomes U+00E9); a text already in it (nearly every
    text) is returned as it is, without copying."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _items(value: Any, key: str, blanks: list[str], allow_empty: bool = False,
           max_chars: int = MAX_ITEM_CHARS) -> list[str]:
    """The list's items, stripped; a blank item stays in place as "" (indices keep referring to the input)."""
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list of strings, got {type(value).__name__}")
    out = []
    for k, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{key!r} item {k} is {type(item).__name__}, not a string")
        if len(item) > max_chars:
            raise ValueError(f"{key!r} item {k} has {len(item):,} characters, over the limit of {max_chars:,} "
                             "(config key max_item_chars)")
        if not item.strip():
            blanks.append(f"{key!r} item {k} is blank: it keeps its position and is never matched")
        out.append(item.strip())
    if not allow_empty and not any(out):
        raise ValueError(f"{key!r} is empty" if not out else f"{key!r} has no non-blank item")
    return out


def fold_key(key: str) -> str:
    """A key as it is compared: lower case, Unicode normal form C (keys that differ in neither are the same key)."""
    return nfc(key).lower()


def _unique_keys(rec: dict[str, Any], suffix: str) -> dict[str, str]:
    """Folded key (``fold_key``) -> the record's key, for keys ending in ``suffix`` (case-insensitively); two keys
    that differ only in case or in Unicode normalisation are ambiguous: an error, never a silent choice."""
    out: dict[str, str] = {}
    for key in rec:
        low = fold_key(key)
        if not low.endswith(suffix):
            continue
        if low in out:
            how = "case" if out[low].lower() == key.lower() else "Unicode normalisation (NFC)"
            raise ValueError(f"keys {out[low]!r} and {key!r} differ only in {how}: ambiguous")
        out[low] = key
    return out


def _model_keys(rec: dict[str, Any]) -> dict[str, str]:
    """Lower-cased model name -> the record's key for that model's checklist."""
    out = {}
    for low, key in _unique_keys(rec, CHECKLIST_SUFFIX).items():
        if low == HUMAN_KEY:
            continue
        if low == CHECKLIST_SUFFIX:
            raise ValueError(f"key {key!r} names no model (expected '<model>{CHECKLIST_SUFFIX}')")
        out[low[: -len(CHECKLIST_SUFFIX)]] = key
    return out


def _parse(rec: Any, wanted: dict[str, str] | None, names: dict[str, str], blanks: list[str],
           label_field: str = "label", max_chars: int = MAX_ITEM_CHARS) -> Sample:
    """One record as a ``Sample``; items are compared in Unicode normal form C (``nfc``), and a record without
    ``id`` is named by its texts as written (ids stay those of earlier versions)."""
    if not isinstance(rec, dict):
        raise ValueError(f"record must be a JSON object, got {type(rec).__name__}")
    human_key = _unique_keys(rec, CHECKLIST_SUFFIX).get(HUMAN_KEY)
    if human_key is None:
        raise ValueError(f"missing {HUMAN_KEY!r}")
    human = _items(rec[human_key], human_key, blanks, max_chars=max_chars)
    keys = _model_keys(rec)
    models: dict[str, list[str]] = {}
    for low, key in keys.items():
        if wanted is not None and low not in wanted:
            continue
        if rec[key] is None:
            continue
        name = names.setdefault(low, key[: -len(CHECKLIST_SUFFIX)])  # the data's spelling, even if --models differs
        models[name] = _items(rec[key], key, blanks, allow_empty=True,  # an empty list: no rationale given
                              max_chars=max_chars)
    labels = {}
    _unique_keys(rec, "-label")
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
    return Sample(id=str(sid), human=[nfc(t) for t in human],
                  models={name: [nfc(t) for t in items] for name, items in models.items()},
                  domain=None if domain is None else str(domain), labels=labels, extra=extra)


class LoadState:
    """What one pass over the input learns besides the samples: model names (the data's spelling, in first-seen
    order), skipped records, warnings, and the ids seen so far (duplicates are bad records).

    A streaming run reads the input more than once; each pass starts a fresh state, so every pass yields the
    same samples."""

    def __init__(self, models: list[str] | None = None, label_field: str = "label",
                 max_item_chars: int = MAX_ITEM_CHARS) -> None:
        self.wanted = {fold_key(m): m for m in models} if models else None
        self.label_field = label_field
        self.max_item_chars = max_item_chars
        self.names: dict[str, str] = {}
        self.skipped: list[Skipped] = []
        self.warnings: list[Skipped] = []
        self.seen_ids: dict[str, tuple[int, int]] = {}
        """id -> (file number, line): a compact value, since a streaming run keeps one per sample."""

    def models(self, path_list: list[Path]) -> list[str]:
        """The evaluated models: ``--models`` in its order (the data's spelling), else every model found."""
        if self.wanted is None:
            return list(self.names.values())
        missing = [m for low, m in self.wanted.items() if low not in self.names]
        if missing:
            raise LoadError(f"{', '.join(map(str, path_list))}: no '<model>-checklist' key for model(s) "
                            f"{', '.join(missing)}{_models_there(path_list, missing)}")
        return [self.names[low] for low in self.wanted]

    def current_models(self) -> list[str]:
        """The model order as known so far: a sample's models keep this relative order in the final list
        (first-seen order only appends), so a streaming pass can build a sample's units as soon as it is read."""
        if self.wanted is None:
            return list(self.names.values())
        return [self.names[low] for low in self.wanted if low in self.names]


def _models_there(path_list: list[Path], missing: list[str]) -> str:
    """What the data has instead of the models asked for, and the closest names (an error path: reads the files
    again, since the pass kept only the models asked for)."""
    there: dict[str, str] = {}
    for path in path_list:
        for record in iter_records(path):
            if isinstance(record.value, dict):
                try:
                    keys = _model_keys(record.value)
                except ValueError:
                    continue
                for low, key in keys.items():
                    there.setdefault(low, key[: -len(CHECKLIST_SUFFIX)])
    if not there:
        return "; the data has no '<model>-checklist' key at all"
    close = [there[c] for m in missing for c in difflib.get_close_matches(m.lower(), list(there), n=1, cutoff=0.6)]
    hint = f" (did you mean {' or '.join(map(repr, dict.fromkeys(close)))}?)" if close else ""
    return f"; the data has: {', '.join(there.values())}{hint}"


def _reference_answer(rec: Any) -> bool:
    """A row of the reference pipeline's answer files (``metajudge_infer.py`` output): the input record sits
    under ``metadata``, the judge's answer under ``samples``."""
    return (isinstance(rec, dict) and HUMAN_KEY not in rec and isinstance(rec.get("samples"), list)
            and isinstance(rec.get("metadata"), dict) and HUMAN_KEY in rec["metadata"])


def _paths(paths: str | Path | list[str | Path]) -> list[Path]:
    return [Path(p) for p in (paths if isinstance(paths, list) else [paths])]


def iter_samples(paths: str | Path | list[str | Path], state: LoadState, strict: bool = False) -> Iterator[Sample]:
    """Yield the good samples in input order, one record in memory at a time; bad records go to
    ``state.skipped`` (with ``strict`` the first one raises ``LoadError``)."""
    path_list = _paths(paths)
    for n, path in enumerate(path_list):
        if str(path) == STDIN and not path.exists():
            raise LoadError(f"{STDIN}: standard input is read by 'rationalerm run' only; save it to a file first")
        if not path.exists():
            raise LoadError(f"{path}: no such file")
        if not path.is_file():
            raise LoadError(f"{path}: not a file (give JSONL or Parquet files, not a directory)")
        for record in iter_records(path):
            line, rec, err = record.line, record.value, record.error
            blanks: list[str] = []
            if err is None:
                try:
                    sample = _parse(rec, state.wanted, state.names, blanks, state.label_field, state.max_item_chars)
                    if sample.id in state.seen_ids:
                        first_n, first_line = state.seen_ids[sample.id]
                        raise ValueError(f"duplicate id {sample.id!r} (first at {path_list[first_n]}:{first_line})")
                except ValueError as e:
                    if _reference_answer(rec):
                        raise LoadError(f"{path}:{line}: an answer file of the reference pipeline (metadata and "
                                        "samples[0].generated_text), not input records: read it with "
                                        f"`rationalerm import-metajudge {shlex.quote(str(path))} --out DIR`") from e
                    err = str(e)
            if err is not None:
                bad = Skipped(str(path), line, err)
                if strict:
                    raise LoadError(str(bad))
                state.skipped.append(bad)
                continue
            sample.source, sample.line = str(path), line
            state.warnings.extend(Skipped(str(path), line, b) for b in blanks)
            state.seen_ids[sample.id] = (n, line)
            yield sample


def no_valid_record(paths: str | Path | list[str | Path], skip_report: list[str]) -> LoadError:
    where = ", ".join(str(p) for p in _paths(paths))
    return LoadError(f"{where}: no valid record; nothing to score\n" + "\n".join(skip_report))


def load_samples(
    paths: str | Path | list[str | Path], models: list[str] | None = None, strict: bool = False,
    label_field: str = "label", max_item_chars: int = MAX_ITEM_CHARS,
) -> LoadResult:
    """Read every record into memory; with ``strict`` the first bad one raises ``LoadError``."""
    state = LoadState(models, label_field, max_item_chars)
    samples = list(iter_samples(paths, state, strict))
    found = state.models(_paths(paths))
    result = LoadResult(samples=samples, models=found, skipped=state.skipped, warnings=state.warnings)
    if not samples:
        raise no_valid_record(paths, result.skip_report())
    return result
