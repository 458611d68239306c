"""Loader and config errors: every bad record names its file and line; good ones still score."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rationalerm import ConfigError, LoadError, load_config, load_samples
from rationalerm.config import read_config_file
from tests.helpers.paths import ROOT

GOOD = {"id": "a", "domain": "chat", "human-checklist": [" R1 ", "R2", ""], "Qwen-checklist": ["S1", "S2"],
        "LLAMA-Checklist": ["T1"], "Qwen-label": 1}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_models_found_case_insensitively_and_items_stripped(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", [json.dumps(GOOD)])
    res = load_samples(p)
    assert res.models == ["Qwen", "LLAMA"]
    s = res.samples[0]
    # a blank item keeps its position (DESIGN.md "Empty and blank items") and is reported as a warning
    assert s.human == ["R1", "R2", ""] and s.models["Qwen"] == ["S1", "S2"] and s.labels == {"Qwen": 1}
    blank = f"{p}:1: 'human-checklist' item 2 is blank: it keeps its position and is never matched"
    assert [str(w) for w in res.warnings] == [blank]
    named = load_samples(p, models=["llama"])  # the data's spelling, whatever --models says (issue 14)
    assert named.models == ["LLAMA"] and list(named.samples[0].models) == ["LLAMA"]
    with pytest.raises(LoadError, match="no '<model>-checklist' key"):
        load_samples(p, models=["gpt"])


def test_bad_records_are_skipped_with_file_and_line(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"Qwen-checklist": ["x"]}),
        json.dumps({"human-checklist": "R1", "Qwen-checklist": ["x"]}),
        json.dumps({"human-checklist": ["R1", 3], "Qwen-checklist": ["x"]}),
        json.dumps({"human-checklist": ["  ", ""], "Qwen-checklist": ["x"]}),
        json.dumps({"human-checklist": ["R"], "Qwen-checklist": []}),  # an empty model list is scored, not skipped
        json.dumps([1, 2]),
        json.dumps(dict(GOOD)),  # duplicate id
        json.dumps({"human-checklist": ["R9"], "Qwen-checklist": ["S9"]}),
    ]
    p = write_jsonl(tmp_path / "bad.jsonl", lines)
    res = load_samples(p)
    assert len(res.samples) == 3 and res.samples[1].models["Qwen"] == []
    got = {s.line: s.reason for s in res.skipped}
    assert sorted(got) == [2, 3, 4, 5, 6, 8, 9]
    assert "invalid JSON" in got[2] and "missing 'human-checklist'" in got[3]
    assert "must be a list" in got[4] and "not a string" in got[5] and "no non-blank item" in got[6]
    assert "JSON object" in got[8] and "duplicate id" in got[9]
    assert all(str(s).startswith(f"{p}:") for s in res.skipped)
    with pytest.raises(LoadError, match=rf"{p}:2: invalid JSON"):
        load_samples(p, strict=True)


def test_ids_are_stable_content_hashes(tmp_path: Path) -> None:
    rec = {"human-checklist": ["R"], "m-checklist": ["S"]}
    a = load_samples(write_jsonl(tmp_path / "a.jsonl", [json.dumps(rec)])).samples[0].id
    b = load_samples(write_jsonl(tmp_path / "b.jsonl", ["", json.dumps(rec)])).samples[0].id
    assert a == b and a.startswith("h")


def test_parquet_input(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([{"id": "p1", "human-checklist": ["R1"], "A-checklist": ["S1", "S2"]},
                                  {"id": "p2", "human-checklist": [], "A-checklist": ["S1"]}])
    pq.write_table(table, tmp_path / "d.parquet")
    res = load_samples(tmp_path / "d.parquet")
    assert [s.id for s in res.samples] == ["p1"] and res.skipped[0].line == 2


def test_default_and_shipped_configs_validate() -> None:
    cfg = load_config()
    assert cfg.judge.type == "embedding"
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("judge:\n  type: embedding\n  treshold: 0.3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: invalid config(.|\n)*judge.embedding.treshold"):
        load_config(p)
    p.write_text("scoring:\n  min_score: 2\n")
    with pytest.raises(ConfigError, match="scoring.min_score"):
        load_config(p)
    p.write_text("judge: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "missing.yaml")
    assert load_config(None, {"scoring.compat": "metajudge"}).scoring.compat == "metajudge"


def test_config_file_edge_cases_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("")  # an empty file is the default config
    assert load_config(p) == load_config()
    p.write_text("- judge\n")
    with pytest.raises(ConfigError, match=r"c.yaml: top level must be a mapping, got list"):
        load_config(p)
    p.write_text("scoring:\n  min_score: 0.1\n  seed: [\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: not valid YAML \(.+\)"):  # names the line
        load_config(p)
    p.write_text("scoring:\n  min_score: 0.1\n")
    cfg = load_config(p, {"scoring.min_score": None, "scoring.seed": 7, "outcome.label_field": "pref"})
    # None leaves the file's value; a dotted key sets one key of a section, created when the file lacks it
    assert (cfg.scoring.min_score, cfg.scoring.seed, cfg.outcome.label_field) == (0.1, 7, "pref")
    assert read_config_file(p) == {"scoring": {"min_score": 0.1}}  # the mapping as written, not validated
    with pytest.raises(ConfigError, match=r"<default>: invalid config(.|\n)*scoring.bogus"):
        load_config(None, {"scoring.bogus": 1})
