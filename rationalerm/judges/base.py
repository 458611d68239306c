"""The judge interface every matcher implements, the judges' config base, and the judge registry.

Two shapes exist because the paper's listwise protocol judges a whole (R, S) grid in one call,
while pairwise judges (embedding, LLM pairwise) score independent pairs that can be deduplicated
and cached one by one across the corpus.

A judge is a module of this package that defines its config section (a ``JudgeConfig`` whose ``type`` is the
judge's name) and registers its factory under that name in ``JUDGES``; ``rationalerm.config`` builds the
``judge:`` section from the registered configs, and ``make_judge`` finds the factory by name. ``config`` is
above ``judges`` in the layer order (README "Layout"; ``tests/test_layers.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from rationalerm.registry import ConfigSection, Registry

Progress = Callable[[int], None]
"""Called with the number of newly finished units (pairs or lists)."""

ProgressFactory = Callable[[str, int], AbstractContextManager[Progress]]
"""``with factory(label, total) as advance: advance(n)``: one progress bar per stage
(``reporting.terminal.rich_progress``)."""

Pair = tuple[str, str]
"""A (human item, model item) text pair: what a pairwise judge scores and the cache keys."""


@contextmanager
def null_progress(_label: str, _total: int) -> Iterator[Progress]:
    """A progress factory that shows nothing."""
    yield lambda n: None


class JudgeConfig(ConfigSection):
    """Base of a judge's config section; ``type`` is the name the judge is registered under."""

    type: str
    canonical_references: bool = Field(
        True, description="rewrite response references ('Response A', 'Assistant B', 'the first response', ...) "
                          "as 'Response 1' / 'Response 2' before the judge sees a text (scoring/references.py); "
                          "the prefilter and calibrate embed the texts the same way. Recorded in the judge "
                          "fingerprint when on; off, the fingerprint (and so the cache) is that of earlier versions")

    def device_hint(self) -> str | None:
        """The device the judge runs on, if it says (the prefilter embeds beside it); None = the default."""
        return None

    def preferred_chunk_size(self) -> int | None:
        """Pairs (or lists) per judge call that keep the judge efficient; None = the run's default."""
        return None


JUDGES: Registry[Callable[..., Any]] = Registry(
    "judge type", package="rationalerm.judges",
    exclude=("base", "cache", "canonical", "compute", "prefilter", "stage", "runners", "vectors"))
"""Judge type -> factory taking its config (``make_judge``): every module of ``rationalerm.judges`` may register."""


@dataclass(frozen=True)
class PairScore:
    """A judged (human item, model item) pair; ``detail`` is JSON-able (e.g. level probabilities).

    ``score`` is None when the judge could not score the pair (DESIGN.md step 4: a *failed* pair): ``detail`` is
    then ``{"failed": kind, "error": reason}``. A failed pair is never a number, never cached, and retried by the
    next run.
    """

    score: float | None
    detail: dict[str, Any] | None = None

    @classmethod
    def failure(cls, kind: str, error: str) -> PairScore:
        """A pair the judge could not score; ``kind`` is a short reason (counted), ``error`` the full message."""
        return cls(None, {"failed": kind, "error": error})

    @property
    def failed(self) -> str | None:
        """The failure kind, or None for a scored pair."""
        if self.score is not None:
            return None
        return str((self.detail or {}).get("failed") or "failed")


PairSink = Callable[[int, PairScore], None]
"""Called with (index in the batch, score) as each pair's answer arrives (scores and failures alike)."""


@dataclass(frozen=True)
class ListTask:
    """One sample x model grid for a listwise judge."""

    human: tuple[str, ...]
    model: tuple[str, ...]
    context: str | None = None


@dataclass
class ListResult:
    """A listwise judgement: ``matrix`` is n x m (rows = human items) or None when invalid."""

    matrix: list[list[float]] | None
    valid: bool
    raw: str = ""
    attempts: int = 1
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None
    """Set (to a short reason kind) when the request itself failed after its retries: no answer at all. Unlike
    an invalid answer (cached, counted as an error), a failed list is never cached and the next run retries it."""


ListSink = Callable[[int, ListResult], None]
"""Called with (index in the batch, result) as each list's final result arrives."""


@runtime_checkable
class PairJudge(Protocol):
    kind: str  # always "pairwise"

    def fingerprint(self) -> dict[str, Any]: ...

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        """Called once per run, before any pair is scored, with every text of the run's pairs (a judge that
        embeds texts embeds them all at once, so no vector depends on chunking). Judges without such a step
        do nothing."""
        ...

    def score_pairs(self, pairs: Sequence[Pair], progress: Progress | None = None,
                    on_score: PairSink | None = None) -> list[PairScore]:
        """Scores in pair order; ``on_score`` (when given) gets each one as soon as it is known, so that good
        answers can be cached as they arrive. A pair that cannot be scored is a failed ``PairScore``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ListJudge(Protocol):
    kind: str  # always "listwise"

    def fingerprint(self) -> dict[str, Any]: ...

    def judge_lists(self, tasks: Sequence[ListTask], progress: Progress | None = None,
                    on_result: ListSink | None = None) -> list[ListResult]: ...

    def close(self) -> None: ...


@runtime_checkable
class ForgetsMemo(Protocol):
    """A judge that memoises per text (the embedding judge's vectors) and can drop that memo: a long-running caller
    (the RL reward) bounds its memory with it."""

    def forget(self) -> None: ...


@runtime_checkable
class CachesVectors(Protocol):
    """A judge that embeds texts (the embedding judge): its vectors are cached per text in the judge cache's file
    (``judges/vectors.py``), so a run killed while embedding, or the next reward batch, embeds only what is new."""

    def attach_vectors(self, path: Path) -> None: ...

    def embedding_counts(self) -> tuple[int, int]:
        """(texts embedded, texts read back from the vector cache) so far."""
        ...
