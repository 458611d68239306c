"""Human pair labels (``--gold`` of compare and calibrate), aligned with a saved run cell by cell."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rationalerm._util.files import iter_records
from rationalerm.errors import LoadError
from rationalerm.runs.directory import SavedRun, UnitKey


@dataclass
class GoldLabels:
    """Human pair labels: ``(id, model, i, j) -> 0/1`` or ``(human text, item text) -> 0/1``."""

    by_index: dict[tuple[str, str, int, int], int]
    by_text: dict[tuple[str, str], int]

    def label(self, key: UnitKey, i: int, j: int, human: str, item: str) -> int | None:
        got = self.by_index.get((key[0], key[1], i, j))
        return got if got is not None else self.by_text.get((human, item))


def load_gold(path: str | Path) -> GoldLabels:
    """JSONL (or Parquet), one pair a record: ``{"id", "model", "i", "j", "label"}`` (0-based) or
    ``{"human", "item", "label"}``. A bad record is a ``LoadError`` naming ``path:line``."""
    if not Path(path).is_file():
        raise LoadError(f"{path}: no such file")
    by_index: dict[tuple[str, str, int, int], int] = {}
    by_text: dict[tuple[str, str], int] = {}
    for record in iter_records(path):
        rec = record.decoded()
        if not isinstance(rec, dict) or rec.get("label") not in (0, 1, True, False):
            raise LoadError(f"{record.where}: each line needs a 0/1 'label'")
        if {"id", "model", "i", "j"} <= rec.keys():
            by_index[(str(rec["id"]), str(rec["model"]), int(rec["i"]), int(rec["j"]))] = int(rec["label"])
        elif {"human", "item"} <= rec.keys():
            by_text[(str(rec["human"]), str(rec["item"]))] = int(rec["label"])
        else:
            raise LoadError(f"{record.where}: needs either id/model/i/j or human/item")
    return GoldLabels(by_index, by_text)


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
