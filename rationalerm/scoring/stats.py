"""The seeded percentile bootstrap behind every interval in ``metrics.json`` (RC metrics and OA alike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Bootstrap:
    """The bootstrap's settings (``scoring.bootstrap``, ``confidence``, ``seed``), built once per summary."""

    n_boot: int
    confidence: float
    seed: int

    def interval(self, values: Sequence[float]) -> Interval:
        return bootstrap_mean(values, n_boot=self.n_boot, confidence=self.confidence, seed=self.seed)


_BOOT_CELLS = 1 << 21
"""Resampled values per bootstrap block (16 MB of indices)."""


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean with a seeded percentile-bootstrap interval (degenerate when fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean = float(x.mean())
    if x.size < 2 or n_boot == 0:
        return Interval(mean, mean, mean)
    rng = np.random.default_rng(seed)
    # Resamples in blocks of rows, so memory stays bounded at any corpus size (one (n_boot, n) index array is
    # 8 * n_boot * n bytes: 800 MB at 100k samples). The generator yields the same stream whatever the block
    # sizes, and each row's mean is its own, so the interval equals the one-block computation bit for bit.
    means = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // x.size)
    for lo in range(0, n_boot, step):
        hi = min(n_boot, lo + step)
        means[lo:hi] = x[rng.integers(0, x.size, size=(hi - lo, x.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(mean, float(lo), float(hi))
