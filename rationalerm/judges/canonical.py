"""A judge that sees response references written one way: ``Response 1`` / ``Response 2`` (issue 22).

``make_judge`` wraps every judge in ``CanonicalPairs`` / ``CanonicalLists`` when its config's
``canonical_references`` is on (the default): each text reaches the inner judge as
``scoring.references.canonical_references`` rewrites it, so the embedding, the cross-encoder and the LLM judges
all compare "Response A ..." with "Response 1 ..." as the same words. This is the one place a judge gets the
rule: the judge stage, the Ray runner's actors and the RL reward all build their judge with ``make_judge``; the
embedding prefilter (``prefilter.py``) and ``calibrate`` embed texts through the same rule when the judge config
has it on, so the cells they keep and the threshold they choose are those of the judge that scores. The cache,
the matrices and ``results.jsonl`` keep the original texts; the wrapper's fingerprint adds the rule's version, so
scores cached with the rule off (or under another version of it) are never reused. A listwise task's
``context`` (the conversation the responses answer) is passed as it is: it is the dataset's text, not an item.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rationalerm.judges.base import (
    CachesVectors,
    ForgetsMemo,
    ListJudge,
    ListResult,
    ListSink,
    ListTask,
    Pair,
    PairJudge,
    PairScore,
    PairSink,
    Progress,
    ProgressFactory,
    null_progress,
)
from rationalerm.scoring.references import REFERENCE_RULE, canonical_references

FINGERPRINT_KEY = "canonical_references"
"""The fingerprint entry a judge with the rule on adds (the rule's version); absent when the rule is off."""


def _fingerprint(inner: PairJudge | ListJudge) -> dict[str, Any]:
    return {**inner.fingerprint(), FINGERPRINT_KEY: REFERENCE_RULE}


class CanonicalPairs:
    """A pairwise judge whose pairs (and prepared texts) have their references made canonical first."""

    kind = "pairwise"

    def __init__(self, inner: PairJudge) -> None:
        self.inner = inner

    def fingerprint(self) -> dict[str, Any]:
        return _fingerprint(self.inner)

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        self.inner.prepare(list(dict.fromkeys(canonical_references(t) for t in texts)), progress)

    def score_pairs(self, pairs: Sequence[Pair], progress: Progress | None = None,
                    on_score: PairSink | None = None) -> list[PairScore]:
        canonical = [(canonical_references(h), canonical_references(s)) for h, s in pairs]
        return self.inner.score_pairs(canonical, progress=progress, on_score=on_score)

    def forget(self) -> None:
        """Drops the inner judge's per-text memo, when it keeps one (``ForgetsMemo``)."""
        if isinstance(self.inner, ForgetsMemo):
            self.inner.forget()

    def close(self) -> None:
        self.inner.close()


class CanonicalLists:
    """A listwise judge whose grids' items have their references made canonical first."""

    kind = "listwise"

    def __init__(self, inner: ListJudge) -> None:
        self.inner = inner

    def fingerprint(self) -> dict[str, Any]:
        return _fingerprint(self.inner)

    def judge_lists(self, tasks: Sequence[ListTask], progress: Progress | None = None,
                    on_result: ListSink | None = None) -> list[ListResult]:
        canonical = [ListTask(tuple(map(canonical_references, t.human)), tuple(map(canonical_references, t.model)),
                              t.context) for t in tasks]
        return self.inner.judge_lists(canonical, progress=progress, on_result=on_result)

    def close(self) -> None:
        self.inner.close()


class CanonicalEmbeddingPairs(CanonicalPairs):
    """``CanonicalPairs`` over a judge that embeds texts: its vectors stay cached per text (the canonical text, as
    the judge embeds it), so the rule, on by default, keeps the vector cache (``judges/vectors.py``)."""

    def __init__(self, inner: PairJudge) -> None:
        super().__init__(inner)
        assert isinstance(inner, CachesVectors)
        self.embeds: CachesVectors = inner

    def attach_vectors(self, path: Path) -> None:
        self.embeds.attach_vectors(path)

    def embedding_counts(self) -> tuple[int, int]:
        return self.embeds.embedding_counts()


def canonical_judge(judge: PairJudge | ListJudge) -> PairJudge | ListJudge:
    """``judge`` behind the reference rule (module docstring)."""
    if isinstance(judge, PairJudge) and judge.kind == "pairwise":
        return CanonicalEmbeddingPairs(judge) if isinstance(judge, CachesVectors) else CanonicalPairs(judge)
    if isinstance(judge, ListJudge):
        return CanonicalLists(judge)
    raise TypeError(f"not a judge: {type(judge).__name__}")
