"""The seeded percentile bootstrap behind every interval in ``metrics.json`` (RC metrics and OA alike)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Values = Sequence[float] | np.ndarray
"""A column of numbers: a list, an ``array.array`` or a numpy array."""


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

    def interval(self, values: Values) -> Interval:
        return bootstrap_mean(values, n_boot=self.n_boot, confidence=self.confidence, seed=self.seed)

    def intervals(self, columns: Sequence[Values]) -> list[Interval]:
        """``interval`` of each of the equal-length ``columns`` (the metrics of the same samples); the resamples
        are drawn once for all (the same seed draws the same indices for each), so this costs one draw, not one
        per column, and gives each column's ``interval`` bit for bit."""
        return bootstrap_means(columns, n_boot=self.n_boot, confidence=self.confidence, seed=self.seed)


_BOOT_CELLS = 1 << 21
"""Resampled values per bootstrap block (16 MB of indices)."""


def bootstrap_mean(values: Values, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Mean with a seeded percentile-bootstrap interval (degenerate when fewer than 2 values)."""
    return bootstrap_means([values], n_boot=n_boot, confidence=confidence, seed=seed)[0]


def bootstrap_means(columns: Sequence[Values], *, n_boot: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> list[Interval]:
    """:func:`bootstrap_mean` of each of the equal-length ``columns``, on one draw of the resample indices."""
    x = np.asarray(columns, dtype=float)  # (columns, values)
    if x.shape[1] == 0:
        return [Interval(float("nan"), float("nan"), float("nan")) for _ in columns]
    mean = x.mean(axis=1).tolist()
    if x.shape[1] < 2 or n_boot == 0:
        return [Interval(m, m, m) for m in mean]
    rng = np.random.default_rng(seed)
    # Resamples in blocks of rows, so memory stays bounded at any corpus size (one (n_boot, n) index array is
    # 8 * n_boot * n bytes: 800 MB at 100k samples). The generator yields the same stream whatever the block
    # sizes, and each row's mean is its own, so the interval equals the one-block computation bit for bit.
    means = np.empty((len(columns), n_boot))
    step = max(1, _BOOT_CELLS // x.shape[1])
    for lo in range(0, n_boot, step):
        hi = min(n_boot, lo + step)
        idx = rng.integers(0, x.shape[1], size=(hi - lo, x.shape[1]))
        for c, column in enumerate(x):  # one column at a time: a (rows, n) mean sums as the one-column call does
            means[c, lo:hi] = column[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    bounds = np.quantile(means, [alpha, 1 - alpha], axis=1).T.tolist()
    return [Interval(m, lo, hi) for m, (lo, hi) in zip(mean, bounds)]
