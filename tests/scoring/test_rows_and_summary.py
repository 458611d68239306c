"""The scoring package's conventions: the results.jsonl row type, the compat table, one best-pick matcher, the
status of rows saved before statuses existed, the typed config sections, and the import's record reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

import rationalerm
import rationalerm.config
from rationalerm._util.files import read_jsonl
from rationalerm.errors import LoadError
from rationalerm.runs.import_metajudge import import_answers
from rationalerm.scoring import metajudge, settings
from rationalerm.scoring.assign import as_matrix, best_pick
from rationalerm.scoring.metrics import COMPAT, rules, score_matrices
from rationalerm.scoring.rows import ResultRow, row_status
from rationalerm.scoring.settings import Compat, OutcomeConfig, ScoringConfig
from rationalerm.scoring.stats import Bootstrap
from tests.helpers.paths import TEST_DATA

REQUIRED = ResultRow.__required_keys__
ALL = REQUIRED | ResultRow.__optional_keys__


@pytest.mark.parametrize("run", ["ex", "ex-compat", "ex-cut"])
def test_result_row_names_every_key_a_run_writes(run: str) -> None:
    rows = read_jsonl(TEST_DATA / "pre_layout" / run / "results.jsonl")
    for row in rows:
        assert REQUIRED <= row.keys() <= ALL, sorted(row.keys() ^ ALL)
    assert {"details", "pairs", "status"} <= set().union(*(r.keys() for r in rows))


def test_compat_table_covers_every_mode_and_rejects_others() -> None:
    names, none = get_args(Compat)  # Literal[...] | None
    assert none is type(None) and set(COMPAT) == {None, *get_args(names)}
    assert rules("metajudge").answer is metajudge.score_answer and rules(None).answer is None
    with pytest.raises(ValueError, match="unknown compat mode 'nope'"):
        score_matrices([[[1.0]]], compat="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown compat mode"):
        score_matrices([], compat="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize("matrix, min_score, want", [
    ([[0.5, 0.5, 0.2], [0.0, 0.0, 0.0], [0.1, 0.9, 0.9]], 0.0, [(0, 0, 0.5), (2, 1, 0.9)]),  # first on ties
    ([[0.5, 0.5, 0.2], [0.0, 0.0, 0.0], [0.1, 0.9, 0.9]], 0.6, [(2, 1, 0.9)]),  # masked before picking
    ([[1.0, 0.0], [1.0, 0.0]], 0.0, [(0, 0, 1.0), (1, 0, 1.0)]),  # two human items may share a model item
    ([[], []], 0.0, []),  # no model items
    ([], 0.0, []),  # no human items
])
def test_best_pick_is_the_compat_matcher(matrix: list[list[float]], min_score: float, want: list[Any]) -> None:
    assert best_pick(matrix, min_score) == want
    assert rationalerm.best_pick is best_pick
    w = as_matrix(matrix)
    picks = metajudge.picks_from_matrix(w, min_score)
    assert len(picks) == w.shape[0]
    assert [(r - 1, s - 1, v) for r, s, v in picks if s] == want
    assert all(v == 0.0 for _, s, v in picks if not s)


def test_row_status_of_rows_saved_before_statuses() -> None:
    base: Any = {"matrix": [[1.0]]}
    assert row_status({**base, "status": "failed"}) == "failed"
    assert row_status(base) == "valid"
    assert row_status({**base, "valid": True}) == "valid"
    assert row_status({**base, "valid": False}) == "skipped"
    assert row_status({"matrix": None, "valid": False}) == "error"


def test_config_sections_live_in_scoring_and_stay_importable_from_config() -> None:
    assert rationalerm.config.ScoringConfig is settings.ScoringConfig
    assert rationalerm.config.OutcomeConfig is settings.OutcomeConfig
    assert ScoringConfig(bootstrap=7, confidence=0.9, seed=3).bootstrap_settings() == Bootstrap(7, 0.9, 3)
    defaults = OutcomeConfig()
    assert OutcomeConfig.saved(None) == OutcomeConfig.saved({}) == OutcomeConfig.saved({"outcome": None}) == defaults
    got = OutcomeConfig.saved({"outcome": {"deceptive_threshold": 0}, "scoring": {"anything": 1}})
    assert got.deceptive_threshold == 0.0 and isinstance(got.deceptive_threshold, float) and got.label_field == "label"
    with pytest.raises(ValueError):
        OutcomeConfig.saved({"outcome": {"label_feild": "x"}})


def _answer(model: str = "m", **metadata: Any) -> str:
    meta = {"human-checklist": ["h1", "h2"], f"{model}-checklist": ["s1"], **metadata}
    return json.dumps({"metadata": meta, "samples": [{"generated_text": "<RESULT_START>\n- R1@S1: 1.0\n- R2@S0: 0\n"
                                                                       "<RESULT_END>"}]})


def test_import_reads_through_the_record_reader(tmp_path: Path) -> None:
    """Blank lines skipped, bad lines reported as path:line and skipped, the model named by the first good row."""
    src = tmp_path / "answers.jsonl"
    src.write_text("{oops\n" + _answer() + "\n\n[1, 2]\n" + _answer() + "\n")
    out = import_answers([src], tmp_path / "out")
    first, second = (str(s) for s in out.skipped)
    assert first.startswith(f"{src}:1: invalid JSON (") and second == f"{src}:4: row must be a JSON object, got list"
    assert [r["source"] for r in out.rows] == [f"{src}:2", f"{src}:5"]
    assert all(REQUIRED <= r.keys() <= ALL and r["model"] == "m" and r["status"] == "valid" for r in out.rows)
    assert out.metrics["skipped"]["count"] == 2 and out.metrics["models"]["m"]["n_total"] == 2
    with pytest.raises(LoadError, match=r"missing\.jsonl: no such file"):
        import_answers([tmp_path / "missing.jsonl"], tmp_path / "o2")
    nameless = tmp_path / "nameless.jsonl"
    nameless.write_text(json.dumps({"metadata": {"human-checklist": ["h"]}}) + "\n")
    with pytest.raises(LoadError, match=r"nameless\.jsonl:1: no '<model>-checklist' key"):
        import_answers([nameless], tmp_path / "o3")
