"""The label sources of ``rationalerm train``: label files (JSONL, Parquet), run directories (distillation), their
errors (``path:line``), duplicates, and the validation split by human item."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rationalerm._util.files import write_jsonl
from rationalerm.errors import LoadError
from rationalerm.training.labels import LabelError, PairLabel, read_labels, split_by_human


def test_read_labels_jsonl_parquet_and_duplicates(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jl = tmp_path / "gold.jsonl"
    jl.write_text('{"human": "a", "item": "b", "label": 1}\n\n{"human": "a", "item": "c", "label": false}\n'
                  '{"human": "d", "item": "e", "label": 0.25, "note": "extra keys are fine"}\n'
                  '{"human": "a", "item": "b", "label": 0}\n')
    pq.write_table(pa.table({"human": ["x", "a"], "item": ["y", "c"], "label": [1.0, 1.0]}), tmp_path / "more.parquet")
    got = read_labels([jl, tmp_path / "more.parquet"])
    labels = {(p.human, p.item): p.label for p in got.pairs}
    assert labels == {("a", "b"): 0.5, ("a", "c"): 0.5, ("d", "e"): 0.25, ("x", "y"): 1.0}  # duplicates averaged
    assert got.duplicates == 2 and got.soft and got.kinds == ["labels", "labels"]
    assert got.pairs[0].source == f"{jl}:1"
    assert read_labels([jl]).sha256() == read_labels([jl]).sha256() != got.sha256()


@pytest.mark.parametrize(("text", "message"), [
    ('{"human": "a", "item": "b", "label": 1}\n{oops\n', ":2: invalid JSON"),
    ('{"human": "a", "item": "b"}\n', ":1: missing 'label'"),
    ('{"human": "a", "item": "b", "label": 2}\n', ":1: 'label' must be in [0, 1]"),
    ('{"human": "a", "item": "b", "label": "yes"}\n', ":1: 'label' must be 0, 1 or a number"),
    ('{"human": "a", "item": "b", "label": NaN}\n', ":1: invalid JSON"),
    ('\n{"human": 3, "item": "b", "label": 1}\n', ":2: 'human' must be a string, got a int"),
    ('{"item": "b", "label": 1}\n', ":1: 'human' must be a string, got missing"),
    ('{"human": "a", "item": "  ", "label": 1}\n', ":1: 'item' is blank"),
    ('[1, 2]\n', ":1: expected an object"),
    ('{"id": "s", "model": "m", "i": 0, "j": 1, "label": 1}\n', ":1: an audit cell (id/model/i/j) needs the run"),
])
def test_bad_label_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(text)
    with pytest.raises(LabelError) as e:
        read_labels([path])
    assert str(e.value).startswith(str(path)) and message in str(e.value)


def test_bad_label_sources(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="no such file or run directory"):
        read_labels([tmp_path / "missing.jsonl"])
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(LabelError, match="no labelled pair"):
        read_labels([tmp_path / "empty.jsonl"])
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(LabelError, match=r"bad\.parquet: not a readable Parquet file"):
        read_labels([tmp_path / "bad.parquet"])
    (tmp_path / "notarun").mkdir()
    with pytest.raises(LabelError, match="not a run directory"):
        read_labels([tmp_path / "notarun"])


def test_run_directory_labels_skip_unjudged_and_failed_cells(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"human": ["h1", "h2"], "items": ["s1", " "], "matrix": [[0.75, 0.0], [0.0, 0.0]],
         "details": [[{"cosine": 0.9}, None], [None, None]]},  # h2 x s1 dropped by a prefilter, s2 blank
        {"human": ["h1"], "items": ["s3"], "matrix": None},  # a failed listwise answer
        {"human": ["h3"], "items": ["s4", "s5"], "matrix": [[0.5, None]]},  # listwise (no details); a failed cell
        {"human": ["h4"], "items": ["s6"], "matrix": [[0.2]], "details": [[{"failed": True}]]},
    ]
    write_jsonl(run / "results.jsonl", rows)
    got = read_labels([run])
    assert {(p.human, p.item): p.label for p in got.pairs} == {("h1", "s1"): 0.75, ("h3", "s4"): 0.5}
    assert got.skipped == {"blank item": 2, "not judged (prefilter)": 1, "row without a matrix (failed judgement)": 1,
                           "failed cell": 2}
    assert got.kinds == ["run"] and got.pairs[0].source.endswith("results.jsonl:1[0,0]")


def test_split_by_human_item_never_leaks() -> None:
    pairs = [PairLabel(f"h{i % 7}", f"s{i}", float(i % 2), "x") for i in range(70)]
    tr, va = split_by_human(pairs, 0.3, seed=1)
    assert {p.human for p in tr}.isdisjoint({p.human for p in va})
    assert len({p.human for p in va}) == 2 and len(tr) + len(va) == 70
    assert split_by_human(pairs, 0.3, seed=1) == (tr, va)  # seeded
    assert split_by_human(pairs, 0.0, seed=1) == (pairs, [])




@pytest.mark.parametrize(("row", "message"), [
    ({"human": ["h1"], "items": ["s1", "s2"], "matrix": [[0.5]]}, ":1: matrix shape does not match human x items"),
    ({"human": ["h1"], "items": ["s1"], "matrix": [[0.5]], "details": [[None], [None]]},
     ":1: details shape does not match human x items"),
    ({"human": "h1", "items": ["s1"], "matrix": [[0.5]]}, ":1: not a results row"),
])
def test_bad_results_rows_name_file_and_line(tmp_path: Path, row: dict[str, object], message: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "results.jsonl", [row])
    with pytest.raises(LabelError) as e:
        read_labels([run])
    assert str(e.value).startswith(str(run / "results.jsonl")) and message in str(e.value)


def test_a_bad_results_line_is_a_label_error(tmp_path: Path) -> None:
    """The run reader goes through the project's one record reader: its errors keep path:line, as label errors."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text('{"human": ["h"], "items": ["s"], "matrix": [[1.0]]}\n\n{nope\n')
    with pytest.raises(LabelError, match=r"results\.jsonl:3: invalid JSON") as e:
        read_labels([run])
    assert isinstance(e.value, LoadError)


def _audited_run(tmp_path: Path) -> Path:
    """A run directory as ``rationalerm run`` leaves it, as far as audit labels read it: its results rows."""
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "results.jsonl", [
        {"id": "s1", "model": "m", "human": ["h0", "h1"], "items": ["a", "b", "c"], "matrix": None},
        {"id": "s1", "model": "n", "human": ["h0", "h1"], "items": ["x"], "matrix": None},
        {"id": "s2", "model": "m", "human": ["g0"], "items": ["a", " "], "matrix": None},
    ])
    (run / "metrics.json").write_text("{}")
    (run / "run.json").write_text("{}")
    return run


def test_audit_labels_take_their_texts_from_the_run(tmp_path: Path) -> None:
    run = _audited_run(tmp_path)
    audit = tmp_path / "labels.jsonl"
    write_jsonl(audit, [{"id": "s1", "model": "m", "i": i, "j": j, "label": int(i == j)}
                        for i in range(2) for j in range(3)]
                + [{"id": "s1", "model": "n", "i": 1, "j": 0, "label": 1.0, "level": 4}])
    got = read_labels([audit], run=run)
    assert got.kinds == ["audit"] and len(got.pairs) == 7 and not got.soft
    labels = {(p.human, p.item): p.label for p in got.pairs}
    assert labels[("h0", "a")] == labels[("h1", "b")] == labels[("h1", "x")] == 1.0 and labels[("h0", "c")] == 0.0
    assert got.pairs[6].source == f"{audit}:7"
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"human": "h0", "item": "a", "label": 0}\n')
    mixed = read_labels([audit, plain], run=run)  # pair labels beside audit labels: one set, duplicates merged
    assert mixed.kinds == ["audit", "labels"] and mixed.duplicates == 1


@pytest.mark.parametrize(("record", "message"), [
    ({"id": "s9", "model": "m", "i": 0, "j": 0, "label": 1}, ":2: id 's9' with model 'm' is not a unit of the run"),
    ({"id": "s1", "model": "z", "i": 0, "j": 0, "label": 1}, ":2: id 's1' with model 'z' is not a unit"),
    ({"id": "s1", "model": "m", "i": 2, "j": 0, "label": 1}, ":2: cell (i=2, j=0) is outside the 2 x 3 grid of id"),
    ({"id": "s1", "model": "m", "i": 0, "j": -1, "label": 1}, ":2: cell (i=0, j=-1) is outside the 2 x 3 grid"),
    ({"id": "s1", "model": "m", "i": "0", "j": 0, "label": 1}, ":2: cell (i='0', j=0) is outside"),
    ({"id": "s1", "model": "m", "i": True, "j": 0, "label": 1}, ":2: cell (i=True, j=0) is outside"),
    ({"id": "s2", "model": "m", "i": 0, "j": 1, "label": 1}, ":2: cell (i=0, j=1) of id 's2', model 'm' has a blank"),
    ({"id": "s1", "model": "m", "i": 0, "j": 0, "label": 3}, ":2: 'label' must be in [0, 1]"),
])
def test_audit_label_errors_name_the_line(tmp_path: Path, record: dict[str, object], message: str) -> None:
    run = _audited_run(tmp_path)
    audit = tmp_path / "labels.jsonl"
    write_jsonl(audit, [{"id": "s1", "model": "m", "i": 0, "j": 0, "label": 1}, record])
    with pytest.raises(LabelError, match=re.escape(f"{audit}{message}")):
        read_labels([audit], run=run)


def test_audit_labels_need_their_run(tmp_path: Path) -> None:
    audit = tmp_path / "labels.jsonl"
    write_jsonl(audit, [{"id": "s1", "model": "m", "i": 0, "j": 0, "label": 1}])
    with pytest.raises(LabelError, match=re.escape(f"{audit}:1: an audit cell (id/model/i/j) needs the run it "
                                                   "audited for its texts: give it with --run RUN")):
        read_labels([audit])
    with pytest.raises(LabelError, match="--run .*missing; is .* a run directory"):
        read_labels([audit], run=tmp_path / "nowhere")


def test_canonical_labels_are_the_texts_the_judge_scores(tmp_path: Path) -> None:
    """``train`` fits on the texts a judge with the reference rule on (the default) sees: "Response A" and
    "Response 1" are one pair, merged with the other duplicates in one mean over every label (3 x 1 and 1 x 0 is
    0.75, not the mean of two means), and the set records the rule's version; ``canonical=False`` keeps the texts
    as written."""
    from rationalerm.scoring.references import REFERENCE_RULE, canonical_references

    path = tmp_path / "labels.jsonl"
    a = {"human": "Response A is wrong about the date.", "item": "Assistant B misses it.", "label": 1}
    write_jsonl(path, [a, a, a,
                       {"human": "Response 1 is wrong about the date.", "item": "Response 2 misses it.", "label": 0},
                       {"human": "The tone is rude.", "item": "It is rude.", "label": 1}])
    as_written = read_labels([path], canonical=False)
    assert len(as_written.pairs) == 3 and as_written.canonical_references is None and as_written.duplicates == 2
    seen = read_labels([path])
    assert seen.canonical_references == REFERENCE_RULE and seen.duplicates == 3
    assert [(p.human, p.item, p.label, p.source) for p in seen.pairs] == [
        ("Response 1 is wrong about the date.", "Response 2 misses it.", 0.75, f"{path}:1"),
        ("The tone is rude.", "It is rude.", 1.0, f"{path}:5")]
    assert all(canonical_references(p.human) == p.human for p in seen.pairs)
    assert seen.sha256() != as_written.sha256()
