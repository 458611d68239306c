"""The default runner: the judge runs in this process, chunk by chunk (``judges.stage.judge_missing``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from rationalerm.judges.runners import RUNNERS, RunnerConfig

if TYPE_CHECKING:
    from rationalerm.judges.base import JudgeConfig, Pair, PairJudge, ProgressFactory
    from rationalerm.judges.cache import JudgeCache
    from rationalerm.judges.stage import JudgedPairs


class LocalRunnerConfig(RunnerConfig):
    type: Literal["local"] = "local"


@RUNNERS.register("local", config=LocalRunnerConfig)
class LocalRunner:
    def __init__(self, cfg: LocalRunnerConfig) -> None:
        self.cfg = cfg

    def judge_pairs(self, judge: PairJudge, judge_cfg: JudgeConfig, cache: JudgeCache, pairs: Sequence[Pair],
                    chunk_size: int, progress: ProgressFactory) -> JudgedPairs:
        from rationalerm.judges.stage import judge_missing

        return judge_missing(judge, cache, pairs, chunk_size, progress)
