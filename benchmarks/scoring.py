"""Scoring speed: the tie-ruled scorer beside plain ``linear_sum_assignment`` on the same matrices, one run.

10,000 samples of 6 x 8 five-level matrices (seeded). Printed side by side, each the best of ``--repeat``
timings (this machine is noisy; the ratio is what counts):
- plain: ``linear_sum_assignment(w, maximize=True)`` per matrix, nothing else;
- assignment: ``rationalerm.scoring.assign.assign_stack`` (the tie rule; all matrices of one shape prepared as one
  array);
- scorer: ``rationalerm.scoring.metrics.score_matrices`` (tie-ruled assignment + precision/recall/F1/AP + pairs);
- previous scorer: the scorer this project had before the tie rule (plain ``linear_sum_assignment`` and the
  same metrics, one sample at a time; copied below from the commit before the change);
- one by one: ``score_sample`` per matrix (the single-sample API, for reference).

    .venv/bin/python benchmarks/scoring.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from rationalerm.scoring.assign import assign_stack
from rationalerm.scoring.metrics import score_matrices, score_sample


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    levels = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    # mostly zeros, like real judges (a model item matches one or two human items at most)
    mats = [levels[rng.choice(5, size=(args.n, args.m), p=[0.6, 0.1, 0.1, 0.1, 0.1])] for _ in range(args.samples)]
    stack = np.stack(mats)
    ties = sum(1 for w in mats[:2000] if _several_optima(w))

    plain = best_of(lambda: [linear_sum_assignment(w, maximize=True) for w in mats], args.repeat)
    assignment = best_of(lambda: assign_stack(stack), args.repeat)
    scorer = best_of(lambda: score_matrices(mats), args.repeat)
    single = best_of(lambda: [score_sample(w) for w in mats], max(1, args.repeat // 2))
    previous = best_of(lambda: [previous_score_sample(w) for w in mats], max(1, args.repeat // 2))

    print(f"{args.samples} samples of {args.n} x {args.m} five-level matrices; best of {args.repeat}")
    print(f"matrices with several optimal matchings (first 2,000): {ties}")
    print(f"{'plain linear_sum_assignment':<34}{plain:8.3f} s   1.00x")
    print(f"{'tie-ruled assignment (assign_stack)':<34}{assignment:8.3f} s   {assignment / plain:.2f}x")
    print(f"{'scorer (score_matrices)':<34}{scorer:8.3f} s   {scorer / plain:.2f}x")
    print(f"{'previous scorer (no tie rule)':<34}{previous:8.3f} s   {previous / plain:.2f}x")
    print(f"{'score_sample one by one':<34}{single:8.3f} s   {single / plain:.2f}x")
    print(f"tie-ruled assignment vs plain linear_sum_assignment: {assignment / plain:.2f}x")
    print(f"scorer vs previous scorer: {scorer / previous:.2f}x")


def previous_score_sample(w: np.ndarray) -> tuple[float, float, float, float, list[tuple[int, int, float]]]:
    """The paper-mode scorer before the tie rule (commit 0f633ca), for the side-by-side timing."""
    w = np.asarray(w, dtype=float)
    if not np.all(np.isfinite(w)) or w.min() < 0.0 or w.max() > 1.0:
        raise ValueError("score matrix entries must be finite and in [0, 1]")
    n, m = w.shape
    rows, cols = linear_sum_assignment(w, maximize=True)
    pairs = [(int(i), int(j), float(w[i, j])) for i, j in zip(rows, cols) if w[i, j] > 0.0]
    total = sum(s for _, _, s in pairs)
    recall, precision = total / n, total / m
    by_col = np.zeros(m)
    matched = np.zeros(m, dtype=bool)
    for _, j, s in pairs:
        by_col[j], matched[j] = s, True
    ap = float((np.cumsum(by_col) / np.arange(1, m + 1))[matched].sum() / n)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1, ap, pairs


def _several_optima(w: np.ndarray) -> bool:
    """Whether another matching reaches the same total (cheap check: forbid each matched cell in turn)."""
    r, c = linear_sum_assignment(w, maximize=True)
    total = w[r, c].sum()
    for i, j in zip(r, c):
        if w[i, j] == 0:
            continue
        x = w.copy()
        x[i, j] = -1.0
        r2, c2 = linear_sum_assignment(x, maximize=True)
        if abs(x[r2, c2].sum() - total) < 1e-12:
            return True
    return False


if __name__ == "__main__":
    main()
