"""The package's import graph, read from the source (every import: top level, inside functions, under
TYPE_CHECKING): no cycle, and every edge runs down the layer order of the data flow (README "Layout").

A module may import modules of its own layer or of lower layers. ``rationalerm`` itself (the public API) is the
top: no module of the package imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.paths import ROOT

PACKAGE = ROOT / "rationalerm"

LAYERS: list[set[str]] = [
    {"_version", "errors", "registry", "_util"},
    {"scoring"},
    {"inputs", "datasets"},
    {"judges"},
    {"config"},
    {"runs"},
    {"analysis"},
    {"training", "reward", "integrations", "decompose", "pipeline", "reward_entry"},
    {"reporting"},
    {"cli", "__main__", "rationalerm"},
]
LEVEL = {name: k for k, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` names the submodule; `from mod import name` names the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _level(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    assert key in LEVEL, f"{module}: add its package to LAYERS (tests/test_layers.py) and the README layout"
    return LEVEL[key]


def test_no_import_runs_against_the_layer_order() -> None:
    bad = sorted(f"{a} -> {b}" for a, deps in _graph().items() for b in deps if _level(a) < _level(b))
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_graph_reader_sees_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rationalerm.b import X\n"
           "def f():\n    import rationalerm.c\n    from . import d\n")
    path = tmp_path / "a.py"
    path.write_text(src)
    known = {"rationalerm.b", "rationalerm.c", "rationalerm.d", "rationalerm.a"}
    assert _imports("rationalerm.a", path, known) == {"rationalerm.b", "rationalerm.c", "rationalerm.d"}
