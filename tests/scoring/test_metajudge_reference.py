"""`compat: metajudge` equals the public reference analysis code on 3,000 of its own answers.

`tests/data/metajudge_reference/` holds reference-format answer rows (clean ones and the malformations real
judges produce) with what the reference analysis script computes per row and per file. Rules come from
DESIGN.md; the expected numbers are only compared against.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rationalerm._util.files import read_json, read_jsonl
from rationalerm.analysis.compare import compare_runs
from rationalerm.runs.directory import load_run
from rationalerm.runs.import_metajudge import import_answers
from rationalerm.scoring.metajudge import format_errors, parse_answer, score_picks
from tests.helpers.data import METAJUDGE_REFERENCE, metajudge_reference_rows
from tests.helpers.paths import ROOT

TOL = 1e-9
METRICS = {"precision": "precision", "recall": "recall", "f1": "f1", "ap": "average_precision"}


@pytest.mark.parametrize("name", ["clean", "messy"])
def test_import_equals_the_reference_on_every_row_and_the_corpus(name: str, tmp_path: Path) -> None:
    src_file = metajudge_reference_rows(name, tmp_path / "in")
    rows_in = [json.loads(line) for line in src_file.read_text().splitlines()]
    out = import_answers([src_file], tmp_path / name)
    assert len(out.rows) == len(rows_in) == 1500 and not out.skipped
    mismatches = []
    for row, src in zip(out.rows, rows_in):
        want = src["expected"]
        if row["status"] != want["status"]:
            mismatches.append((row["source"], row["status"], want))
        elif want["status"] == "valid":
            for ours, theirs in METRICS.items():
                if abs(row[ours] - want[theirs]) > TOL:
                    mismatches.append((row["source"], ours, row[ours], want[theirs]))
    assert mismatches == []
    corpus = read_json(METAJUDGE_REFERENCE / f"{name}.corpus.json")
    m = read_json(tmp_path / name / "metrics.json")["models"][corpus["model"]]
    assert m["n_samples"] == corpus["valid_samples"] and m["invalid"]["count"] == corpus["error_samples"]
    assert m["n_total"] == corpus["total_samples"]
    for ours, theirs in METRICS.items():
        assert abs(m[ours] - corpus[theirs]) <= TOL
    assert abs(m["std"]["precision"] - corpus["precision_std"]) <= TOL
    assert abs(m["std"]["recall"] - corpus["recall_std"]) <= TOL
    # results.jsonl keeps input order, the source line, the parsed picks and the status
    saved = read_jsonl(tmp_path / name / "results.jsonl")
    assert [r["source"] for r in saved] == [f"{src_file}:{i}" for i in range(1, 1501)]
    assert all(r["status"] in ("valid", "skipped", "error") and "picks" in r for r in saved)
    # one unit per row, numbered in the reference's order (the rows share identical placeholder metadata)
    assert [r["id"] for r in saved] == [str(i) for i in range(1, 1501)]


def test_design_rules_on_worked_examples() -> None:
    # rule 6: kept picks in S-index order, a zero-score pick still takes a rank
    assert score_picks([(1, 1, 0.5), (2, 2, 1.0)], 2, 2).ap == pytest.approx(0.625)
    s = score_picks([(1, 2, 0.0), (2, 1, 1.0)], 2, 2)
    assert s.ap == pytest.approx((1.0 / 1 + 1.0 / 2) / 2) and s.recall == pytest.approx(0.5)
    # rule 4: picks past S5 are dropped, precision over min(m, 5); R0 picks are kept (the reference's quirk)
    s = score_picks([(1, 6, 1.0), (2, 1, 0.5)], 2, 6)
    assert (s.precision, s.recall) == (pytest.approx(0.1), pytest.approx(0.25))
    assert score_picks([(0, 1, 1.0), (1, 0, 0.0)], 2, 3).recall == pytest.approx(0.5)
    # rules 2 and 3, in the reference's order: bad line count is an error, 0 or > 10 items a skip
    assert score_picks([(1, 1, 1.0)], 2, 3).status == "error"
    assert score_picks([(1, 1, 1.0)], 1, 11).status == "skipped"
    assert score_picks([(1, 0, 0.0)], 1, 0).status == "skipped"
    assert score_picks([], 1, 3, error="RESULT_START and RESULT_END tags not found").status == "error"


def test_reference_parser_reads_the_first_block_and_tolerates_markdown() -> None:
    text = "x <RESULT_START>\n**- R1@S2: 0.5** trailing\n<RESULT_END> then <RESULT_START>\n- R1@S1: 1\n<RESULT_END>"
    assert parse_answer(text).picks == [(1, 2, 0.5)]
    assert parse_answer("<RESULT_START>\n- R1@S1: 1.5\n<RESULT_END>").error
    assert parse_answer("<RESULT_START>\n- R1@S1 1\n<RESULT_END>").error
    assert format_errors("<RESULT_START>\n- R2@S1: 1\n- R1@S1: 1\n<RESULT_END>")  # the infer script re-asks
    assert not format_errors("<RESULT_START>\n- R1@S1: 1\n- R2@S0: 0\n<RESULT_END>")


def test_cli_import_then_rescore_under_the_paper_rules(tmp_path: Path) -> None:
    env_cmd = [sys.executable, "-m", "rationalerm"]
    out = tmp_path / "imp"
    messy = metajudge_reference_rows("messy", tmp_path / "in")
    res = subprocess.run([*env_cmd, "import-metajudge", str(messy), "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "522 valid, 682 errors, 296 skipped of 1500 rows" in res.stdout and "Errors" in res.stdout
    compat = read_json(out / "metrics.json")["models"]["model-x"]
    res = subprocess.run([*env_cmd, "score", str(out), "--compat", "none", "--out", str(tmp_path / "paper")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "paper"
    paper = read_json(out / "metrics.json")
    assert paper["scoring"]["compat"] is None
    rows = read_jsonl(out / "results.jsonl")
    # the paper's strict parser: two blocks, duplicate lines, R0 or S past m are errors, never scored
    two = [r for r in rows if r["judge_output"]["raw"] and r["judge_output"]["raw"].count("<RESULT_START>") > 1]
    assert two and all(r["status"] == "error" for r in two)
    assert paper["models"]["model-x"]["n_samples"] != compat["n_samples"]
    assert all(0 <= r[k] <= 1 for r in rows for k in METRICS)


def test_import_gives_one_unit_per_row(tmp_path: Path) -> None:
    """Explicit ids are kept; rows without one are numbered by their line; a (sample, model) that repeats (two
    files of one model, a repeated id) gets #2, #3.. so compare sees every answer, never a folded unit."""
    answer = {"samples": [{"generated_text": "<RESULT_START>\n- R1@S1: 1\n<RESULT_END>"}],
              "metadata": {"human-checklist": ["h"], "model-x-checklist": ["s"]}}
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps(r) for r in [answer, answer, {**answer, "id": "q"}, {**answer, "id": "q"}]))
    b.write_text(json.dumps(answer) + "\n")
    out = import_answers([a, b], tmp_path / "imp")
    assert [r["id"] for r in out.rows] == ["1", "2", "q", "q#2", "1#2"]
    run = load_run(tmp_path / "imp")
    assert len(run.units) == len(run.rows) == 5
    assert compare_runs(run, run)["units"] == 5
