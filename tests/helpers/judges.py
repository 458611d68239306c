"""Judges for tests of the loops around a judge (the judge stage, the reward): a scripted pairwise judge (it
scores identical texts 1 and different ones 0, fails the pairs it is told to, and records every call), and a slow
wrapper of any pairwise judge (a judge server's latency per call)."""

from __future__ import annotations

import threading
import time
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


class SlowJudge:
    """Wraps a pairwise judge as a judge server would look to its caller: each ``score_pairs`` call first sleeps
    ``delay`` seconds, whatever its size; it is counted, raises ``error`` when that is set, and records how many
    calls ever ran at once."""

    kind = "pairwise"

    def __init__(self, inner: Any, delay: float = 0.25, error: BaseException | None = None) -> None:
        self.inner = inner
        self.delay = delay
        self.error = error
        self.calls: list[int] = []
        """The number of pairs of each call."""
        self.max_at_once = 0
        self._active = 0
        self._lock = threading.Lock()

    def fingerprint(self) -> dict[str, Any]:
        return self.inner.fingerprint()

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        self.inner.prepare(texts, progress)

    def score_pairs(self, pairs: Sequence[Pair], progress: Progress | None = None,
                    on_score: PairSink | None = None) -> list[PairScore]:
        with self._lock:
            self._active += 1
            self.max_at_once = max(self.max_at_once, self._active)
            self.calls.append(len(pairs))
        try:
            time.sleep(self.delay)
            if self.error is not None:
                raise self.error
            return self.inner.score_pairs(pairs, progress, on_score)
        finally:
            with self._lock:
                self._active -= 1

    def close(self) -> None:
        self.inner.close()
