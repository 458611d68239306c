"""The corrected figures in the report: ``rationalerm estimate`` keeps its result in the run directory
(``estimate.json``), and ``rationalerm report`` shows the corrected RC beside the raw one while the estimate still
matches the run and its gold, and says why not once a re-score (or new labels) made it stale.

The run is examples/ scored by the embedded default; the gold is a second real run (threshold 0.35) on 10 of its 14
samples, written as audit labels."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rationalerm._util.files import read_json, read_jsonl, write_jsonl
from rationalerm._util.hashing import file_sha256
from rationalerm.cli import app
from rationalerm.config import load_config
from rationalerm.pipeline import run as run_pipeline
from rationalerm.reporting.html import write_report
from tests.helpers.report_fixtures import EXAMPLE, browser_available, browser_page, open_report

AUDITED = 10


@pytest.fixture(scope="module")
def gold_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every cell of the first 10 samples (both models) as a stronger-matching run scores it, in audit form."""
    base = tmp_path_factory.mktemp("gold")
    run_pipeline(EXAMPLE, load_config(None, {"judge.threshold": 0.35}), base / "run")
    rows = read_jsonl(base / "run" / "results.jsonl")
    ids = sorted({r["id"] for r in rows})[:AUDITED]
    write_jsonl(base / "labels.jsonl", [
        {"id": r["id"], "model": r["model"], "i": i, "j": j, "label": v}
        for r in rows if r["id"] in ids for i, line in enumerate(r["matrix"]) for j, v in enumerate(line)])
    return base / "labels.jsonl"


@pytest.fixture
def estimated(example_run: Path, gold_labels: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the example run, estimated through the CLI: (the run, the --json output)."""
    run = tmp_path / "run"
    shutil.copytree(example_run, run)
    out = CliRunner().invoke(app, ["estimate", str(run), "--gold", str(gold_labels), "--json",
                                   str(tmp_path / "e.json")])
    assert out.exit_code == 0, out.output
    assert f"wrote {run / 'estimate.json'}" in out.output.replace("\n", "")
    return run, read_json(tmp_path / "e.json")


def corrected_cells(text: str) -> dict[str, dict[str, tuple[str, str]]]:
    """model -> {data-key: (data-value, shown text)} of the report's corrected table."""
    body = text[text.index('<table class="grid corrected"'):]
    body = body[:body.index("</table>")]
    out = {}
    for tr in re.finditer(r'<tr data-model="([^"]*)">(.*?)</tr>', body, re.S):
        out[html.unescape(tr.group(1))] = {
            m.group(1): (m.group(2), re.sub(r"<[^>]+>", "", m.group(3)).strip())
            for m in re.finditer(r'<td[^>]*data-key="([^"]+)" data-value="([^"]*)"[^>]*>(.*?)</td>', tr.group(2), re.S)}
    return out


def test_estimate_is_kept_in_the_run_with_what_it_was_computed_from(
        estimated: tuple[Path, dict], gold_labels: Path) -> None:
    run, printed = estimated
    saved = read_json(run / "estimate.json")
    assert saved["result"] == printed  # the same estimate as --json wrote
    assert saved["results_sha256"] == file_sha256(run / "results.jsonl")
    assert saved["metrics_sha256"] == file_sha256(run / "metrics.json")
    assert saved["gold"] == {"path": str(gold_labels.resolve()), "sha256": file_sha256(gold_labels)}
    assert saved["metric"] == "recall" and saved["confidence"] == 0.95 and saved["audit"] is None
    assert not [p for p in os.listdir(run) if p.endswith(".tmp")]  # written atomically: no temporary left


def test_report_shows_corrected_rc_beside_raw(estimated: tuple[Path, dict], tmp_path: Path) -> None:
    run, printed = estimated
    text = write_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    metrics = read_json(run / "metrics.json")["models"]
    cells = corrected_cells(text)
    assert sorted(cells) == sorted(metrics) and 'href="#corrected"' in text
    assert "plus its mean error on the audited samples" in text  # what "corrected" means, said on the page
    for model, c in cells.items():
        e = printed["models"][model]
        # raw: the run's own RC and bootstrap interval, as in the results table
        assert float(c["raw"][0]) == pytest.approx(metrics[model]["recall"], abs=1e-12)
        assert [float(x) for x in c["raw_ci"][0].split(",")] == pytest.approx(metrics[model]["ci"]["recall"])
        assert c["raw"][1] == f"{metrics[model]['recall']:.4f}"
        # corrected: the estimate's, exactly
        assert float(c["corrected"][0]) == e["corrected"]["mean"]
        assert c["corrected"][1] == f"{e['corrected']['mean']:.4f}"
        lo, hi = (float(x) for x in c["corrected_ci"][0].split(","))
        assert [lo, hi] == e["corrected"]["ci"] and c["corrected_ci"][1] == f"{lo:.3f}–{hi:.3f}"
        assert int(c["n_gold"][0]) == e["n_gold"] == AUDITED and c["n_gold"][1] == f"{AUDITED} of {e['n']}"
    # the gold matches more than the run's matcher here, and the correction moves RC towards it
    assert all(printed["models"][m]["corrected"]["mean"] > metrics[m]["recall"] for m in metrics)


def test_report_says_a_stale_estimate_is_not_shown(estimated: tuple[Path, dict], gold_labels: Path,
                                                   tmp_path: Path) -> None:
    run, _ = estimated
    out = CliRunner().invoke(app, ["score", str(run), "--out", str(run), "--min-score", "0.3"])  # re-score in place
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.html")])
    assert out.exit_code == 0 and "estimate.json not shown" in out.output  # the command says so too
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<table class="grid corrected"' not in text
    assert "is not shown" in text and "changed since the estimate" in text and "re-scored or resumed" in text
    # estimated again, it is shown again; then new labels in the gold file make it stale in turn
    gold = tmp_path / "gold.jsonl"
    shutil.copy(gold_labels, gold)
    assert CliRunner().invoke(app, ["estimate", str(run), "--gold", str(gold)]).exit_code == 0
    assert '<table class="grid corrected"' in write_report([run], tmp_path / "r2.html").read_text(encoding="utf-8")
    rows = read_jsonl(gold)
    rows[0]["label"] = 1 - rows[0]["label"]
    write_jsonl(gold, rows)
    text = write_report([run], tmp_path / "r3.html").read_text(encoding="utf-8")
    assert '<table class="grid corrected"' not in text and "the gold labels changed since" in text


def test_a_gold_run_is_recorded_by_its_results(example_run: Path, gold_labels: Path, tmp_path: Path) -> None:
    """Gold from a strong judge's run directory: its results.jsonl is what the estimate records and checks."""
    run = tmp_path / "run"
    shutil.copytree(example_run, run)
    gold_run = gold_labels.parent / "run"
    assert CliRunner().invoke(app, ["estimate", str(run), "--gold", str(gold_run)]).exit_code == 0
    saved = read_json(run / "estimate.json")
    results = gold_run.resolve() / "results.jsonl"
    assert saved["gold"] == {"path": str(results), "sha256": file_sha256(results)}
    assert {e["n_gold"] for e in saved["result"]["models"].values()} == {14}  # every sample: a census
    assert '<table class="grid corrected"' in write_report([run], tmp_path / "r.html").read_text(encoding="utf-8")


@pytest.mark.skipif(not browser_available(), reason="needs playwright and chromium")
def test_corrected_table_in_chromium(estimated: tuple[Path, dict], tmp_path: Path) -> None:
    run, printed = estimated
    report = write_report([run], tmp_path / "r.html")
    with browser_page() as page:
        open_report(page, report)
        assert page.errors == []
        page.click("header.top nav a[href='#corrected']")
        assert page.is_visible("table.corrected")
        shown = page.eval_on_selector_all(
            "table.corrected tbody tr", "rs => rs.map(r => [r.dataset.model, r.cells[3].innerText])")
        assert sorted(map(tuple, shown)) == sorted((m, f"{e['corrected']['mean']:.4f}")
                                                   for m, e in printed["models"].items())
        assert page.is_visible("text=plus its mean error on the audited samples")
