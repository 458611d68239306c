"""KPA-2021 shared task Track 1 mAP (benchmarks/quality.py) against the task's own evaluation script.

The expected numbers were computed by ``code/track_1_kp_matching.py`` of github.com/IBM/KPA_2021_shared_task
(commit 2f5e2d5, run unmodified with pandas 3.1.1, scikit-learn 1.9.1, numpy 2.3.5) on the ArgKP dev data and
prediction files written from the seeded score matrices below (``{arg_id: {kp_id: score}}``, key points in file
order; an argument whose scores are all missing was left out of the file, so the script gave it its dummy key
point).
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from rationalerm.datasets import MatchTask, load_argkp
from tests.helpers.data import default_argkp_path
from tests.helpers.paths import ROOT

DATA = default_argkp_path()


def _load_quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark_kpa", ROOT / "benchmarks" / "quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


quality = _load_quality()

# (strict, relaxed) printed by the reference script for each prediction file.
REFERENCE = {
    "random": (0.04001024017027131, 0.15187786297016292),
    "ties": (0.029649615415084984, 0.1416958749610464),  # scores rounded to 0.1: ties decide the top-50% cut
    "gold": (0.9703389830508473, 0.9758297045477196),  # informative scores
    "missing": (0.04312161721731616, 0.15413988360164735),  # every 7th argument without any score
}


def _matrices(tasks: list[MatchTask], kind: str) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    mats = []
    for t in tasks:
        w = rng.random(t.gold.shape)
        if kind == "ties":
            w = np.round(w, 1)
        if kind == "gold":
            w = np.where(t.gold == 1, 0.6, 0.0) + 0.5 * w
        if kind == "missing":
            w[:, ::7] = -np.inf
        mats.append(w)
    return mats


@pytest.mark.parametrize("kind", sorted(REFERENCE))
def test_map_equals_the_shared_task_script(kind: str) -> None:
    data = load_argkp("dev", DATA)
    got = quality.kpa_track1_map(data.tasks, _matrices(data.tasks, kind))
    assert got["strict"] == pytest.approx(REFERENCE[kind][0], abs=1e-12)
    assert got["relaxed"] == pytest.approx(REFERENCE[kind][1], abs=1e-12)
    assert len(got["groups"]) == 8 and all(g["kept"] == g["arguments"] // 2 for g in got["groups"])


def _task(gold: list[list[float]]) -> MatchTask:
    g = np.array(gold, dtype=float)
    return MatchTask(split="t", topic="t", stance=1, key_point_ids=[f"k{i}" for i in range(g.shape[0])],
                     key_points=[f"kp {i}" for i in range(g.shape[0])], arg_ids=[f"a{j}" for j in range(g.shape[1])],
                     arguments=[f"arg {j}" for j in range(g.shape[1])], gold=g)


def test_map_by_hand() -> None:
    nan = float("nan")
    # 4 arguments, 2 key points; argument 3's best pair is unlabelled.
    task = _task([[1, 0, 0, nan], [0, 1, 0, 0]])
    w = np.array([[0.9, 0.1, 0.3, 0.8], [0.2, 0.7, 0.4, 0.1]])
    # Best pairs: a0-k0 0.9 (1), a1-k1 0.7 (1), a2-k1 0.4 (0), a3-k0 0.8 (unlabelled). Top 2: a0 (0.9), a3 (0.8).
    got = quality.kpa_track1_map([task], [w])
    # strict: labels [1, 0]: AP 1.0, times 1/2 positives -> 0.5; relaxed: [1, 1]: AP 1.0 x 2/2 -> 1.0.
    assert got["strict"] == pytest.approx(0.5) and got["relaxed"] == pytest.approx(1.0)
    # Ties pick the first key point in file order: a0 scores 0.5 with both, k0's label (0) is used.
    tie = _task([[0, 1], [1, 1]])
    got = quality.kpa_track1_map([tie], [np.array([[0.5, 0.2], [0.5, 0.9]])])
    assert got["groups"][0]["kept"] == 1 and got["strict"] == pytest.approx(1.0)  # top 1 = a1-k1 (0.9, label 1)
    got = quality.kpa_track1_map([tie], [np.array([[0.5, 0.2], [0.5, 0.1]])])
    assert got["strict"] == pytest.approx(0.0)  # top 1 = a0-k0 (first of the tied key points, label 0)


def test_pandas_descending_order_keeps_quicksort_ties() -> None:
    s = np.array([0.5, 0.9, 0.5, 0.1, 0.9, 0.5])
    order = quality._pandas_descending_order(s)
    assert s[order].tolist() == sorted(s.tolist(), reverse=True)
    # pandas' nargsort: reverse, argsort (quicksort), reverse.
    idx = np.arange(len(s))[::-1]
    assert order.tolist() == idx[s[::-1].argsort(kind="quicksort")][::-1].tolist()
