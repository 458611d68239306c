"""The R x S grids (DESIGN.md step 2): one ``Grid`` per sample and evaluated model, and its results row.

Identical (human item, model item) texts across the corpus are one judge call: ``kept_cells`` walks every
grid cell (those the prefilter kept, when it ran) and the judge stage deduplicates the texts it yields.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rationalerm.scoring.rows import JudgeOutput, ResultRow

if TYPE_CHECKING:
    from rationalerm.inputs.load import Sample


@dataclass
class Grid:
    """One sample x model grid: the human items (rows) against the model's items (columns)."""

    sample: Sample
    model: str

    @property
    def human(self) -> list[str]:
        return self.sample.human

    @property
    def items(self) -> list[str]:
        return self.sample.models[self.model]

    def row(self, w: np.ndarray | None, label_field: str = "label", *, details: list[list[Any]] | None = None,
            judge_output: JudgeOutput | None = None) -> ResultRow:
        """The unit's ``results.jsonl`` row before scoring: texts, the matrix (None = invalid judge output; a None
        cell = a failed pair), labels, and the pairwise judge's ``details`` or the listwise judge's output."""
        s = self.sample
        row: ResultRow = {
            "id": s.id, "domain": s.domain, "model": self.model, "source": f"{s.source}:{s.line}",
            "human": self.human, "items": self.items,
            "matrix": None if w is None else _cells(w),
            "labels": {k: v for k, v in s.labels.items()
                       if k.lower() in ("label", label_field.lower(), self.model.lower())},
        }
        if details is not None:
            row["details"] = details
        if judge_output is not None:
            row["judge_output"] = judge_output
        return row


def _cells(w: np.ndarray) -> list[list[float | None]]:
    """The matrix as JSON lists, 6 decimals; a NaN cell (a pair the judge could not score) is None."""
    rounded = np.round(w, 6).tolist()
    if not np.isnan(w).any():
        return rounded
    return [[None if x != x else x for x in row] for row in rounded]


def kept_cells(
    units: Sequence[Grid], masks: list[np.ndarray] | None
) -> Iterator[tuple[int, int, int, str, str]]:
    """``(unit, i, j, human text, model text)`` for every grid cell with two non-blank items that the prefilter
    (if any) kept."""
    for k, u in enumerate(units):
        for i, h in enumerate(u.human):
            for j, s in enumerate(u.items):
                if h and s and (masks is None or masks[k][i, j]):  # a blank item is never judged
                    yield k, i, j, h, s
