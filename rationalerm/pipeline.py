"""The run: the stages of DESIGN.md's data flow, called in order over a stream of samples; each stage's logic
lives in its own module, and ``run`` reads as the list of steps.

Memory is bounded by a shard (``shard_size`` samples), not by the corpus. The input is read more than once, a
record at a time:

1. scan (``inputs/load.py``): validate every record; learn the models, the skipped records, and the run's
   distinct texts and (human item, model item) pairs in first-seen order -- the judge's and the prefilter's
   work list;
2. prefilter (``judges/prefilter.py``, when enabled): embed the texts, then one more pass for the kept pairs;
3. judge (``judges/runners/``: in this process or on a Ray cluster): the pairs the cache lacks, into the cache;
4. per shard: matrices from the cache (``judges/stage.py``; a listwise judge judges the shard's grids here),
   assign + score (``scoring/metrics.py``), rows written as a part of ``results.jsonl`` (``runs/parts.py``),
   and the few numbers per row the corpus figures need kept (``scoring/summary.py``);
5. ``results.jsonl`` assembled from the parts, ``metrics.json`` and ``run.json`` written (``runs/directory.py``).

The outputs are those of scoring all samples at once (same pair order for the judge, same embedding batches,
same values in the bootstrap), so they do not depend on ``shard_size`` or on where a killed run stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np

from rationalerm._util.files import output_dir, read_jsonl
from rationalerm._version import __version__
from rationalerm.config import RunConfig
from rationalerm.errors import ConfigError
from rationalerm.inputs.grids import Grid, kept_cells
from rationalerm.inputs.load import MAX_ITEM_CHARS, LoadResult, LoadState, iter_samples, no_valid_record
from rationalerm.judges import ListJudge, PairJudge, PairScore, ProgressFactory, make_judge, null_progress
from rationalerm.judges.base import CachesVectors
from rationalerm.judges.cache import JudgeCache, fingerprint_id
from rationalerm.judges.prefilter import Prefilter
from rationalerm.judges.runners import make_runner
from rationalerm.judges.stage import JudgedPairs, judge_listwise, read_matrices
from rationalerm.runs.directory import write_run
from rationalerm.runs.parts import ResultParts, input_identity, iter_shards
from rationalerm.scoring.rows import ResultRow, score_rows
from rationalerm.scoring.summary import CorpusTally

T = TypeVar("T")
Pair = tuple[str, str]
Log = Callable[[str], None]
Rows = list[ResultRow]
Matrices = tuple[list[np.ndarray | None], list[dict[str, Any]]]
"""A shard's matrices (None: the judge's output was invalid) and each row's judge details."""


def _quiet(_message: str) -> None:
    """The default ``log``: a library call prints nothing."""


def run(
    inputs: str | Path | Sequence[str | Path], cfg: RunConfig, out_dir: str | Path,
    progress: ProgressFactory | None = None, log: Log = _quiet,
) -> RunOutcome:
    """Score ``inputs`` under ``cfg`` and write the run to ``out_dir`` (module docstring: the steps)."""
    paths = [Path(inputs)] if isinstance(inputs, str | Path) else [Path(p) for p in inputs]
    with output_dir(out_dir) as out:  # a run that fails before writing anything leaves no empty folder
        clock = StageClock()
        with clock("load"):  # before the judge is built: a bad input never waits for an engine to start
            found = scan(paths, cfg, want_texts=cfg.prefilter.enabled, want_pairs=not cfg.prefilter.enabled)
        with Run.open(paths, cfg, out, clock, found, progress or null_progress, log) as steps:
            pairs = steps.prefilter_pairs(found)
            del found  # the texts and the scan's pairs are not held while judging
            steps.judge_pairs(pairs)
            del pairs
            steps.score_shards()
        return steps.write()


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
    failed_unit: Literal["pairs", "lists"] = "pairs"

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
    """Wall time per stage, summed over the shards (``run.json`` ``process.timings_s``), and in all."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

    def timed(self, stage: str, items: Iterator[T]) -> Iterator[T]:
        """``items`` with the time spent producing each counted under ``stage`` (reading the input)."""
        while True:
            with self(stage):
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item

    def totals(self) -> dict[str, float]:
        """The seconds per stage so far, and ``total``: the wall time since the clock started."""
        return {**self.seconds, "total": time.perf_counter() - self.started}


@dataclass
class Scan:
    """What the first pass over the input learns (``scan``)."""

    loaded: LoadResult
    """Models, skipped records and warnings; ``samples`` is empty (a streamed run never holds them)."""
    n_samples: int
    texts: list[str]
    """Distinct texts of all grids, first seen first (the prefilter embeds them)."""
    pairs: list[Pair]
    """Distinct non-blank pairs, first seen first (without a prefilter: the judge's work list)."""


def scan(paths: list[Path], cfg: RunConfig, want_texts: bool, want_pairs: bool) -> Scan:
    """Step 1: one pass over the input (a bad record is reported, or stops a strict run, before any judging)."""
    state = LoadState(cfg.models, cfg.outcome.label_field, cfg.max_item_chars)
    texts: dict[str, None] = {}
    pairs: dict[Pair, None] = {}
    n = 0
    for sample in iter_samples(list(paths), state, cfg.strict):
        n += 1
        units = [Grid(sample, m) for m in state.current_models() if m in sample.models]
        if want_texts:
            for u in units:
                texts.update(dict.fromkeys((*u.human, *u.items)))
        if want_pairs:
            pairs.update(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, None)))
    loaded = LoadResult(samples=[], models=state.models(paths), skipped=state.skipped, warnings=state.warnings)
    if not n:
        raise no_valid_record(list(paths), loaded.skip_report())
    return Scan(loaded, n, list(texts), list(pairs))


def report_skips(loaded: LoadResult, log: Log) -> None:
    """The skipped records (the first in full, the rest counted) and the warnings, one line each."""
    for line in loaded.skip_report():
        log(line)
    for note in loaded.warnings:
        log(f"warning: {note}")


@dataclass
class ListwiseCalls:
    """A listwise judge's calls, added up shard by shard: it judges each shard's grids as the shard comes (the
    cache deduplicates across shards)."""

    judged: int = 0
    cached: int = 0
    failed: Counter[str] = field(default_factory=Counter)


def _parts_config(cfg: RunConfig) -> dict[str, Any]:
    """The config part of the result parts' key. The reference rule and the judge's precision are left out: the
    fingerprint beside it records them when not off / fp32, so such a run keys its parts as versions before them did
    (and reuses their parts). Threads change no result; an int8 prefilter is keyed by its precision. So is the item
    limit at its default: versions before it had none, and their parts stay reusable."""
    prefilter = {"threads"} if cfg.prefilter.precision != "fp32" else {"threads", "precision"}
    exclude: dict[str, Any] = {"runner": True, "judge": {"canonical_references", "precision", "threads"},
                               "prefilter": prefilter}
    if cfg.max_item_chars == MAX_ITEM_CHARS:
        exclude["max_item_chars"] = True
    return cfg.model_dump(mode="json", exclude=exclude)


@dataclass
class Run:
    """What the steps after the scan share (``run`` calls them in order); leaving its ``with`` block closes the
    judge and its cache."""

    paths: list[Path]
    cfg: RunConfig
    out: Path
    clock: StageClock
    progress: ProgressFactory
    log: Log
    loaded: LoadResult
    n_samples: int
    judge: PairJudge | ListJudge
    fingerprint: dict[str, Any]
    cache: JudgeCache
    parts: ResultParts
    tally: CorpusTally
    """The few numbers per row that ``metrics.json`` needs (rows are written and forgotten shard by shard)."""
    prefilter: Prefilter | None = None
    judged: JudgedPairs = field(default_factory=lambda: JudgedPairs(0, 0))
    """A pairwise judge's calls, all made before the first shard (a listwise judge's: ``listwise``)."""
    listwise: ListwiseCalls = field(default_factory=ListwiseCalls)
    memo: dict[Pair, PairScore] = field(default_factory=dict)
    """Pair scores read back for earlier shards (pairwise judges; bounded: ``judges.stage.shard_scores``)."""
    shards_reused: int = 0

    @classmethod
    def open(cls, paths: list[Path], cfg: RunConfig, out: Path, clock: StageClock, found: Scan,
             progress: ProgressFactory, log: Log) -> Run:
        """Build the judge, then its cache and the result parts; what is open is closed again if a step fails."""
        JudgeCache.check(cfg.cache or out / "cache.sqlite")  # a wrong --cache fails before the model loads
        judge = make_judge(cfg.judge)
        with ExitStack() as opened:
            opened.callback(judge.close)
            if cfg.prefilter.enabled and judge.kind == "listwise":
                raise ConfigError("the prefilter applies to pairwise judges only (judge.protocol: pairwise)")
            report_skips(found.loaded, log)
            fingerprint = judge.fingerprint()
            cache = JudgeCache(cfg.cache or out / "cache.sqlite", fingerprint)
            opened.callback(cache.close)
            if isinstance(judge, CachesVectors):
                judge.attach_vectors(cache.path)
            parts = ResultParts(out, {"inputs": input_identity(paths), "version": __version__,
                                      "models": found.loaded.models, "config": _parts_config(cfg),
                                      "fingerprint": fingerprint_id(fingerprint)})
            opened.pop_all()
        return cls(paths, cfg, out, clock, progress, log, found.loaded, found.n_samples, judge, fingerprint, cache,
                   parts, CorpusTally(found.loaded.models, cfg.scoring, cfg.outcome))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.judge.close()
            if self.prefilter is not None:
                self.prefilter.close()
        finally:
            self.cache.close()

    def shards(self) -> Iterator[list[Grid]]:
        """The input's units a shard at a time; every pass re-reads it the same way (reading counts as load)."""
        cfg = self.cfg
        return self.clock.timed("load", iter_shards(self.paths, self.loaded.models, cfg.shard_size,
                                                    strict=cfg.strict,
                                                    load=(cfg.models, cfg.outcome.label_field, cfg.max_item_chars)))

    def prefilter_pairs(self, found: Scan) -> list[Pair]:
        """Step 2: the pairs to judge -- the scan's, or (prefilter enabled) those it keeps, found in one more pass."""
        if not self.cfg.prefilter.enabled:
            return found.pairs
        with self.clock("prefilter"):
            prefilter = self.prefilter = Prefilter(self.cfg.prefilter, self.cfg.judge.device_hint(),
                                                   self.cfg.judge.canonical_references, self.cache.path)
            prefilter.prepare(found.texts, self.progress)
        kept: dict[Pair, None] = {}
        for units in self.shards():
            with self.clock("prefilter"):
                masks = [prefilter.mask(u) for u in units]
                prefilter.tally(units, masks)
                kept.update(dict.fromkeys((h, s) for _, _, _, h, s in kept_cells(units, masks)))
        stats = prefilter.stats
        self.log(f"prefilter kept {stats.cells_kept}/{stats.cells_total} pairs; "
                 f"judge calls saved: {stats.judge_calls_saved}")
        return list(kept)

    def judge_pairs(self, pairs: list[Pair]) -> None:
        """Step 3: a pairwise judge judges the pairs the cache lacks, into the cache, before the first shard (a
        listwise judge judges each shard's grids as the shard comes: ``listwise_matrices``)."""
        if self.judge.kind == "listwise":
            return
        with self.clock("judge"):
            self.judged = make_runner(self.cfg.runner).judge_pairs(
                cast(PairJudge, self.judge), self.cfg.judge, self.cache, pairs, self.cfg.resolved_chunk_size(),
                self.progress)
        if isinstance(self.judge, CachesVectors):
            embedded, stored = self.judge.embedding_counts()
            self.log(f"embedded {embedded} texts, {stored} from the vector cache")

    def score_shards(self) -> None:
        """Step 4: each shard's rows -- a part a killed run of the same command wrote, or matched, scored and
        written now -- tallied for the corpus figures."""
        with self.progress("scoring samples", self.n_samples) as advance:
            for k, units in enumerate(self.shards()):
                with self.clock("write"):
                    reused = self.parts.reusable(k)
                if reused is None:
                    self.score_shard(k, units)
                else:
                    self.shards_reused += 1
                    for row in reused:
                        self.tally.add(row)
                advance(len({id(u.sample) for u in units}))

    def score_shard(self, k: int, units: list[Grid]) -> None:
        """Shard ``k``'s rows: matched and scored, tallied, and written as part ``k`` of ``results.jsonl``."""
        rows = self.shard_rows(units)
        with self.clock("score"):
            score_rows(rows, self.cfg.scoring)
            for row in rows:
                self.tally.add(row)
        with self.clock("write"):
            self.parts.write(k, rows)

    def shard_rows(self, units: list[Grid]) -> Rows:
        """A shard's unscored rows: each unit's matrix (from the cache, or the listwise judge) and details."""
        listwise = self.judge.kind == "listwise"
        matrices, extras = self.listwise_matrices(units) if listwise else self.pairwise_matrices(units)
        with self.clock("write"):
            return [u.row(w, self.cfg.outcome.label_field, **extra) for u, w, extra in zip(units, matrices, extras)]

    def listwise_matrices(self, units: list[Grid]) -> Matrices:
        """The listwise judge's matrices for the shard's grids, judged now (those the cache lacks)."""
        with self.clock("judge"):
            matrices, infos, judged, hits, failed = judge_listwise(
                cast(ListJudge, self.judge), self.cache, units, self.cfg.resolved_chunk_size(), null_progress)
        self.listwise.judged += judged
        self.listwise.cached += hits
        self.listwise.failed.update(failed)
        return matrices, [{"judge_output": info} for info in infos]

    def pairwise_matrices(self, units: list[Grid]) -> Matrices:
        """The pairwise judge's matrices for the shard, from its answers in the cache (and this run's failures)."""
        with self.clock("prefilter"):
            masks = [self.prefilter.mask(u) for u in units] if self.prefilter is not None else None
        with self.clock("judge: cache reads"):  # the judge stage's answers, read back for the shard
            matrices, details = read_matrices(self.cache, units, masks, self.judged, self.memo)
        return list(matrices), [{"details": d} for d in details]

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``: a function of the input and the config. How this process got there (cache hits,
        timings) goes to ``run.json``, so a killed and resumed run writes the same metrics.json byte for byte."""
        metrics = self.tally.metrics()
        metrics["skipped"] = self.loaded.skipped_summary()
        metrics["judge"] = {"fingerprint": fingerprint_id(self.fingerprint)}
        if self.prefilter is not None:
            metrics["prefilter"] = self.prefilter.stats.as_dict()
        return metrics

    def calls(self) -> tuple[JudgedPairs, dict[str, int]]:
        """The judge calls made and found in the cache, and the failed ones by reason (pairs, or lists)."""
        if self.judge.kind == "listwise":
            return JudgedPairs(self.listwise.judged, self.listwise.cached), dict(self.listwise.failed)
        return self.judged, dict(self.judged.failed())

    def write(self) -> RunOutcome:
        """Step 5: ``results.jsonl`` assembled from the parts, then ``metrics.json`` and ``run.json``."""
        with self.clock("score"):
            metrics = self.metrics()
        judged, failed = self.calls()
        with self.clock("write"):
            self.parts.assemble()
            timings = self.clock.totals()
            process = {"judged": judged.judged, "cache_hits": judged.cached, "failed_pairs": sum(failed.values()),
                       "samples": self.n_samples, "shards_reused": self.shards_reused,
                       "timings_s": {k: round(v, 3) for k, v in timings.items()}}
            write_run(self.out, inputs=self.paths, config=self.cfg.model_dump(mode="json"), rows=None,
                      metrics=metrics, fingerprint=self.fingerprint, models=self.loaded.models, process=process)
        return RunOutcome(self.out, metrics, judged.judged, judged.cached, metrics.get("prefilter"), timings, failed,
                          "lists" if self.judge.kind == "listwise" else "pairs")
