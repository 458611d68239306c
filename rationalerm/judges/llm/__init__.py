"""The open Qwen judge (DESIGN.md step 4): pairwise logprob protocol or the paper's listwise protocol,
on an in-process vLLM engine, an OpenAI-compatible server (e.g. ``vllm serve``) or transformers.

Backends import their heavy dependencies (vllm, torch, openai) only when built.
"""

from __future__ import annotations

from rationalerm.config import LLMJudgeConfig
from rationalerm.judges.base import ListJudge, PairJudge
from rationalerm.judges.llm.backend import Backend, Generation, JudgeError
from rationalerm.judges.llm.listwise import LLMListJudge, listwise_regex, parse_listwise
from rationalerm.judges.llm.pairwise import LLMPairJudge, score_from_logprobs
from rationalerm.judges.llm.prompts import LABELS, LEVELS


def make_backend(cfg: LLMJudgeConfig) -> Backend:
    if cfg.backend == "vllm":
        from rationalerm.judges.llm.vllm_backend import VLLMBackend

        return VLLMBackend(cfg)
    if cfg.backend == "openai":
        from rationalerm.judges.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.backend == "transformers":
        from rationalerm.judges.llm.transformers_backend import TransformersBackend

        return TransformersBackend(cfg)
    raise ValueError(f"unknown LLM backend {cfg.backend!r}")


def make_llm_judge(cfg: LLMJudgeConfig, backend: Backend | None = None) -> PairJudge | ListJudge:
    """The judge a config names; pass ``backend`` to share one engine between judges (e.g. in tests)."""
    from rationalerm.judges.llm.prompts import check_version

    check_version(cfg.prompt_version)  # fail before an engine starts
    backend = backend if backend is not None else make_backend(cfg)
    if cfg.protocol == "listwise":
        return LLMListJudge(cfg, backend)
    return LLMPairJudge(cfg, backend)


__all__ = [
    "LABELS",
    "LEVELS",
    "Backend",
    "Generation",
    "JudgeError",
    "LLMListJudge",
    "LLMPairJudge",
    "listwise_regex",
    "make_backend",
    "make_llm_judge",
    "parse_listwise",
    "score_from_logprobs",
]
