"""DESIGN.md "Empty and blank items": per model, never the whole record; blank items keep their positions."""

from __future__ import annotations

import json
from pathlib import Path

from rationalerm import RunConfig, run
from rationalerm.config import ScoringConfig


def test_empty_checklist_scores_zero_for_that_model_only_and_blanks_are_never_matched(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "human-checklist": ["The answer is wrong.", "  ", "It cites no source."],
         "good-checklist": ["The answer is wrong.", "", "It cites no source."], "empty-checklist": []},
    ]) + "\n", encoding="utf-8")
    paper = run(data, RunConfig(), tmp_path / "paper")
    rows = {r["model"]: r for r in paper.rows}
    good, empty = rows["good"], rows["empty"]
    assert good["human"][1] == "" and good["items"][1] == ""
    assert good["matrix"][1] == [0.0, 0.0, 0.0] and [r[1] for r in good["matrix"]] == [0.0, 0.0, 0.0]
    assert [(i, j) for i, j, _ in good["pairs"]] == [(0, 0), (2, 2)]  # indices refer to the input lists
    assert good["details"][1][1] is None  # no judge call for a blank item
    assert empty["status"] == "valid" and empty["recall"] == 0.0 and empty["ap"] == 0.0
    assert good["recall"] == 2 / 3
    assert paper.metrics["models"]["empty"]["n_samples"] == 1

    compat = run(data, RunConfig(scoring=ScoringConfig(compat="metajudge")), tmp_path / "compat")
    rows = {r["model"]: r for r in compat.rows}
    assert rows["empty"]["status"] == "skipped" and rows["good"]["status"] == "valid"
    assert compat.metrics["models"]["empty"]["excluded"] == 1 and compat.metrics["models"]["good"]["n_samples"] == 1
