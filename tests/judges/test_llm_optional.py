"""A missing optional package is one ``ConfigError`` naming the extra that installs it, for every LLM backend
and the Ray runner (``_util/optional.require``), never a bare ImportError. The packages are made missing with a
``None`` entry in ``sys.modules`` (what Python does for a module that cannot be imported)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rationalerm._util.optional import install_hint, require
from rationalerm.errors import ConfigError, RationaleRMError
from rationalerm.judges.llm import LLMJudgeConfig, make_backend


def test_require_returns_the_module_or_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", "vllm", "a test") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "json", None)
    with pytest.raises(ConfigError) as e:
        require("json", ("vllm", "gpu"), "judge backend 'x'")
    assert isinstance(e.value, RationaleRMError) and isinstance(e.value.__cause__, ModuleNotFoundError)
    assert str(e.value).startswith("judge backend 'x' needs the Python package 'json', which cannot be imported")
    assert str(e.value).endswith("install it with: pip install -e '.[vllm]' or '.[gpu]'")


def test_install_hints() -> None:
    assert install_hint("ray") == "pip install -e '.[ray]'"
    assert install_hint(("vllm", "gpu")) == "pip install -e '.[vllm]' or '.[gpu]'"
    assert install_hint(None).startswith("pip install -e . (it is a core dependency")


def test_a_package_that_is_there_but_broken_keeps_its_own_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_pkg_for_require.py").write_text("raise ImportError('cannot import name x from y')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="cannot import name x") as e:
        require("broken_pkg_for_require", "vllm", "a test")
    assert not isinstance(e.value, RationaleRMError)


@pytest.mark.parametrize(("backend", "missing", "hint"), [
    ("vllm", "vllm", "pip install -e '.[vllm]' or '.[gpu]'"),
    ("openai", "openai", "pip install -e '.[vllm]' or '.[gpu]'"),
    ("transformers", "transformers", "pip install -e . (it is a core dependency"),
    ("transformers", "torch", "pip install -e . (it is a core dependency"),
])
def test_every_backend_names_the_extra_of_its_missing_package(backend: str, missing: str, hint: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ConfigError) as e:
        make_backend(LLMJudgeConfig(model="Qwen/Qwen3-8B", backend=backend))
    assert f"judge backend '{backend}' needs the Python package '{missing}'" in str(e.value) and hint in str(e.value)


def test_in_a_fresh_interpreter_a_missing_vllm_is_one_error_line_from_the_cli(tmp_path) -> None:
    """The CLI prints the error (exit 2), no traceback: nothing of vllm was imported before."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("judge: {type: llm, model: Qwen/Qwen3-8B, backend: vllm}\n")
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "m-generated_text": "Response 1 keeps the order."}\n')
    code = ("import sys; sys.modules['vllm'] = None; sys.argv = ['rationalerm'] + sys.argv[1:]\n"
            "from rationalerm.cli import main; main()")
    run = subprocess.run([sys.executable, "-c", code, "decompose", str(src), "--config", str(cfg), "--out",
                          str(tmp_path / "out.jsonl")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "judge backend 'vllm' needs the Python package 'vllm'" in run.stderr
    assert "pip install -e '.[vllm]'" in run.stderr and "Traceback" not in run.stderr


def test_the_ray_runner_names_its_extra_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from rationalerm.judges.runners.ray_data import RayRunner, RayRunnerConfig

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError) as e:
        RayRunner(RayRunnerConfig())._connect()
    assert "runner 'ray' needs the Python package 'ray'" in str(e.value) and "pip install -e '.[ray]'" in str(e.value)
