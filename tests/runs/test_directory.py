"""The one run-directory reader (``runs/directory.py``), gold labels and the re-score's inputs, on small runs
written here: typed config, OA completed only when needed, rows kept in file order, errors naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rationalerm._util.files import read_json, write_json, write_jsonl
from rationalerm.config import RunConfig
from rationalerm.errors import ConfigError, LoadError, OutputError
from rationalerm.runs.directory import RunJson, iter_results, load_run, load_runs, saved_config, write_run
from rationalerm.runs.gold import gold_cells, load_gold
from rationalerm.runs.import_metajudge import import_answers
from rationalerm.runs.rescore import rescore_run, scoring_changes
from tests.helpers.report_fixtures import make_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "run", 12, models=("a", "b"), bootstrap=50)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_load_run_reads_the_three_files_typed(run: Path) -> None:
    saved = load_run(run)
    assert isinstance(saved.config, RunConfig) and saved.config.scoring.bootstrap == 50
    assert saved.rows == [orjson.loads(line) for line in (run / "results.jsonl").read_bytes().splitlines()]
    assert saved.metrics == read_json(run / "metrics.json") and saved.meta == read_json(run / "run.json")
    assert saved.models == ["a", "b"] and saved.name == "run" and saved.date == "2026-01-01T00:00:00+00:00"
    assert list(saved.units) == [(r["id"], r["model"]) for r in saved.rows]
    assert saved.label_field == "label" and saved.threshold == 0.25


@pytest.mark.parametrize("name", ["results.jsonl", "metrics.json", "run.json"])
def test_a_missing_file_names_it(run: Path, tmp_path: Path, name: str) -> None:
    broken = _copy(run, tmp_path / "broken")
    (broken / name).unlink()
    with pytest.raises(OutputError, match=rf"{name}: missing; is .*broken a run directory\?"):
        load_run(broken)


def test_a_bad_results_line_names_file_and_line(run: Path, tmp_path: Path) -> None:
    broken = _copy(run, tmp_path / "broken")
    lines = (broken / "results.jsonl").read_bytes().splitlines()
    (broken / "results.jsonl").write_bytes(b"\n".join([lines[0], b"", b"{oops", *lines[1:]]) + b"\n")
    with pytest.raises(LoadError, match=r"results\.jsonl:3: invalid JSON"):
        load_run(broken)
    assert [r.line for r in iter_results(broken)][:3] == [1, 3, 4]  # blank lines keep the numbering


def test_rows_keep_every_line_in_file_order_even_with_a_repeated_unit(run: Path, tmp_path: Path) -> None:
    """An imported file may repeat an id: the rows (report, export) keep both, ``units`` (compare) the last."""
    twice = _copy(run, tmp_path / "twice")
    rows = load_run(run).rows
    write_jsonl(twice / "results.jsonl", [*rows, {**rows[0], "recall": 0.5}])
    saved = load_run(twice)
    assert len(saved.rows) == len(rows) + 1 and len(saved.units) == len(rows)
    assert saved.units[(rows[0]["id"], rows[0]["model"])]["recall"] == 0.5


def test_saved_config_keeps_the_sections_that_validate() -> None:
    """A run.json of another version (an unknown judge key): the outcome and scoring sections still count."""
    raw = {"judge": {"type": "embedding", "no_such_key": 1}, "outcome": {"label_field": "pref",
                                                                         "deceptive_threshold": 0.4},
           "scoring": {"bootstrap": 7}, "gone": True}
    cfg = saved_config(raw)
    assert cfg.outcome.label_field == "pref" and cfg.outcome.deceptive_threshold == 0.4
    assert cfg.scoring.bootstrap == 7 and cfg.judge == RunConfig().judge
    assert saved_config(None) == RunConfig() == saved_config({})
    assert saved_config({"scoring": {"compat": "metajudge"}}).scoring.compat == "metajudge"


def test_with_outcome_recomputes_only_when_needed(run: Path, tmp_path: Path) -> None:
    saved = load_run(run)
    assert saved.with_outcome() is saved  # OA present: nothing recomputed
    old = _copy(run, tmp_path / "old")
    metrics = read_json(old / "metrics.json")
    for m in metrics["models"].values():
        m.pop("oa")
    metrics.pop("outcome")
    write_json(old / "metrics.json", metrics)
    completed = load_run(old).with_outcome()
    assert completed.metrics == saved.metrics  # the same OA as the run wrote
    other = saved.with_outcome(0.5)
    assert other.threshold == 0.5 == other.config.outcome.deceptive_threshold and saved.threshold == 0.25
    assert saved.metrics == read_json(run / "metrics.json")  # the loaded run is left as it was
    with pytest.raises(ConfigError, match="--deceptive-threshold"):
        saved.with_outcome(1.5)


def test_load_runs_names_runs_apart(run: Path, tmp_path: Path) -> None:
    other = _copy(run, tmp_path / "x" / "run")
    assert [r.name for r in load_runs([run, other])] == [f"{run.parent.name}/run", "x/run"]
    assert load_run(other, "mine").name == "mine"


def test_write_run_key_order_and_process(tmp_path: Path) -> None:
    """run.json's keys in the order every run has written them; ``process`` only when given."""
    write_run(tmp_path, inputs=[Path("in.jsonl")], config={}, rows=[], metrics={}, fingerprint={"judge": "x"},
              models=["m"], process={"judged": 1})
    meta = json.loads((tmp_path / "run.json").read_text())
    assert list(meta) == ["inputs", "config", "judge_fingerprint", "fingerprint_id", "versions", "models", "date",
                          "process"]
    assert list(meta) == list(RunJson.__annotations__)[: len(meta)]
    write_run(tmp_path, inputs=[], config={}, rows=None, metrics={}, fingerprint={}, models=[])
    assert "process" not in read_json(tmp_path / "run.json")


def test_gold_labels_jsonl_with_blank_lines_and_parquet(run: Path, tmp_path: Path) -> None:
    saved = load_run(run)
    row = saved.rows[0]
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": row["id"], "model": row["model"], "i": 0, "j": 0, "label": 1}) + "\n\n"
                    + json.dumps({"human": row["human"][0], "item": row["items"][-1], "label": 0}) + "\n")
    labels = load_gold(gold)
    cells = gold_cells(saved, labels)[(row["id"], row["model"])]
    assert cells[0, 0] == 1 and cells[0, -1] == 0
    gold.write_text(gold.read_text() + '\n{"id": "s", "label": 1}\n')
    with pytest.raises(LoadError, match=r"gold\.jsonl:5: needs either id/model/i/j or human/item"):
        load_gold(gold)  # the line as the file numbers it (blank lines count)
    pq.write_table(pa.Table.from_pylist([{"human": row["human"][0], "item": row["items"][-1], "label": 1}]),
                   tmp_path / "gold.parquet")
    assert load_gold(tmp_path / "gold.parquet").by_text == {(row["human"][0], row["items"][-1]): 1}
    with pytest.raises(LoadError, match="nope.jsonl: no such file"):
        load_gold(tmp_path / "nope.jsonl")


def test_rescore_checks_options_first_and_keeps_run_json(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="command-line options"):
        scoring_changes(None, None, 2.0)
    assert scoring_changes("none", 0, 0.1) == {"compat": None, "max_model_items": None, "min_score": 0.1}
    out, metrics = rescore_run(run, tmp_path / "re", min_score=0.3)
    meta, before = read_json(out / "run.json"), read_json(run / "run.json")
    assert list(meta) == [*before, "rescored_from"] and meta["rescored_from"] == str(run)
    assert meta["config"]["scoring"]["min_score"] == 0.3 and list(meta["config"]) == list(before["config"])
    assert metrics["skipped"] == read_json(run / "metrics.json")["skipped"]
    assert [r["matrix"] for r in load_run(out).rows] == [r["matrix"] for r in load_run(run).rows]
    same, _ = rescore_run(run, tmp_path / "same")  # no new setting: the same bytes
    for name in ("results.jsonl", "metrics.json"):
        assert (same / name).read_bytes() == (run / name).read_bytes()


def test_import_numbers_skipped_lines_as_the_file_does(tmp_path: Path) -> None:
    good = {"metadata": {"id": "s1", "human-checklist": ["a"], "m-checklist": ["b"]},
            "samples": [{"generated_text": "<RESULT_START>\n- R1@S1: 1.0\n<RESULT_END>"}]}
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps(good) + "\n\n{oops\n[1]\n")
    got = import_answers([path], tmp_path / "out")
    assert [(s.line, s.reason.split(" (")[0]) for s in got.skipped] == [
        (3, "invalid JSON"), (4, "row must be a JSON object, got list")]
    assert got.rows[0]["source"] == f"{path}:1" and load_run(tmp_path / "out").models == ["m"]
