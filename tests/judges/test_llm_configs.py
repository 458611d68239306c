"""Every shipped config validates, and the LLM configs say what their names promise."""

from __future__ import annotations

import pytest

from rationalerm.config import load_config
from rationalerm.judges.llm import LLMJudgeConfig
from tests.helpers.paths import ROOT

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"qwen3-8b-vllm.yaml", "qwen3-30b-a3b-vllm.yaml", "vllm-server.yaml", "paper-listwise.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path):
    load_config(path)


def test_llm_configs():
    cfg = {p.name: load_config(p) for p in CONFIGS}
    j8 = cfg["qwen3-8b-vllm.yaml"].judge
    assert isinstance(j8, LLMJudgeConfig) and j8.backend.type == "vllm" and j8.model == "Qwen/Qwen3-8B"
    assert j8.protocol == "pairwise" and not j8.enable_thinking
    j30 = cfg["qwen3-30b-a3b-vllm.yaml"].judge
    assert j30.model == "Qwen/Qwen3-30B-A3B-Instruct-2507" and j30.backend.type == "vllm"
    server = cfg["vllm-server.yaml"].judge
    assert server.backend.type == "openai" and server.backend.base_url.startswith("http://127.0.0.1")
    paper = cfg["paper-listwise.yaml"]
    assert paper.judge.protocol == "listwise" and paper.judge.listwise.max_tokens == 8192
    assert paper.scoring.compat == "metajudge" and paper.scoring.max_model_items == 5


# -- the judge and backend sections: registries, per-backend blocks, old keys -------------------------------------
def _judge(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p).judge


def test_backend_blocks_are_chosen_by_type(tmp_path):
    from rationalerm.judges.llm.openai_backend import OpenAIBackendConfig
    from rationalerm.judges.llm.transformers_backend import TransformersBackendConfig
    from rationalerm.judges.llm.vllm_backend import VLLMBackendConfig

    assert isinstance(_judge(tmp_path, "judge: {type: llm, model: m}").backend, VLLMBackendConfig)  # the default
    assert isinstance(_judge(tmp_path, "judge: {type: llm, model: m, backend: openai}").backend, OpenAIBackendConfig)
    hf = _judge(tmp_path, "judge: {type: llm, model: m, backend: {type: transformers, device: cpu}}")
    assert isinstance(hf.backend, TransformersBackendConfig) and hf.device_hint() == "cpu"
    v = _judge(tmp_path, "judge: {type: llm, model: m, backend: {engine_args: {max_model_len: 512}}}")
    assert isinstance(v.backend, VLLMBackendConfig) and v.backend.engine_args == {"max_model_len": 512}


@pytest.mark.parametrize(
    "judge, message",
    [
        ("{type: llm, model: m, engine_args: {x: 1}}", "judge.engine_args is now judge.backend.engine_args"),
        ("{type: llm, model: m, backend: vllm, server: {base_url: u}}", "judge.server is now judge.the openai backend"),
        ("{type: llm, model: m, max_retries: 3}", "judge.max_retries is now judge.listwise.max_retries"),
        ("{type: llm, model: m, max_tokens: 9, structured_outputs: false}", "judge.structured_outputs is now"),
        ("{type: llm, model: m, device: cpu}", "judge.device is now judge.backend.device"),
        ("{type: llm, model: m, backend: {type: vllm, server: {}}}", "now the openai backend's own keys"),
        ("{type: llm, model: m, backend: {type: openai, engine_args: {}}}",
         "'engine_args' is a setting of backend type vllm"),
        ("{type: llm, model: m, backend: {type: vllm, base_url: u}}", "'base_url' is a setting of backend type openai"),
        ("{type: llm, model: m, backend: {type: tgi}}",
         "does not match any of the expected tags: 'openai', 'transformers', 'vllm'"),
        ("{type: bm25}", "does not match any of the expected tags: 'cross-encoder', 'embedding', 'llm'"),
    ],
)
def test_old_and_misplaced_keys_name_the_right_place(tmp_path, judge, message):
    from rationalerm import ConfigError

    with pytest.raises(ConfigError, match=r"c\.yaml: invalid config") as err:
        _judge(tmp_path, f"judge: {judge}\n")
    assert message in str(err.value)


def test_registries_find_by_name_and_list_the_known_names():
    from rationalerm import ConfigError
    from rationalerm.judges import JUDGES, make_judge
    from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig
    from rationalerm.judges.llm import BACKENDS

    assert JUDGES.names() == ["cross-encoder", "embedding", "llm"]
    assert BACKENDS.names() == ["openai", "transformers", "vllm"]
    assert JUDGES.get("embedding") is EmbeddingJudge and JUDGES.config("embedding") is EmbeddingJudgeConfig
    with pytest.raises(ConfigError, match="unknown LLM backend 'tgi'; registered: openai, transformers, vllm"):
        BACKENDS.get("tgi")
    with pytest.raises(ConfigError, match="unknown judge type 'x'; registered: cross-encoder, embedding, llm"):
        make_judge(EmbeddingJudgeConfig().model_copy(update={"type": "x"}))


def test_a_registry_checks_what_registers():
    from rationalerm.registry import ConfigSection, Registry

    class Good(ConfigSection):
        type: str = "good"

    reg: Registry = Registry("thing", package=None)
    reg.register("good", config=Good)(dict)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("good", config=Good)(list)
    with pytest.raises(ValueError, match="must default to 'other'"):
        reg.register("other", config=Good)(list)
    assert reg.config_union() is Good and reg.get("good") is dict
