"""The labels ``rationalerm train`` learns from: human pair labels, audit labels, or a judge's run (distillation).

A label file is JSONL or Parquet, one record a line, either
- a pair label ``{"human": str, "item": str, "label": 0|1|float in [0, 1]}``, or
- an audit cell ``{"id", "model", "i", "j", "label"}`` (what ``rationalerm audit``'s page exports, the format
  ``compare --gold`` reads): read beside the run it audited (``--run``), whose results row for (id, model) gives
  the texts, ``human[i]`` and ``items[j]``;
a run directory gives every judged cell of its ``results.jsonl``, the cell's score as a soft label. All are read
through ``rationalerm._util.files.iter_records``; every error names ``path:line``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rationalerm._util.files import iter_records
from rationalerm._util.hashing import stable_hash
from rationalerm.errors import LabelError, LoadError, OutputError
from rationalerm.scoring.references import REFERENCE_RULE, canonical_references


@dataclass(frozen=True)
class PairLabel:
    human: str
    item: str
    label: float
    source: str  # file:line (or run dir's results.jsonl:line) of the first occurrence
    audit: bool = False  # an audit cell, its texts from the audited run


@dataclass
class LabelSet:
    """Unique (human, item) pairs with their label (the mean where a pair is labelled more than once)."""

    pairs: list[PairLabel]
    sources: list[str]
    kinds: list[str]  # "labels" or "run" per source
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (run cells that are not labels)

    @property
    def soft(self) -> bool:
        """True when any label is strictly between 0 and 1 (distillation, or averaged duplicates)."""
        return any(0.0 < p.label < 1.0 for p in self.pairs)

    canonical_references: int | None = None
    """The reference rule's version when the texts were rewritten by it (``read_labels(canonical=True)``)."""

    def sha256(self) -> str:
        """Content hash of the label set (order-independent): the model card's data identity."""
        rows = sorted((p.human, p.item, round(p.label, 6)) for p in self.pairs)
        return stable_hash(rows, 64)


def _merge(labels: Sequence[PairLabel]) -> list[PairLabel]:
    """One pair per (human, item): the mean label, the first occurrence's source."""
    groups: dict[tuple[str, str], list[PairLabel]] = {}
    for lab in labels:
        groups.setdefault((lab.human, lab.item), []).append(lab)
    return [PairLabel(h, s, sum(x.label for x in g) / len(g), g[0].source, g[0].audit)
            for (h, s), g in groups.items()]


def read_labels(sources: Sequence[str | Path], run: str | Path | None = None, *, canonical: bool = True) -> LabelSet:
    """Read every source (a label file or a run directory) into one set of unique pairs; ``run`` is the run that
    audit cells (``{"id", "model", "i", "j", "label"}``) refer to. ``canonical`` (the default, as a judge's
    ``canonical_references``): the texts as a judge with the reference rule on sees them, so a matcher learns the
    words it will score; pairs the rule makes equal are merged with the other duplicates (one mean over every
    label). Off: the texts as written, for a judge with the rule off."""
    if not sources:
        raise LabelError("no label source given")
    read: list[PairLabel] = []
    kinds: list[str] = []
    skipped: Counter[str] = Counter()
    texts = AuditTexts(Path(run)) if run is not None else None
    for src in sources:
        labels, kind, skips = _read_source(Path(src), texts)
        kinds.append(kind)
        skipped.update(skips)
        read.extend(labels)
    total = len(read)
    if canonical:
        read = [replace(p, human=canonical_references(p.human), item=canonical_references(p.item)) for p in read]
    pairs = _merge(read)
    if not pairs:
        raise LabelError(f"{', '.join(map(str, sources))}: no labelled pair")
    return LabelSet(pairs, [str(s) for s in sources], kinds, duplicates=total - len(pairs), skipped=dict(skipped),
                    canonical_references=REFERENCE_RULE if canonical else None)


def _read_source(path: Path, texts: AuditTexts | None) -> tuple[list[PairLabel], str, dict[str, int]]:
    """One source's labels, its kind ("run", "labels" or "audit") and what it skipped."""
    if path.is_dir():
        labels, skipped = read_run_labels(path)
        return labels, "run", skipped
    if path.is_file():
        labels = read_label_file(path, texts)
        return labels, "audit" if any(p.audit for p in labels) else "labels", {}
    raise LabelError(f"{path}: no such file or run directory")


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """``(path:line, decoded value)`` of a record file; a line that is not JSON, or a file that cannot be read,
    is a ``LabelError`` (a label source's read errors are label errors; same message)."""
    try:
        for rec in iter_records(path):
            yield rec.where, rec.decoded()
    except LoadError as e:
        raise LabelError(str(e)) from e


# ------------------------------------------------------------------------------------------------------------
# Human pair labels
# ------------------------------------------------------------------------------------------------------------


def read_label_file(path: str | Path, texts: AuditTexts | None = None) -> list[PairLabel]:
    """Human pair labels: one ``{"human": str, "item": str, "label": 0|1|float in [0, 1]}`` per line or row, or
    audit cells ``{"id", "model", "i", "j", "label"}`` whose texts come from ``texts`` (the audited run)."""
    return [_pair_label(rec, where, texts) for where, rec in _records(Path(path))]


def _pair_label(rec: object, where: str, texts: AuditTexts | None = None) -> PairLabel:
    if not isinstance(rec, dict):
        raise LabelError(f"{where}: expected an object with human, item and label, got {type(rec).__name__}")
    if "label" not in rec:
        raise LabelError(f"{where}: missing 'label'")
    if "human" not in rec and {"id", "model", "i", "j"} <= rec.keys():
        if texts is None:
            raise LabelError(f"{where}: an audit cell (id/model/i/j) needs the run it audited for its texts: "
                             "give it with --run RUN")
        return texts.cell(rec, _label_value(rec["label"], where), where)
    return PairLabel(_text(rec, "human", where), _text(rec, "item", where), _label_value(rec["label"], where), where)


def _label_value(value: object, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)):
        raise LabelError(f"{where}: 'label' must be 0, 1 or a number in [0, 1], got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise LabelError(f"{where}: 'label' must be in [0, 1], got {value!r}")
    return v


def _text(rec: dict[str, object], key: str, where: str) -> str:
    value = rec.get(key)
    if not isinstance(value, str):
        got = "missing" if key not in rec else f"a {type(value).__name__}"
        raise LabelError(f"{where}: '{key}' must be a string, got {got}")
    if not value.strip():
        raise LabelError(f"{where}: '{key}' is blank")
    return value


# ------------------------------------------------------------------------------------------------------------
# Audit labels: cells of a run's grids, the texts from the run
# ------------------------------------------------------------------------------------------------------------


class AuditTexts:
    """The audited run's grids by (id, model), read once when the first audit cell needs them."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self._grids: dict[tuple[str, str], tuple[list[object], list[object]]] | None = None

    @property
    def grids(self) -> dict[tuple[str, str], tuple[list[object], list[object]]]:
        if self._grids is None:
            from rationalerm.runs.directory import load_run

            try:
                units = load_run(self.run).units
            except (LoadError, OutputError) as e:  # not a run directory, or a results line that is not JSON
                raise LabelError(f"--run {e}") from e
            self._grids = {k: (list(r["human"]), list(r["items"])) for k, r in units.items()}
        return self._grids

    def cell(self, rec: dict[str, object], label: float, where: str) -> PairLabel:
        """Cell (i, j) of unit (id, model) as a pair label; a unit not in the run or a cell outside its grid is a
        ``LabelError`` naming ``where``."""
        key = (str(rec["id"]), str(rec["model"]))
        if key not in self.grids:
            raise LabelError(f"{where}: id {key[0]!r} with model {key[1]!r} is not a unit of the run {self.run}")
        human, items = self.grids[key]
        i, j = rec["i"], rec["j"]
        if not (isinstance(i, int) and isinstance(j, int) and _index(i, len(human)) and _index(j, len(items))):
            raise LabelError(f"{where}: cell (i={i!r}, j={j!r}) is outside the {len(human)} x {len(items)} grid of "
                             f"id {key[0]!r}, model {key[1]!r}")
        h, m = human[i], items[j]
        if not (isinstance(h, str) and isinstance(m, str) and h.strip() and m.strip()):
            raise LabelError(f"{where}: cell (i={i}, j={j}) of id {key[0]!r}, model {key[1]!r} has a blank item")
        return PairLabel(h, m, label, where, audit=True)


def _index(value: int, size: int) -> bool:
    return not isinstance(value, bool) and 0 <= value < size


# ------------------------------------------------------------------------------------------------------------
# Distillation: a run's judged cells
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunRow:
    """The parts of a results row that hold labels, their shapes checked."""

    human: list[object]
    items: list[object]
    matrix: list[list[object]] | None
    details: list[list[object]] | None  # pairwise runs: None in a cell never judged; listwise runs: no details


def read_run_labels(run_dir: str | Path) -> tuple[list[PairLabel], dict[str, int]]:
    """Distillation labels: every judged cell of a run's ``results.jsonl``, its score as a soft label.

    Skipped (counted by reason): rows without a usable matrix (a failed listwise answer), cells the prefilter
    dropped or blank items (never judged), and failed cells (no number).
    """
    run_dir = Path(run_dir)
    results = run_dir / "results.jsonl"
    if not results.is_file():
        raise LabelError(f"{run_dir}: not a run directory (no results.jsonl)")
    out: list[PairLabel] = []
    skipped: Counter[str] = Counter()
    for where, value in _records(results):
        row = _run_row(value, where)
        if row.matrix is None:
            skipped["row without a matrix (failed judgement)"] += len(row.human) * len(row.items)
            continue
        for i in range(len(row.human)):
            for j in range(len(row.items)):
                cell = _cell_label(row, row.matrix, i, j, where)
                if isinstance(cell, str):
                    skipped[cell] += 1
                else:
                    out.append(cell)
    return out, dict(skipped)


def _run_row(row: object, where: str) -> _RunRow:
    if not isinstance(row, dict) or not isinstance(row.get("human"), list) or not isinstance(row.get("items"), list):
        raise LabelError(f"{where}: not a results row (needs 'human' and 'items' lists)")
    shape = len(row["human"]), len(row["items"])
    for name in ("matrix", "details"):
        if row.get(name) is not None and not _has_shape(row[name], *shape):
            raise LabelError(f"{where}: {name} shape does not match human x items")
    return _RunRow(row["human"], row["items"], row.get("matrix"), row.get("details"))


def _has_shape(grid: object, rows: int, cols: int) -> bool:
    return isinstance(grid, list) and len(grid) == rows and all(isinstance(r, list) and len(r) == cols for r in grid)


def _cell_label(row: _RunRow, matrix: list[list[object]], i: int, j: int, where: str) -> PairLabel | str:
    """Cell (i, j) as a label, or why it is not one."""
    human, item, value = row.human[i], row.items[j], matrix[i][j]
    if not (isinstance(human, str) and isinstance(item, str) and human.strip() and item.strip()):
        return "blank item"
    detail = row.details[i][j] if row.details is not None else None
    if row.details is not None and detail is None:
        return "not judged (prefilter)"
    failed = isinstance(detail, dict) and (detail.get("failed") or detail.get("error"))
    if failed or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "failed cell"
    return PairLabel(human, item, min(1.0, max(0.0, float(value))), f"{where}[{i},{j}]")


# ------------------------------------------------------------------------------------------------------------
# The validation split
# ------------------------------------------------------------------------------------------------------------


def split_by_human(pairs: Sequence[PairLabel], val_fraction: float,
                   seed: int) -> tuple[list[PairLabel], list[PairLabel]]:
    """Hold out a seeded share of the *human items* (with all their pairs): no human item is on both sides."""
    if val_fraction <= 0:
        return list(pairs), []
    humans = sorted({p.human for p in pairs})
    if len(humans) < 2:
        return list(pairs), []
    rng = random.Random(seed)
    rng.shuffle(humans)
    n_val = min(len(humans) - 1, max(1, round(val_fraction * len(humans))))
    val_h = set(humans[:n_val])
    return [p for p in pairs if p.human not in val_h], [p for p in pairs if p.human in val_h]
