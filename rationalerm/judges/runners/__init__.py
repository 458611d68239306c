"""Runners: where the judge stage runs (DESIGN.md step 4), found by name in ``RUNNERS`` (``runner: {type: ...}``).

A runner takes the run's distinct pairs and leaves every good answer in the cache, returning what it judged and
the failures (``judges.stage.JudgedPairs``); the rest of the run (matching, scoring, writing) is the same
whatever ran the judge, so outputs are too. ``local`` judges in this process (``runners/local.py``); ``ray``
spreads the pairs over the actors of a Ray cluster (``runners/ray_data.py``). Modules of this package import no
heavy dependency at import time (the config tree is built from what is registered); ``config`` is above them in
the layer order (README "Layout"; ``tests/test_layers.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from rationalerm.registry import ConfigSection, Registry

if TYPE_CHECKING:
    from rationalerm.judges.base import JudgeConfig, Pair, PairJudge, ProgressFactory
    from rationalerm.judges.cache import JudgeCache
    from rationalerm.judges.stage import JudgedPairs


class RunnerConfig(ConfigSection):
    """Base of a runner's config section; ``type`` is the name it is registered under."""

    type: str


class Runner(Protocol):
    def judge_pairs(self, judge: PairJudge, judge_cfg: JudgeConfig, cache: JudgeCache, pairs: Sequence[Pair],
                    chunk_size: int, progress: ProgressFactory) -> JudgedPairs:
        """Judge the ``pairs`` missing from ``cache`` (all good answers end up in it). ``judge`` is built from
        ``judge_cfg``; a runner that judges elsewhere builds its own judges from the config."""
        ...


RUNNERS: Registry[Callable[..., Runner]] = Registry("runner type", package="rationalerm.judges.runners")


def make_runner(cfg: RunnerConfig) -> Runner:
    return RUNNERS.get(cfg.type)(cfg)
