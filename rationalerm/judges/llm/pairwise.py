"""The pairwise logprob protocol: one short prompt per (human item, model item) pair.

The answer is one of five single-token labels (0..4 = 0 / 0.25 / 0.5 / 0.75 / 1). The backend returns the
next-token log-probabilities of the five labels; they are renormalised over the five, and the pair's score
is the probability-weighted level. Nothing is parsed, so there is no invalid output.

What can never be a score is a *failed* pair (``PairScore.failure``), never a number: an answer without the
label log-probabilities, a NaN one, fewer than all five (unless the backend bounds the missing labels'
probability so tightly that they cannot move the score by more than ``MISSING_TOLERANCE``), or a prompt the
backend could not answer (too long, a server that kept failing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rationalerm.judges.base import PairScore, PairSink, Progress, ProgressFactory, null_progress
from rationalerm.judges.llm.backend import Backend, LabelLogprobs
from rationalerm.judges.llm.config import LLMJudgeConfig
from rationalerm.judges.llm.prompts import LABELS, LEVELS, judge_fingerprint, pairwise_messages, pairwise_split

MISSING_TOLERANCE = 1e-4
"""Labels missing from an answer are tolerated only when their total probability is bounded by this share of
the reported labels' (the score is then off by at most this much); otherwise the pair is failed."""
NO_LABELS_HINT = ("use a vLLM server with backend.structured_outputs: true (allowed_token_ids / "
                  "logprob_token_ids), or a judge model that follows the answer format")


def score_from_logprobs(logprobs: Sequence[float | None], unreported_mass: float | None = None) -> PairScore:
    """Probability-weighted level from the five label log-probabilities (or logits), or a failed pair.

    Every label must be reported (None = not reported) and none may be NaN or +inf (-inf is probability 0).
    A partial answer is renormalised only when ``unreported_mass`` (an upper bound on the missing labels'
    total probability, which only a backend returning true log-probabilities can give) is at most
    ``MISSING_TOLERANCE`` of the reported labels' probability.
    """
    if len(logprobs) != len(LEVELS):
        raise ValueError(f"expected {len(LEVELS)} label logprobs, got {len(logprobs)}")
    if any(lp is not None and (math.isnan(lp) or lp == math.inf) for lp in logprobs):
        return PairScore.failure("NaN logprobs", f"a label log-probability is not a number: {list(logprobs)}")
    known = [lp for lp in logprobs if lp is not None and lp != -math.inf]
    missing = sum(lp is None for lp in logprobs)
    if not known:
        if missing == len(LEVELS):
            return PairScore.failure("no label logprobs",
                                     f"none of the five level labels is among the returned logprobs; {NO_LABELS_HINT}")
        return PairScore.failure("no label logprobs", "every label log-probability is -inf")
    top = max(known)
    if missing:
        present = sum(math.exp(lp) for lp in known)
        if unreported_mass is None or top > 0.0 or unreported_mass > MISSING_TOLERANCE * present:
            bound = "unknown" if unreported_mass is None else f"up to {unreported_mass:.3g}"
            return PairScore.failure(
                "missing label logprobs",
                f"only {len(LEVELS) - missing} of {len(LEVELS)} label logprobs returned (the missing labels' "
                f"probability is {bound}, the reported labels' {present:.3g}); {NO_LABELS_HINT}",
            )
    weights = [math.exp(lp - top) if lp is not None else 0.0 for lp in logprobs]
    total = sum(weights)
    probs = [w / total for w in weights]
    score = sum(p * level for p, level in zip(probs, LEVELS))
    best = max(range(len(probs)), key=probs.__getitem__)
    detail: dict[str, Any] = {"level": LEVELS[best], "probs": [round(p, 6) for p in probs]}
    if missing:
        detail["missing_labels"] = missing
    return PairScore(score=min(1.0, max(0.0, score)), detail=detail)


def pair_score(answer: LabelLogprobs) -> PairScore:
    """A backend's answer to one pairwise prompt as a score, or a failed pair (the prompt got no answer)."""
    if answer.error:
        return PairScore.failure(answer.fault or "error", answer.error)
    return score_from_logprobs(answer.values, answer.unreported_mass)


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

    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress: Progress | None = None,
                    on_score: PairSink | None = None) -> list[PairScore]:
        """Scores in pair order; a pair that could not be scored is a failed ``PairScore`` (never an exception)."""
        if not pairs:
            return []
        splits = [pairwise_split(h, m, self.cfg.prompt_version) for h, m in pairs]
        scores: dict[int, PairScore] = {}

        def arrived(i: int, answer: LabelLogprobs) -> None:
            scores[i] = pair_score(answer)
            if on_score is not None:
                on_score(i, scores[i])

        answers = self.backend.label_logprobs(self.messages(pairs), LABELS, progress, settings=self.cfg,
                                              splits=splits, on_answer=arrived)
        return [scores[i] if i in scores else pair_score(a) for i, a in enumerate(answers)]

    def close(self) -> None:
        self.backend.close()
