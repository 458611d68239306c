"""The Ray runner: the judge stage on a Ray cluster (``runner: {type: ray}`` or ``rationalerm run --runner ray``).

The run's pairs that the cache lacks become a Ray Dataset; ``map_batches`` sends batches of ``chunk_size`` pairs
to ``actors`` actors, each holding one judge built from the run's ``judge:`` section (embedding, cross-encoder,
or an LLM judge with its backend). Answers stream back to the driver, which caches the good ones as they arrive
and keeps the failed ones (never cached: the next run asks them again), exactly as the local runner does; the
rest of the run reads the cache, so the outputs are those of a local run.

Each actor calls its judge's ``prepare`` with the run's whole text set before its first batch, as a local run
does once: an embedding judge embeds the same texts in the same batches, so its floats (and the outputs) are
byte-identical to a local run. For that judge the embedding is most of the work, so more actors do not make it
faster; the runner pays off for judges whose cost is per pair (cross-encoder, LLM).

Without ``address`` the runner joins the Ray instance this process already started (``ray.init``), or starts a
local one (``num_cpus`` CPUs) and shuts it down at the end; ``address: auto`` or ``HOST:PORT`` joins a cluster
started with ``ray start --head`` (and ``ray start --address HOST:PORT`` on the other machines).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from rationalerm._util.optional import require
from rationalerm.judges.runners import RUNNERS, RunnerConfig

if TYPE_CHECKING:
    import ray.data

    from rationalerm.judges.base import JudgeConfig, Pair, PairJudge, PairScore, ProgressFactory
    from rationalerm.judges.cache import JudgeCache
    from rationalerm.judges.stage import JudgedPairs


class RayRunnerConfig(RunnerConfig):
    type: Literal["ray"] = "ray"
    address: str | None = Field(None, description="Ray cluster address ('auto', 'HOST:PORT'); None = local")
    actors: int = Field(1, ge=1, description="judge actors (each holds one judge)")
    cpus_per_actor: float = Field(1.0, gt=0)
    gpus_per_actor: float = Field(0.0, ge=0)
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray instance the runner starts itself")


class _JudgeActor:
    """A Ray Data actor: one judge, prepared once with the run's texts; scores a batch of pairs."""

    def __init__(self, judge_cfg: dict[str, Any], texts: list[str]) -> None:
        from rationalerm.judges import JUDGES, JudgeConfig, PairJudge, make_judge

        cfg = JUDGES.config(judge_cfg["type"]).model_validate(judge_cfg)
        assert isinstance(cfg, JudgeConfig)  # what JUDGES registers
        judge = make_judge(cfg)
        assert isinstance(judge, PairJudge), "only a pairwise judge reaches a runner (the run checks)"
        self.judge = judge
        self.judge.prepare(texts)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import orjson

        pairs = [(str(h), str(s)) for h, s in zip(batch["h"], batch["s"])]
        scores = self.judge.score_pairs(pairs)
        return {
            "k": batch["k"],
            "failed": np.array([ps.score is None for ps in scores]),
            "score": np.array([np.nan if ps.score is None else ps.score for ps in scores], dtype=np.float64),
            "detail": np.array([orjson.dumps(ps.detail).decode() if ps.detail is not None else "" for ps in scores],
                               dtype=object),
        }


@RUNNERS.register("ray", config=RayRunnerConfig)
class RayRunner:
    def __init__(self, cfg: RayRunnerConfig) -> None:
        self.cfg = cfg

    def _connect(self) -> bool:
        """Join or start Ray; True when this runner started it (and so shuts it down)."""
        ray = require("ray", "ray", "runner 'ray'")
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.cfg.address is not None:
            ray.init(address=self.cfg.address, **kwargs)
        else:
            ray.init(num_cpus=self.cfg.num_cpus, **kwargs)
        return True

    def judge_pairs(self, judge: PairJudge, judge_cfg: JudgeConfig, cache: JudgeCache, pairs: Sequence[Pair],
                    chunk_size: int, progress: ProgressFactory) -> JudgedPairs:
        """The pairs the cache lacks, judged by the actors (``judge`` itself is not used: each actor builds its
        own from ``judge_cfg``)."""
        from rationalerm.judges.stage import JudgedPairs

        todo = cache.missing_pairs(pairs)
        if not todo:
            return JudgedPairs(0, len(pairs))
        started = self._connect()
        try:
            texts = list(dict.fromkeys(t for p in pairs for t in p))
            failures = _collect(self._scored(todo, texts, judge_cfg, chunk_size), todo, cache, progress)
        finally:
            if started:
                import ray

                ray.shutdown()
        return JudgedPairs(len(todo), len(pairs) - len(todo), failures)

    def _scored(self, todo: list[Pair], texts: list[str], judge_cfg: JudgeConfig, chunk_size: int) -> ray.data.Dataset:
        """The lazy dataset of ``todo``'s answers: batches of ``chunk_size`` pairs through the actor pool."""
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        blocks = max(1, min(-(-len(todo) // chunk_size), 200))
        ds = ray.data.from_items([{"k": k, "h": h, "s": s} for k, (h, s) in enumerate(todo)],
                                 override_num_blocks=blocks)
        return ds.map_batches(
            _JudgeActor, batch_size=chunk_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.cfg.actors),
            num_cpus=self.cfg.cpus_per_actor, num_gpus=self.cfg.gpus_per_actor or None,
            fn_constructor_kwargs={"judge_cfg": judge_cfg.model_dump(mode="json"), "texts": texts})


def _collect(scored: ray.data.Dataset, todo: list[Pair], cache: JudgeCache,
             progress: ProgressFactory) -> dict[Pair, PairScore]:
    """Cache the good answers as batches stream back to the driver; the failed ones (never cached) returned."""
    import orjson

    from rationalerm.judges.base import PairScore
    from rationalerm.judges.cache import CacheWriter

    failures: dict[Pair, PairScore] = {}
    with progress("judging pairs (ray)", len(todo)) as advance, CacheWriter(cache) as writer:
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            for k, failed, score, detail in zip(batch["k"], batch["failed"], batch["score"], batch["detail"]):
                pair = todo[int(k)]
                ps = PairScore(None if failed else float(score), orjson.loads(detail) if detail else None)
                writer.add_pair(pair, ps)
                if failed:
                    failures[pair] = ps
            writer.flush()
            advance(len(batch["k"]))
    return failures
