"""Judges fill the score matrix W (DESIGN.md step 4).

``base``: the two judge interfaces, the judges' config base and the ``JUDGES`` registry; ``cache``: judged pairs
and lists on disk; ``stage``: the cache first, then the judge for what is missing (``runners``: where it runs);
``prefilter``: the embedding prefilter and its config section; ``embedding``, ``cross_encoder`` and ``llm``: the
judges, each registered under its name; ``canonical``: the response-reference rule in front of any judge.
"""

from __future__ import annotations

from typing import Any

from rationalerm.judges.base import (
    JUDGES,
    JudgeConfig,
    ListJudge,
    ListResult,
    ListTask,
    PairJudge,
    PairScore,
    Progress,
    ProgressFactory,
    null_progress,
)
from rationalerm.judges.canonical import canonical_judge


def make_judge(cfg: JudgeConfig, **kwargs: Any) -> PairJudge | ListJudge:
    """The judge ``cfg.type`` names, built from its config; heavy dependencies load only now. With
    ``cfg.canonical_references`` on, it sees response references written one way (``judges/canonical.py``); off,
    it is the bare judge, with the fingerprint (and so the cache) of versions before the rule."""
    judge: PairJudge | ListJudge = JUDGES.get(cfg.type)(cfg, **kwargs)
    return canonical_judge(judge) if cfg.canonical_references else judge


__all__ = [
    "JUDGES", "JudgeConfig", "ListJudge", "ListResult", "ListTask", "PairJudge", "PairScore", "Progress",
    "ProgressFactory", "make_judge", "null_progress",
]
