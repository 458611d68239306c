"""Metrics exactly as DESIGN.md defines them, incl. the issue's worked examples."""

import numpy as np
import pytest

from rationalerm import assign, score_sample
from rationalerm.scoring.stats import bootstrap_mean
from rationalerm.scoring.summary import corpus_summary


def approx(x: float) -> object:
    return pytest.approx(x, abs=1e-6)


def test_one_to_one_beats_greedy() -> None:
    s = score_sample([[0.9, 0.8], [0.8, 0.0]])
    assert s.pairs == [(0, 1, 0.8), (1, 0, 0.8)]
    assert (s.recall, s.precision, s.ap) == (approx(0.8), approx(0.8), approx(0.8))


def test_min_score_masks_before_assignment() -> None:
    s = score_sample([[0.9, 0.75], [0.75, 0.0]], min_score=0.8)
    assert s.pairs == [(0, 0, 0.9)]
    assert s.recall == approx(0.45) and s.ap == approx(0.45) and s.precision == approx(0.45)


def test_rank_aware_ap_and_metajudge_ap() -> None:
    w = [[0, 0, 1, 0, 0], [0, 0, 0, 0, 1]]
    s = score_sample(w)
    assert (s.recall, s.precision, s.ap) == (approx(1.0), approx(0.4), approx(0.366667))
    assert score_sample(w, compat="metajudge").ap == approx(1.0)


def test_metajudge_compat_vs_paper() -> None:
    w = [[1, 0], [0.9, 0], [0, 0.5]]
    c = score_sample(w, compat="metajudge")
    assert (c.precision, c.recall, c.f1, c.ap) == (approx(0.75), approx(0.8), approx(0.774194), approx(0.583333))
    p = score_sample(w)
    assert (p.recall, p.precision, p.f1) == (approx(0.5), approx(0.75), approx(0.6))


def test_metajudge_drops_matches_beyond_top5_and_skips_long_lists() -> None:
    w = [[0, 0, 0, 0, 0, 1.0], [0.5, 0, 0, 0, 0, 0]]
    c = score_sample(w, compat="metajudge")
    assert c.pairs == [(1, 0, 0.5)]
    assert c.recall == approx(0.25) and c.precision == approx(0.5 / 5)
    long = score_sample(np.full((2, 11), 0.5), compat="metajudge")
    assert not long.valid and long.recall == 0.0


def test_rectangular_wide_and_tall() -> None:
    wide = score_sample([[0.2, 1.0, 0.3, 0.0]])
    assert wide.pairs == [(0, 1, 1.0)] and wide.recall == approx(1.0) and wide.precision == approx(0.25)
    assert wide.ap == approx(0.5)  # P@2 = 1/2, one human item
    tall = score_sample([[1.0], [0.9], [0.5]])
    assert tall.pairs == [(0, 0, 1.0)] and tall.recall == approx(1 / 3) and tall.precision == approx(1.0)


def test_zero_scores_are_never_matches() -> None:
    s = score_sample([[0.0, 0.0], [0.0, 0.0]])
    assert s.pairs == [] and s.f1 == 0.0 and s.ap == 0.0


def test_empty_inputs() -> None:
    no_items = score_sample(np.zeros((3, 0)))
    assert no_items.pairs == [] and no_items.recall == 0.0 and no_items.precision == 0.0 and no_items.valid
    assert not score_sample(np.zeros((0, 2))).valid


def test_ties_give_the_same_total() -> None:
    s = score_sample([[1.0, 1.0], [1.0, 1.0]])
    assert len(s.pairs) == 2 and s.recall == approx(1.0) and s.ap == approx(1.0)


def test_max_model_items_caps_precision_denominator() -> None:
    w = [[1.0, 0, 0, 0, 0, 0, 0]]
    assert score_sample(w).precision == approx(1 / 7)
    assert score_sample(w, max_model_items=5).precision == approx(1 / 5)
    assert score_sample([[1.0, 0.0]], max_model_items=5).precision == approx(1 / 2)


def test_ap_rewards_matches_first() -> None:
    first = score_sample([[1.0, 0.0, 0.0]]).ap
    last = score_sample([[0.0, 0.0, 1.0]]).ap
    assert first == approx(1.0) and last == approx(1 / 3)


def test_bad_matrices_are_rejected() -> None:
    for bad in ([[1.5]], [[-0.1]], [[float("nan")]], [1.0, 0.5]):
        with pytest.raises(ValueError):
            score_sample(bad)
    with pytest.raises(ValueError):
        score_sample([[1.0]], compat="other")  # type: ignore[arg-type]


def test_assign_matches_brute_force() -> None:
    from itertools import permutations

    rng = np.random.default_rng(1)
    for _ in range(30):
        n, m = (int(v) for v in rng.integers(1, 5, size=2))
        w = np.round(rng.random((n, m)), 2)
        best = 0.0
        for perm in permutations(range(max(n, m)), n):
            best = max(best, sum(w[i, j] for i, j in enumerate(perm) if j < m))
        assert sum(s for _, _, s in assign(w)) == pytest.approx(best)


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    x = np.random.default_rng(0).random(50)
    a, b = bootstrap_mean(x, seed=3), bootstrap_mean(x, seed=3)
    assert a == b and a.low <= a.mean <= a.high
    assert bootstrap_mean([0.5]).low == 0.5
    summary = corpus_summary([score_sample([[1.0]]), score_sample([[0.5]])], n_boot=200)
    assert summary["n_samples"] == 2 and summary["recall"] == approx(0.75)
