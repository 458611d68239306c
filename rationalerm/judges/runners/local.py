"""The default runner: the judge runs in this process, chunk by chunk (``judges.fill.judge_missing``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from rationalerm.judges.runners import RUNNERS, RunnerConfig


class LocalRunnerConfig(RunnerConfig):
    type: Literal["local"] = "local"


@RUNNERS.register("local", config=LocalRunnerConfig)
class LocalRunner:
    def __init__(self, cfg: LocalRunnerConfig) -> None:
        self.cfg = cfg

    def judge_pairs(self, judge: Any, judge_cfg: Any, cache: Any, pairs: Sequence[tuple[str, str]], chunk_size: int,
                    progress: Any) -> Any:
        from rationalerm.judges.stage import judge_missing

        return judge_missing(judge, cache, pairs, chunk_size, progress)
