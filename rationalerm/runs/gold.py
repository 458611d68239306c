"""Human pair labels (``--gold`` of compare and calibrate), aligned with a saved run cell by cell."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rationalerm._util.files import iter_records
from rationalerm.errors import LoadError
from rationalerm.runs.directory import SavedRun, UnitKey


@dataclass
class GoldLabels:
    """Human pair labels in [0, 1]: ``(id, model, i, j) -> label`` or ``(human text, item text) -> label``.

    A label is 0/1, or one of the paper's levels (0.25 ... 1) when the annotator graded how fully an item
    expresses a rationale; a pair counts as a match when its label is at least ``MATCH_AT``."""

    by_index: dict[tuple[str, str, int, int], float]
    by_text: dict[tuple[str, str], float]
    where: dict[tuple[str, str, int, int], str] = field(default_factory=dict)
    """``path:line`` of each indexed label, so a check on a cell can name where it was given."""

    def label(self, key: UnitKey, i: int, j: int, human: str, item: str) -> float | None:
        got = self.by_index.get((key[0], key[1], i, j))
        return got if got is not None else self.by_text.get((human, item))


MATCH_AT = 0.5
"""A gold label at or above this is a match (0/1 labels: exactly the 1s)."""


def _label(value: object) -> float | None:
    """A label in [0, 1] as a float (booleans and integers included); None when it is not one."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and 0.0 <= value <= 1.0:
        return float(value)
    return None


def load_gold(path: str | Path) -> GoldLabels:
    """JSONL (or Parquet), one pair a record: ``{"id", "model", "i", "j", "label"}`` (0-based) or
    ``{"human", "item", "label"}``; ``label`` is a number in [0, 1]. A bad record, or a cell labelled twice with
    different labels, is a ``LoadError`` naming ``path:line``."""
    if not Path(path).is_file():
        raise LoadError(f"{path}: no such file")
    gold = GoldLabels({}, {})
    for record in iter_records(path):
        rec = record.decoded()
        label = _label(rec.get("label")) if isinstance(rec, dict) else None
        if label is None:
            raise LoadError(f"{record.where}: each line needs a 'label' in [0, 1] (0/1, or a level such as 0.75)")
        if {"id", "model", "i", "j"} <= rec.keys():
            key = (str(rec["id"]), str(rec["model"]), int(rec["i"]), int(rec["j"]))
            if key in gold.by_index and gold.by_index[key] != label:
                raise LoadError(f"{record.where}: cell {key} labelled {label}, but {gold.by_index[key]} at "
                                f"{gold.where[key]}")
            gold.by_index[key], gold.where[key] = label, record.where
        elif {"human", "item"} <= rec.keys():
            gold.by_text[(str(rec["human"]), str(rec["item"]))] = label
        else:
            raise LoadError(f"{record.where}: needs either id/model/i/j or human/item")
    return gold


def gold_cells(run: SavedRun, gold: GoldLabels) -> dict[UnitKey, np.ndarray]:
    """Per unit of ``run`` the gold matrix of labels in [0, 1] (NaN where unlabelled); ``>= MATCH_AT`` is a
    match."""
    out: dict[UnitKey, np.ndarray] = {}
    for key, row in run.units.items():
        g = np.full((len(row["human"]), len(row["items"])), np.nan)
        for i, h in enumerate(row["human"]):
            for j, s in enumerate(row["items"]):
                lab = gold.label(key, i, j, h, s)
                if lab is not None:
                    g[i, j] = lab
        if not np.all(np.isnan(g)):
            out[key] = g
    return out
