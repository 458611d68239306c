"""``estimate``: small constructed runs with known numbers, the JSON shape, the error cases, the plan, the CLI, and
ArgKP (real crowd labels): with the embedded default as the matcher, the corrected interval holds the truth the
raw mean misses. The estimator's coverage by simulation is tests/analysis/test_ppi.py's."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rationalerm._util.files import write_json, write_jsonl
from rationalerm.analysis.audit import AuditUnit
from rationalerm.analysis.estimate import MIN_AUDITED, Population, estimate, estimate_run, plan, read_audit
from rationalerm.analysis.ppi import ppi_mean
from rationalerm.cli import app
from rationalerm.errors import LoadError
from rationalerm.runs.directory import load_run
from rationalerm.scoring.metrics import score_sample
from tests.helpers.data import default_argkp_path

DATA = default_argkp_path()


Units = dict[tuple[str, str], list[list[float]]]


def make_run(path: Path, units: Units, domains: dict[str, str] | None = None) -> Path:
    rows = []
    for (sid, model), w in units.items():
        s = score_sample(w) if w and w[0] else None
        rows.append({"id": sid, "model": model, "domain": (domains or {}).get(sid),
                     "human": [f"{sid}-h{i}" for i in range(len(w))],
                     "items": [f"{sid}-s{j}" for j in range(len(w[0]) if w else 0)], "matrix": w,
                     **(s.metrics() if s else {"precision": 0.0, "recall": 0.0, "f1": 0.0, "ap": 0.0}),
                     "valid": True})
    path.mkdir(parents=True, exist_ok=True)
    write_jsonl(path / "results.jsonl", rows)
    write_json(path / "run.json", {"models": sorted({m for _, m in units}), "config": {}})
    write_json(path / "metrics.json", {})
    return path


def cells(units: dict[tuple[str, str], list[list[float]]]) -> list[dict[str, object]]:
    return [{"id": s, "model": m, "i": i, "j": j, "label": v}
            for (s, m), g in units.items() for i, line in enumerate(g) for j, v in enumerate(line)]


def corpus(n: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Two models, one human item and one model item a sample: the matcher says 0.5 where people say 1 or 0."""
    matcher, gold = {}, {}
    for k in range(n):
        for model, p in (("a", 0.7), ("b", 0.4)):
            truth = float(rng.random() < p)
            matcher[(f"s{k}", model)] = [[0.5 if truth else float(rng.random() < 0.3) * 0.5]]
            gold[(f"s{k}", model)] = [[truth]]
    return matcher, gold


def test_known_numbers_and_shape(tmp_path: Path) -> None:
    matcher, gold = corpus(60, np.random.default_rng(1))
    run = load_run(make_run(tmp_path / "run", matcher))
    audited = {k: v for k, v in gold.items() if int(k[0][1:]) < 30}
    write_jsonl(tmp_path / "gold.jsonl", cells(audited))
    res, notes = estimate_run(run, read_audit(run, tmp_path / "gold.jsonl"), "recall", 0.95)
    assert notes == [] and set(res) == {"models", "differences"}
    a = res["models"]["a"]
    assert set(a) == {"metric", "raw", "gold_only", "corrected", "n", "n_gold", "rho", "lambda", "effective_gain",
                      "agreement", "by_domain"}
    assert a["n"] == 60 and a["n_gold"] == 30 and a["metric"] == "recall"
    f = np.array([matcher[(f"s{k}", "a")][0][0] for k in range(60)])
    y = np.array([gold[(f"s{k}", "a")][0][0] for k in range(30)])
    assert a["raw"]["mean"] == pytest.approx(f.mean())
    assert a["gold_only"]["mean"] == pytest.approx(y.mean())
    half = 1.959964 * y.std(ddof=1) / np.sqrt(30) * np.sqrt(1 - 30 / 60)  # fpc: half of the corpus audited
    assert a["gold_only"]["ci"][1] - a["gold_only"]["mean"] == pytest.approx(half, rel=1e-5)
    ref = ppi_mean(y, f[:30], f, 0.95, fpc=True)
    assert a["corrected"]["mean"] == pytest.approx(ref.mean) and a["lambda"] == pytest.approx(ref.lam)
    assert a["rho"] == pytest.approx(np.corrcoef(y, f[:30])[0, 1])
    width = a["gold_only"]["ci"][1] - a["gold_only"]["ci"][0]
    assert a["effective_gain"] == pytest.approx(30 * (width / (a["corrected"]["ci"][1] - a["corrected"]["ci"][0])) ** 2)
    assert a["agreement"]["n"] == 30 and a["agreement"]["base_rate_b"] == pytest.approx(y.mean())
    d = res["differences"]["a - b"]
    yb = np.array([gold[(f"s{k}", "b")][0][0] for k in range(30)])
    assert d["n"] == 60 and d["n_gold"] == 30 and d["gold_only"]["mean"] == pytest.approx((y - yb).mean())
    json.dumps(res)  # plain JSON


def test_matcher_bias_is_corrected(tmp_path: Path) -> None:
    """The matcher halves every match: raw is far off, corrected covers the truth (one seeded draw of a large
    corpus; a 95% interval misses 1 draw in 20, which test_ppi's simulation measures)."""
    matcher, gold = corpus(2000, np.random.default_rng(0))
    run = load_run(make_run(tmp_path / "run", matcher))
    write_jsonl(tmp_path / "gold.jsonl", cells({k: v for k, v in gold.items() if int(k[0][1:]) % 5 == 0}))
    res, _ = estimate_run(run, read_audit(run, tmp_path / "gold.jsonl"))
    for model in ("a", "b"):
        truth = np.mean([v[0][0] for k, v in gold.items() if k[1] == model])
        e = res["models"][model]
        lo, hi = e["corrected"]["ci"]
        assert lo <= truth <= hi and not e["raw"]["ci"][0] <= truth <= e["raw"]["ci"][1]
        assert hi - lo < e["gold_only"]["ci"][1] - e["gold_only"]["ci"][0]
        assert e["effective_gain"] > e["n_gold"]


def test_gold_from_a_strong_judges_run_and_by_domain(tmp_path: Path) -> None:
    matcher, gold = corpus(40, np.random.default_rng(3))
    domains = {f"s{k}": "math" if k % 2 else "chat" for k in range(40)}
    run = load_run(make_run(tmp_path / "run", matcher, domains))
    make_run(tmp_path / "strong", {k: v for k, v in gold.items() if int(k[0][1:]) < 24}, domains)
    res, _ = estimate_run(run, read_audit(run, tmp_path / "strong"))
    a = res["models"]["a"]
    assert a["n_gold"] == 24 and set(a["by_domain"]) == {"chat", "math"}
    assert a["by_domain"]["chat"]["n"] == 20 and a["by_domain"]["chat"]["n_gold"] == 12
    make_run(tmp_path / "other", {("s0", "a"): [[1.0, 0.0]]})
    with pytest.raises(LoadError, match="other texts"):
        read_audit(run, tmp_path / "other")


def test_stratified_audit_weights_strata(tmp_path: Path) -> None:
    """Domain x has 90 units, y 10; the audit takes 5 of each: corrected is the share-weighted mean of the strata."""
    units = {(f"x{k}", "a"): [[0.0]] for k in range(90)} | {(f"y{k}", "a"): [[1.0]] for k in range(10)}
    domains = {s: s[0] for s, _ in units}
    run = load_run(make_run(tmp_path / "run", units, domains))
    drawn = [*(f"x{k}" for k in range(5)), *(f"y{k}" for k in range(5))]
    write_jsonl(tmp_path / "gold.jsonl", cells({(s, "a"): [[1.0 if s[0] == "y" or s == "x0" else 0.0]] for s in drawn}))
    write_jsonl(tmp_path / "audit.jsonl", [asdict(AuditUnit(s, "a", s[0], ["h"], ["s"], 5 / (90 if s[0] == "x" else 10),
                                                           stratum=s[0])) for s in drawn])
    uniform, _ = estimate_run(run, read_audit(run, tmp_path / "gold.jsonl"))
    weighted, _ = estimate_run(run, read_audit(run, tmp_path / "gold.jsonl", tmp_path / "audit.jsonl"))
    assert uniform["models"]["a"]["gold_only"]["mean"] == pytest.approx(6 / 10)
    assert weighted["models"]["a"]["gold_only"]["mean"] == pytest.approx(0.9 * 1 / 5 + 0.1 * 1.0)


def test_units_without_a_grid_are_known(tmp_path: Path) -> None:
    """A row with no model items scores 0 under any judge: it counts in n, never as audited."""
    matcher, gold = corpus(20, np.random.default_rng(4))
    matcher |= {(f"e{k}", "a"): [[]] for k in range(20)}
    run = load_run(make_run(tmp_path / "run", matcher))
    write_jsonl(tmp_path / "gold.jsonl", cells(gold))
    a = estimate_run(run, read_audit(run, tmp_path / "gold.jsonl"))[0]["models"]["a"]
    assert a["n"] == 40 and a["n_gold"] == 20
    truth = np.mean([v[0][0] for k, v in gold.items() if k[1] == "a"]) / 2
    assert a["corrected"]["mean"] == pytest.approx(truth) and a["gold_only"]["mean"] == pytest.approx(truth)


def test_errors_and_warnings(tmp_path: Path) -> None:
    matcher, gold = corpus(20, np.random.default_rng(5))
    run = load_run(make_run(tmp_path / "run", matcher))
    twice = tmp_path / "twice.jsonl"
    write_jsonl(twice, [*cells({("s0", "a"): [[1.0]]}), *cells({("s0", "a"): [[0.0]]})])
    with pytest.raises(LoadError, match=r"twice.jsonl:2: .* labelled 0.0, but 1.0 at .*twice.jsonl:1"):
        read_audit(run, twice)
    outside = tmp_path / "outside.jsonl"
    write_jsonl(outside, [*cells({("s0", "a"): [[1.0]]}), {"id": "s1", "model": "a", "i": 0, "j": 3, "label": 1}])
    with pytest.raises(LoadError, match=r"outside.jsonl:2: cell \(0, 3\) is outside the 1 x 1 grid"):
        read_audit(run, outside)
    stranger = tmp_path / "stranger.jsonl"
    write_jsonl(stranger, cells({("zz", "a"): [[1.0]]}))
    with pytest.raises(LoadError, match="names no .* unit"):
        read_audit(run, stranger)
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [{"id": "s0", "model": "a", "i": 0, "j": 0, "label": 1.5}])
    with pytest.raises(LoadError, match=r"bad.jsonl:1: .*\[0, 1\]"):
        read_audit(run, bad)
    few = tmp_path / "few.jsonl"
    write_jsonl(few, cells({k: v for k, v in gold.items() if int(k[0][1:]) < 4}))
    res, notes = estimate_run(run, read_audit(run, few))
    assert res["models"]["a"]["n_gold"] == 4 < MIN_AUDITED
    assert any(n.startswith("a: only 4 audited units") for n in notes)


def test_partly_labelled_units_are_left_out(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path / "run", {("s0", "a"): [[1.0, 0.0]], ("s1", "a"): [[1.0, 0.0]]}))
    write_jsonl(tmp_path / "g.jsonl", [*cells({("s0", "a"): [[1.0, 0.0]]}),
                                       {"id": "s1", "model": "a", "i": 0, "j": 0, "label": 0.5}])
    found = read_audit(run, tmp_path / "g.jsonl")
    assert list(found.gold) == [("s0", "a")] and "1 unit(s) partly labelled" in found.warnings[0]


def test_thin_stratum_pools() -> None:
    pop = Population(np.arange(10.0) / 10, np.array([0.1, np.nan, 0.3, 0.4, np.nan, 0.5, 0.6, 0.7, np.nan, 0.9]),
                     np.array(["x"] * 9 + ["y"]))
    est, notes = estimate(pop, 0.95, {"mean": None, "ci": None})
    assert est["n_gold"] == 7 and any("pooled" in n for n in notes)


def test_plan_and_cli(tmp_path: Path) -> None:
    matcher, gold = corpus(400, np.random.default_rng(6))
    run_dir = make_run(tmp_path / "run", matcher)
    write_jsonl(tmp_path / "pilot.jsonl", cells({k: v for k, v in gold.items() if int(k[0][1:]) < 50}))
    rows = plan(load_run(run_dir), read_audit(load_run(run_dir), tmp_path / "pilot.jsonl"), 0.05)
    assert rows["a"]["n_pilot"] == 50 and rows["a"]["needed"] is not None
    assert rows["a"]["needed"] < rows["a"]["needed_gold_only"]
    runner = CliRunner()
    out = runner.invoke(app, ["estimate", str(run_dir), "--plan", "--pilot", str(tmp_path / "pilot.jsonl"),
                              "--width", "0.05"])
    assert out.exit_code == 0, out.output
    assert "corrected needs" in out.output
    out = runner.invoke(app, ["estimate", str(run_dir), "--gold", str(tmp_path / "pilot.jsonl"), "--json",
                              str(tmp_path / "e.json"), "--metric", "f1"])
    assert out.exit_code == 0, out.output
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["models"]["a"]["metric"] == "f1" and "a - b" in saved["differences"]
    assert "f1 corrected by the audit" in out.output
    out = runner.invoke(app, ["estimate", str(run_dir), "--gold", str(tmp_path / "nowhere.jsonl")])
    assert out.exit_code == 2 and "error:" in out.output
    out = runner.invoke(app, ["estimate", str(run_dir), "--gold", str(tmp_path / "pilot.jsonl"), "--metric", "x"])
    assert out.exit_code == 2


# ---------------------------------------------------------------------------------------------------------------
# Real data: ArgKP's crowd labels
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_argkp_corrected_interval_holds_the_truth(tmp_path: Path) -> None:
    """Embedded default as matcher, crowd labels of a random 30% of the samples as gold: the corrected interval
    contains the all-sample gold RC, the raw mean does not."""
    from benchmarks.estimate_argkp import argkp_estimate

    res = argkp_estimate(DATA, tmp_path, share=0.3, seed=0)
    e, truth = res["estimate"], res["truth"]
    lo, hi = e["corrected"]["ci"]
    assert lo <= truth <= hi
    assert not e["raw"]["ci"][0] <= truth <= e["raw"]["ci"][1]


def test_model_stratified_audit_is_uniform_within_a_model(tmp_path: Path) -> None:
    """An audit stratified by model draws each model's units uniformly: per model, no weighting; undrawn labels
    are left out with a warning."""
    matcher, gold = corpus(40, np.random.default_rng(7))
    run = load_run(make_run(tmp_path / "run", matcher, {f"s{k}": "math" if k < 10 else "chat" for k in range(40)}))
    drawn = [k for k in gold if int(k[0][1:]) % 2 == 0]
    write_jsonl(tmp_path / "gold.jsonl", cells(gold))  # labels for more units than the audit drew
    write_jsonl(tmp_path / "audit.jsonl",
                [asdict(AuditUnit(s, m, None, ["h"], ["s"], 0.5, stratum=m)) for s, m in drawn])
    found = read_audit(run, tmp_path / "gold.jsonl", tmp_path / "audit.jsonl")
    assert not found.by_domain and set(found.gold) == set(drawn)
    assert any("not drawn" in w for w in found.warnings)
    a = estimate_run(run, found)[0]["models"]["a"]
    ys = [gold[(f"s{k}", "a")][0][0] for k in range(0, 40, 2)]
    assert a["n_gold"] == 20 and a["gold_only"]["mean"] == pytest.approx(np.mean(ys))
