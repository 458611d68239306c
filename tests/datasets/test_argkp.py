"""The ArgKP loader (real shared data and malformed inputs) and the quality benchmark's metric functions."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from benchmarks import quality
from rationalerm.datasets import ArgKPError, MatchTask, load_argkp
from tests.helpers.data import default_argkp_path
from tests.helpers.paths import ROOT

DATA = default_argkp_path()


# ------------------------------------------------------------------------------------------------------
# Real data
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev():
    return load_argkp("dev", DATA)


@pytest.fixture(scope="module")
def train():
    return load_argkp("train", DATA)


def _csv_rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("split", "pairs", "matches", "topics", "tasks"),
    [("train", 20635, 4260, 24, 48), ("dev", 3458, 738, 4, 8)],
)
def test_counts(split, pairs, matches, topics, tasks, request):
    data = request.getfixturevalue(split)
    assert len(data.pairs) == pairs
    assert data.n_matches == matches
    assert sum(p.label == 0 for p in data.pairs) == pairs - matches
    assert len(data.topics) == topics
    assert len(data.tasks) == tasks
    # The tasks carry exactly the labelled pairs.
    assert sum(t.n_labelled for t in data.tasks) == pairs
    assert sum(t.n_matches for t in data.tasks) == matches


def test_all_is_both_splits(dev, train):
    both = load_argkp("all", DATA)
    assert len(both.pairs) == len(dev.pairs) + len(train.pairs)
    assert len(both.tasks) == len(dev.tasks) + len(train.tasks)
    assert len(both.topics) == 28


def test_pair_records_join_texts(dev):
    args = {r["arg_id"]: r for r in _csv_rows("arguments_dev.csv")}
    kps = {r["key_point_id"]: r for r in _csv_rows("key_points_dev.csv")}
    labels = _csv_rows("labels_dev.csv")
    assert [(p.arg_id, p.key_point_id, p.label) for p in dev.pairs] == [
        (r["arg_id"], r["key_point_id"], int(r["label"])) for r in labels
    ]
    for p in dev.pairs[:50] + dev.pairs[-50:]:
        assert p.argument == args[p.arg_id]["argument"] == p.candidate
        assert p.key_point == kps[p.key_point_id]["key_point"] == p.reference
        assert p.topic == kps[p.key_point_id]["topic"]
        assert p.stance == int(kps[p.key_point_id]["stance"]) in (1, -1)


def test_tasks_per_topic_stance(dev):
    kps = _csv_rows("key_points_dev.csv")
    args = _csv_rows("arguments_dev.csv")
    kp_groups = Counter((r["topic"], int(r["stance"])) for r in kps)
    arg_groups = Counter((r["topic"], int(r["stance"])) for r in args)
    assert {(t.topic, t.stance) for t in dev.tasks} == set(kp_groups)
    for t in dev.tasks:
        n_kp, n_arg = t.shape
        assert n_kp == kp_groups[(t.topic, t.stance)] == len(t.key_points) == len(t.key_point_ids)
        # Every dev argument has at least one label, so every argument of the group is a column.
        assert n_arg == arg_groups[(t.topic, t.stance)] == len(t.arguments) == len(t.arg_ids)
        assert set(np.unique(t.gold[~np.isnan(t.gold)])) <= {0.0, 1.0}
        assert dev.task_of(t.topic, t.stance) is t


def test_unlabelled_pairs_are_left_out(dev):
    labelled = {(p.arg_id, p.key_point_id) for p in dev.pairs}
    cells = sum(t.gold.size for t in dev.tasks)
    nan_cells = sum(int(np.isnan(t.gold).sum()) for t in dev.tasks)
    assert nan_cells > 0 and cells - nan_cells == len(labelled)
    for t in dev.tasks:
        for i, j in zip(*np.nonzero(np.isnan(t.gold))):
            assert (t.arg_ids[j], t.key_point_ids[i]) not in labelled
        for i, j in t.pairs():
            assert (t.arg_ids[j], t.key_point_ids[i]) in labelled


def test_sample_is_stratified_and_reproducible(dev):
    a = dev.sample(400, seed=3)
    b = dev.sample(400, seed=3)
    c = dev.sample(400, seed=4)
    assert [(p.arg_id, p.key_point_id) for p in a.pairs] == [(p.arg_id, p.key_point_id) for p in b.pairs]
    assert [(p.arg_id, p.key_point_id) for p in a.pairs] != [(p.arg_id, p.key_point_id) for p in c.pairs]
    assert len(a.pairs) == 400
    assert a.n_matches == round(400 * 738 / 3458)
    assert sum(t.n_labelled for t in a.tasks) == 400 and sum(t.n_matches for t in a.tasks) == a.n_matches
    assert dev.sample(None) is dev and dev.sample(10**6) is dev


def test_default_path_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("RATIONALERM_ARGKP", raising=False)
    assert default_argkp_path() == ROOT / "tests" / "data" / "argkp"
    monkeypatch.setenv("RATIONALERM_ARGKP", str(tmp_path))
    assert default_argkp_path() == tmp_path


# ------------------------------------------------------------------------------------------------------
# Small constructed files: good and malformed
# ------------------------------------------------------------------------------------------------------

GOOD_ARGS = (
    "arg_id,argument,topic,stance\n"
    'a0,"Uniforms stop bullying, since nobody stands out",T,1\n'
    'a1,"Cheaper for parents\nover the year",T,1\n'
    "a2,Kids lose self-expression,T,-1\n"
    "a3,It is a good way to instill discipline,T,1\n"
)
GOOD_KPS = (
    "key_point_id,key_point,topic,stance\n"
    "k0,Uniforms reduce bullying,T,1\n"
    "k1,Uniforms save money,T,1\n"
    "k2,Uniforms limit expression,T,-1\n"
)
GOOD_LABELS = "arg_id,key_point_id,label\na0,k0,1\na0,k1,0\na1,k1,1\na2,k2,1\na3,k0,0\n"


def _write(
    root: Path, split: str = "dev", args: str = GOOD_ARGS, kps: str = GOOD_KPS, labels: str = GOOD_LABELS
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"arguments_{split}.csv").write_text(args, encoding="utf-8")
    (root / f"key_points_{split}.csv").write_text(kps, encoding="utf-8")
    (root / f"labels_{split}.csv").write_text(labels, encoding="utf-8")
    return root


def test_small_files_load(tmp_path, monkeypatch):
    root = _write(tmp_path / "argkp")
    monkeypatch.setenv("RATIONALERM_ARGKP", str(root))
    data = load_argkp("dev", default_argkp_path())
    assert len(data.pairs) == 5 and data.n_matches == 3
    assert data.pairs[2].argument == "Cheaper for parents\nover the year"
    pro = data.task_of("T", 1)
    assert pro.key_point_ids == ["k0", "k1"] and pro.arg_ids == ["a0", "a1", "a3"]
    np.testing.assert_array_equal(pro.gold, np.array([[1, np.nan, 0], [0, 1, np.nan]]))
    con = data.task_of("T", -1)
    assert con.arg_ids == ["a2"] and con.gold.tolist() == [[1.0]]


def test_split_selection(tmp_path):
    root = _write(tmp_path / "argkp", "dev")
    _write(root, "train", labels="arg_id,key_point_id,label\na0,k0,0\n")
    assert len(load_argkp("train", root).pairs) == 1
    assert len(load_argkp("dev", root).pairs) == 5
    assert len(load_argkp("all", root).pairs) == 6
    with pytest.raises(ValueError, match="split"):
        load_argkp("test", root)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("which", "content", "line", "message"),
    [
        ("labels", GOOD_LABELS + "a1,k0,2\n", 7, "label must be 0 or 1"),
        ("labels", GOOD_LABELS + "a1,k0,yes\n", 7, "label must be 0 or 1"),
        ("labels", GOOD_LABELS + "a9,k0,1\n", 7, "unknown arg_id 'a9'"),
        ("labels", GOOD_LABELS + "a1,k7,1\n", 7, "unknown key_point_id 'k7'"),
        ("labels", GOOD_LABELS + "a2,k0,1\n", 7, "different topic/stance"),
        ("labels", GOOD_LABELS + "a0,k0,0\n", 7, r"duplicate label for a0/k0 \(first on line 2\)"),
        ("labels", GOOD_LABELS + "a1,k0\n", 7, "expected 3 fields, got 2"),
        ("labels", GOOD_LABELS + ",k0,1\n", 7, "empty arg_id"),
        ("labels", "arg_id,kp,label\na0,k0,1\n", 1, "header lacks column.*key_point_id"),
        ("labels", "", 1, "empty file"),
        ("args", GOOD_ARGS + "a4,Another one,T,2\n", 7, "stance must be 1 or -1"),
        ("args", GOOD_ARGS + "a0,Again,T,1\n", 7, r"duplicate arg_id 'a0' \(first on line 2\)"),
        ("args", GOOD_ARGS + "a5,,T,1\n", 7, "empty argument"),
        ("args", GOOD_ARGS + 'a6,"never closed,T,1\n', 7, "malformed CSV"),
        ("args", GOOD_ARGS + "a7,too,many,fields,1\n", 7, "expected 4 fields, got 5"),
        ("kps", GOOD_KPS + "k3,Late,,1\n", 5, "empty topic"),
        ("kps", GOOD_KPS + "k4,Late,T,pro\n", 5, "stance must be 1 or -1"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, which, content, line, message):
    kwargs = {which: content}
    root = _write(tmp_path / "argkp", **kwargs)
    fname = {"labels": "labels_dev.csv", "args": "arguments_dev.csv", "kps": "key_points_dev.csv"}[which]
    with pytest.raises(ArgKPError, match=message) as err:
        load_argkp("dev", root)
    assert str(err.value).startswith(f"{root / fname}:{line}:")


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(ArgKPError, match="ArgKP folder not found"):
        load_argkp("dev", tmp_path / "nope")
    root = _write(tmp_path / "argkp")
    (root / "labels_dev.csv").unlink()
    with pytest.raises(ArgKPError, match=r"labels_dev\.csv: no such file"):
        load_argkp("dev", root)


def test_blank_lines_are_ignored(tmp_path):
    root = _write(tmp_path / "argkp", labels=GOOD_LABELS + "\n\na1,k0,0\n")
    data = load_argkp("dev", root)
    assert len(data.pairs) == 6


# ------------------------------------------------------------------------------------------------------
# Benchmark metric functions
# ------------------------------------------------------------------------------------------------------


def test_pair_metrics_known_values():
    from sklearn.metrics import cohen_kappa_score, roc_auc_score

    perfect = quality.pair_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], fixed_threshold=0.5)
    assert perfect["auc"] == 1.0 and perfect["best"]["f1"] == 1.0 and perfect["best"]["kappa"] == 1.0
    assert perfect["best"]["threshold"] == 0.8 and perfect["fixed"]["f1"] == 1.0

    y = [0, 1, 0, 1, 1, 0, 0, 1, 0, 0]
    s = [0.1, 0.9, 0.35, 0.4, 0.7, 0.8, 0.2, 0.6, 0.3, 0.05]
    m = quality.pair_metrics(y, s, fixed_threshold=0.5)
    assert m["n"] == 10 and m["n_pos"] == 4 and m["base_rate"] == 0.4
    assert math.isclose(m["auc"], roc_auc_score(y, s))
    # Brute force: best F1 over all cut points.
    best = max(
        (quality.binary_at(y, s, t)["f1"], t) for t in sorted(set(s))
    )
    assert math.isclose(m["best"]["f1"], best[0])
    pred = [int(v >= m["best"]["threshold"]) for v in s]
    assert math.isclose(m["best"]["kappa"], cohen_kappa_score(y, pred))
    at = quality.binary_at(y, s, 0.5)
    assert (at["precision"], at["recall"]) == (0.75, 0.75)

    one_class = quality.pair_metrics([1, 1], [0.2, 0.3])
    assert math.isnan(one_class["auc"]) and one_class["best"] is None


def _task(gold) -> MatchTask:
    gold = np.asarray(gold, dtype=float)
    n, m = gold.shape
    return MatchTask(split="x", topic="T", stance=1, key_point_ids=[f"k{i}" for i in range(n)],
                     key_points=[f"kp {i}" for i in range(n)], arg_ids=[f"a{j}" for j in range(m)],
                     arguments=[f"arg {j}" for j in range(m)], gold=gold)


def test_assignment_metrics_constructed():
    nan = np.nan
    # Key point 0 matches arguments 0 and 1; key point 1 matches argument 2; (1, 3) is unlabelled.
    task = _task([[1, 1, 0, 0], [0, 0, 1, nan]])
    assert quality.max_matching_size(task.gold) == 2
    # Judge prefers (0,1) (true) and (1,3) (unlabelled).
    w = np.array([[0.2, 0.9, 0.0, 0.1], [0.0, 0.0, 0.3, 0.8]])
    a = quality.assignment_metrics([task], [w])
    assert a["matched"] == 2 and a["matched_labelled"] == 1 and a["true_matches"] == 1
    assert a["gold_matches"] == 3 and a["precision"] == 1.0
    assert math.isclose(a["recall"], 1 / 3) and math.isclose(a["recall_ceiling"], 2 / 3)
    assert math.isclose(a["recall_of_ceiling"], 0.5)
    # A floor above 0.8 leaves nothing matched.
    none = quality.assignment_metrics([task], [w], min_score=0.95)
    assert none["matched"] == 0 and none["precision"] == 0.0 and none["recall"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        quality.assignment_metrics([task], [w[:, :2]])


def test_prefilter_recall_constructed():
    task = _task([[1, 1, 0, 0], [0, 0, 1, np.nan]])
    cos = np.array([[0.9, 0.1, 0.5, 0.2], [0.1, 0.2, 0.3, 0.8]])
    r = quality.prefilter_recall([task], [cos], ks=(1, 2))
    # k=1: row 0 keeps col 0 (match), row 1 keeps col 3 (unlabelled) -> 1 of 3 gold matches.
    assert math.isclose(r["1"]["recall"], 1 / 3) and math.isclose(r["1"]["ceiling"], 2 / 3)
    # k=2: row 0 keeps cols 0, 2 (1 match); row 1 keeps cols 3, 2 (1 match) -> 2 of 3.
    assert math.isclose(r["2"]["recall"], 2 / 3) and math.isclose(r["2"]["ceiling"], 1.0)
    assert r["2"]["kept_fraction"] == 0.5
    # Excluded cells (-inf) are never kept: row 1 now keeps col 2 at k=1.
    cos2 = np.where(np.isnan(task.gold), -np.inf, cos)
    r2 = quality.prefilter_recall([task], [cos2], ks=(1,))
    assert math.isclose(r2["1"]["recall"], 2 / 3)
    assert math.isclose(r2["1"]["kept_fraction"], 2 / 7)
    per_arg = quality.prefilter_recall([task], [cos2], ks=(1,), axis="argument")
    # Columns: a0 -> k0 (match), a1 -> k1 (miss), a2 -> k0 (miss), a3 -> k0, its only valid cell (miss).
    assert math.isclose(per_arg["1"]["recall"], 1 / 3) and math.isclose(per_arg["1"]["ceiling"], 1.0)


def test_quality_smoke_embedding_on_dev_subset(tmp_path):
    """Real embedding judge on a small dev subset, through the CLI entry point and its JSON output."""
    out = tmp_path / "q.json"
    rc = quality.main(["--split", "dev", "--max-pairs", "150", "--seed", "0", "--out", str(out), "--markdown",
                       "--data", str(DATA)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["data"]["pairs"] == 150 and report["data"]["matches"] == round(150 * 738 / 3458)
    (m,) = report["matchers"]
    pw = m["pairwise"]
    assert pw["n"] == 150 and pw["scale"] == "cosine"
    assert 0.5 < pw["auc"] <= 1.0
    assert 0 < pw["best"]["f1"] <= 1 and -1 <= pw["best"]["kappa"] <= 1
    a = m["assignment"]
    assert 0 < a["matched"] and 0 <= a["precision"] <= 1 and 0 <= a["recall"] <= a["recall_ceiling"] <= 1
    pf = m["prefilter"]["per_key_point"]
    assert pf["1"]["recall"] <= pf["2"]["recall"] <= pf["3"]["recall"] <= 1
    assert all(pf[k]["recall"] <= pf[k]["ceiling"] + 1e-12 for k in pf)
    assert m["timing"]["pairs_judged"] == report["data"]["cells"]


def test_auc_interval_brackets_the_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = y * 0.5 + rng.normal(0, 0.5, 300)
    m = quality.pair_metrics(y, s, bootstrap=100, seed=1)
    lo, hi = m["auc_ci95"]
    assert 0.5 < lo < m["auc"] < hi <= 1.0
    assert quality.pair_metrics(y, s)["auc_ci95"] is None
    assert m == quality.pair_metrics(y, s, bootstrap=100, seed=1)  # reproducible
