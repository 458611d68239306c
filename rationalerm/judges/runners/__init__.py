"""Runners: where the judge stage runs (DESIGN.md step 4), found by name in ``RUNNERS`` (``runner: {type: ...}``).

A runner takes the run's distinct pairs and leaves every good answer in the cache, returning what it judged and
the failures (``judges.fill.JudgedPairs``); the rest of the run (matching, scoring, writing) is the same
whatever ran the judge, so outputs are too. ``local`` judges in this process; ``ray`` spreads the pairs over
the actors of a Ray cluster (``runners/ray.py``). Modules of this package import no heavy dependency at import
time (the config tree is built from what is registered); ``config`` is above them in the layer order (README
"Layout"; ``tests/test_layers.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rationalerm.registry import ConfigSection, Registry


class RunnerConfig(ConfigSection):
    """Base of a runner's config section; ``type`` is the name it is registered under."""

    type: str


class Runner(Protocol):
    def judge_pairs(self, judge: Any, judge_cfg: Any, cache: Any, pairs: Sequence[tuple[str, str]], chunk_size: int,
                    progress: Any) -> Any:
        """Judge the ``pairs`` missing from ``cache`` (all good answers end up in it); a ``JudgedPairs``."""
        ...


RUNNERS: Registry[Callable[..., Runner]] = Registry("runner type", package="rationalerm.judges.runners")


def make_runner(cfg: RunnerConfig) -> Runner:
    return RUNNERS.get(cfg.type)(cfg)
