"""Embedding prefilter (DESIGN.md step 3): narrow each R x S grid before an expensive judge.

Cells that are not kept score 0 without a judge call; the run reports how many it kept. The ``prefilter:``
config section is defined here, beside the rule it configures (``rationalerm.config`` imports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from rationalerm.inputs.grids import Grid, kept_cells
from rationalerm.judges.base import ProgressFactory, null_progress
from rationalerm.judges.compute import ComputeOptions
from rationalerm.scoring.references import canonical_references


class PrefilterConfig(ComputeOptions):
    """Embedding prefilter in front of any judge: keep per human item its top-k and/or items above a floor.
    ``precision`` and ``threads``: ``judges/compute.py``."""

    enabled: bool = False
    model: str | None = None
    top_k: int | None = Field(3, ge=1)
    min_cosine: float | None = Field(None, ge=-1.0, le=1.0)
    mode: Literal["union", "intersection"] = "union"
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _some_rule(self) -> PrefilterConfig:
        if self.enabled and self.top_k is None and self.min_cosine is None:
            raise ValueError("prefilter needs top_k and/or min_cosine")
        return self


def topk_keep(cos: np.ndarray, top_k: int | None, min_cosine: float | None, mode: str = "union") -> np.ndarray:
    """Boolean mask over a cosine matrix (rows = human items): per row its top-k and/or cells >= floor."""
    cos = np.asarray(cos, dtype=float)
    if cos.size == 0:
        return np.zeros(cos.shape, dtype=bool)
    rules = []
    if top_k is not None:
        k = min(top_k, cos.shape[1])
        order = np.argsort(-cos, axis=1, kind="stable")[:, :k]
        top = np.zeros(cos.shape, dtype=bool)
        np.put_along_axis(top, order, True, axis=1)
        rules.append(top)
    if min_cosine is not None:
        rules.append(cos >= min_cosine)
    if not rules:
        return np.ones(cos.shape, dtype=bool)
    if mode == "intersection":
        return np.logical_and.reduce(rules)
    return np.logical_or.reduce(rules)


@dataclass
class PrefilterStats:
    cells_total: int = 0
    cells_kept: int = 0
    unique_pairs_total: int = 0
    unique_pairs_kept: int = 0

    @property
    def judge_calls_saved(self) -> int:
        return self.unique_pairs_total - self.unique_pairs_kept

    def as_dict(self) -> dict[str, int | float]:
        return {
            "pairs_total": self.cells_total,
            "pairs_kept": self.cells_kept,
            "kept_fraction": self.cells_kept / self.cells_total if self.cells_total else 0.0,
            "unique_pairs_total": self.unique_pairs_total,
            "unique_pairs_kept": self.unique_pairs_kept,
            "judge_calls_saved": self.judge_calls_saved,
        }


def _as_written(text: str) -> str:
    return text


class Prefilter:
    """The prefilter's embedder and rule: ``prepare`` embeds every unique text of the run once (in the same order
    and batches whatever the sharding), then ``mask`` is a unit's keep mask and ``tally`` counts what it kept.

    With ``canonical`` (the judge config's ``canonical_references``) it embeds the texts as the judge sees them,
    response references rewritten (``scoring/references.py``), so it keeps the cells that judge would rank
    highest; off, the texts as written (the prefilter of earlier versions)."""

    def __init__(self, rule: PrefilterConfig, device: str | None = None, canonical: bool = False,
                 vectors: Path | None = None) -> None:
        """``device``: where to embed (the judge's ``device_hint()``: beside the judge); None = the default.
        ``vectors``: the judge cache's file, where the vectors are cached per text (``judges/vectors.py``)."""
        from rationalerm.judges.embedding import Embedder

        self.rule = rule
        self.embedder = Embedder(rule.model, rule.batch_size, device, rule.precision, rule.threads)
        if vectors is not None:
            self.embedder.attach_store(vectors)
        self.seen = canonical_references if canonical else _as_written
        self.stats = PrefilterStats()
        self._all: set[tuple[str, str]] = set()
        self._kept: set[tuple[str, str]] = set()

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        self.embedder.embed_all(list(map(self.seen, texts)), progress, "prefilter: embedding texts")

    def mask(self, unit: Grid) -> np.ndarray:
        cos = self.embedder.cosine([self.seen(t) for t in unit.human], [self.seen(t) for t in unit.items])
        return topk_keep(cos, self.rule.top_k, self.rule.min_cosine, self.rule.mode)

    def tally(self, units: Sequence[Grid], masks: list[np.ndarray]) -> None:
        """Count the units' cells and distinct pairs, total and kept (the stats are corpus-wide)."""
        for m in masks:
            self.stats.cells_total += m.size
            self.stats.cells_kept += int(m.sum())
        self._all.update((h, s) for _, _, _, h, s in kept_cells(units, None))
        self._kept.update((h, s) for _, _, _, h, s in kept_cells(units, masks))
        self.stats.unique_pairs_total = len(self._all)
        self.stats.unique_pairs_kept = len(self._kept)

    def close(self) -> None:
        self.embedder.close()
