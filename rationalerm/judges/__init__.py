"""Judges fill the score matrix W: ``base`` holds the two interfaces, ``fill`` fills every unit's matrix
through the cache, ``embedding`` and ``llm`` are the judges."""

from __future__ import annotations

from rationalerm.config import EmbeddingJudgeConfig, LLMJudgeConfig
from rationalerm.judges.base import (
    ListJudge,
    ListResult,
    ListTask,
    PairJudge,
    PairScore,
    Progress,
    ProgressFactory,
    null_progress,
)


def make_judge(cfg: EmbeddingJudgeConfig | LLMJudgeConfig) -> PairJudge | ListJudge:
    """Build the judge a config names; LLM backends import their heavy dependencies lazily."""
    if isinstance(cfg, EmbeddingJudgeConfig):
        from rationalerm.judges.embedding import EmbeddingJudge

        return EmbeddingJudge(cfg)
    from rationalerm.judges.llm import make_llm_judge

    return make_llm_judge(cfg)


__all__ = [
    "ListJudge", "ListResult", "ListTask", "PairJudge", "PairScore", "Progress", "ProgressFactory", "make_judge",
    "null_progress",
]
