"""compare, calibrate and the prefilter on small constructed runs with known answers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from rationalerm._util.files import write_json, write_jsonl
from rationalerm.analysis.calibrate import calibrate, write_calibrated_config
from rationalerm.analysis.compare import compare_runs, compare_with_gold
from rationalerm.cli import app
from rationalerm.config import load_config
from rationalerm.errors import ConfigError, RationaleRMError
from rationalerm.judges.embedding import Embedder
from rationalerm.judges.prefilter import topk_keep
from rationalerm.pipeline import run as run_pipeline
from rationalerm.reporting.terminal import calibrate_tables, compare_tables
from rationalerm.runs.directory import load_run
from rationalerm.runs.gold import load_gold
from rationalerm.scoring.metrics import score_sample
from tests.helpers.paths import ROOT

EXAMPLE = ROOT / "examples" / "rationales.jsonl"


def make_run(path: Path, units: dict[tuple[str, str], list[list[float]]]) -> Path:
    rows = []
    for (sid, model), w in units.items():
        s = score_sample(w)
        rows.append({"id": sid, "model": model, "domain": None, "human": [f"{sid}-h{i}" for i in range(len(w))],
                     "items": [f"{sid}-s{j}" for j in range(len(w[0]))], "matrix": w,
                     "pairs": [list(p) for p in s.pairs], **s.metrics(), "valid": True})
    write_jsonl(path / "results.jsonl", rows)
    write_json(path / "run.json", {"models": sorted({m for _, m in units}), "config": {}})
    write_json(path / "metrics.json", {})  # a run directory holds the three files (compare reads only the rows)
    return path


def test_compare_runs_and_gold(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", {("s1", "m1"): [[1.0, 0.0], [0.0, 0.75]], ("s2", "m2"): [[0.5, 0.0]],
                                  ("s3", "m1"): [[0.0, 1.0]]})
    b = make_run(tmp_path / "b", {("s1", "m1"): [[1.0, 0.0], [0.0, 0.25]], ("s2", "m2"): [[0.75, 0.0]],
                                  ("s3", "m1"): [[0.0, 1.0]]})
    res = compare_runs(load_run(a), load_run(b), threshold=0.5)
    cells = res["pairs"]["cells"]
    assert res["units"] == 3 and cells["n"] == 8
    assert cells["precision"] == pytest.approx(3 / 4) and cells["recall"] == pytest.approx(1.0)
    assert res["per_model_rc"]["n_models"] == 2
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(g) for g in [
        {"id": "s1", "model": "m1", "i": 0, "j": 0, "label": 1},
        {"id": "s1", "model": "m1", "i": 1, "j": 1, "label": 0},
        {"human": "s2-h0", "item": "s2-s0", "label": 1},
    ]) + "\n")
    g = compare_with_gold(load_run(a), load_gold(gold), threshold=0.5)
    assert g["labelled_pairs"] == 3 and g["cells"]["precision"] == pytest.approx(2 / 3)
    assert g["cells"]["recall"] == pytest.approx(1.0) and g["auc"] == pytest.approx(0.5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "s1", "label": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_gold(bad)


def test_gold_auc_ranks_by_the_raw_cosine(tmp_path: Path) -> None:
    """The embedding judge's matrix is 0 below its threshold; AUC ranks the cells by the cosine they keep."""
    a = make_run(tmp_path / "a", {("s1", "m1"): [[0.6, 0.0, 0.0]]})
    rows = [json.loads(x) for x in (a / "results.jsonl").read_text().splitlines()]
    rows[0]["details"] = [[{"cosine": 0.8}, {"cosine": 0.45}, {"cosine": 0.3}]]
    write_jsonl(a / "results.jsonl", rows)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": "s1", "model": "m1", "i": 0, "j": j, "label": int(j < 2)}) + "\n"
                            for j in range(3)))
    g = compare_with_gold(load_run(a), load_gold(gold), threshold=0.5)
    assert g["auc"] == pytest.approx(1.0)  # on the clipped scores the two cells at 0 tie: 0.75
    assert g["cells"]["recall"] == pytest.approx(0.5)  # the decisions still use the matrix


def test_compare_refuses_repeated_units(tmp_path: Path) -> None:
    """Two rows for one (sample id, model) are not folded into one unit: an error names the file and both lines."""
    a = make_run(tmp_path / "a", {("s1", "m1"): [[1.0, 0.0]], ("s2", "m1"): [[0.5, 0.0]]})
    rows = [json.loads(x) for x in (a / "results.jsonl").read_text().splitlines()]
    write_jsonl(a / "results.jsonl", [*rows, {**rows[0], "matrix": [[0.0, 1.0]]}])
    b = make_run(tmp_path / "b", {("s1", "m1"): [[1.0, 0.0]], ("s2", "m1"): [[0.5, 0.0]]})
    with pytest.raises(RationaleRMError, match=r"results\.jsonl:3: sample 's1' x model 'm1' is also on line 1"):
        compare_runs(load_run(a), load_run(b))
    with pytest.raises(RationaleRMError, match="one row per sample and model"):
        compare_runs(load_run(b), load_run(a))
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "s1", "model": "m1", "i": 0, "j": 0, "label": 1}) + "\n")
    with pytest.raises(RationaleRMError, match="is also on line 1"):
        compare_with_gold(load_run(a), load_gold(gold))
    # calibrate and estimate align units by the same key: they refuse too, naming themselves
    with pytest.raises(RationaleRMError, match=r"results\.jsonl:3: .* calibrate needs one row per sample"):
        calibrate(load_run(a), gold=load_gold(gold), embedder=Embedder())
    from rationalerm.analysis.estimate import estimate_run, read_audit

    with pytest.raises(RationaleRMError, match=r"results\.jsonl:3: .* estimate needs one row per sample"):
        run_a = load_run(a)
        estimate_run(run_a, read_audit(run_a, gold))


def test_runs_that_never_match_have_no_kappa(tmp_path: Path) -> None:
    """Both runs say "no match" everywhere: they agree on every cell, but kappa is undefined (None, printed —)."""
    zeros = {("s1", "m1"): [[0.0, 0.0], [0.0, 0.0]], ("s2", "m2"): [[0.0, 0.1]]}
    res = compare_runs(load_run(make_run(tmp_path / "a", zeros)), load_run(make_run(tmp_path / "b", zeros)))
    cells = res["pairs"]["cells"]
    assert cells["kappa"] is None and cells["agreement"] == 1.0 and cells["base_rate_a"] == 0.0
    assert cells["precision"] is None and cells["recall"] is None and cells["f1"] is None
    console = Console(width=200, record=True, file=io.StringIO())
    for table in compare_tables(res):
        console.print(table)
    line = next(x for x in console.export_text().splitlines() if x.lstrip("│ ").startswith("cells"))
    assert [c.strip() for c in line.split("│")[1:-1]] == ["cells", "6", "—", "1.000", "0.000", "0.000", "—", "—"]


def test_topk_keep_rules() -> None:
    cos = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    assert topk_keep(cos, 1, None).tolist() == [[True, False, False], [False, True, False]]
    assert topk_keep(cos, None, 0.45).tolist() == [[True, False, True], [False, False, False]]
    assert topk_keep(cos, 1, 0.45).tolist() == [[True, False, True], [False, True, False]]
    assert topk_keep(cos, 2, 0.45, "intersection").tolist() == [[True, False, True], [False, False, False]]
    assert topk_keep(cos, 5, None).all()


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    run_pipeline(EXAMPLE, load_config(None, {"judge.threshold": 0.35}), out)
    return out


def test_prefilter_accounting_and_zeroed_cells(tmp_path: Path, example_run: Path) -> None:
    cfg = load_config(None, {"judge.threshold": 0.35, "prefilter.enabled": True, "prefilter.top_k": 1})
    outcome = run_pipeline(EXAMPLE, cfg, tmp_path)
    pf = outcome.metrics["prefilter"]
    assert pf["pairs_total"] == 283 and pf["pairs_kept"] == sum(len(r["human"]) for r in outcome.rows)
    assert outcome.judged == pf["unique_pairs_kept"] and pf["judge_calls_saved"] == 283 - pf["unique_pairs_kept"]
    full = {(r["id"], r["model"]): r for r in load_run(example_run).rows}
    for r in outcome.rows:
        ref = np.array(full[(r["id"], r["model"])]["matrix"])
        w = np.array(r["matrix"])
        kept = w > 0
        assert np.allclose(w[kept], ref[kept], atol=1e-4)  # kept cells carry the judge's score
        assert (kept.sum(axis=1) <= 1).all()  # top-1 per human item, the rest are 0
        assert r["recall"] <= full[(r["id"], r["model"])]["recall"] + 1e-4


def test_calibrate_recovers_the_reference_threshold(tmp_path: Path, example_run: Path) -> None:
    res = calibrate(load_run(example_run), embedder=Embedder())
    assert res["best"]["threshold"] == pytest.approx(0.35) and res["best"]["kappa"] == pytest.approx(1.0)
    recalls = [r["recall"] for r in res["prefilter"]["top_k"]]
    assert recalls == sorted(recalls) and recalls[-1] == pytest.approx(1.0)
    chosen = res["prefilter"]["chosen"]
    rules = [*res["prefilter"]["top_k"], *res["prefilter"]["min_cosine"]]
    assert chosen["recall"] >= 0.95
    assert chosen["kept_fraction"] == min(r["kept_fraction"] for r in rules if r["recall"] >= 0.95)
    cfg = write_calibrated_config(res, tmp_path / "calibrated.yaml")
    again = load_config(tmp_path / "calibrated.yaml")
    assert again.judge.threshold == pytest.approx(0.35) == cfg.judge.threshold
    assert (again.prefilter.top_k, again.prefilter.min_cosine) == (chosen["top_k"], chosen["min_cosine"])
    assert again.prefilter.enabled  # the reported rule is the rule the config runs (the base judge is embedding)


@pytest.fixture(scope="module")
def example_run_rule_off(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``example_run`` with the response-reference rule off: texts embedded as written."""
    out = tmp_path_factory.mktemp("ref-off")
    run_pipeline(EXAMPLE, load_config(None, {"judge.threshold": 0.35, "judge.canonical_references": False}), out)
    return out


def test_calibrate_embeds_the_texts_as_the_calibrated_judge_sees_them(
        tmp_path: Path, example_run: Path, example_run_rule_off: Path) -> None:
    """Each reference run is recovered exactly (kappa 1) when calibrate applies the rule its judge applied, and
    not when it does not: examples/ has pairs apart only by "Response A" / "Response 1"."""
    on, off = load_run(example_run), load_run(example_run_rule_off)
    assert calibrate(off, embedder=Embedder(), canonical_references=False)["best"]["kappa"] == pytest.approx(1.0)
    mixed = calibrate(on, embedder=Embedder(), canonical_references=False)
    assert mixed["canonical_references"] is False and mixed["best"]["kappa"] < 0.99
    assert calibrate(off, embedder=Embedder())["best"]["kappa"] < 0.99  # the default (rule on) against rule-off
    with pytest.raises(ConfigError, match="canonical_references is True.*rule off"):
        write_calibrated_config(mixed, tmp_path / "c.yaml")  # the default base config has the rule on
    base = tmp_path / "off.yaml"
    base.write_text("judge:\n  type: embedding\n  canonical_references: false\n")
    assert write_calibrated_config(mixed, tmp_path / "c.yaml", base).judge.canonical_references is False
    # the command calibrates for the judge of --base-config (default: the embedded default, rule on)
    out = CliRunner().invoke(app, ["calibrate", str(example_run_rule_off), "--base-config", str(base), "--json",
                                   str(tmp_path / "cal.json"), "--write-config", str(tmp_path / "cal.yaml")])
    assert out.exit_code == 0, out.output
    assert "reference rule off" in out.output and load_config(tmp_path / "cal.yaml").judge.canonical_references is False
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert cal["canonical_references"] is False and cal["best"]["kappa"] == pytest.approx(1.0)


def test_the_prefilter_ranks_the_texts_as_the_judge_sees_them(tmp_path: Path) -> None:
    """Top-1 per human item: as written, "Response 2 gives the correct final answer." is the nearest item to
    "Response 1 gives the correct final answer." (cosine 0.983 against 0.931 for "Response A ..."); with the rule
    on (the default), the prefilter keeps "Response A ...", the item the judge scores 1."""
    data = tmp_path / "refs.jsonl"
    write_jsonl(data, [{"id": "r1", "human-checklist": ["Response 1 gives the correct final answer."],
                        "m-checklist": ["Response A gives the correct final answer.",
                                        "Response 1 gives a wrong final answer.",
                                        "Response 2 gives the correct final answer."]}])
    kept = {}
    for rule in (True, False):
        cfg = load_config(None, {"prefilter.enabled": True, "prefilter.top_k": 1, "judge.threshold": 0.9,
                                 "judge.canonical_references": rule})
        row = run_pipeline(data, cfg, tmp_path / str(rule)).rows[0]
        kept[rule] = [j for j, v in enumerate(row["matrix"][0]) if v > 0]
        assert row["recall"] == pytest.approx(1.0 if rule else 0.83, abs=0.01)
    assert kept == {True: [0], False: [2]}


def test_calibrate_against_gold_labels(tmp_path: Path, example_run: Path) -> None:
    """Gold labels that are exactly the reference run's matches give the same answer as the run itself."""
    ref = load_run(example_run)
    gold = tmp_path / "gold.jsonl"
    with gold.open("w") as f:
        for (sid, model), row in ref.units.items():
            for i, line in enumerate(row["matrix"]):
                for j, v in enumerate(line):
                    f.write(json.dumps({"id": sid, "model": model, "i": i, "j": j, "label": int(v >= 0.5)}) + "\n")
    res = calibrate(ref, gold=load_gold(gold), embedder=Embedder())
    assert res["reference"] == "gold" and res["best"]["threshold"] == pytest.approx(0.35)
    assert res["labelled_pairs"] == 283 and "rc_mae" not in res["best"]


def test_calibrate_against_a_reference_without_matches(tmp_path: Path) -> None:
    """No reference match: every prefilter recall is undefined (None), the fallback rule is the first top-k,
    kappa is None where the embedding matches nothing either, and the tables and the config header say '—'."""
    ref = load_run(make_run(tmp_path / "ref", {("s1", "m1"): [[0.0, 0.0], [0.0, 0.0]], ("s2", "m1"): [[0.0, 0.0]]}))
    res = calibrate(ref, embedder=Embedder(), ks=(1, 2), floors=(0.3,))
    assert res["reference_matches"] == 0 and res["labelled_pairs"] == 6
    assert all(r["recall"] is None for r in (*res["prefilter"]["top_k"], *res["prefilter"]["min_cosine"]))
    assert res["prefilter"]["chosen"] == {"top_k": 1, "min_cosine": None, "recall": None,
                                         "kept_fraction": res["prefilter"]["top_k"][0]["kept_fraction"]}
    silent = [r for r in res["thresholds"] if r["base_rate_a"] == 0.0]
    assert silent and all(r["kappa"] is None for r in silent)
    assert res["best"]["kappa"] is not None or all(r["kappa"] is None for r in res["thresholds"])
    console = Console(width=200, record=True, file=io.StringIO())
    for table in calibrate_tables(res):
        console.print(table)
    assert "nan" not in console.export_text()
    write_calibrated_config(res, tmp_path / "c.yaml")
    header = (tmp_path / "c.yaml").read_text().splitlines()[0]
    assert "(recall — of the reference matches" in header and yaml.safe_load((tmp_path / "c.yaml").read_text())
