"""The reward's entry points for RL trainers, in their signatures: ``compute_score`` / ``compute_score_batch``
(verl's custom reward function) and ``reward_func`` (OpenRLHF). ``rationalerm/reward_entry.py`` is the file
trainers load by path; it re-exports these.

Each process builds one ``RewardScorer`` per reward YAML (``get_scorer``), so the judge loads once and its pair
memo is shared by every call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rationalerm.reward.reference import references, same_lengths
from rationalerm.reward.scorer import RewardScorer, load_reward_config

CONFIG_ENV = "RATIONALERM_REWARD_CONFIG"
"""Environment variable naming the reward YAML that ``compute_score`` uses when no ``config`` is passed."""

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
    """The batched form (verl's ``reward_model.reward_manager: batch``): one judge pass for the whole batch."""
    same_lengths("compute_score_batch", data_sources=data_sources, solution_strs=solution_strs,
                 ground_truths=ground_truths, extra_infos=extra_infos)
    scorer = get_scorer(kwargs.get("config"))
    refs = references(ground_truths, extra_infos)
    return [r.as_dict() for r in scorer.score(list(solution_strs), refs)]


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's ``--remote_rm_url reward.py`` function: ``queries`` are prompt + response, ``labels`` the
    ``--label_key`` column (the ground truth as in ``reference``). Returns rewards, scores and extra logs."""
    import torch

    same_lengths("reward_func", queries=queries, prompts=prompts, labels=labels)
    refs = references(labels)
    responses = [q[len(p):] if q.startswith(p) else q for q, p in zip(queries, prompts)]
    results = get_scorer(kwargs.get("config")).score(responses, refs)
    rewards = torch.tensor([r.score for r in results], dtype=torch.float32)
    logs = {"ap": [r.ap for r in results], "correct": [float(r.correct) for r in results],
            "parsed": [float(r.parsed) for r in results]}
    return {"rewards": rewards, "scores": rewards.clone(),
            "extra_logs": {k: torch.tensor(v) for k, v in logs.items()}}
