"""Paper-mode metrics against an independent brute force: every one-to-one matching enumerated (n, m <= 5).

The oracle is written from DESIGN.md "What it computes" alone: cut the model list to its first k items,
mask scores below the floor, take the matchings with the highest total, among them the one whose matched
scores in model order are lexicographically largest, then recall / precision / F1 / AP.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rationalerm import score_sample
from rationalerm.scoring.metrics import score_matrices

TOL = 1e-9


def matchings(n: int, m: int):
    """Every partial one-to-one map of human rows to model columns, as a tuple of column-or-None per row."""
    for cols in itertools.product([None, *range(m)], repeat=n):
        used = [c for c in cols if c is not None]
        if len(used) == len(set(used)):
            yield cols


def oracle(w: np.ndarray, k: int | None, floor: float) -> tuple[float, float, float, float]:
    n = w.shape[0]
    w = w[:, :k] if k is not None else w
    m = w.shape[1]
    w = np.where(w >= floor, w, 0.0)
    best_total, best_vec = -1.0, None
    for cols in matchings(n, m):
        vec = [0.0] * m
        for i, c in enumerate(cols):
            if c is not None:
                vec[c] = float(w[i, c])
        total = sum(vec)
        if total > best_total + TOL:
            best_total, best_vec = total, vec
        elif abs(total - best_total) <= TOL and _lex_greater(vec, best_vec):
            best_vec = vec
    assert best_vec is not None
    recall = best_total / n
    precision = best_total / m if m else 0.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    ap, running = 0.0, 0.0
    for j, v in enumerate(best_vec, start=1):
        running += v
        if v > 0:
            ap += running / j
    return precision, recall, f1, ap / n


def _lex_greater(a: list[float], b: list[float] | None) -> bool:
    if b is None:
        return True
    for x, y in zip(a, b):
        if abs(x - y) > TOL:
            return x > y
    return False


LEVELS = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
SIX_DECIMALS = st.integers(0, 1_000_000).map(lambda x: x / 1_000_000)
FEW_VALUES = st.sampled_from([0.0, 0.3, 0.6, 0.600001, 0.9])


@st.composite
def matrices(draw: st.DrawFn) -> np.ndarray:
    n, m = draw(st.integers(1, 5)), draw(st.integers(0, 5))
    values = draw(st.sampled_from([LEVELS, SIX_DECIMALS, FEW_VALUES]))
    return np.array([[draw(values) for _ in range(m)] for _ in range(n)], dtype=float).reshape(n, m)


def _check(w: np.ndarray, k: int | None, floor: float) -> None:
    got = score_sample(w, max_model_items=k, min_score=floor)
    want = oracle(w, k, floor)
    assert got.valid
    for name, x, y in zip(("precision", "recall", "f1", "ap"), (got.precision, got.recall, got.f1, got.ap), want):
        assert abs(x - y) <= TOL, (name, x, y, w.tolist(), k, floor)
        assert 0.0 <= x <= 1.0 + TOL
    m_eff = min(w.shape[1], k) if k is not None else w.shape[1]
    assert all(j < m_eff and v >= floor and v > 0 for _, j, v in got.pairs)
    assert len({j for _, j, _ in got.pairs}) == len(got.pairs)  # one-to-one


@settings(max_examples=400, deadline=None)
@given(matrices(), st.one_of(st.none(), st.integers(1, 5)), st.sampled_from([0.0, 0.0, 0.3, 0.5]), st.randoms())
def test_paper_metrics_equal_brute_force_and_ignore_human_order(w, k, floor, rnd) -> None:
    _check(w, k, floor)
    perm = list(range(w.shape[0]))
    rnd.shuffle(perm)
    a = score_sample(w, max_model_items=k, min_score=floor)
    b = score_sample(w[perm], max_model_items=k, min_score=floor)
    assert a.metrics() == b.metrics() or all(abs(a.metrics()[x] - b.metrics()[x]) <= TOL for x in a.metrics())


@settings(max_examples=50, deadline=None)
@given(st.lists(matrices(), min_size=1, max_size=30))
def test_batch_scoring_equals_one_by_one(ws) -> None:
    batch = score_matrices(ws)
    for w, s in zip(ws, batch):
        assert s == score_sample(w)


def test_the_issue_examples() -> None:
    # max_model_items cuts before matching: never precision > 1
    s = score_sample([[0.25, 1], [1, 0]], max_model_items=1)
    assert (s.precision, s.recall, s.pairs) == (1.0, 0.5, [(1, 0, 1.0)])
    # tie between optimal matchings: the earlier model item is credited first, whatever the human order
    a = score_sample([[0, 0], [0.25, 0.75], [0, 0.5]])
    b = score_sample([[0.25, 0.75], [0, 0.5], [0, 0]])
    assert abs(a.ap - 0.2083333333) < 1e-9 and a.metrics() == b.metrics()


def test_the_column_by_column_fallback_equals_brute_force() -> None:
    """Matrices too large for one exact solve go through ``_staged``; on small ones it must equal the oracle."""
    from rationalerm.scoring.assign import QUANTUM, _staged

    rng = np.random.default_rng(3)
    for _ in range(60):
        n, m = rng.integers(1, 6), rng.integers(1, 6)
        w = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, 0.333333], size=(n, m))
        rows, cols = _staged(np.rint(w / QUANTUM).astype(np.int64))
        vec = [0.0] * m
        for i, j in zip(rows, cols):
            vec[j] = w[i, j]
        want = oracle(w, None, 0.0)
        total = sum(vec)
        assert abs(total / n - want[1]) <= TOL
        ap = sum(sum(vec[:j + 1]) / (j + 1) for j in range(m) if vec[j] > 0) / n
        assert abs(ap - want[3]) <= TOL


def test_wide_continuous_matrices_keep_max_total_and_credit_the_earlier_duplicate() -> None:
    from scipy.optimize import linear_sum_assignment

    from rationalerm.scoring.assign import assign

    rng = np.random.default_rng(5)
    big = rng.integers(0, 1_000_000, size=(12, 14)) / 1_000_000
    big[:, 9] = big[:, 2]  # an exact tie between columns 2 and 9: column 2 must be credited
    r, c = linear_sum_assignment(big, maximize=True)
    pairs = assign(big)
    assert abs(sum(v for *_, v in pairs) - big[r, c].sum()) <= 1e-6
    cols = {j for _, j, _ in pairs}
    assert not (9 in cols and 2 not in cols)
