"""The package imports in any order: the registries discover their modules (which import nothing above their
layer: ``tests/test_layers.py``), and ``import rationalerm`` stays light."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import rationalerm.judges
from tests.helpers.paths import ROOT

CHECK = (
    "import {module}, sys\n"
    "from rationalerm.judges import JUDGES\n"
    "from rationalerm.judges.llm import BACKENDS\n"
    "assert JUDGES.names() == ['cross-encoder', 'embedding', 'llm'], JUDGES.names()\n"
    "assert BACKENDS.names() == ['openai', 'transformers', 'vllm'], BACKENDS.names()\n"
    "heavy = [m for m in ('vllm', 'torch', 'openai', 'sentence_transformers', 'datasets') if m in sys.modules]\n"
    "assert {light} is False or not heavy, heavy\n"
)


def test_every_module_imports_first_with_complete_registries() -> None:
    judges = [m.name for m in pkgutil.walk_packages(rationalerm.judges.__path__, "rationalerm.judges.")]
    assert {"rationalerm.judges.stage", "rationalerm.judges.llm.vllm_backend"} <= set(judges)
    light = {"rationalerm", "rationalerm.config", "rationalerm.judges", "rationalerm.judges.llm"}
    procs = {
        m: subprocess.Popen([sys.executable, "-c", CHECK.format(module=m, light=m in light)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for m in ["rationalerm", "rationalerm.config", "rationalerm.pipeline", "rationalerm.judges", *judges]
    }
    failed = {m: p.communicate(timeout=300)[0][-600:] for m, p in procs.items()}
    assert not {m: out for m, out in failed.items() if procs[m].returncode != 0}
