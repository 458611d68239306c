"""Reading saved runs and gold pair labels, aligned cell by cell for compare and calibrate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rationalerm.errors import LoadError, OutputError
from rationalerm.files import read_json, read_jsonl

UnitKey = tuple[str, str]  # (sample id, model)


@dataclass
class SavedRun:
    path: Path
    rows: dict[UnitKey, dict[str, Any]]
    models: list[str]
    meta: dict[str, Any]

    def matrix(self, key: UnitKey) -> np.ndarray | None:
        m = self.rows[key].get("matrix")
        return None if m is None else np.asarray(m, dtype=float).reshape(len(self.rows[key]["human"]), -1)


def load_run(path: str | Path) -> SavedRun:
    path = Path(path)
    for name in ("results.jsonl", "run.json"):
        if not (path / name).exists():
            raise OutputError(f"{path / name}: missing; is {path} a run directory?")
    meta = read_json(path / "run.json")
    rows = {(str(r["id"]), str(r["model"])): r for r in read_jsonl(path / "results.jsonl")}
    return SavedRun(path, rows, list(meta.get("models", [])), meta)


@dataclass
class GoldLabels:
    """Human pair labels: ``(id, model, i, j) -> 0/1`` or ``(human text, item text) -> 0/1``."""

    by_index: dict[tuple[str, str, int, int], int]
    by_text: dict[tuple[str, str], int]

    def label(self, key: UnitKey, i: int, j: int, human: str, item: str) -> int | None:
        got = self.by_index.get((key[0], key[1], i, j))
        return got if got is not None else self.by_text.get((human, item))


def load_gold(path: str | Path) -> GoldLabels:
    """JSONL, one pair a line: ``{"id", "model", "i", "j", "label"}`` (0-based) or ``{"human", "item", "label"}``."""
    by_index: dict[tuple[str, str, int, int], int] = {}
    by_text: dict[tuple[str, str], int] = {}
    for n, rec in enumerate(read_jsonl(path), start=1):
        where = f"{path}:{n}"
        if not isinstance(rec, dict) or rec.get("label") not in (0, 1, True, False):
            raise LoadError(f"{where}: each line needs a 0/1 'label'")
        if {"id", "model", "i", "j"} <= rec.keys():
            by_index[(str(rec["id"]), str(rec["model"]), int(rec["i"]), int(rec["j"]))] = int(rec["label"])
        elif {"human", "item"} <= rec.keys():
            by_text[(str(rec["human"]), str(rec["item"]))] = int(rec["label"])
        else:
            raise LoadError(f"{where}: needs either id/model/i/j or human/item")
    return GoldLabels(by_index, by_text)


def gold_cells(run: SavedRun, gold: GoldLabels) -> dict[UnitKey, np.ndarray]:
    """Per unit of ``run`` the gold matrix (NaN where unlabelled)."""
    out: dict[UnitKey, np.ndarray] = {}
    for key, row in run.rows.items():
        g = np.full((len(row["human"]), len(row["items"])), np.nan)
        for i, h in enumerate(row["human"]):
            for j, s in enumerate(row["items"]):
                lab = gold.label(key, i, j, h, s)
                if lab is not None:
                    g[i, j] = lab
        if not np.all(np.isnan(g)):
            out[key] = g
    return out
