"""The benchmark scripts still import what they name: they run outside the suite (minutes to hours), so a module
moved or renamed in the package or in tests/helpers would otherwise surface only when someone re-measures."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def _imported_names(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every ``from rationalerm... / tests... import name`` and ``import rationalerm...``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("rationalerm", "tests"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] in ("rationalerm", "tests")]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_a_benchmark_imports_modules_that_exist(script: Path) -> None:
    for module, name in _imported_names(script):
        if name is not None and _is_submodule(module, name):
            continue
        assert importlib.util.find_spec(module) is not None, f"{script.name}: no module {module}"
        assert name is None or _defines(module, name), f"{script.name}: {module} has no {name}"


def _is_submodule(package: str, name: str) -> bool:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:  # a plain module: ``name`` is an attribute
        return False
    return importlib.util.find_spec(f"{package}.{name}") is not None


def _defines(module: str, name: str) -> bool:
    """Whether ``module``'s source binds ``name`` at top level (def, class, assignment or import), or names it for
    its lazy ``__getattr__``: read without importing it (a benchmark's modules may load torch or vLLM)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name).split(".")[0] == name for a in node.names):
            return True
    return "def __getattr__" in source and f'"{name}"' in source
