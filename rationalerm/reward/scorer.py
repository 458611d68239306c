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
``memo_pairs`` the memo is dropped (memory stays bounded). Trainers call the entry points of ``reward.entry``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from rationalerm.config import RunConfig, read_config_file, validate
from rationalerm.errors import ConfigError
from rationalerm.judges import make_judge
from rationalerm.judges.base import CachesVectors, ForgetsMemo, Pair, PairJudge, PairScore
from rationalerm.judges.cache import JudgeCache
from rationalerm.judges.stage import judge_missing
from rationalerm.registry import ConfigSection
from rationalerm.reward.parse import Parsed, ParserSpec, make_parser, read_output
from rationalerm.reward.reference import Reference, reference
from rationalerm.scoring.metrics import SampleScore, score_matrices
from rationalerm.scoring.outcome import Label

Combine = Literal["product", "sum", "outcome_gated"]


class Weights(ConfigSection):
    ap: float = Field(0.5, ge=0.0)
    outcome: float = Field(0.5, ge=0.0)


class RewardSettings(ConfigSection):
    """The ``reward:`` section of a reward YAML (the rest of the file is a run config: judge, scoring)."""

    combine: Combine = "product"
    weights: Weights = Field(default_factory=Weights)
    gate_base: float = Field(0.5, ge=0.0, le=1.0, description="outcome_gated: reward of a right answer with AP 0")
    parser_regex: str | None = Field(None, description="regex with named groups 'checklist' and 'label'")
    cache: str | None = Field(None, description="SQLite judge cache shared across processes; None = in memory only")
    memo_pairs: int = Field(1_000_000, ge=1, description="judged pairs kept in memory; past it the memo (and the "
                            "judge's own, e.g. embeddings) is dropped, so a long RL run's memory stays bounded")


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
        self.parse = make_parser(parser if parser is not None else self.settings.parser_regex)
        self.judge = _pairwise(judge if judge is not None else make_judge(self.config.judge))
        self.memo: dict[Pair, float] = {}
        self.judged = 0
        """Pairs sent to the judge so far (memo and cache hits are not)."""
        self._cache = JudgeCache(self.settings.cache, self.judge.fingerprint()) if self.settings.cache else None
        if self._cache is not None and isinstance(self.judge, CachesVectors):
            self.judge.attach_vectors(self._cache.path)  # human items are embedded once per cache, not per batch
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        self.judge.close()

    def _remember(self, pair: Pair, score: PairScore) -> None:
        if score.score is not None:
            self.memo[pair] = score.score

    def _fill(self, pairs: Sequence[Pair]) -> dict[Pair, str]:
        """Make sure every pair is in ``memo`` (else the cache, else the judge); returns the failure reason of the
        pairs the judge could not score."""
        todo = [p for p in dict.fromkeys(pairs) if p not in self.memo]
        if todo and self._cache is not None:
            for p, ps in self._cache.get_pairs(todo).items():
                self._remember(p, ps)
            todo = [p for p in todo if p not in self.memo]
        judged = judge_missing(self.judge, self._cache, todo, self.config.resolved_chunk_size(),
                               on_score=self._remember)
        self.judged += judged.judged
        return {p: ps.failed for p, ps in judged.failures.items() if ps.failed}

    def _bound_memo(self) -> None:
        """Past ``memo_pairs``, drop the memo and the judge's own (embeddings): a long run's memory stays bounded."""
        if len(self.memo) > self.settings.memo_pairs:
            self.memo.clear()
            if isinstance(self.judge, ForgetsMemo):
                self.judge.forget()

    def _matrix(self, p: Parsed | str, ref: Reference, failed: dict[Pair, str]) -> np.ndarray | RewardResult:
        """The output's W from the memo, or its zero reward when it has none (unparseable, or a pair failed)."""
        if not isinstance(p, Parsed):
            return RewardResult(0.0, 0.0, False, False, p)
        bad = sorted({failed[(h, s)] for h in ref.checklist for s in p.checklist if (h, s) in failed})
        if bad:
            return RewardResult(0.0, 0.0, False, True, f"judge failed ({', '.join(bad)})", p.checklist)
        w = np.array([[self.memo[(h, s)] for s in p.checklist] for h in ref.checklist], dtype=float)
        return w.reshape(len(ref.checklist), len(p.checklist))

    def _reward(self, p: Parsed, ref: Reference, s: SampleScore) -> RewardResult:
        correct = p.label == ref.label
        ap = float(s.ap) if s.valid else 0.0
        reward = combine(ap, correct, self.settings.combine, self.settings.weights, self.settings.gate_base)
        return RewardResult(reward, ap, correct, True, "" if s.valid else (s.excluded or s.status), p.checklist,
                            p.label)

    def score(self, outputs: Sequence[str], references: Sequence[Reference]) -> list[RewardResult]:
        """One ``RewardResult`` per output; all outputs' pairs go to the judge together."""
        if len(outputs) != len(references):
            raise ValueError(f"{len(outputs)} outputs but {len(references)} references")
        parsed = [read_output(self.parse, text) for text in outputs]
        pairs = [(h, s) for p, ref in zip(parsed, references) if isinstance(p, Parsed)
                 for h in ref.checklist for s in p.checklist]
        with self._lock:
            failed = self._fill(pairs)
            judged = [self._matrix(p, ref, failed) for p, ref in zip(parsed, references)]
            self._bound_memo()
        todo = [(k, p, m) for k, (p, m) in enumerate(zip(parsed, judged))
                if isinstance(p, Parsed) and isinstance(m, np.ndarray)]
        sc = self.config.scoring
        scores = score_matrices([m for _, _, m in todo], max_model_items=sc.max_model_items, min_score=sc.min_score,
                                compat=sc.compat)
        results = {k: self._reward(p, references[k], s) for (k, p, _), s in zip(todo, scores)}
        return [results[k] if isinstance(m, np.ndarray) else m for k, m in enumerate(judged)]

    def score_one(self, output: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> RewardResult:
        return self.score([output], [reference(ground_truth, extra_info)])[0]
