"""The paper's hybrid reward for RL trainers: rationale AP against the human checklist, combined with outcome.

A policy here is a generative reward model: for a prompt with two responses it writes a checklist of reasons
(most important first) and a preference label (``reward.parse``). Its reward is ``combine(AP, correct)``, where
AP is the paper's Eq. 3 computed with the project's own rules (the judge fills W, ``score_matrices`` matches
one-to-one with the tie rule and scores; ``scoring.max_model_items`` / ``min_score`` / ``compat`` apply) and
``correct`` compares the labels after ``outcome.normalize_label``. ``combine``:

- ``product`` (default): ``AP * correct``. A right answer for wrong reasons earns little, a wrong one nothing.
- ``sum``: ``w_ap * AP + w_outcome * correct`` (``weights``, default 0.5 / 0.5).
- ``outcome_gated``: a wrong answer earns 0; a right one ``gate_base + (1 - gate_base) * AP`` (default 0.5), so
  a right answer always beats a wrong one and better reasons still earn more.

An output that cannot be parsed gets reward 0 and a ``reason``: never an exception in the trainer's loop. A
malformed *ground truth* (the dataset's side, ``reward.reference``) is a ``RewardDataError``.

Pairs go through the judge stage's own loop (``judges.stage.judge_missing``: the SQLite judge cache when
``cache`` is set, then the judge in chunks, each good answer cached as it arrives, failures never cached), with
an in-process memo in front, so a human item and a policy item are judged once across calls; past
``memo_pairs`` the memo is dropped (memory stays bounded). Concurrent calls (verl's per-sample calls from
executor threads, OpenRLHF's and Inspect AI's concurrent ones) coalesce: the pairs of calls arriving within
``coalesce_ms`` of one another (for at most ``coalesce_max_ms``) go to the judge as one batch (``reward.coalesce``),
and no caller holds a lock while it is judged. Trainers call the entry points of ``reward.entry``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from rationalerm.config import RunConfig, read_config_file, validate
from rationalerm.errors import ConfigError
from rationalerm.judges import make_judge
from rationalerm.judges.base import CachesVectors, ForgetsMemo, Pair, PairJudge, PairScore
from rationalerm.judges.cache import JudgeCache
from rationalerm.judges.stage import judge_missing
from rationalerm.registry import ConfigSection
from rationalerm.reward.coalesce import Coalescer
from rationalerm.reward.parse import Parsed, ParseLimits, ParserSpec, make_parser, read_output
from rationalerm.reward.reference import Reference, reference
from rationalerm.scoring.metrics import SampleScore, score_matrices
from rationalerm.scoring.outcome import Label
from rationalerm.scoring.sample import Match

Combine = Literal["product", "sum", "outcome_gated"]


class Weights(ConfigSection):
    ap: float = Field(0.5, ge=0.0)
    outcome: float = Field(0.5, ge=0.0)


class RewardSettings(ParseLimits):
    """The ``reward:`` section of a reward YAML (the rest of the file is a run config: judge, scoring); the caps on
    reading an output (``max_output_chars``, ``max_items``, ``max_item_chars``) come from ``ParseLimits``."""

    combine: Combine = "product"
    weights: Weights = Field(default_factory=Weights)
    gate_base: float = Field(0.5, ge=0.0, le=1.0, description="outcome_gated: reward of a right answer with AP 0")
    parser_regex: str | None = Field(None, description="regex with named groups 'checklist' and 'label'")
    cache: str | None = Field(None, description="SQLite judge cache shared across processes; None = in memory only")
    memo_pairs: int = Field(1_000_000, ge=1, description="judged pairs kept in memory; past it the memo (and the "
                            "judge's own, e.g. embeddings) is dropped, so a long RL run's memory stays bounded")
    coalesce_ms: float = Field(20.0, ge=0.0, description="concurrent calls arriving within this many milliseconds "
                               "of each other are judged as one batch (trainers that call per sample from threads "
                               "or tasks; on a busy CPU a burst of 32 threads showed gaps up to 8 ms); 0 = no "
                               "wait for other calls (those made while the judge is busy still form one batch)")
    coalesce_max_ms: float = Field(200.0, ge=0.0, description="the longest a call waits for others to join its "
                                   "batch (a steady stream of calls still reaches the judge)")

    @model_validator(mode="after")
    def _max_covers_window(self) -> RewardSettings:
        if self.coalesce_max_ms < self.coalesce_ms:
            raise ValueError(f"coalesce_max_ms ({self.coalesce_max_ms}) is below coalesce_ms ({self.coalesce_ms})")
        return self


def load_reward_config(path: str | Path | None) -> tuple[RunConfig, RewardSettings]:
    """A reward YAML: run-config keys (``judge``, ``scoring``, ...) plus an optional ``reward:`` section."""
    if path is None:
        return RunConfig(), RewardSettings()
    raw = read_config_file(path)
    settings = validate(RewardSettings, raw.pop("reward", None) or {}, f"{path} (reward)")
    return validate(RunConfig, raw, str(path)), settings


@dataclass(frozen=True)
class RewardResult:
    score: float
    ap: float
    correct: bool
    parsed: bool
    reason: str = ""
    """Empty when the output was scored; else why it earned 0 (unparseable, bad label, judge failure)."""
    checklist: tuple[str, ...] = field(default=())
    label: Label | None = None
    precision: float = 0.0
    recall: float = 0.0
    """Rationale consistency (RC): the share of human items the checklist matches."""
    pairs: tuple[Match, ...] = ()
    """The matched (human item, policy item, score) index triples, 0-based."""
    judge_failed: bool = False
    """The judge could not score some pair of this output: its 0 is no judgement (an evaluation leaves it
    unscored)."""

    def as_dict(self) -> dict[str, Any]:
        """verl's dict form: ``score`` plus the same numeric keys for every output (logged as extra info)."""
        return {"score": self.score, "ap": self.ap, "correct": float(self.correct), "parsed": float(self.parsed),
                "n_items": len(self.checklist), "reason": self.reason}


def combine(ap: float, correct: bool, how: Combine = "product", weights: Weights | None = None,
            gate_base: float = 0.5) -> float:
    """The reward of an output with rationale ``ap`` and outcome ``correct`` (rules: module docstring)."""
    if how == "product":
        return ap * float(correct)
    if how == "sum":
        w = weights or Weights()
        return w.ap * ap + w.outcome * float(correct)
    if how == "outcome_gated":
        return gate_base + (1.0 - gate_base) * ap if correct else 0.0
    raise ConfigError(f"unknown reward combine {how!r}; known: product, sum, outcome_gated")


def _pairwise(judge: Any) -> PairJudge:
    if not isinstance(judge, PairJudge) or judge.kind != "pairwise":
        raise ConfigError("the reward needs a pairwise judge (embedding, cross-encoder, or llm with "
                          "protocol: pairwise)")
    return judge


class RewardScorer:
    """Scores policy outputs against human references with one judge; judged pairs are memoised across calls.

    Any pairwise rationalerm judge works: the embedding judge (default) or a cross-encoder in-process, or the
    ``llm`` judge behind an OpenAI-compatible server (``judge: {type: llm, backend: {type: openai, ...}}``).
    """

    def __init__(self, config: RunConfig | None = None, settings: RewardSettings | None = None, *,
                 parser: ParserSpec = None, judge: PairJudge | None = None) -> None:
        self.config = config or RunConfig()
        self.settings = settings or RewardSettings()
        self.parse = make_parser(parser if parser is not None else self.settings.parser_regex, self.settings)
        if self.settings.cache:
            JudgeCache.check(self.settings.cache)  # a wrong cache fails before a judge model loads
        self.judge = _pairwise(judge if judge is not None else make_judge(self.config.judge))
        self.memo: dict[Pair, float] = {}
        self.judged = 0
        """Pairs sent to the judge so far (memo and cache hits are not)."""
        self._cache = JudgeCache(self.settings.cache, self.judge.fingerprint()) if self.settings.cache else None
        self.batcher: Coalescer[Pair, PairScore] = Coalescer(
            self._judge, self.settings.coalesce_ms / 1000.0, self.settings.coalesce_max_ms / 1000.0,
            "rationalerm-reward-judge")
        """Where calls' pairs meet: ``batcher.batches`` judge passes served ``batcher.requests`` calls."""
        if self._cache is not None and isinstance(self.judge, CachesVectors):
            self.judge.attach_vectors(self._cache.path)  # human items are embedded once per cache, not per batch

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        self.judge.close()

    def _remember(self, pair: Pair, score: PairScore) -> None:
        if score.score is not None:
            self.memo[pair] = score.score

    def _judge(self, pairs: Sequence[Pair]) -> dict[Pair, PairScore]:
        """One batch (``batcher``, one at a time): every pair's score from the memo, else the cache, else the
        judge (failed ones included); the scores are returned, so a memo dropped meanwhile loses none."""
        out: dict[Pair, PairScore] = {}

        def keep(pair: Pair, score: PairScore) -> None:
            out[pair] = score
            self._remember(pair, score)

        for p in pairs:
            if (known := self.memo.get(p)) is not None:
                out[p] = PairScore(known)
        todo = [p for p in pairs if p not in out]
        if todo and self._cache is not None:
            for p, ps in self._cache.get_pairs(todo).items():
                keep(p, ps)
            todo = [p for p in todo if p not in out]
        judged = judge_missing(self.judge, self._cache, todo, self.config.resolved_chunk_size(), on_score=keep)
        self.judged += judged.judged
        out.update(judged.failures)
        self._bound_memo()
        return out

    def _scores(self, pairs: Sequence[Pair]) -> Future[Mapping[Pair, PairScore]]:
        """The scores of ``pairs``: at once when the memo has them all, else from the batch they join."""
        known = {p: PairScore(s) for p in pairs if (s := self.memo.get(p)) is not None}
        if len(known) < len(set(pairs)):
            return self.batcher.submit(pairs)  # all of them: the memo may be dropped before the batch runs
        done: Future[Mapping[Pair, PairScore]] = Future()
        done.set_result(known)
        return done

    def _bound_memo(self) -> None:
        """Past ``memo_pairs``, drop the memo and the judge's own (embeddings): a long run's memory stays bounded."""
        if len(self.memo) > self.settings.memo_pairs:
            self.memo.clear()
            if isinstance(self.judge, ForgetsMemo):
                self.judge.forget()

    def _matrix(self, p: Parsed | str, ref: Reference, scores: Mapping[Pair, PairScore]) -> np.ndarray | RewardResult:
        """The output's W, or its zero reward when it has none (unparseable, or a pair failed)."""
        if not isinstance(p, Parsed):
            return RewardResult(0.0, 0.0, False, False, p)
        items = self._judged_items(p)
        cells = [[scores[(h, s)] for s in items] for h in ref.checklist]
        bad = sorted({ps.failed for row in cells for ps in row if ps.failed})
        if bad:
            return RewardResult(0.0, 0.0, False, True, f"judge failed ({', '.join(bad)})", p.checklist,
                                judge_failed=True)
        w = np.array([[ps.score for ps in row] for row in cells], dtype=float)
        return w.reshape(len(ref.checklist), len(items))

    def _judged_items(self, p: Parsed) -> tuple[str, ...]:
        """The items whose pairs are judged: under the paper's rules an item past ``max_model_items`` is never
        matched, so a 48,000-line checklist costs 5 x n pairs, not 48,000 x n."""
        sc = self.config.scoring
        return p.checklist[:sc.max_model_items] if sc.compat is None else p.checklist

    def _reward(self, p: Parsed, ref: Reference, s: SampleScore) -> RewardResult:
        correct = p.label == ref.label
        ap = float(s.ap) if s.valid else 0.0
        reward = combine(ap, correct, self.settings.combine, self.settings.weights, self.settings.gate_base)
        return RewardResult(reward, ap, correct, True, "" if s.valid else (s.excluded or s.status), p.checklist,
                            p.label, s.precision, s.recall, tuple(s.pairs))

    def _submit(self, outputs: Sequence[str], references: Sequence[Reference]
                ) -> tuple[list[Parsed | str], Future[Mapping[Pair, PairScore]]]:
        """The outputs parsed, and the future of their pairs' scores (judged with concurrent calls' pairs)."""
        if len(outputs) != len(references):
            raise ValueError(f"{len(outputs)} outputs but {len(references)} references")
        parsed = [read_output(self.parse, text, self.settings) for text in outputs]
        pairs = [(h, s) for p, ref in zip(parsed, references) if isinstance(p, Parsed)
                 for h in ref.checklist for s in self._judged_items(p)]
        return parsed, self._scores(pairs)

    def score(self, outputs: Sequence[str], references: Sequence[Reference]) -> list[RewardResult]:
        """One ``RewardResult`` per output; all outputs' pairs go to the judge together, with those of calls made
        concurrently (``coalesce_ms``). An exception of the judge is raised here, in every call of its batch."""
        parsed, scores = self._submit(outputs, references)
        return self._results(parsed, references, scores.result())

    async def score_async(self, outputs: Sequence[str], references: Sequence[Reference]) -> list[RewardResult]:
        """``score`` for an event loop: awaits the judge batch without holding a thread, so concurrent tasks'
        calls coalesce as threads' do."""
        parsed, scores = self._submit(outputs, references)
        return self._results(parsed, references, await asyncio.wrap_future(scores))

    def _results(self, parsed: list[Parsed | str], references: Sequence[Reference],
                 pair_scores: Mapping[Pair, PairScore]) -> list[RewardResult]:
        judged = [self._matrix(p, ref, pair_scores) for p, ref in zip(parsed, references)]
        todo = [(k, p, m) for k, (p, m) in enumerate(zip(parsed, judged))
                if isinstance(p, Parsed) and isinstance(m, np.ndarray)]
        sc = self.config.scoring
        scores = score_matrices([m for _, _, m in todo], max_model_items=sc.max_model_items, min_score=sc.min_score,
                                compat=sc.compat)
        results = {k: self._reward(p, references[k], s) for (k, p, _), s in zip(todo, scores)}
        return [results[k] if isinstance(m, np.ndarray) else m for k, m in enumerate(judged)]

    def score_one(self, output: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> RewardResult:
        return self.score([output], [reference(ground_truth, extra_info)])[0]
