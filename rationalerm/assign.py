"""One-to-one matching of human items to model items (paper Eq. 1).

``linear_sum_assignment`` works on the rectangular matrix directly; scores below the floor are
zeroed *before* the assignment so the optimiser never trades a real match for a masked one, and
zero-score pairs it returns (it always assigns min(n, m) pairs) are dropped.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

Match = tuple[int, int, float]


def as_matrix(matrix: object) -> np.ndarray:
    """Validate a score matrix: 2-D, finite, in [0, 1] (rows = human items)."""
    w = np.asarray(matrix, dtype=float)
    if w.size == 0:
        rows = len(matrix) if isinstance(matrix, (list, tuple)) else (w.shape[0] if w.ndim else 0)
        return np.zeros((rows, 0))
    if w.ndim != 2:
        raise ValueError(f"score matrix must be 2-D, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or w.min() < 0.0 or w.max() > 1.0:
        raise ValueError("score matrix entries must be finite and in [0, 1]")
    return w


def mask_below(w: np.ndarray, min_score: float) -> np.ndarray:
    return np.where(w >= min_score, w, 0.0) if min_score > 0 else w


def assign(matrix: object, min_score: float = 0.0) -> list[Match]:
    """Max-weight one-to-one matching; returns ``(i, j, score)`` sorted by i, zero scores excluded."""
    w = mask_below(as_matrix(matrix), min_score)
    if w.size == 0:
        return []
    rows, cols = linear_sum_assignment(w, maximize=True)
    return [(int(i), int(j), float(w[i, j])) for i, j in zip(rows, cols) if w[i, j] > 0.0]


def best_pick(matrix: object, min_score: float = 0.0) -> list[Match]:
    """The reference script's matching: each human item keeps its best model item (first on ties)."""
    w = mask_below(as_matrix(matrix), min_score)
    out: list[Match] = []
    for i in range(w.shape[0]):
        if w.shape[1] == 0:
            break
        j = int(np.argmax(w[i]))
        if w[i, j] > 0.0:
            out.append((i, j, float(w[i, j])))
    return out
