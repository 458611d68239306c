"""Start-up: ``--help`` (of the app and of every command), ``--version`` and usage errors answer without importing
a model library, scipy, pyarrow or matplotlib (each costs seconds before the first line); the imports are
asserted, not the wall time, which a shared machine makes noisy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rationalerm._version import __version__
from tests.helpers.paths import ROOT

HEAVY = ("torch", "transformers", "sentence_transformers", "vllm", "ray", "scipy", "matplotlib", "pyarrow", "pandas",
         "sklearn", "openai", "datasets")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "140"}

# Each case runs the real typer app in one fresh process and records the exit code and the heavy modules loaded.
DRIVER = """
import json, sys
from typer.main import get_command
from rationalerm.cli import app

heavy = {heavy!r}
commands = sorted(get_command(app).commands)
cases = [["--help"], ["--version"], ["run"], ["run", "--no-such-option"], ["score", "a", "b", "c"],
         *[[name, "--help"] for name in commands]]
out = {{"commands": commands, "cases": []}}
for args in cases:
    try:
        app(args, prog_name="rationalerm")
        code = 0
    except SystemExit as e:
        code = e.code
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))
    out["cases"].append({{"args": args, "code": code, "heavy": loaded}})
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
"""


def test_help_version_and_usage_errors_import_no_heavy_module(tmp_path: Path) -> None:
    report = tmp_path / "cases.json"
    proc = subprocess.run([sys.executable, "-c", DRIVER.format(heavy=HEAVY), str(report)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(report.read_text())
    assert {"run", "score", "train", "decompose", "calibrate"} <= set(found["commands"])
    codes = {" ".join(c["args"]): c["code"] for c in found["cases"]}
    assert codes["--help"] == codes["--version"] == codes["run --help"] == 0
    assert codes["run"] == codes["run --no-such-option"] == codes["score a b c"] == 2  # click's usage errors
    assert f"rationalerm {__version__}" in proc.stdout
    assert not [c for c in found["cases"] if c["heavy"]], [c for c in found["cases"] if c["heavy"]]


def test_the_real_entry_point_prints_the_version_before_any_heavy_import() -> None:
    """``python -m rationalerm --version`` as a user runs it; ``-X importtime`` lists every module it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "rationalerm", "--version"], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"rationalerm {__version__}"
    imported = {m.split(".")[0] for m in re.findall(r"^import time:.*\|\s*(\S+)\s*$", proc.stderr, re.M)}
    assert "rationalerm" in imported and "typer" in imported  # the listing is real
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
