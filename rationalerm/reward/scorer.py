"""The paper's hybrid reward for RL trainers: rationale AP against the human checklist, combined with outcome.

A policy here is a generative reward model: for a prompt with two responses it writes a checklist of reasons
(most important first) and a preference label. Its reward is ``combine(AP, correct)``, where AP is the paper's
Eq. 3 computed with the project's own rules (the judge fills W, ``score.score_matrices`` matches one-to-one with
the tie rule and scores; ``scoring.max_model_items`` / ``min_score`` / ``compat`` apply) and ``correct`` compares
the labels after ``outcome.normalize_label``. ``combine``:

- ``product`` (default): ``AP * correct``. A right answer for wrong reasons earns little, a wrong one nothing.
- ``sum``: ``w_ap * AP + w_outcome * correct`` (``weights``, default 0.5 / 0.5).
- ``outcome_gated``: a wrong answer earns 0; a right one ``gate_base + (1 - gate_base) * AP`` (default 0.5), so
  a right answer always beats a wrong one and better reasons still earn more.

Default output format (``parse_output``; a ``<think>...</think>`` part is ignored)::

    <checklist>
    1. Response 1 keeps the original order; Response 2's set() loses it.
    2. Response 1 runs in linear time.
    </checklist>
    <label>Response 1</label>

Each non-blank line of the checklist block is one item (a leading ``1.``, ``1)``, ``-``, ``*`` or ``•`` is
dropped); the label is any spelling ``normalize_label`` accepts (``1``, ``A``, ``Response 2``, ``tie``, ...).
A JSON object ``{"checklist": [...], "label": ...}`` (optionally in a ```json fence) is accepted too. A
user regex (named groups ``checklist`` and ``label``) or a function ``text -> (items, label)`` replaces it.
An output that cannot be parsed gets reward 0 and a ``reason``: never an exception in the trainer's loop. A
malformed *ground truth* (the dataset's side) is a ``RewardDataError``: a data bug to fix, not a policy error.

Judged pairs are memoised in the scorer (and in the SQLite judge cache when ``cache`` is set), so a human item
and a policy item are judged once across calls; past ``memo_pairs`` the memo is dropped (memory stays bounded). Entry points: ``RewardScorer`` (Python API), ``compute_score``
/ ``compute_score_batch`` (verl's custom reward function signatures) and ``reward_func`` (OpenRLHF); trainers
load them by path from ``rationalerm/reward_entry.py``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field

from rationalerm.config import RunConfig, validate
from rationalerm.errors import ConfigError, ParseFailure, RewardDataError
from rationalerm.registry import ConfigSection
from rationalerm.scoring.outcome import Label, Unparseable, normalize_label

Combine = Literal["product", "sum", "outcome_gated"]
ParserFn = Callable[[str], tuple[Sequence[str], Any]]
"""A user parser: policy output text -> (checklist items, label). It may raise: the output then scores 0."""
CONFIG_ENV = "RATIONALERM_REWARD_CONFIG"
"""Environment variable naming the reward YAML that ``compute_score`` uses when no ``config`` is passed."""


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
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such config file") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    settings = validate(RewardSettings, raw.pop("reward", None) or {}, f"{path} (reward)")
    return validate(RunConfig, raw, str(path)), settings


# -- parsing ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parsed:
    checklist: tuple[str, ...]
    label: Any


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_MARKER = re.compile(r"^\s*(?:\d+\s*[.)]|[-*\u2022])\s*")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _block(text: str, tag: str) -> str:
    opens = text.count(f"<{tag}>")
    if opens == 0:
        raise ParseFailure(f"no <{tag}> block")
    if opens > 1:
        raise ParseFailure(f"more than one <{tag}> block")
    start = text.index(f"<{tag}>") + len(tag) + 2
    end = text.find(f"</{tag}>", start)
    if end < 0:
        raise ParseFailure(f"<{tag}> block is not closed")
    return text[start:end]


def split_items(block: str) -> list[str]:
    """One item per non-blank line, list markers dropped."""
    items = (_MARKER.sub("", line, count=1).strip() for line in block.splitlines())
    return [item for item in items if item]


def parse_output(text: str) -> Parsed:
    """The default format (module docstring); raises ``ParseFailure`` saying why not."""
    if not isinstance(text, str):
        raise ParseFailure(f"output is {type(text).__name__}, not text")
    body = _THINK.sub("", text).strip()
    fenced = _FENCE.match(body)
    candidate = fenced.group(1) if fenced else body
    if candidate.startswith("{"):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError as e:
            raise ParseFailure(f"invalid JSON object ({e.msg} at char {e.pos})") from None
        if not isinstance(obj, dict) or "checklist" not in obj or "label" not in obj:
            raise ParseFailure("JSON output needs the keys 'checklist' and 'label'")
        items = obj["checklist"]
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ParseFailure("'checklist' must be a list of strings")
        return Parsed(tuple(x.strip() for x in items if x.strip()), obj["label"])
    return Parsed(tuple(split_items(_block(body, "checklist"))), _block(body, "label").strip())


def regex_parser(pattern: str | re.Pattern[str]) -> Callable[[str], Parsed]:
    """A parser from a regex with named groups ``checklist`` (items one per line) and ``label`` (searched, DOTALL)."""
    rx = re.compile(pattern, re.DOTALL) if isinstance(pattern, str) else pattern
    missing = {"checklist", "label"} - set(rx.groupindex)
    if missing:
        raise ConfigError(f"reward parser regex lacks the named group(s) {', '.join(sorted(missing))}")

    def parse(text: str) -> Parsed:
        mt = rx.search(text) if isinstance(text, str) else None
        if mt is None:
            raise ParseFailure("output does not match the parser regex")
        return Parsed(tuple(split_items(mt.group("checklist") or "")), (mt.group("label") or "").strip())

    return parse


def function_parser(fn: ParserFn) -> Callable[[str], Parsed]:
    """A parser from a user function; whatever it raises or returns wrongly becomes a ``ParseFailure``."""

    def parse(text: str) -> Parsed:
        try:
            items, label = fn(text)
        except Exception as e:  # noqa: BLE001 - a user parser's failure is this output's reason, not a crash
            raise ParseFailure(f"parser raised {type(e).__name__}: {e}") from None
        if isinstance(items, str) or not all(isinstance(x, str) for x in items):
            raise ParseFailure("parser must return a list of strings as the checklist")
        return Parsed(tuple(x.strip() for x in items if x.strip()), label)

    return parse


# -- ground truth ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """The human side of one sample: its checklist and its label (normalised)."""

    checklist: tuple[str, ...]
    label: Label


def _as_items(value: Any) -> tuple[str, ...] | None:
    if value is None or isinstance(value, (str, bytes, Mapping)):
        return None
    try:
        items = list(value)  # a list, a tuple, or a numpy array read from Parquet
    except TypeError:
        return None
    if not all(isinstance(x, str) for x in items):
        return None
    return tuple(x.strip() for x in items if x.strip())


def _pick(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def reference(ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> Reference:
    """The human checklist and label from verl's ``ground_truth`` (and ``extra_info``).

    ``ground_truth`` is ``{"checklist" | "human-checklist": [...], "label": ...}``, that object as a JSON string,
    or just the label with the checklist in ``extra_info`` (``checklist`` or ``human-checklist``).
    """
    gt: Any = ground_truth
    if isinstance(gt, str) and gt.strip().startswith("{"):
        try:
            gt = json.loads(gt)
        except json.JSONDecodeError as e:
            raise RewardDataError(f"ground_truth is not valid JSON ({e.msg}): {ground_truth[:200]!r}") from None
    extra = extra_info if isinstance(extra_info, Mapping) else {}
    if isinstance(gt, Mapping):
        items_raw = _pick(gt, "human-checklist", "checklist")
        label_raw = _pick(gt, "label", "human-label")
    else:
        items_raw, label_raw = None, gt
    if items_raw is None:
        items_raw = _pick(extra, "human-checklist", "checklist")
    if label_raw is None:
        label_raw = _pick(extra, "label", "human-label")
    items = _as_items(items_raw)
    if not items:
        raise RewardDataError(f"no human checklist (a non-empty list of strings under 'checklist' or "
                              f"'human-checklist' in ground_truth or extra_info): {str(ground_truth)[:200]!r}")
    try:
        label = normalize_label(label_raw)
    except Unparseable:
        raise RewardDataError(f"human label {label_raw!r} is not response 1, response 2 or a tie") from None
    if label is None:
        raise RewardDataError(f"no human label ('label' in ground_truth or extra_info): {str(ground_truth)[:200]!r}")
    return Reference(items, label)


# -- the reward ------------------------------------------------------------------------------------------------
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


class RewardScorer:
    """Scores policy outputs against human references with one judge; judged pairs are memoised across calls.

    Any pairwise rationalerm judge works: the embedding judge (default) or a cross-encoder in-process, or the
    ``llm`` judge behind an OpenAI-compatible server (``judge: {type: llm, backend: {type: openai, ...}}``).
    """

    def __init__(self, config: RunConfig | None = None, settings: RewardSettings | None = None, *,
                 parser: ParserFn | str | re.Pattern[str] | None = None, judge: Any = None) -> None:
        from rationalerm.judges import make_judge

        self.config = config or RunConfig()
        self.settings = settings or RewardSettings()
        spec = parser if parser is not None else self.settings.parser_regex
        self.parse: Callable[[str], Parsed] = (
            parse_output if spec is None
            else regex_parser(spec) if isinstance(spec, (str, re.Pattern))
            else function_parser(spec)
        )
        self.judge = judge if judge is not None else make_judge(self.config.judge)
        if getattr(self.judge, "kind", "pairwise") != "pairwise":
            raise ConfigError("the reward needs a pairwise judge (embedding, cross-encoder, or llm with "
                              "protocol: pairwise)")
        self.memo: dict[tuple[str, str], float] = {}
        self.judged = 0
        """Pairs sent to the judge so far (memo and cache hits are not)."""
        self._cache = None
        if self.settings.cache:
            from rationalerm.judges.cache import JudgeCache

            self._cache = JudgeCache(self.settings.cache, self.judge.fingerprint())
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        self.judge.close()

    # -- the judge, through the memo and the cache ----------------------------------------------------------------
    def _fill(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Make sure every pair is in ``memo``; returns the failure reason of pairs the judge could not score."""
        todo = [p for p in dict.fromkeys(pairs) if p not in self.memo]
        if todo and self._cache is not None:
            for p, ps in self._cache.get_pairs(todo).items():
                self.memo[p] = float(ps.score)  # type: ignore[arg-type] - the cache holds scored pairs only
            todo = [p for p in todo if p not in self.memo]
        failed: dict[tuple[str, str], str] = {}
        if todo:
            scores = self.judge.score_pairs(todo)
            self.judged += len(todo)
            good = [(p, s) for p, s in zip(todo, scores) if s.score is not None]
            for p, s in zip(todo, scores):
                if s.score is None:
                    failed[p] = s.failed or "failed"
                else:
                    self.memo[p] = float(s.score)
            if good and self._cache is not None:
                self._cache.put_pairs([p for p, _ in good], [s for _, s in good])
        return failed

    def _parse_one(self, text: str) -> Parsed | str:
        """The parsed output, or why it has no usable (checklist, label): never raises."""
        try:
            p = self.parse(text)
        except ParseFailure as e:
            return str(e)
        except Exception as e:  # noqa: BLE001 - a parser bug must not stop the trainer's loop
            return f"parser error {type(e).__name__}: {e}"
        try:
            label = normalize_label(p.label)
        except Unparseable:
            return f"label {p.label!r} is not response 1, response 2 or a tie"
        return p if label is not None else "no label"

    def score(self, outputs: Sequence[str], references: Sequence[Reference]) -> list[RewardResult]:
        """One ``RewardResult`` per output; all outputs' pairs go to the judge in one call."""
        from rationalerm.scoring.metrics import score_matrices

        if len(outputs) != len(references):
            raise ValueError(f"{len(outputs)} outputs but {len(references)} references")
        parsed: list[Parsed | str] = []
        for text in outputs:
            parsed.append(self._parse_one(text))
        pairs = [(h, s) for p, ref in zip(parsed, references) if isinstance(p, Parsed)
                 for h in ref.checklist for s in p.checklist]
        with self._lock:
            failed = self._fill(pairs)
            results: list[RewardResult | None] = [None] * len(outputs)
            todo: list[int] = []
            matrices: list[np.ndarray] = []
            for k, (p, ref) in enumerate(zip(parsed, references)):
                if not isinstance(p, Parsed):
                    results[k] = RewardResult(0.0, 0.0, False, False, p)
                    continue
                bad = sorted({failed[(h, s)] for h in ref.checklist for s in p.checklist if (h, s) in failed})
                if bad:
                    results[k] = RewardResult(0.0, 0.0, False, True, f"judge failed ({', '.join(bad)})", p.checklist)
                    continue
                w = np.array([[self.memo[(h, s)] for s in p.checklist] for h in ref.checklist], dtype=float)
                matrices.append(w.reshape(len(ref.checklist), len(p.checklist)))
                todo.append(k)
            if len(self.memo) > self.settings.memo_pairs:
                self.memo.clear()
                forget = getattr(self.judge, "forget", None)
                if callable(forget):
                    forget()
        sc = self.config.scoring
        scores = score_matrices(matrices, max_model_items=sc.max_model_items, min_score=sc.min_score, compat=sc.compat)
        for k, s in zip(todo, scores):
            p, ref = parsed[k], references[k]
            assert isinstance(p, Parsed)
            label = normalize_label(p.label)
            correct = label == ref.label
            ap = float(s.ap) if s.valid else 0.0
            reward = combine(ap, correct, self.settings.combine, self.settings.weights, self.settings.gate_base)
            results[k] = RewardResult(reward, ap, correct, True, "" if s.valid else (s.excluded or s.status),
                                      p.checklist, label)
        return [r for r in results if r is not None]

    def score_one(self, output: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> RewardResult:
        return self.score([output], [reference(ground_truth, extra_info)])[0]


# -- trainer entry points --------------------------------------------------------------------------------------
_SCORERS: dict[str, RewardScorer] = {}
_SCORERS_LOCK = threading.Lock()


def get_scorer(config: str | Path | None = None) -> RewardScorer:
    """The process-wide scorer of a reward YAML (``config``, else ``$RATIONALERM_REWARD_CONFIG``, else the default
    embedding judge): built once, so the judge loads once and its memo is shared by every call."""
    path = config if config is not None else os.environ.get(CONFIG_ENV)
    key = str(Path(path).resolve()) if path else ""
    with _SCORERS_LOCK:
        if key not in _SCORERS:
            _SCORERS[key] = RewardScorer(*load_reward_config(path))
        return _SCORERS[key]


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None,
                  **kwargs: Any) -> dict[str, Any]:
    """verl's custom reward function (``custom_reward_function.name: compute_score``).

    ``ground_truth`` carries the human checklist and label (``reference``); ``kwargs`` may name the reward YAML
    as ``config`` (verl: ``custom_reward_function.reward_kwargs``). Returns ``RewardResult.as_dict()``.
    """
    scorer = get_scorer(kwargs.get("config"))
    return scorer.score_one(solution_str, ground_truth, extra_info).as_dict()


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The batched form (verl's ``reward_model.reward_manager: batch``): one judge call for the whole batch."""
    scorer = get_scorer(kwargs.get("config"))
    extras = list(extra_infos) if extra_infos is not None else [None] * len(solution_strs)
    refs = [reference(g, e) for g, e in zip(ground_truths, extras, strict=True)]
    return [r.as_dict() for r in scorer.score(list(solution_strs), refs)]


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's ``--remote_rm_url reward.py`` function: ``queries`` are prompt + response, ``labels`` the
    ``--label_key`` column (the ground truth as in ``reference``). Returns rewards, scores and extra logs."""
    import torch

    responses = [q[len(p):] if q.startswith(p) else q for q, p in zip(queries, prompts, strict=True)]
    results = get_scorer(kwargs.get("config")).score(responses, [reference(lab) for lab in labels])
    rewards = torch.tensor([r.score for r in results], dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards.clone(),
            "extra_logs": {k: torch.tensor([float(getattr(r, k)) for r in results]) for k in ("ap", "correct", "parsed")}}


__all__ = [
    "CONFIG_ENV", "ParseFailure", "Parsed", "Reference", "RewardDataError", "RewardResult", "RewardScorer",
    "RewardSettings", "combine", "compute_score", "compute_score_batch", "get_scorer", "load_reward_config",
    "parse_output", "reference", "regex_parser", "reward_func", "split_items",
]
