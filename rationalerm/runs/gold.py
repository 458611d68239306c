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
    """Human pair labels: ``(id, model, i, j) -> label`` or ``(human text, item text) -> label``, label in [0, 1]."""

    by_index: dict[tuple[str, str, int, int], float]
    by_text: dict[tuple[str, str], float]
    where: dict[tuple[str, str, int, int], str] = field(default_factory=dict)
    """``path:line`` of each indexed label, so a check on a cell can name where it was given."""

    def label(self, key: UnitKey, i: int, j: int, human: str, item: str) -> float | None:
        got = self.by_index.get((key[0], key[1], i, j))
        return got if got is not None else self.by_text.get((human, item))


def load_gold(path: str | Path) -> GoldLabels:
    """JSONL (or Parquet), one pair a record: ``{"id", "model", "i", "j", "label"}`` (0-based) or
    ``{"human", "item", "label"}``, label in [0, 1]. A bad record, or a cell labelled twice with different labels,
    is a ``LoadError`` naming ``path:line``."""
    if not Path(path).is_file():
        raise LoadError(f"{path}: no such file")
    gold = GoldLabels({}, {})
    for record in iter_records(path):
        rec = record.decoded()
        label = rec.get("label") if isinstance(rec, dict) else None
        if not isinstance(label, int | float) or not 0.0 <= label <= 1.0:
            raise LoadError(f"{record.where}: each line needs a 'label' in [0, 1]")
        if {"id", "model", "i", "j"} <= rec.keys():
            key = (str(rec["id"]), str(rec["model"]), int(rec["i"]), int(rec["j"]))
            if key in gold.by_index and gold.by_index[key] != label:
                raise LoadError(f"{record.where}: cell {key} labelled {label}, but {gold.by_index[key]} at "
                                f"{gold.where[key]}")
            gold.by_index[key], gold.where[key] = float(label), record.where
        elif {"human", "item"} <= rec.keys():
            gold.by_text[(str(rec["human"]), str(rec["item"]))] = float(label)
        else:
            raise LoadError(f"{record.where}: needs either id/model/i/j or human/item")
    return gold


def gold_cells(run: SavedRun, gold: GoldLabels) -> dict[UnitKey, np.ndarray]:
    """Per unit of ``run`` the gold matrix (NaN where unlabelled)."""
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
