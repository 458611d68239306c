"""The judge interface every matcher implements.

Two shapes exist because the paper's listwise protocol judges a whole (R, S) grid in one call,
while pairwise judges (embedding, LLM pairwise) score independent pairs that can be deduplicated
and cached one by one across the corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Progress = Callable[[int], None]
"""Called with the number of newly finished units (pairs or lists)."""


@dataclass(frozen=True)
class PairScore:
    """A judged (human item, model item) pair; ``detail`` is JSON-able (e.g. level probabilities)."""

    score: float
    detail: dict[str, Any] | None = None


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


@runtime_checkable
class PairJudge(Protocol):
    kind: str  # always "pairwise"

    def fingerprint(self) -> dict[str, Any]: ...

    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress: Progress | None = None) -> list[PairScore]: ...

    def close(self) -> None: ...


@runtime_checkable
class ListJudge(Protocol):
    kind: str  # always "listwise"

    def fingerprint(self) -> dict[str, Any]: ...

    def judge_lists(self, tasks: Sequence[ListTask], progress: Progress | None = None) -> list[ListResult]: ...

    def close(self) -> None: ...
