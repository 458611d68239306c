"""User errors: one base class for every error the package raises, and one CLI handler that turns each into one
``error:`` line and exit code 2, whichever command raised it."""

from __future__ import annotations

import importlib
import json
import pkgutil
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rationalerm
from rationalerm import ConfigError, JudgeError, LoadError, OutputError, RationaleRMError
from rationalerm import errors as errors_module
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


def test_the_errors_defined_beside_their_stage_moved_to_errors_and_stay_importable_there() -> None:
    from rationalerm.datasets import ArgKPError
    from rationalerm.reward import ParseFailure, RewardDataError
    from rationalerm.scoring.outcome import Unparseable
    from rationalerm.training.labels import LabelError
    from rationalerm.training.recipe import TrainError

    moved = {"ArgKPError": ArgKPError, "LabelError": LabelError, "TrainError": TrainError,
             "RewardDataError": RewardDataError, "ParseFailure": ParseFailure, "Unparseable": Unparseable}
    for name, cls in moved.items():
        assert cls is getattr(errors_module, name) and cls.__module__ == "rationalerm.errors"
        assert issubclass(cls, RationaleRMError) and issubclass(cls, ValueError)  # old `except ValueError` still works
    assert issubclass(LabelError, LoadError) and issubclass(ArgKPError, LoadError)


def _modules() -> list[str]:
    """Every module of the package (``__main__`` runs the CLI when imported: it only calls ``cli.main``)."""
    walked = pkgutil.walk_packages(rationalerm.__path__, "rationalerm.")
    return ["rationalerm", *(m.name for m in walked if m.name != "rationalerm.__main__")]


def _stray_errors(module: types.ModuleType) -> list[str]:
    """The exception classes ``module`` defines that are neither a ``RationaleRMError`` nor private (nor
    ``RewardDataAbort``, deliberately a ``BaseException``: trainers that swallow every ``Exception`` must stop)."""
    return [f"{module.__name__}.{obj.__name__}" for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__
            and not issubclass(obj, RationaleRMError) and not obj.__name__.startswith("_")
            and obj is not errors_module.RewardDataAbort]


def test_every_exception_class_of_the_package_is_a_user_error_or_private() -> None:
    stray = [name for module in _modules() for name in _stray_errors(importlib.import_module(module))]
    assert not stray, f"define these in rationalerm/errors.py as RationaleRMErrors (or make them private): {stray}"


def test_the_walk_finds_a_stray_error_and_spares_the_others() -> None:
    module = types.ModuleType("rationalerm.fake")
    for name, bases in (("Stray", (ValueError,)), ("_Signal", (Exception,)), ("Fine", (LoadError,)), ("Plain", ())):
        setattr(module, name, type(name, bases, {"__module__": module.__name__}))
    module.LoadError = LoadError  # imported, not its own
    assert _stray_errors(module) == ["rationalerm.fake.Stray"]


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _labels(tmp: Path) -> Path:
    path = tmp / "labels.jsonl"
    path.write_text(json.dumps({"human": "a", "item": "b", "label": 1}) + "\n")
    return path


@pytest.mark.parametrize(
    "args, needle",
    [
        (("score", "{tmp}"), "is {tmp} a run directory?"),
        (("compare", "{tmp}", "--gold", "{tmp}/gold.jsonl"), "run directory"),
        (("compare", "{tmp}"), "give a second run, --gold FILE, or both"),
        (("run", str(EXAMPLE), "--out", "{tmp}/o", "--threshold", "2"), "judge.embedding.threshold"),
        (("run", str(EXAMPLE), "--out", "{tmp}/file.txt/o"), "cannot create the output directory"),
        (("run", "{tmp}/missing.jsonl", "--out", "{tmp}/o"), "missing.jsonl: no such file"),
        (("run", str(EXAMPLE), "--out", "{tmp}/o", "--sort-by", "speed"), "--sort-by must be one of"),
        (("import-metajudge", "{tmp}/missing.jsonl", "--out", "{tmp}/o"), "missing.jsonl"),
        (("report", "{tmp}", "--out", "{tmp}/r.html"), "is {tmp} a run directory?"),
        (("export", "{tmp}"), "is {tmp} a run directory?"),
        (("export", "{tmp}", "--format", "xml"), "--format must be csv or parquet, not 'xml'"),
        (("calibrate", "{tmp}"), "is {tmp} a run directory?"),
        (("calibrate", "{tmp}", "--base-config", "{tmp}/missing.yaml"), "missing.yaml: no such config file"),
        (("estimate", "{tmp}", "--gold", "{tmp}/labels.jsonl"), "is {tmp} a run directory?"),
        (("audit", "{tmp}", "--n", "5", "--out", "{tmp}/a"), "is {tmp} a run directory?"),
        (("import-label-studio", "{tmp}", "{tmp}/export.json"), "audit.jsonl: cannot read"),
        (("train", "{tmp}/missing.jsonl", "--out", "{tmp}/m"), "no such file or run directory"),
        (("train", "{tmp}/labels.jsonl", "--out", "{tmp}/m", "--pos-weight", "heavy"),
         "--pos-weight must be 'auto' or a number, not 'heavy'"),
        (("train", "{tmp}/labels.jsonl", "--out", "{tmp}/m", "--threshold", "high"),
         "--threshold must be a number in [0, 1) or 'best-f1', not 'high'"),
        (("train", "{tmp}/labels.jsonl", "--out", "{tmp}/m", "--val-fraction", "1"),
         "--val-fraction must be in [0, 1)"),
        (("decompose", str(EXAMPLE), "--config", "{tmp}/missing.yaml", "--out", "{tmp}/d.jsonl"),
         "missing.yaml: no such config file"),
    ],
)
def test_cli_prints_one_error_line_and_exits_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    (tmp_path / "file.txt").write_text("not a directory")
    _labels(tmp_path)
    result = _cli(*(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.output and needle.format(tmp=tmp_path) in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_train_reports_an_out_it_cannot_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch and transformers write the model folder themselves: their OSError is a user error too."""
    import rationalerm.training.trainer as trainer

    def cannot_write(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "m"))

    monkeypatch.setattr(trainer, "train", cannot_write)
    result = _cli("train", str(_labels(tmp_path)), "--out", str(tmp_path / "m"))
    assert result.exit_code == 2 and "error: [Errno 13] Permission denied" in result.output, result.output


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only user errors become an ``error:`` line: anything else propagates (exit 1, with its traceback)."""
    import rationalerm.runs.rescore as rescore

    def bug(*_args: object, **_kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(rescore, "rescore_run", bug)
    result = _cli("score", str(tmp_path))
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
    assert "error:" not in result.output


def test_score_rejects_a_bad_scoring_override(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _cli("run", str(EXAMPLE), "--out", str(out)).exit_code == 0
    result = _cli("score", str(out), "--min-score", "3")
    assert result.exit_code == 2 and "min_score" in result.output

