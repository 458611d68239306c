"""One-to-one matching of human items to model items (paper Eq. 1), with DESIGN.md's tie rule.

``linear_sum_assignment`` works on the rectangular matrix directly; scores below the floor are zeroed
*before* the assignment so the optimiser never trades a real match for a masked one, and zero-score pairs
(it always assigns min(n, m) pairs) are dropped.

Ties. Several matchings often share the highest total (five-level scores), and AP differs between them.
Rule: among the matchings with the highest total, the one whose matched scores in model order
(w_1, .., w_m) are lexicographically largest. It is solved exactly with *one* assignment per matrix:
scores are compared in units of ``QUANTUM`` (the precision results.jsonl stores), turned into integers,
and the lexicographic preference is added as mixed-radix digits (the rank of w_j among column j's
values, weighted so that digit j outweighs all later ones) below the total, which outweighs every digit.
While the combined integers stay below 2**52 the float64 solver is exact; a matrix too large for that
falls back to one constrained assignment per column (:func:`_staged`). Matrices of one shape are
prepared as one array, so the tie rule costs little next to the solver itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rationalerm.scoring.sample import Match

QUANTUM = 1e-6
"""Scores closer than this are equal for the assignment (results.jsonl keeps 6 decimals)."""
_EXACT = float(2**52)
_RANK_CELLS = 4_000_000
"""Bound on the boolean array of one rank computation (memory)."""


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
    """Max-weight one-to-one matching with the tie rule; ``(i, j, score)`` sorted by i, zero scores excluded."""
    w = mask_below(as_matrix(matrix), min_score)
    if w.size == 0:
        return []
    cols = assign_stack(w[None])[0]
    return [(int(i), int(j), float(w[i, j])) for i, j in enumerate(cols) if j >= 0]


def assign_stack(w: np.ndarray) -> np.ndarray:
    """Tie-ruled matchings of a stack of same-shape matrices ``(B, n, m)`` (already masked and validated).

    Returns ``(B, n)`` int: the model item matched to each human item, -1 where none (or a zero score).
    """
    b, n, m = w.shape
    out = np.full((b, n), -1, dtype=np.int64)
    if b == 0 or n == 0 or m == 0:
        return out
    q = np.rint(w / QUANTUM).astype(np.int64)
    g = np.gcd.reduce(q.reshape(b, -1), axis=1)
    q //= np.where(g > 0, g, 1)[:, None, None]
    step = max(1, _RANK_CELLS // (n * (n + 1) * m))
    for lo in range(0, b, step):
        hi = min(b, lo + step)
        _solve_chunk(q[lo:hi], out[lo:hi])
    return out


def _column_ranks(q: np.ndarray) -> np.ndarray:
    """Dense rank of each entry among the distinct values of its column, 0 for a zero score."""
    b, n, m = q.shape
    s = np.sort(np.concatenate([np.zeros((b, 1, m), dtype=q.dtype), q], axis=1), axis=1)
    first = np.ones(s.shape, dtype=bool)
    first[:, 1:] = s[:, 1:] != s[:, :-1]  # the prepended zero counts: a positive score ranks >= 1
    return ((s[:, None, :, :] < q[:, :, None, :]) & first[:, None, :, :]).sum(axis=2)


def _solve_chunk(q: np.ndarray, out: np.ndarray) -> None:
    from scipy.optimize import linear_sum_assignment  # here, not at the top: scipy costs the CLI's start-up 0.3 s

    b, n, m = q.shape
    # Digits of the lexicographic preference: the scores themselves when they are small integers (five
    # levels: 0..4 after the gcd), else their rank within the column (fewer distinct digits, a smaller radix).
    digits = q if q.max() <= n + 1 else _column_ranks(q)
    radix = digits.max(axis=1).astype(np.float64) + 1.0  # (B, m)
    # place value of digit j = product of the radices after j; span = product of all (exceeds every digit sum)
    place = np.ones((b, m))
    if m > 1:
        place[:, :-1] = np.cumprod(radix[:, :0:-1], axis=1)[:, ::-1]
    span = place[:, 0] * radix[:, 0]
    top = q.reshape(b, -1).max(axis=1)
    exact = ((min(n, m) * top + 1.0) * span < _EXACT).tolist()
    weights = q * span[:, None, None] + digits * place[:, None, :]
    solved = []
    for k, (w, ok, t) in enumerate(zip(weights, exact, top.tolist())):
        if t:
            solved.append((k, *(linear_sum_assignment(w, maximize=True) if ok else _staged(q[k]))))
    if not solved:
        return
    ks = np.repeat([k for k, _, _ in solved], min(n, m))
    rows = np.concatenate([r for _, r, _ in solved])
    cols = np.concatenate([c for _, _, c in solved])
    keep = q[ks, rows, cols] > 0
    out[ks[keep], rows[keep]] = cols[keep]


def _staged(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tie rule for matrices too large for one exact solve: fix w_1, w_2, .. one column at a time."""
    from scipy.optimize import linear_sum_assignment

    n, m = q.shape
    qf = q.astype(np.float64)
    rows, cols = linear_sum_assignment(qf, maximize=True)
    total = qf[rows, cols].sum()
    big = float(q.sum()) + 1.0  # outweighs any total
    forbid = -big * (m + 3)
    weights = qf.copy()
    bonus = 0.0
    for j in range(m):
        for v in sorted(set(q[:, j].tolist()) | {0}, reverse=True):
            trial = weights.copy()
            if v > 0:
                allowed = q[:, j] == v
                trial[allowed, j] += big
                trial[~allowed, j] = forbid
            else:
                trial[q[:, j] > 0, j] = forbid
            r, c = linear_sum_assignment(trial, maximize=True)
            if trial[r, c].sum() == total + bonus + (big if v > 0 else 0.0):
                weights, rows, cols = trial, r, c
                bonus += big if v > 0 else 0.0
                break
    return rows, cols


def best_pick(matrix: object, min_score: float = 0.0) -> list[Match]:
    """The reference script's matching (``compat: metajudge``): each human item keeps its best model item, the
    first on ties, and may share it with others; a human item whose best score is zero has no match."""
    w = mask_below(as_matrix(matrix), min_score)
    if w.shape[1] == 0:
        return []
    cols = w.argmax(axis=1)
    best = w[np.arange(w.shape[0]), cols]
    return [(i, j, v) for i, (j, v) in enumerate(zip(cols.tolist(), best.tolist())) if v > 0.0]


def group_by_shape(shapes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Indices of equal-shape matrices, so each shape is prepared as one stacked array."""
    groups: dict[tuple[int, int], list[int]] = {}
    for k, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(k)
    return groups
