"""Embedding prefilter (DESIGN.md step 3): narrow each R x S grid before an expensive judge.

Cells that are not kept score 0 without a judge call; the run reports how many it kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rationalerm.judges.base import ProgressFactory, null_progress
from rationalerm.pairs import Unit, kept_cells

if TYPE_CHECKING:
    from rationalerm.config import RunConfig


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


def prefilter_masks(
    units: Sequence[Unit], cfg: RunConfig, progress: ProgressFactory = null_progress
) -> tuple[list[np.ndarray], PrefilterStats]:
    """Per-unit keep masks from embedding cosines; every unique item is embedded once."""
    from rationalerm.judges.embedding import Embedder

    pf = cfg.prefilter
    embedder = Embedder(pf.model, pf.batch_size, cfg.judge.device_hint())
    texts = list(dict.fromkeys(t for u in units for t in (*u.human, *u.items)))
    with progress("prefilter: embedding texts", len(texts)) as advance:
        embedder.embed(texts, advance)
    masks, stats = [], PrefilterStats()
    for u in units:
        mask = topk_keep(embedder.cosine(u.human, u.items), pf.top_k, pf.min_cosine, pf.mode)
        masks.append(mask)
        stats.cells_total += mask.size
        stats.cells_kept += int(mask.sum())
    stats.unique_pairs_total = len({(h, s) for _, _, _, h, s in kept_cells(units, None)})
    stats.unique_pairs_kept = len({(h, s) for _, _, _, h, s in kept_cells(units, masks)})
    return masks, stats
