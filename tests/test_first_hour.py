"""What a new user meets in the first hour: a wrong kind of file, a model or config key spelt differently, a failed
run. Each is one ``error:`` line that says what to do, and a failed run leaves no empty output folder."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rationalerm.cli import app
from tests.helpers.data import metajudge_reference_rows
from tests.helpers.paths import ROOT

EXAMPLE = ROOT / "examples" / "rationales.jsonl"


class _Output(str):
    """The CLI's output, compared with every whitespace run dropped on both sides: the console wraps long lines at a
    space, and where depends on the paths' lengths (a test must not pass or fail by where its clone lives)."""

    def __contains__(self, part: object) -> bool:
        return isinstance(part, str) and "".join(part.split()) in "".join(self.split())


class _Result:
    """The CLI's exit code and its output with the terminal's line wrapping undone."""

    def __init__(self, args: tuple[str, ...]) -> None:
        res = CliRunner().invoke(app, list(args))
        self.exit_code, self.output = res.exit_code, _Output(res.output)


def _cli(*args: str) -> _Result:
    return _Result(args)


def _reference_answers(tmp: Path, n: int = 12) -> Path:
    rows = metajudge_reference_rows("clean", tmp / "full").read_text().splitlines()[:n]
    path = tmp / "answers.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_run_on_reference_answers_says_to_import_them(tmp_path: Path) -> None:
    answers = _reference_answers(tmp_path)
    res = _cli("run", str(answers), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2, res.output
    assert f"{answers}:1: an answer file of the reference pipeline" in res.output
    assert f"rationalerm import-metajudge {answers} --out DIR" in res.output
    assert "missing 'human-checklist'" not in res.output and "no valid record" not in res.output
    assert not (tmp_path / "o").exists()


def test_an_unknown_model_lists_the_models_there(tmp_path: Path) -> None:
    res = _cli("run", str(EXAMPLE), "--models", "qwen-8b", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2, res.output
    assert "no '<model>-checklist' key for model(s) qwen-8b" in res.output
    assert "the data has: Qwen3-8B, Llama-3.1-8B" in res.output and "(did you mean 'Qwen3-8B'?)" in res.output
    assert f"{EXAMPLE}:0" not in res.output
    none = tmp_path / "plain.jsonl"
    none.write_text(json.dumps({"human-checklist": ["a"]}) + "\n")
    res = _cli("run", str(none), "--models", "m", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "the data has no '<model>-checklist' key at all" in res.output, res.output


def test_a_config_key_typo_gets_did_you_mean(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("judge:\n  treshold: 0.4\nprefilter:\n  topk: 2\nscoring:\n  compta: metajudge\nzzz: 1\n")
    res = _cli("run", str(EXAMPLE), "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2, res.output
    assert "judge.embedding.treshold: Extra inputs are not permitted (did you mean 'threshold'?)" in res.output
    assert "prefilter.topk: Extra inputs are not permitted (did you mean 'top_k'?)" in res.output
    assert "scoring.compta: Extra inputs are not permitted (did you mean 'compat'?)" in res.output
    assert res.output.rstrip().endswith("zzz: Extra inputs are not permitted")  # nothing close: no guess
    llm = tmp_path / "llm.yaml"
    llm.write_text("judge:\n  type: llm\n  model: x\n  backend:\n    type: vllm\n    engine_arg: {}\n")
    res = _cli("run", str(EXAMPLE), "--config", str(llm), "--out", str(tmp_path / "o"))
    assert "judge.llm.backend.vllm.engine_arg: Extra inputs are not permitted (did you mean 'engine_args'?)" \
        in res.output


def test_missing_paths_print_without_a_line_zero(tmp_path: Path) -> None:
    res = _cli("run", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and f"{tmp_path / 'missing.jsonl'}: no such file" in res.output, res.output
    assert ":0" not in res.output
    res = _cli("run", str(tmp_path), "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and f"{tmp_path}: not a file" in res.output, res.output


def test_a_failed_run_leaves_no_empty_out_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    nested = tmp_path / "new" / "deeper" / "out"
    res = _cli("run", str(bad), "--out", str(nested))
    assert res.exit_code == 2 and "no valid record" in res.output, res.output
    assert not (tmp_path / "new").exists()  # every folder the run created, none that was there
    assert tmp_path.is_dir()
    there = tmp_path / "there"
    there.mkdir()
    res = _cli("run", str(bad), "--out", str(there))
    assert res.exit_code == 2 and there.is_dir()  # a folder that was there before stays, even empty
    (there / "keep.txt").write_text("mine")
    res = _cli("run", str(bad), "--out", str(there / "sub"))
    assert res.exit_code == 2 and (there / "keep.txt").read_text() == "mine" and not (there / "sub").exists()
