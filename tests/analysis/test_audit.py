"""The audit draw, its files, the Label Studio round trip and float gold labels, on constructed rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationalerm._util.files import read_json, read_jsonl, write_json, write_jsonl
from rationalerm.analysis.audit import (
    LABEL_STUDIO_CONFIG,
    AuditUnit,
    allocate,
    draw,
    fully_labelled,
    read_label_studio,
    read_units,
    with_context,
    write_audit,
)
from rationalerm.analysis.compare import compare_with_gold
from rationalerm.errors import LoadError
from rationalerm.runs.directory import load_run
from rationalerm.runs.gold import gold_cells, load_gold
from tests.helpers.report_fixtures import cli


def _rows(n_samples: int = 30, models: tuple[str, ...] = ("a", "b", "c"), empty_every: int = 0) -> list[dict[str, Any]]:
    rows = []
    for s in range(n_samples):
        for k, m in enumerate(models):
            items = [] if empty_every and s % empty_every == 0 and k == 0 else [f"s{s}-{m}-{j}" for j in range(2 + k)]
            rows.append({"id": f"s{s:03d}", "model": m, "domain": ("chat", "code", "math")[s % 3],
                         "source": f"in.jsonl:{s + 1}", "human": [f"s{s}-h{i}" for i in range(1 + s % 3)],
                         "items": items})
    return rows


def test_uniform_draw_without_replacement_deterministic_by_seed() -> None:
    rows = _rows()
    a = draw(rows, 25, seed=7)
    assert len(a) == 25 and len({(u.id, u.model) for u in a}) == 25
    assert a == draw(rows, 25, seed=7)
    assert [(u.id, u.model) for u in a] != [(u.id, u.model) for u in draw(rows, 25, seed=8)]
    order = [(r["id"], r["model"]) for r in rows]
    assert [order.index((u.id, u.model)) for u in a] == sorted(order.index((u.id, u.model)) for u in a)
    assert all(u.inclusion == pytest.approx(25 / 90) and u.stratum is None for u in a)


def test_uniform_draw_is_uniform() -> None:
    """Over many seeds each unit is drawn about n/N of the time."""
    rows = _rows(10, ("a", "b"))
    counts: Counter[tuple[str, str]] = Counter()
    for seed in range(2000):
        counts.update((u.id, u.model) for u in draw(rows, 5, seed))
    share = np.array(list(counts.values())) / 2000
    assert len(counts) == 20 and np.all(np.abs(share - 0.25) < 0.05)


def test_ungradeable_rows_are_left_out_and_all_units_when_n_exceeds_the_pool() -> None:
    rows = _rows(9, empty_every=3)  # samples 0, 3, 6 of model a have no items
    units = draw(rows, 1000, seed=0)
    assert len(units) == 27 - 3 and all(u.items for u in units)
    assert all(u.inclusion == 1.0 for u in units)
    assert [(u.id, u.model) for u in units] == [(r["id"], r["model"]) for r in rows if r["items"]]


def test_stratified_draw_records_inclusion_probabilities() -> None:
    rows = _rows(30, empty_every=3)  # model a: 20 gradeable units, b and c: 30 each
    units = draw(rows, 16, seed=1, stratify="model")
    per = Counter(u.model for u in units)
    assert per == {"a": 4, "b": 6, "c": 6}
    assert {u.model: u.inclusion for u in units} == {"a": 4 / 20, "b": 6 / 30, "c": 6 / 30}
    assert {u.stratum for u in units} == {"a", "b", "c"}
    # weights 1/pi over the drawn units recover the pool size
    assert sum(1 / u.inclusion for u in units) == pytest.approx(80)
    by_domain = draw(rows, 9, seed=1, stratify="domain")
    assert Counter(u.domain for u in by_domain) == {"chat": 2, "code": 4, "math": 3}  # 20, 30, 30 units
    assert draw(rows, 16, seed=1, stratify="model") == units


def test_draw_errors() -> None:
    with pytest.raises(LoadError, match="--stratify must be one of model, domain, got 'sample'"):
        draw(_rows(), 5, 0, stratify="sample")
    with pytest.raises(LoadError, match="no unit with a grid to label"):
        draw([{"id": "x", "model": "m", "human": ["h"], "items": []}, {"id": "y", "model": "m", "human": [],
                                                                     "items": ["s"]}], 5, 0)
    with pytest.raises(LoadError, match="--n must be at least 1, got 0"):
        draw(_rows(), 0, 0)


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=8), frac=st.floats(0, 1))
def test_allocation_is_proportional(sizes: list[int], frac: float) -> None:
    strata: dict[str | None, int] = {f"g{k}": s for k, s in enumerate(sizes)}
    total = sum(sizes)
    n = round(frac * total)
    quota = allocate(n, strata)
    assert sum(quota.values()) == n
    for g, size in strata.items():
        exact = n * size / total
        assert 0 <= quota[g] <= size
        assert int(np.floor(exact)) <= quota[g] <= int(np.ceil(exact))


def test_draw_reads_context_beside_the_run(tmp_path: Path) -> None:
    rows = _rows(4, ("a",))
    write_jsonl(tmp_path / "in.jsonl", [{"id": f"s{s:03d}", "context": f"question {s}", "response1": f"r1 {s}"}
                                        for s in range(3)])  # sample 3 is not in the input any more
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    units = with_context(draw(rows, 4, 0), run_dir)  # "in.jsonl" is found beside the run directory
    assert [(u.context, u.response1, u.response2) for u in units] == [
        ("question 0", "r1 0", None), ("question 1", "r1 1", None), ("question 2", "r1 2", None),
        (None, None, None)]
    gone = with_context(draw(_rows(2, ("a",)), 2, 0), tmp_path / "nowhere" / "run")
    assert all(u.context is None for u in gone)


def test_audit_files_and_label_studio_round_trip(tmp_path: Path) -> None:
    units = draw(_rows(6, ("a", "b")), 4, seed=3)
    write_audit(units, tmp_path)
    assert read_units(tmp_path / "audit.jsonl") == units
    template = read_jsonl(tmp_path / "labels.template.jsonl")
    assert len(template) == sum(len(u.human) * len(u.items) for u in units)
    assert all(t["label"] is None for t in template)
    tasks = read_json(tmp_path / "labelstudio.tasks.json")
    assert len(tasks) == sum(len(u.human) for u in units)
    assert (tmp_path / "labelstudio.config.xml").read_text() == LABEL_STUDIO_CONFIG
    assert tasks[0]["data"]["options"][0] == {"value": "none"}
    # Label Studio's export: the tasks with ids and annotations (the last kept annotation counts)
    exported, want = [], []
    for k, task in enumerate(tasks):
        d = task["data"]
        unit = next(u for u in units if (u.id, u.model) == (d["id"], d["model"]))
        pick = k % (len(unit.items) + 1) - 1  # -1: none
        result = [{"id": f"r{k}", "from_name": "match", "to_name": "human", "type": "choices",
                   "value": {"choices": [d["options"][pick + 1]["value"]]}, "origin": "manual"}]
        level = 0.5 if k % 2 else 1.0
        if k % 2:
            result.append({"id": f"l{k}", "from_name": "level", "to_name": "human", "type": "choices",
                           "value": {"choices": ["partially (0.5)"]}})
        if k == 2:
            continue  # not annotated: no cells for this human item
        anns = [{"id": 2 * k, "result": [], "was_cancelled": True},
                {"id": 2 * k + 1, "result": result, "was_cancelled": False, "lead_time": 3.2}]
        exported.append({"id": 100 + k, "data": d, "annotations": anns, "predictions": []})
        want += [{"id": d["id"], "model": d["model"], "i": d["i"], "j": j,
                  "label": (level if pick >= 0 else 1.0) if j == pick else 0.0} for j in range(len(unit.items))]
    write_json(tmp_path / "export.json", exported)
    cells = read_label_studio(tmp_path / "export.json", read_units(tmp_path / "audit.jsonl"))
    assert cells == want
    write_jsonl(tmp_path / "labels.jsonl", cells)
    gold = load_gold(tmp_path / "labels.jsonl")
    assert len(gold.by_index) == len(want)
    skipped = tasks[2]["data"]
    assert fully_labelled(units, cells) == {(u.id, u.model) for u in units} - {(skipped["id"], skipped["model"])}
    # the same through the command line, into the labels file compare --gold reads
    proc = cli("import-label-studio", str(tmp_path), str(tmp_path / "export.json"))
    assert read_jsonl(tmp_path / "labels.jsonl") == want
    said = " ".join(proc.stdout.split())
    assert f"{len(want)} cells, {len(units) - 1} of {len(units)} unit(s) fully labelled" in said


def test_label_studio_export_errors(tmp_path: Path) -> None:
    units = draw(_rows(2, ("a",)), 2, seed=0)
    d = {"id": units[0].id, "model": "a", "i": 0}

    def check(tasks: Any, match: str) -> None:
        write_json(tmp_path / "e.json", tasks)
        with pytest.raises(LoadError, match=match):
            read_label_studio(tmp_path / "e.json", units)

    def ann(choice: str) -> list[dict[str, Any]]:
        return [{"result": [{"from_name": "match", "value": {"choices": [choice]}}]}]

    check({"not": "a list"}, "a list of tasks")
    check([{"data": {**d, "id": "zz"}}], "id 'zz' model 'a' is not a unit")
    check([{"data": {**d, "i": 7}}], "human item 7 is outside")
    check([{"data": d, "annotations": ann("9: made up")}], "is not one of the task's options")
    check([{"data": d, "annotations": ann("1: x")}, {"data": d, "annotations": ann("none")}], "answered twice")


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    rows = [{**r, "matrix": [[0.0] * len(r["items"]) for _ in r["human"]], "recall": 0.0} for r in _rows(6, ("a",))]
    write_jsonl(run / "results.jsonl", rows)
    write_json(run / "metrics.json", {"models": {}})
    write_json(run / "run.json", {"inputs": [], "config": {}, "models": ["a"]})
    return run


def test_float_gold_labels(tmp_path: Path) -> None:
    """Levels in [0, 1] are gold labels; compare counts a match at >= 0.5, as 0/1 labels always did."""
    good = tmp_path / "g.jsonl"
    write_jsonl(good, [{"id": "s001", "model": "a", "i": 0, "j": 0, "label": 0.75},
                       {"id": "s001", "model": "a", "i": 0, "j": 1, "label": 0.25},
                       {"human": "h", "item": "s", "label": True}])
    gold = load_gold(good)
    assert gold.by_index == {("s001", "a", 0, 0): 0.75, ("s001", "a", 0, 1): 0.25}
    assert gold.by_text == {("h", "s"): 1.0}
    for bad in (1.5, -0.1, "1", None):
        (tmp_path / "b.jsonl").write_text(json.dumps({"id": "s", "model": "a", "i": 0, "j": 0, "label": bad}) + "\n")
        with pytest.raises(LoadError, match=r"b\.jsonl:1: each line needs a 'label' in \[0, 1\]"):
            load_gold(tmp_path / "b.jsonl")
    run = load_run(_run_dir(tmp_path))
    cells = gold_cells(run, gold)[("s001", "a")]
    assert cells[0, 0] == 0.75 and cells[0, 1] == 0.25
    res = compare_with_gold(run, gold)
    assert res["labelled_pairs"] == 2
    # 0.75 is a gold match, 0.25 is not: half the labelled cells are matches; the all-zero run finds none
    assert res["cells"]["base_rate_b"] == 0.5 and res["cells"]["recall"] == 0.0


def test_audit_cli(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    proc = cli("audit", str(run), "--n", "4", "--seed", "2", "--stratify", "domain", "--out", str(tmp_path / "au"))
    assert "drew 4 unit(s)" in proc.stdout
    units = read_units(tmp_path / "au" / "audit.jsonl")
    assert len(units) == 4 and all(isinstance(u, AuditUnit) for u in units)
    page = (tmp_path / "au" / "audit.html").read_text()
    assert '<script type="application/json" id="audit-data">' in page and "http" not in page.replace(
        "http-equiv", "")
    every = cli("audit", str(run), "--n", "10", "--out", str(tmp_path / "all"))
    assert "drew 6 unit(s)" in every.stdout and "all the run has; asked for 10" in every.stdout
    bad = cli("audit", str(run), "--n", "4", "--stratify", "judge", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "error: --stratify must be one of model, domain" in bad.stderr + bad.stdout
