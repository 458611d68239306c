"""The pairwise logprob protocol: one short prompt per (human item, model item) pair.

The answer is one of five single-token labels (0..4 = 0 / 0.25 / 0.5 / 0.75 / 1). The backend returns the
next-token log-probabilities of the five labels; they are renormalised over the five, and the pair's score
is the probability-weighted level. Nothing is parsed, so there is no invalid output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rationalerm.errors import JudgeError
from rationalerm.judges.base import PairScore, Progress, ProgressFactory, null_progress
from rationalerm.judges.llm.backend import Backend
from rationalerm.judges.llm.config import LLMJudgeConfig
from rationalerm.judges.llm.prompts import LABELS, LEVELS, judge_fingerprint, pairwise_messages, pairwise_split


def score_from_logprobs(logprobs: Sequence[float | None]) -> PairScore:
    """Probability-weighted level from the five label log-probabilities (None = not reported, taken as 0)."""
    if len(logprobs) != len(LEVELS):
        raise ValueError(f"expected {len(LEVELS)} label logprobs, got {len(logprobs)}")
    def ok(lp: float | None) -> bool:
        return lp is not None and not math.isnan(lp) and lp != -math.inf

    known = [lp for lp in logprobs if ok(lp)]
    if not known:
        raise JudgeError(
            "none of the five level labels is among the returned logprobs; use a vLLM server with "
            "backend.structured_outputs: true (allowed_token_ids / logprob_token_ids), or a judge model that "
            "follows the answer format"
        )
    top = max(known)
    weights = [math.exp(lp - top) if ok(lp) else 0.0 for lp in logprobs]
    total = sum(weights)
    probs = [w / total for w in weights]
    score = sum(p * level for p, level in zip(probs, LEVELS))
    best = max(range(len(probs)), key=probs.__getitem__)
    return PairScore(
        score=min(1.0, max(0.0, score)),
        detail={"level": LEVELS[best], "probs": [round(p, 6) for p in probs]},
    )


class LLMPairJudge:
    """Pairwise judge over any backend."""

    kind = "pairwise"

    def __init__(self, cfg: LLMJudgeConfig, backend: Backend):
        self.cfg = cfg
        self.backend = backend

    def fingerprint(self) -> dict[str, Any]:
        # The score is read from the logprobs of one forward step, so temperature and seed do not change it;
        # they are kept anyway so that a config change never silently reuses a cache.
        return judge_fingerprint(self.cfg, "pairwise", labels=list(LABELS), levels=list(LEVELS))

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        """Nothing to do ahead: prompts are built and tokenised per chunk."""

    def messages(self, pairs: Sequence[tuple[str, str]]) -> list[list[dict[str, str]]]:
        return [pairwise_messages(h, m, self.cfg.prompt_version) for h, m in pairs]

    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress: Progress | None = None) -> list[PairScore]:
        if not pairs:
            return []
        splits = [pairwise_split(h, m, self.cfg.prompt_version) for h, m in pairs]
        answers = self.backend.label_logprobs(self.messages(pairs), LABELS, progress, settings=self.cfg, splits=splits)
        failed = [a.error for a in answers if a.error]
        if failed:  # no pair is ever given a score it did not get
            raise JudgeError(f"{len(failed)} of {len(pairs)} pairwise prompts could not be scored: {failed[0]}")
        return [score_from_logprobs(a.values) for a in answers]

    def close(self) -> None:
        self.backend.close()
