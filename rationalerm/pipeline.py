"""The run: the stages of DESIGN.md's data flow, called in order over a stream of samples; each stage's logic
lives in its own module.

Memory is bounded by a shard (``shard_size`` samples), not by the corpus. The input is read more than once, a
record at a time:

1. scan (``load.py``): validate every record; learn the models, the skipped records, and the run's distinct
   texts and (human item, model item) pairs in first-seen order -- the judge's and the prefilter's work list;
2. prefilter (``prefilter.py``, when enabled): embed the texts, then one more pass for the kept pairs;
3. judge (``runners/``: in this process or on a Ray cluster): the pairs the cache lacks, into the cache;
4. per shard: matrices from the cache (``judges/fill.py``; a listwise judge judges the shard's grids here),
   assign + score (``score.py``), rows written as a part of ``results.jsonl`` (``shards.py``), and the few
   numbers per row the corpus figures need kept (``tally.py``);
5. ``results.jsonl`` assembled from the parts, ``metrics.json`` and ``run.json`` written (``saved_runs.py``).

The outputs are those of scoring all samples at once (same pair order for the judge, same embedding batches,
same values in the bootstrap), so they do not depend on ``shard_size`` or on where a killed run stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from rationalerm._util.files import ensure_dir, read_jsonl
from rationalerm._version import __version__
from rationalerm.config import RunConfig
from rationalerm.errors import ConfigError
from rationalerm.inputs.grids import Unit, kept_cells
from rationalerm.inputs.load import LoadResult, LoadState, iter_samples, no_valid_record
from rationalerm.judges import ListJudge, PairJudge, ProgressFactory, make_judge, null_progress
from rationalerm.judges.cache import JudgeCache, fingerprint_id
from rationalerm.judges.prefilter import Prefilter
from rationalerm.judges.runners import make_runner
from rationalerm.judges.stage import JudgedPairs, judge_listwise, pair_matrices, shard_scores
from rationalerm.runs.directory import write_run
from rationalerm.runs.parts import ResultParts, input_identity, iter_shards
from rationalerm.scoring.rows import ResultRow, score_rows
from rationalerm.scoring.summary import CorpusTally


@dataclass
class RunOutcome:
    out_dir: Path
    metrics: dict[str, Any]
    judged: int = 0
    cached: int = 0
    prefilter: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    """Judge calls that got no answer the judge could score (distinct pairs, or lists), by reason: never cached,
    so running the same command again retries exactly them. Empty when the run is complete."""
    failed_unit: str = "pairs"

    @cached_property
    def rows(self) -> list[ResultRow]:
        """The run's rows, read back from ``results.jsonl`` (the run itself never holds them all)."""
        return read_jsonl(self.out_dir / "results.jsonl")

    def failure_message(self) -> str | None:
        """``N pairs failed (reason counts); run the same command again to retry them``, or None if complete."""
        n = sum(self.failed.values())
        if not n:
            return None
        reasons = ", ".join(f"{kind}: {k}" for kind, k in sorted(self.failed.items(), key=lambda kv: (-kv[1], kv[0])))
        unit = self.failed_unit if n != 1 else self.failed_unit.rstrip("s")
        return f"{n} {unit} failed ({reasons}); run the same command again to retry them"


class StageClock:
    """Wall time per stage, summed over the shards (``run.json`` ``process.timings_s``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

    def timed(self, stage: str, items: Iterator[Any]) -> Iterator[Any]:
        """``items`` with the time spent producing each counted under ``stage`` (reading the input)."""
        while True:
            with self(stage):
                item = next(items, _END)
            if item is _END:
                return
            yield item


_END = object()


@dataclass
class Scan:
    """What the first pass over the input learns (``scan``)."""

    loaded: LoadResult
    """Models, skipped records and warnings; ``samples`` is empty (a streamed run never holds them)."""
    n_samples: int
    texts: list[str]
    """Distinct texts of all grids, first seen first (the prefilter embeds them)."""
    pairs: list[tuple[str, str]]
    """Distinct non-blank pairs, first seen first (without a prefilter: the judge's work list)."""


def scan(paths: list[Path], cfg: RunConfig, want_texts: bool, want_pairs: bool) -> Scan:
    state = LoadState(cfg.models, cfg.outcome.label_field)
    texts: dict[str, None] = {}
    pairs: dict[tuple[str, str], None] = {}
    n = 0
    for sample in iter_samples(paths, state, cfg.strict):
        n += 1
        units = [Unit(sample, m) for m in state.current_models() if m in sample.models]
        if want_texts:
            for u in units:
                texts.update(dict.fromkeys((*u.human, *u.items)))
        if want_pairs:
            pairs.update(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, None)))
    loaded = LoadResult(samples=[], models=state.models(paths), skipped=state.skipped, warnings=state.warnings)
    if not n:
        raise no_valid_record(paths, loaded.skip_report())
    return Scan(loaded, n, list(texts), list(pairs))


def run(
    inputs: str | Path | list[str | Path], cfg: RunConfig, out_dir: str | Path,
    progress: ProgressFactory | None = None, log: Callable[[str], None] = lambda _m: None,
) -> RunOutcome:
    progress = progress or null_progress
    paths = [Path(p) for p in (inputs if isinstance(inputs, list) else [inputs])]
    out = ensure_dir(out_dir)
    clock = StageClock()
    t0 = time.perf_counter()
    with clock("load"):  # before the judge is built: a bad input never waits for an engine to start
        found = scan(paths, cfg, want_texts=cfg.prefilter.enabled, want_pairs=not cfg.prefilter.enabled)
    judge = make_judge(cfg.judge)
    pairwise = judge.kind != "listwise"
    if cfg.prefilter.enabled and not pairwise:
        judge.close()
        raise ConfigError("the prefilter applies to pairwise judges only (judge.protocol: pairwise)")
    loaded = found.loaded
    for line in loaded.skip_report():
        log(line)
    for note in loaded.warnings:
        log(f"warning: {note}")
    fingerprint = judge.fingerprint()
    try:
        cache = JudgeCache(cfg.cache or out / "cache.sqlite", fingerprint)
    except BaseException:
        judge.close()
        raise
    shards = lambda: clock.timed("load", iter_shards(  # noqa: E731 - every pass re-reads the input the same way
        paths, loaded.models, cfg.shard_size, strict=cfg.strict, load=(cfg.models, cfg.outcome.label_field)))
    prefilter: Prefilter | None = None
    judged = JudgedPairs(0, 0)
    listwise = ShardState()
    tally = CorpusTally(loaded.models, cfg.scoring, cfg.outcome)
    try:
        parts = ResultParts(out, {"inputs": input_identity(paths), "version": __version__, "models": loaded.models,
                                  "config": cfg.model_dump(mode="json", exclude={"runner"}),
                                  "fingerprint": fingerprint_id(fingerprint)})
        pairs = found.pairs
        if cfg.prefilter.enabled:
            with clock("prefilter"):
                prefilter = Prefilter(cfg.prefilter, cfg.judge.device_hint())
                prefilter.prepare(found.texts, progress)
            kept: dict[tuple[str, str], None] = {}
            for units in shards():
                with clock("prefilter"):
                    masks = [prefilter.mask(u) for u in units]
                    prefilter.tally(units, masks)
                    kept.update(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, masks)))
            pairs = list(kept)
            stats = prefilter.stats
            log(f"prefilter kept {stats.cells_kept}/{stats.cells_total} pairs; "
                f"judge calls saved: {stats.judge_calls_saved}")
        n_samples = found.n_samples
        del found
        if pairwise:
            with clock("judge"):
                judged = make_runner(cfg.runner).judge_pairs(
                    cast(PairJudge, judge), cfg.judge, cache, pairs, cfg.resolved_chunk_size(), progress)
        del pairs
        reused_shards = 0
        with progress("scoring samples", n_samples) as advance:
            for k, units in enumerate(shards()):
                with clock("write"):
                    reused = parts.reusable(k)
                if reused is not None:  # written by a killed run of the same command
                    reused_shards += 1
                    for row in reused:
                        tally.add(row)
                else:
                    rows = shard_rows(units, cfg, judge, cache, judged, prefilter, clock, listwise)
                    with clock("score"):
                        score_rows(rows, cfg.scoring)
                        for row in rows:
                            tally.add(row)
                    with clock("write"):
                        parts.write(k, rows)
                advance(len({id(u.sample) for u in units}))
    finally:
        judge.close()
        cache.close()
    with clock("score"):
        metrics = tally.metrics()
    metrics["skipped"] = loaded.skipped_summary()
    # metrics.json is a function of the input and the config: how this process got there (cache hits,
    # timings) goes to run.json, so a killed and resumed run writes the same metrics.json byte for byte.
    metrics["judge"] = {"fingerprint": fingerprint_id(fingerprint)}
    pf_stats = prefilter.stats.as_dict() if prefilter is not None else None
    if pf_stats is not None:
        metrics["prefilter"] = pf_stats
    if not pairwise:
        judged = JudgedPairs(listwise.judged, listwise.cached)
    failed = dict(judged.failed()) if pairwise else dict(listwise.failed)
    with clock("write"):
        parts.assemble()
        timings = {**clock.seconds, "total": time.perf_counter() - t0}
        write_run(out, inputs=paths, config=cfg.model_dump(mode="json"), rows=None, metrics=metrics,
                  fingerprint=fingerprint, models=loaded.models,
                  process={"judged": judged.judged, "cache_hits": judged.cached, "failed_pairs": sum(failed.values()),
                           "samples": n_samples, "shards_reused": reused_shards, "timings_s": {k: round(v, 3) for k, v in timings.items()}})
    return RunOutcome(out, metrics, judged.judged, judged.cached, pf_stats, timings, failed,
                      "pairs" if pairwise else "lists")


@dataclass
class ShardState:
    """What the shard pass carries from shard to shard: a listwise judge judges each shard's grids as the shard
    comes (the cache deduplicates across shards), so its counts add up here; a pairwise run's scores read back
    from the cache are memoised (bounded)."""

    judged: int = 0
    cached: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    memo: dict[tuple[str, str], Any] = field(default_factory=dict)
    """Pair scores read back for earlier shards (pairwise judges; bounded, ``fill.shard_scores``)."""


def shard_rows(
    units: list[Unit], cfg: RunConfig, judge: PairJudge | ListJudge, cache: JudgeCache, judged: JudgedPairs,
    prefilter: Prefilter | None, clock: StageClock, listwise: ShardState,
) -> list[ResultRow]:
    """A shard's unscored rows: each unit's matrix (from the cache, or the listwise judge) and details."""
    extras: list[dict[str, Any]]
    matrices: list[np.ndarray | None]
    if judge.kind == "listwise":
        with clock("judge"):
            mats, infos, n_judged, hits, failed = judge_listwise(
                cast(ListJudge, judge), cache, units, cfg.resolved_chunk_size(), null_progress)
        listwise.judged += n_judged
        listwise.cached += hits
        listwise.failed.update(failed)
        matrices, extras = mats, [{"judge_output": info} for info in infos]
    else:
        with clock("prefilter"):
            masks = [prefilter.mask(u) for u in units] if prefilter is not None else None
        with clock("judge: cache reads"):  # the judge stage's answers, read back for the shard
            mats_p, details = pair_matrices(units, masks, shard_scores(cache, units, masks, judged, listwise.memo))
        matrices, extras = list(mats_p), [{"details": d} for d in details]
    with clock("write"):
        return [u.row(w, cfg.outcome.label_field, **extra) for u, w, extra in zip(units, matrices, extras)]
