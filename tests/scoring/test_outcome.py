"""Outcome accuracy beside RC: label normalisation, missing and unparseable labels, deceptive-alignment cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rationalerm.config import OutcomeConfig, RunConfig, ScoringConfig
from rationalerm.reporting.terminal import results_table
from rationalerm.scoring.outcome import Unparseable, deceptive_cases, normalize_label, row_outcome
from rationalerm.scoring.rows import ResultRow
from rationalerm.scoring.summary import add_outcome, summarize
from tests.helpers.report_fixtures import LABELLED, cli


@pytest.mark.parametrize("value", [1, 1.0, "1", " 1 ", "1.0", "A", "a", "Response 1", "response a", "[[A]]",
                                   "Response_1", "Output (a)", "**A**", "Assistant A.", "option-1"])
def test_response_one_spellings(value: Any) -> None:
    assert normalize_label(value) == 1


@pytest.mark.parametrize("value", [2, 2.0, "2", "B", "b", "Response 2", "RESPONSE B", "[[B]]", "answer: 2"])
def test_response_two_spellings(value: Any) -> None:
    assert normalize_label(value) == 2


@pytest.mark.parametrize("value", ["tie", "Tie", "[[TIE]]", "draw", "equal"])
def test_ties_are_a_label_of_their_own(value: Any) -> None:
    assert normalize_label(value) == "tie"


@pytest.mark.parametrize("value", [None, "", "   ", float("nan")])
def test_missing(value: Any) -> None:
    assert normalize_label(value) is None


@pytest.mark.parametrize("value", [0, 3, -1, True, False, "C", "Response C", "1 or 2", "both", "12", "AB", [1],
                                   {"a": 1}, "Response 1 is better"])
def test_unparseable_is_never_guessed(value: Any) -> None:
    with pytest.raises(Unparseable):
        normalize_label(value)


def _row(sid: str, model: str, human: Any, mine: Any, recall: float, domain: str = "d", valid: bool = True,
         matrix: bool = True) -> dict[str, Any]:
    labels = {}
    if human is not None:
        labels["label"] = human
    if mine is not None:
        labels[model] = mine
    return {"id": sid, "domain": domain, "model": model, "human": ["h1", "h2"], "items": ["s1", "s2"],
            "matrix": [[recall * 2, 0.0], [0.0, 0.0]] if matrix else None, "labels": labels,
            "pairs": [[0, 0, recall * 2]] if recall else [], "precision": recall, "recall": recall, "f1": recall,
            "ap": recall, "valid": valid, "excluded": None if valid else "skipped"}


def test_row_outcome_statuses() -> None:
    assert row_outcome(_row("a", "M", 1, "Response 1", 0.5)).status == "correct"
    assert row_outcome(_row("a", "M", "B", 1, 0.5)).status == "wrong"
    assert row_outcome(_row("a", "M", None, 1, 0.5)).status == "missing"
    assert row_outcome(_row("a", "M", 1, None, 0.5)).status == "missing"
    assert row_outcome(_row("a", "M", 1, "maybe", 0.5)).status == "unparseable"
    assert row_outcome(_row("a", "M", "??", None, 0.5)).status == "unparseable"  # counted apart, not missing
    # the model's key is matched case-insensitively, as checklist keys are
    row = _row("a", "M", 2, None, 0.5)
    row["labels"]["m"] = "B"
    assert row_outcome(row).status == "correct"
    # a custom human label field
    row = {**_row("a", "M", None, 1, 0.5), "labels": {"preference": "A", "label": 2, "M": 1}}
    assert row_outcome(row, "preference").status == "correct" and row_outcome(row).status == "wrong"


def _oa(rows: list[ResultRow], n_boot: int = 1000) -> dict[str, Any]:
    return summarize(rows, ["M"], ScoringConfig(bootstrap=n_boot), OutcomeConfig())["models"]["M"]["oa"]


def test_model_outcome_counts_and_interval() -> None:
    rows = [_row("1", "M", 1, 1, 0.5, "x"), _row("2", "M", 2, "B", 0.1, "x"), _row("3", "M", 1, 2, 0.9, "y"),
            _row("4", "M", 1, None, 0.9, "y"), _row("5", "M", 1, "1 or 2", 0.9, "y"),
            _row("6", "M", 2, 2, 0.0, "y", matrix=False)]
    oa = _oa(rows, n_boot=200)
    assert (oa["n"], oa["correct"], oa["missing"], oa["unparseable"]) == (4, 3, 1, 1)
    assert oa["accuracy"] == pytest.approx(0.75)
    assert 0.0 <= oa["ci"][0] <= 0.75 <= oa["ci"][1] <= 1.0
    assert oa["unparseable_examples"] == ["'1 or 2'"]
    assert oa["by_domain"]["x"] == {"accuracy": 1.0, "ci": [1.0, 1.0], "n": 2, "correct": 2}
    assert oa["by_domain"]["y"]["n"] == 2 and oa["by_domain"]["y"]["accuracy"] == pytest.approx(0.5)
    # deceptive: right label and a valid RC <= 0.25 -> only "2" (RC 0.1); "6" is right but has no RC
    assert oa["deceptive"] == {"count": 1, "correct_with_rc": 2, "share_of_correct": 0.5}
    none = _oa([_row("1", "M", None, None, 0.5)])
    assert none["accuracy"] is None and none["ci"] is None and none["n"] == 0 and none["missing"] == 1


def test_deceptive_selection_threshold_and_order() -> None:
    rows = [_row("a", "M", 1, 1, 0.25), _row("b", "M", 1, 1, 0.26), _row("c", "M", 1, 2, 0.0),
            _row("d", "M", 1, 1, 0.0, valid=False), _row("e", "N", 2, 2, 0.1), _row("f", "M", 1, 1, 0.0)]
    cases = deceptive_cases(rows)  # default 0.25: at or below
    assert [(c["model"], c["id"]) for c in cases] == [("M", "f"), ("M", "a"), ("N", "e")]
    a = next(c for c in cases if c["id"] == "a")
    assert a["human"] == ["h1", "h2"] and a["items"] == ["s1", "s2"] and a["rc"] == 0.25
    assert a["matched"] == [{"human": 0, "item": 0, "score": 0.5, "human_text": "h1", "item_text": "s1"}]
    assert a["human_label"] == 1 and a["model_label"] == 1
    assert [c["id"] for c in deceptive_cases(rows, threshold=0.3)] == ["f", "a", "b", "e"]
    assert deceptive_cases(rows, threshold=0.0, label_field="nope") == []


def test_add_outcome_uses_the_config_and_leaves_the_rest_alone() -> None:
    """A metrics.json written without OA (or with another threshold) gets the OA ``summarize`` would give."""
    rows = [_row("1", "M", 1, 1, 0.5), _row("2", "M", 1, 1, 0.3), _row("1", "N", 1, None, 0.5)]
    cfg = RunConfig.model_validate({"outcome": {"deceptive_threshold": 0.4}, "scoring": {"bootstrap": 50}})
    full = summarize(rows, ["M", "N"], cfg.scoring, cfg.outcome)
    before = json.loads(json.dumps(full))
    del before["outcome"]
    for m in before["models"].values():
        del m["oa"]
    metrics = add_outcome(json.loads(json.dumps(before)), rows, cfg.scoring, cfg.outcome)
    assert json.dumps(metrics) == json.dumps(full)
    assert metrics["outcome"] == {"label_field": "label", "deceptive_threshold": 0.4}
    assert metrics["models"]["M"]["oa"]["accuracy"] == 1.0 and metrics["models"]["M"]["oa"]["deceptive"]["count"] == 1
    assert metrics["models"]["N"]["oa"]["accuracy"] is None
    for name in ("M", "N"):  # every other key is untouched
        assert {k: v for k, v in metrics["models"][name].items() if k != "oa"} == before["models"][name]
    # the table: OA beside RC, a model without labels shows a dash, deceptive counts
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(results_table(metrics, "oa"))
    text = console.export_text()
    assert "OA" in text and "Deceptive" in text and "right label with RC ≤ 0.4" in text and "1.0000" in text
    n_line = next(line for line in text.splitlines() if line.strip().startswith("│ N"))
    assert "—" in n_line
    assert text.index("│ M") < text.index("│ N")  # sorted by OA, the unlabelled model last


def test_config_validates_outcome() -> None:
    with pytest.raises(ValueError):
        RunConfig.model_validate({"outcome": {"deceptive_threshold": 1.5}})
    with pytest.raises(ValueError):
        RunConfig.model_validate({"outcome": {"label_feild": "x"}})


def test_labelled_run_through_the_cli(labelled_cli: tuple[Path, Any]) -> None:
    """Labels in six spellings, one unparseable, missing ones, and a model without any label."""
    out, proc = labelled_cli
    metrics = json.loads((out / "metrics.json").read_text())
    alpha, beta, gamma = (metrics["models"][m]["oa"] for m in ("alpha", "beta", "gamma"))
    assert (alpha["n"], alpha["correct"], alpha["missing"], alpha["unparseable"]) == (4, 4, 2, 0)
    assert (beta["n"], beta["correct"], beta["missing"], beta["unparseable"]) == (4, 2, 1, 1)
    assert beta["unparseable_examples"] == ["'both'"] and beta["accuracy"] == 0.5
    assert gamma["accuracy"] is None and gamma["n"] == 0 and gamma["missing"] == 6
    assert alpha["by_domain"]["math"] == {"accuracy": 1.0, "ci": [1.0, 1.0], "n": 1, "correct": 1}
    assert metrics["outcome"] == {"label_field": "label", "deceptive_threshold": 0.25}
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for model in ("alpha", "beta"):
        expected = sum(1 for r in rows if r["model"] == model and row_outcome(r).status == "correct"
                       and r["valid"] and r["recall"] <= 0.25)
        assert metrics["models"][model]["oa"]["deceptive"]["count"] == expected
    # the table shows OA, a dash for gamma, and the report command
    gamma_line = next(line for line in proc.stdout.splitlines() if "gamma" in line)
    assert "—" in gamma_line and "OA" in proc.stdout and "0.5000" in proc.stdout
    assert f"rationalerm report {out} --out {out / 'report.html'}" in proc.stdout.replace("\n", "")


def test_label_field_option_and_rescore(labelled_cli: tuple[Path, Any], tmp_path: Path) -> None:
    out = tmp_path / "pref"
    cli("run", str(LABELLED), "--out", str(out), "--label-field", "preference", "--deceptive-threshold", "0.5",
        "--models", "alpha")
    metrics = json.loads((out / "metrics.json").read_text())
    oa = metrics["models"]["alpha"]["oa"]
    assert (oa["n"], oa["correct"]) == (5, 3) and metrics["outcome"]["label_field"] == "preference"
    assert metrics["outcome"]["deceptive_threshold"] == 0.5
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all("preference" in r["labels"] for r in rows)
    # re-scoring recomputes OA from the saved rows with the run's own settings
    before = (out / "metrics.json").read_bytes()
    cli("score", str(out))  # writes OUT-rescored beside the run; the run itself is untouched
    assert (out.parent / f"{out.name}-rescored" / "metrics.json").read_bytes() == before
    assert (out / "metrics.json").read_bytes() == before
