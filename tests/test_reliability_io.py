"""Issue 24, outputs and inputs: spreadsheets never execute a cell, outputs in the way and caches that are not
caches are one ``error:`` line (and left as they are), and compressed, piped, oversized, duplicated-key and
Unicode-twin inputs are read or refused by name (``file:line``)."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationalerm import LoadError, load_samples
from rationalerm._util.files import iter_records
from rationalerm.config import read_config_file
from rationalerm.errors import ConfigError, OutputError
from rationalerm.judges.cache import JudgeCache
from tests.helpers.paths import ROOT

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160", "PYTHONPATH": str(ROOT)}
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cli(*args: str, cwd: Path = ROOT, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rationalerm", *args], capture_output=True, env=ENV, cwd=cwd,
                          timeout=900, input=stdin if stdin is not None else None,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def flat(text: str) -> str:
    """``text`` with the line breaks the terminal's wrapping put in undone (spaces are collapsed)."""
    return " ".join(text.split())


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error message (unwrapped), after checking it is the one ``error:`` line of a usage error."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr, proc.stderr
    return flat(proc.stderr[proc.stderr.index("error:"):])


def jsonl(records: list[object]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


GOOD = {"id": "good", "human-checklist": ["The answer is wrong."], "m-checklist": ["It is wrong."]}
LONG_OK = "x" * 100_000  # the documented default limit: still an item
HOSTILE = [
    {"id": "=1+1", "domain": "@SUM(A1)", "label": "=HYPERLINK(\"http://x\")",
     "human-checklist": ["=cmd|' /C calc'!A0", "Response 1 explains the formula."],
     "=cmd-checklist": ["-2+3", "Response 1 explains the formula."], "=cmd-label": "+1"},
    {"id": "\tTAB", "domain": "-minus", "label": 1, "human-checklist": [LONG_OK, "Response 2 is shorter."],
     "=cmd-checklist": [LONG_OK, "Response 2 is shorter."], "=cmd-label": 1},
    {"id": "huge", "human-checklist": ["y" * 3_000_000], "=cmd-checklist": ["y"]},  # over the limit: a bad record
    {"id": "\rCR", "domain": "+plus", "label": 2, "human-checklist": ["Response 2 cites a source."],
     "=cmd-checklist": ["Response 2 cites its source."], "=cmd-label": 2},
]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of records whose ids, domains, model name and labels start with formula characters, one item of
    exactly the default limit and one of 3,000,000 characters; its stderr is kept beside it."""
    base = tmp_path_factory.mktemp("hostile")
    data = base / "hostile.jsonl"
    data.write_bytes(jsonl(HOSTILE))
    run = base / "run"
    proc = cli("run", str(data), "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    (base / "stderr.txt").write_text(proc.stderr, encoding="utf-8")
    return run


def test_an_item_over_the_default_limit_is_skipped_and_one_at_it_is_scored(hostile_run: Path) -> None:
    stderr = flat((hostile_run.parent / "stderr.txt").read_text(encoding="utf-8"))
    data = hostile_run.parent / "hostile.jsonl"
    assert f"{data}:3: 'human-checklist' item 0 has 3,000,000 characters, over the limit of 100,000" in stderr
    rows = [json.loads(x) for x in (hostile_run / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["=1+1", "\tTAB", "\rCR"] and rows[1]["human"][0] == LONG_OK


# -- outputs -------------------------------------------------------------------------------------------------

def _csv_cells(folder: Path) -> list[str]:
    cells = []
    for name in ("samples.csv", "models.csv", "deceptive.csv"):
        with (folder / name).open(newline="", encoding="utf-8") as f:
            cells += [c for row in csv.reader(f) for c in row]
    return cells


def test_csv_export_neutralises_formula_cells_and_parquet_keeps_raw_values(hostile_run: Path,
                                                                           tmp_path: Path) -> None:
    assert cli("export", str(hostile_run), "--out", str(tmp_path / "csv")).returncode == 0
    cells = _csv_cells(tmp_path / "csv")
    executable = [c for c in cells if c.startswith(FORMULA) and not _is_number(c)]
    assert executable == []
    assert {"'=1+1", "'@SUM(A1)", "'=cmd", "'\tTAB", "'\rCR", "'-minus", "'+plus", "'+1"} <= set(cells)
    assert cli("export", str(hostile_run), "--format", "parquet", "--out", str(tmp_path / "pq")).returncode == 0
    rows = pq.read_table(tmp_path / "pq" / "samples.parquet").to_pylist()
    assert {r["id"] for r in rows} == {"=1+1", "\tTAB", "\rCR"} and {r["model"] for r in rows} == {"=cmd"}
    assert {r["domain"] for r in rows} == {"@SUM(A1)", "-minus", "+plus"}
    assert "+1" in {r["model_label"] for r in rows}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_outputs_in_the_way_are_one_error_line_and_stay_as_they_were(hostile_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    afile = tmp_path / "file.txt"
    afile.write_text("mine")
    assert "is a directory" in one_line_error(cli("report", str(hostile_run), "--out", str(folder)))
    assert "is a directory" in one_line_error(cli("compare", str(hostile_run), str(hostile_run), "--json",
                                                  str(folder)))
    assert str(afile) in one_line_error(cli("export", str(hostile_run), "--out", str(afile)))
    assert str(afile) in one_line_error(cli("export", str(hostile_run), "--out", str(tmp_path / "t"),
                                            "--plots", str(afile)))
    assert (folder / "keep.txt").read_text() == "mine" and afile.read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


def test_score_dot_inside_a_run_names_the_output_from_the_resolved_path(hostile_run: Path) -> None:
    proc = cli("score", ".", cwd=hostile_run)
    assert proc.returncode == 0, proc.stderr
    assert (hostile_run.parent / "run-rescored" / "metrics.json").is_file()
    assert not (hostile_run / "-rescored").exists() and not (hostile_run.parent / "-rescored").exists()


def test_a_cache_that_is_not_a_cache_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl([GOOD]))
    before = data.read_bytes()
    err = one_line_error(cli("run", str(data), "--cache", str(data), "--out", str(tmp_path / "o")))
    assert f"{data}: not a cache" in err
    assert data.read_bytes() == before and not any(p.name.startswith("data.jsonl-") for p in tmp_path.iterdir())
    folder = tmp_path / "c"
    folder.mkdir()
    assert "is a directory" in one_line_error(cli("run", str(data), "--cache", str(folder), "--out",
                                                  str(tmp_path / "o")))
    assert list(folder.iterdir()) == []


def test_a_wrong_cache_is_refused_before_the_judge_model_loads(tmp_path: Path, tiny_qwen: Path) -> None:
    """The cache path is checked before the judge is built: a judge that loads its model when built (the LLM judge
    on transformers) never starts loading it for a run that cannot write its cache."""
    import sqlite3

    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl([GOOD]))
    cfg = tmp_path / "llm.yaml"
    cfg.write_text(json.dumps({"judge": {"type": "llm", "model": str(tiny_qwen),
                                         "backend": {"type": "transformers", "device": "cpu", "dtype": "float32"}}}))
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("PRAGMA journal_mode=WAL")  # as every cache, and many other databases, are
        db.execute("CREATE TABLE notes (t TEXT)")
    db.close()
    before = other.read_bytes()
    for cache, says in ((data, "not a cache"), (other, "without this cache's tables")):
        proc = cli("run", str(data), "--config", str(cfg), "--cache", str(cache), "--out", str(tmp_path / "o"))
        assert says in one_line_error(proc)
        assert "loading" not in proc.stderr + proc.stdout, proc.stderr
    assert other.read_bytes() == before and not Path(f"{other}-wal").exists() and not Path(f"{other}-shm").exists()


def test_a_sqlite_file_of_someone_else_is_refused_and_a_cache_reopens(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (t TEXT)")
    db.close()
    before = other.read_bytes()
    with pytest.raises(OutputError, match="without this cache's tables"):
        JudgeCache(other, {"judge": "x"})
    assert other.read_bytes() == before and not Path(f"{other}-wal").exists()
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for _ in range(2):  # an empty file, then the cache it became
        JudgeCache(empty, {"judge": "x"}).close()


# -- inputs --------------------------------------------------------------------------------------------------

def test_an_item_over_the_limit_is_a_bad_record_before_anything_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_bytes(jsonl([{"id": "a", "human-checklist": ["R"], "m-checklist": ["x" * 101]},
                            {"id": "b", "human-checklist": ["R"], "m-checklist": ["x" * 100]}]))
    res = load_samples(data, max_item_chars=100)
    assert [str(s) for s in res.skipped] == [
        f"{data}:1: 'm-checklist' item 0 has 101 characters, over the limit of 100 (config key max_item_chars)"]
    assert [s.id for s in res.samples] == ["b"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_item_chars: 100\n")
    with pytest.raises(LoadError, match=r"d\.jsonl:1: .* over the limit of 100"):
        load_samples(data, max_item_chars=100, strict=True)
    err = one_line_error(cli("run", str(data), "--config", str(cfg), "--strict", "--out", str(tmp_path / "o")))
    assert f"{data}:1: 'm-checklist' item 0 has 101 characters" in err


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst"])
def test_compressed_jsonl_is_read_as_it_is(tmp_path: Path, kind: str) -> None:
    plain = tmp_path / "d.jsonl"
    plain.write_bytes(jsonl([GOOD, {"id": "g2", "human-checklist": ["R"], "m-checklist": ["S"]}]) + b"not json\n")
    path = tmp_path / f"d.jsonl.{kind}"
    if kind == "zst":
        with pa.output_stream(path, compression="zstd") as f:
            f.write(plain.read_bytes())
    else:
        path.write_bytes({"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](plain.read_bytes()))
    res = load_samples(path)
    assert [s.id for s in res.samples] == ["good", "g2"]
    assert [(s.source, s.line) for s in res.skipped] == [(str(path), 3)]


def test_archives_and_truncated_streams_are_named(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("d.jsonl", jsonl([GOOD]))
    with pytest.raises(LoadError, match=r"d\.zip: a zip archive; extract"):
        load_samples(archive)
    cut = tmp_path / "d.jsonl.gz"
    cut.write_bytes(gzip.compress(jsonl([GOOD] * 2000))[:-40])
    with pytest.raises(LoadError, match=r"d\.jsonl\.gz:\d+: cannot read the gzip data"):
        list(iter_records(cut))


def test_dash_reads_standard_input(tmp_path: Path) -> None:
    piped = jsonl([GOOD, {"id": "g2", "human-checklist": ["R"], "m-checklist": ["S"]}]) + b"{bad\n"
    out = tmp_path / "o"
    proc = cli("run", "-", "--out", str(out), stdin=gzip.compress(piped))
    assert proc.returncode == 0, proc.stderr
    assert f"skipped {out / 'stdin.jsonl'}:3: invalid JSON" in flat(proc.stderr)
    assert [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()] == ["good", "g2"]
    assert json.loads((out / "run.json").read_text())["inputs"] == [str(out / "stdin.jsonl")]
    with pytest.raises(LoadError, match="standard input is read by 'rationalerm run' only"):
        load_samples("-")


YAML_CASES = {
    "deep.yaml": ("judge: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
    "big.yaml": ("# padding\n" * 120_000, "a config file may have at most 1,048,576"),
    "binary.yaml": ("\udcff\udcfe binary", "not a YAML text file"),
}


def test_hostile_yaml_configs_are_one_error_line(tmp_path: Path) -> None:
    for name, (text, message) in YAML_CASES.items():
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        with pytest.raises(ConfigError, match=message):
            read_config_file(path)
    err = one_line_error(cli("run", str(ROOT / "examples" / "rationales.jsonl"), "--config",
                             str(tmp_path / "deep.yaml"), "--out", str(tmp_path / "o")))
    assert f"{tmp_path / 'deep.yaml'}: not valid YAML (nested too deeply)" in err
    with pytest.raises(ConfigError, match="is a directory"):
        read_config_file(tmp_path)


def test_duplicate_keys_are_bad_records_with_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_bytes(b'{"id": "a", "human-checklist": ["R"], "m-checklist": ["S1"], "m-checklist": ["S2"]}\n'
                     b'{"id": "b", "human-checklist": ["R"], "m-checklist": ["S"], "meta": {"k": 1, "k" : 2}}\n'
                     b'{"id": "c", "human-checklist": ["R: \\":"], "m-checklist": ["S"]}\n')
    res = load_samples(data)
    assert [str(s) for s in res.skipped] == [f"{data}:1: key 'm-checklist' appears twice in one object: ambiguous",
                                             f"{data}:2: key 'k' appears twice in one object: ambiguous"]
    assert [s.id for s in res.samples] == ["c"]


KEYS = st.sampled_from(["a", "b", "é", "e\u0301", "\\u0061", "x:y"])
SPACE = st.sampled_from(["", " ", "\t ", "\r"])  # JSON whitespace that keeps one line


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(KEYS, st.integers(0, 3), SPACE, SPACE), max_size=6), st.booleans())
def test_repeated_keys_are_found_whatever_the_spacing(tmp_path: Path, members: list[tuple[str, int, str, str]],
                                                      nested: bool) -> None:
    """An object repeats a key (after JSON unescaping) exactly when the reader says so."""
    body = ",".join(f'{sp1}"{k}"{sp2}:{sp1}{v}' for k, v, sp1, sp2 in members)
    obj = "{" + body + "}"
    text = '{"outer": ' + obj + ', "t": "a\\":b"}' if nested else obj
    path = tmp_path / "k.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    names = [json.loads(f'"{k}"') for k, *_ in members]
    (record,) = list(iter_records(path))
    assert (record.error is not None) == (len(set(names)) != len(names)), (text, record.error)


def test_unicode_twins_are_ambiguous_and_items_compare_in_nfc(tmp_path: Path) -> None:
    decomposed, composed = "mode\u0301", "mod\u00e9"
    data = tmp_path / "d.jsonl"
    data.write_bytes(jsonl([
        {"id": "a", "human-checklist": ["R"], f"{decomposed}-checklist": ["S"], f"{composed}-checklist": ["S"]},
        {"id": "b", "human-checklist": ["caf\u0065\u0301 is named"], f"{decomposed}-checklist": ["caf\u00e9 is named"]},
        {"human-checklist": ["caf\u0065\u0301"], f"{decomposed}-checklist": ["x"]},
        {"human-checklist": ["caf\u00e9"], f"{decomposed}-checklist": ["x"]},
    ]))
    res = load_samples(data, models=[composed])
    assert [str(s) for s in res.skipped] == [
        f"{data}:1: keys '{decomposed}-checklist' and '{composed}-checklist' differ only in Unicode normalisation "
        "(NFC): ambiguous"]
    assert res.models == [decomposed]  # --models in another normal form finds the data's spelling
    b = res.samples[0]
    assert b.human == [unicodedata.normalize("NFC", "cafe\u0301 is named")] == b.models[decomposed]
    assert len({s.id for s in res.samples}) == 3  # ids are of the texts as written: both records stay


def test_parquet_with_a_repeated_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    columns = [pa.array([["R"]]), pa.array([["S1"]]), pa.array([["S2"]])]
    pq.write_table(pa.Table.from_arrays(columns, names=["human-checklist", "m-checklist", "m-checklist"]), path)
    with pytest.raises(LoadError, match=r"d\.parquet: column 'm-checklist' appears twice: ambiguous"):
        load_samples(path)
    pq.write_table(pa.table({"id": ["p"], "human-checklist": [["R"]], "m-checklist": [["S"]]}), path)
    assert [s.id for s in load_samples(path).samples] == ["p"]
