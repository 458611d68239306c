"""User errors: one base class, and the CLI turns each into one ``error:`` line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rationalerm import ConfigError, JudgeError, LoadError, OutputError, RationaleRMError
from rationalerm.cli import app
from tests.helpers.paths import ROOT

EXAMPLE = ROOT / "examples" / "rationales.jsonl"


def test_every_user_error_shares_one_base() -> None:
    for cls in (ConfigError, LoadError, JudgeError, OutputError):
        assert issubclass(cls, RationaleRMError)
    # the names stay importable from where they were, and keep their old bases
    from rationalerm.config import ConfigError as C
    from rationalerm.inputs.load import LoadError as L
    from rationalerm.judges.llm import JudgeError as J

    assert (C, J, L) == (ConfigError, JudgeError, LoadError)
    assert issubclass(ConfigError, ValueError) and issubclass(LoadError, ValueError)
    assert issubclass(JudgeError, RuntimeError) and issubclass(OutputError, OSError)


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "args, needle",
    [
        (("score", "{tmp}"), "is {tmp} a run directory?"),
        (("compare", "{tmp}", "--gold", "{tmp}/gold.jsonl"), "run directory"),
        (("run", str(EXAMPLE), "--out", "{tmp}/o", "--threshold", "2"), "judge.embedding.threshold"),
        (("run", str(EXAMPLE), "--out", "{tmp}/file.txt/o"), "cannot create the output directory"),
        (("run", "{tmp}/missing.jsonl", "--out", "{tmp}/o"), "missing.jsonl:0: no such file"),
    ],
)
def test_cli_prints_one_error_line_and_exits_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    (tmp_path / "file.txt").write_text("not a directory")
    result = _cli(*(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.output and needle.format(tmp=tmp_path) in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_score_rejects_a_bad_scoring_override(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _cli("run", str(EXAMPLE), "--out", str(out)).exit_code == 0
    result = _cli("score", str(out), "--min-score", "3")
    assert result.exit_code == 2 and "min_score" in result.output
