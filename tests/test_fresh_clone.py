"""The README's test command passes on a fresh clone with nothing beside it: the tests read their data from
tests/data (../shared is for the benchmarks), and pytest says why a test was skipped."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from tests.helpers.data import ARGKP_ENV, METAJUDGE_REFERENCE, default_argkp_path
from tests.helpers.paths import ROOT, TEST_DATA

ARGKP_FILES = [f"{kind}_{split}.csv" for kind in ("arguments", "key_points", "labels") for split in ("train", "dev")]


def test_argkp_copy_is_in_the_repository_with_its_licence(monkeypatch) -> None:
    monkeypatch.delenv(ARGKP_ENV, raising=False)
    data = default_argkp_path()
    assert data.resolve().is_relative_to(ROOT)
    assert all((data / name).is_file() for name in ARGKP_FILES)
    assert (data / "LICENSE").read_text().startswith("Community Data License Agreement - Sharing - Version 1.0")
    assert "Community Data License Agreement" in (data / "readme.txt").read_text()
    assert all((METAJUDGE_REFERENCE / f"{n}.{ext}").is_file() for n in ("clean", "messy")
               for ext in ("jsonl.gz", "corpus.json"))


def test_no_test_reads_the_shared_folder() -> None:
    """Only tests/helpers/data.py names ../shared (for the benchmarks)."""
    pattern = re.compile(r"""["']shared["']\s*/|\.\./shared""")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
                 if not p.is_relative_to(TEST_DATA) and p.name not in ("data.py", Path(__file__).name)
                 and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_pytest_reports_skip_reasons() -> None:
    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    flags = "".join(m.group(1) for m in re.finditer(r"-r(\w+)", opts))
    assert "s" in flags or "a" in flags or "A" in flags


def test_example_commands_name_the_projects_python() -> None:
    """Run as written on a fresh clone (no venv active): the docstring says ``.venv/bin/python``."""
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / "reward_loop.py").read_text(encoding="utf-8"))) or ""
    commands = [line for line in doc.splitlines() if "examples/reward_loop.py" in line]
    assert commands and all(re.search(r"(^|\s)\.venv/bin/python examples/reward_loop\.py", c) for c in commands)
    assert not any(re.search(r"(^|\s)python3? examples/", c) for c in commands)


def test_the_readme_examples_outputs_are_ignored() -> None:
    """`train --out models/..`, `export --out tables --plots figures` write into the checkout: git ignores them."""
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert {"/models/", "/tables/", "/figures/", "/runs/"} <= ignored
