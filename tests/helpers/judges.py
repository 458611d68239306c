"""A scripted pairwise judge for tests of the loops around a judge (the judge stage, the reward): it scores
identical texts 1 and different ones 0, fails the pairs it is told to, and records every call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rationalerm.judges.base import Pair, PairScore, PairSink, Progress, ProgressFactory, null_progress


class ScriptedJudge:
    kind = "pairwise"

    def __init__(self, fail: Iterable[Pair] = (), stream: bool = True) -> None:
        self.fail = set(fail)
        """Pairs answered with a failure (``server error``): no score."""
        self.stream = stream
        """Give each answer to ``on_score`` as it is known (as the LLM backends do), else only return them."""
        self.calls: list[list[Pair]] = []
        self.prepared: list[list[str]] = []

    def fingerprint(self) -> dict[str, Any]:
        return {"judge": "scripted"}

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        self.prepared.append(list(texts))

    def score_pairs(self, pairs: Sequence[Pair], progress: Progress | None = None,
                    on_score: PairSink | None = None) -> list[PairScore]:
        self.calls.append(list(pairs))
        out = [PairScore.failure("server error", "HTTP 500") if p in self.fail
               else PairScore(1.0 if p[0] == p[1] else 0.0, {"same": p[0] == p[1]}) for p in pairs]
        if on_score is not None and self.stream:
            for k, ps in enumerate(out):
                on_score(k, ps)
        return out

    @property
    def asked(self) -> list[Pair]:
        return [p for call in self.calls for p in call]

    def close(self) -> None:
        pass
