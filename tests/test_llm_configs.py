"""Every shipped config validates, and the LLM configs say what their names promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from rationalerm.config import LLMJudgeConfig, load_config

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"qwen3-8b-vllm.yaml", "qwen3-30b-a3b-vllm.yaml", "vllm-server.yaml", "paper-listwise.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path):
    load_config(path)


def test_llm_configs():
    cfg = {p.name: load_config(p) for p in CONFIGS}
    j8 = cfg["qwen3-8b-vllm.yaml"].judge
    assert isinstance(j8, LLMJudgeConfig) and j8.backend == "vllm" and j8.model == "Qwen/Qwen3-8B"
    assert j8.protocol == "pairwise" and not j8.enable_thinking
    j30 = cfg["qwen3-30b-a3b-vllm.yaml"].judge
    assert j30.model == "Qwen/Qwen3-30B-A3B-Instruct-2507" and j30.backend == "vllm"
    server = cfg["vllm-server.yaml"].judge
    assert server.backend == "openai" and server.server.base_url.startswith("http://127.0.0.1")
    paper = cfg["paper-listwise.yaml"]
    assert paper.judge.protocol == "listwise" and paper.judge.max_tokens == 8192
    assert paper.scoring.compat == "metajudge" and paper.scoring.max_model_items == 5
