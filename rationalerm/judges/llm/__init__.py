"""The open Qwen judge (DESIGN.md step 4): pairwise logprob protocol or the paper's listwise protocol,
on an in-process vLLM engine, an OpenAI-compatible server (e.g. ``vllm serve``) or transformers.

Its config is ``config.LLMJudgeConfig``; backends are found by name in ``settings.BACKENDS`` and import their
heavy dependencies (vllm, torch, openai) only when built (a missing one is a ``ConfigError`` naming the extra).
The invalid-output re-asks of the listwise judge (and of ``rationalerm decompose``) are one loop, ``reask``.
"""

from __future__ import annotations

from rationalerm.errors import JudgeError
from rationalerm.judges.base import JUDGES, ListJudge, PairJudge
from rationalerm.judges.llm.backend import Backend, Generation, LabelLogprobs
from rationalerm.judges.llm.config import ListwiseConfig, LLMJudgeConfig
from rationalerm.judges.llm.listwise import LLMListJudge, listwise_regex, parse_listwise
from rationalerm.judges.llm.pairwise import LLMPairJudge, score_from_logprobs
from rationalerm.judges.llm.prompts import LABELS, LEVELS
from rationalerm.judges.llm.settings import BACKENDS, BackendConfig


def make_backend(cfg: LLMJudgeConfig) -> Backend:
    """The backend ``cfg.backend.type`` names, built on the judge's config."""
    backend = BACKENDS.get(cfg.backend.type)(cfg)
    if not isinstance(backend, Backend):
        raise TypeError(f"LLM backend {cfg.backend.type!r} is registered with a factory that built a "
                        f"{type(backend).__name__}, not a Backend")
    return backend


@JUDGES.register("llm", config=LLMJudgeConfig)
def make_llm_judge(cfg: LLMJudgeConfig, backend: Backend | None = None) -> PairJudge | ListJudge:
    """The judge a config names; pass ``backend`` to share one engine between judges (e.g. in tests)."""
    from rationalerm.judges.llm.prompts import check_version

    check_version(cfg.prompt_version)  # fail before an engine starts
    backend = backend if backend is not None else make_backend(cfg)
    if cfg.protocol == "listwise":
        return LLMListJudge(cfg, backend)
    return LLMPairJudge(cfg, backend)


__all__ = [
    "BACKENDS",
    "LABELS",
    "LEVELS",
    "Backend",
    "BackendConfig",
    "Generation",
    "JudgeError",
    "LLMJudgeConfig",
    "LLMListJudge",
    "LLMPairJudge",
    "LabelLogprobs",
    "ListwiseConfig",
    "listwise_regex",
    "make_backend",
    "make_llm_judge",
    "parse_listwise",
    "score_from_logprobs",
]
