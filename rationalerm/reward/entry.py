"""The reward's entry points for RL trainers, each in its trainer's own signature (``rationalerm/reward_entry.py``
is the file trainers load by path; it re-exports these). Tested through each trainer's own loading and calling
code with verl 0.9.1, OpenRLHF 0.11.2 and TRL 1.16.0:

- verl (``reward.custom_reward_function.{path,name,reward_kwargs}``): ``compute_score``, which verl's reward loop
  (``NaiveRewardManager`` in ``reward.num_workers`` Ray actors) calls once per sample from executor threads.
  ``compute_score_batch`` is the batched form for verl before 0.8 (``reward_model.reward_manager=batch``).
- OpenRLHF (``--reward.remote_url FILE --data.label_key ground_truth``): ``reward_func``, which
  ``SingleTurnAgentExecutor`` calls with one rollout at a time, many concurrently.
- TRL (``GRPOTrainer(reward_funcs=[trl_reward])``): ``trl_reward`` and its ``async`` twin ``trl_reward_async``.

Each process builds one ``RewardScorer`` per reward YAML (``get_scorer``), so the judge loads once and its pair
memo is shared by every call. A ground truth the reward cannot use is a ``RewardDataError`` naming the row, raised
before any judging; verl and TRL stop with it. OpenRLHF catches every ``Exception`` a reward function raises and
only logs it at INFO with a None reward, so there it is raised as a ``RewardDataAbort``, which it does not catch.
"""

from __future__ import annotations

import asyncio
import os
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rationalerm.errors import RewardDataAbort, RewardDataError
from rationalerm.reward.reference import Reference, references, same_lengths
from rationalerm.reward.scorer import RewardResult, RewardScorer, load_reward_config

CONFIG_ENV = "RATIONALERM_REWARD_CONFIG"
"""Environment variable naming the reward YAML that the entry points use when no config is passed."""

GROUND_TRUTH_COLUMN = "ground_truth"
"""The dataset column TRL's ``trl_reward`` reads the ground truth from by default (verl's name for it)."""

_PROMPT_ANCHOR = 32
"""Characters of the prompt's end (the generation prompt, e.g. ``<|im_start|>assistant\\n``) that locate the
response in an OpenRLHF query that does not start with the prompt exactly."""
_ASSISTANT_TURN = ("<|im_start|>assistant", "<|start_header_id|>assistant<|end_header_id|>", "<start_of_turn>model",
                   "[/INST]", "<|assistant|>")
"""Where the response starts in a decoded query of the common chat templates (Qwen/ChatML, Llama 3, Gemma, Mistral,
Phi), for a query that no longer starts with its prompt."""

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


# --- verl ---------------------------------------------------------------------------------------------------------


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None,
                  **kwargs: Any) -> dict[str, Any]:
    """verl's custom reward function (``reward.custom_reward_function.name=compute_score``), one sample per call.

    ``ground_truth`` carries the human checklist and label (``reference``); ``kwargs`` may name the reward YAML
    as ``config`` (``reward.custom_reward_function.reward_kwargs.config``). Returns ``RewardResult.as_dict()``.
    """
    scorer = get_scorer(kwargs.get("config"))
    return scorer.score_one(solution_str, ground_truth, extra_info).as_dict()


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The batched form for verl before 0.8 (``reward_model.reward_manager=batch``): one judge pass per batch."""
    same_lengths("compute_score_batch", data_sources=data_sources, solution_strs=solution_strs,
                 ground_truths=ground_truths, extra_infos=extra_infos)
    refs = references(ground_truths, extra_infos)
    return [r.as_dict() for r in get_scorer(kwargs.get("config")).score(list(solution_strs), refs)]


# --- OpenRLHF -----------------------------------------------------------------------------------------------------


def _response(query: str, prompt: str) -> str:
    """The policy's part of an OpenRLHF query (the prompt and the response, decoded with special tokens).

    The query starts with the prompt unless decoding normalised its Unicode (compared here in NFC, as the Qwen
    tokenizer normalises) or the prompt was cut from the left to fit ``max_len``; then the response follows the
    last occurrence of the prompt's end. Failing both, the response is what follows the last assistant-turn
    marker of a known chat template; only a query with none of those is parsed whole (never the prompt's own
    format example when a marker shows where the response starts).
    """
    if query.startswith(prompt):
        return query[len(prompt):]
    q, p = unicodedata.normalize("NFC", query), unicodedata.normalize("NFC", prompt)
    if q.startswith(p):
        return q[len(p):]
    anchor = p[-_PROMPT_ANCHOR:]
    at = q.rfind(anchor) if anchor else -1
    if at >= 0:
        return q[at + len(anchor):]
    marks = [(q.rfind(m), m) for m in _ASSISTANT_TURN]
    at, mark = max(marks)
    return q[at + len(mark):] if at >= 0 else query


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's reward function (``--reward.remote_url reward_entry.py --data.label_key ground_truth``).

    ``queries`` are prompt + response as decoded by the trainer, ``labels`` the label column (the ground truth as
    in ``reference``). Returns rewards, scores and extra logs (AP, outcome, parsed). A bad ground truth raises
    ``RewardDataAbort`` (see the module docstring).
    """
    import torch

    try:
        same_lengths("reward_func", queries=queries, prompts=prompts, labels=labels)
        refs = references(labels)
    except RewardDataError as e:
        raise RewardDataAbort(str(e)) from e
    responses = [_response(q, p) for q, p in zip(queries, prompts)]
    results = get_scorer(kwargs.get("config")).score(responses, refs)
    rewards = torch.tensor([r.score for r in results], dtype=torch.float32)
    logs = {"ap": [r.ap for r in results], "correct": [float(r.correct) for r in results],
            "parsed": [float(r.parsed) for r in results]}
    return {"rewards": rewards, "scores": rewards.clone(),
            "extra_logs": {k: torch.tensor(v) for k, v in logs.items()}}


# --- TRL ----------------------------------------------------------------------------------------------------------

LogExtra = Callable[[str, list[Any]], None]
LogMetric = Callable[[str, float], None]


def _content(content: Any) -> str:
    """A chat message's content as text: a string, or a list of content blocks (their ``text`` parts)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return "".join(str(b.get("text") or "") for b in content if isinstance(b, Mapping))


def _completion_text(completion: Any) -> str:
    """A TRL completion's text: a string, or the conversational form (a list of messages), whose last assistant
    message holds the answer."""
    if isinstance(completion, str):
        return completion
    messages = [completion] if isinstance(completion, Mapping) else list(completion)
    said = [m for m in messages if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"]
    return _content(said[-1].get("content")) if said else ""


def _trl_references(columns: Mapping[str, Any], key: str, n: int) -> list[Reference]:
    """Each completion's reference from the dataset column ``key``; the row's other columns act as verl's
    ``extra_info`` (a checklist or label column completes a ground truth that lacks it)."""
    if key not in columns:
        raise RewardDataError(f"no dataset column {key!r} with the ground truth (columns: {sorted(columns)}); "
                              f"name it {GROUND_TRUTH_COLUMN!r} or pass ground_truth_key")
    values = columns[key]
    same_lengths("trl_reward", completions=range(n), **{key: values})
    per_row = {k: v for k, v in columns.items() if k != key and isinstance(v, list) and len(v) == n}
    return references(values, [{k: v[i] for k, v in per_row.items()} for i in range(n)])


def _judged(result: RewardResult) -> float | None:
    """TRL's reward for one result: None ("no reward", so TRL leaves it out) when the judge could not score the
    output, which is not the policy's fault; otherwise the score (0 for an unparseable output)."""
    return None if result.judge_failed else result.score


def _log_trl(results: Sequence[RewardResult], log_metric: LogMetric | None, log_extra: LogExtra | None) -> None:
    """AP, outcome and parse rate as TRL metrics (averaged per logging step), and per completion in its table."""
    if not results:
        return
    columns: dict[str, list[Any]] = {"ap": [r.ap for r in results], "correct": [float(r.correct) for r in results],
                                     "parsed": [float(r.parsed) for r in results]}
    if log_metric is not None:
        for name, values in columns.items():
            log_metric(f"rationalerm/{name}", sum(values) / len(values))
    if log_extra is not None:
        for name, values in {**columns, "reason": [r.reason for r in results]}.items():
            log_extra(f"rationalerm/{name}", values)


def trl_reward(prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, *,
               trainer_state: Any = None, log_extra: LogExtra | None = None, log_metric: LogMetric | None = None,
               reward_config: str | Path | None = None, ground_truth_key: str = GROUND_TRUTH_COLUMN,
               **columns: Any) -> list[float | None]:
    """TRL ``GRPOTrainer`` reward function: one reward per completion, from the dataset column ``ground_truth``.

    ``completions`` are strings or conversations (``[{"role": "assistant", "content": ...}]``); every dataset
    column arrives as a keyword. ``reward_config`` (else ``$RATIONALERM_REWARD_CONFIG``) names the reward YAML
    and ``ground_truth_key`` the column; bind them with ``functools.partial``. AP, outcome and the reason are
    logged through ``log_metric`` / ``log_extra``. None means the judge could not score that completion.
    """
    texts, refs = _trl_inputs(prompts, completions, columns, ground_truth_key)
    results = get_scorer(reward_config).score(texts, refs)
    _log_trl(results, log_metric, log_extra)
    return [_judged(r) for r in results]


async def trl_reward_async(prompts: Sequence[Any], completions: Sequence[Any],
                           completion_ids: Sequence[Any] | None = None, *, trainer_state: Any = None,
                           log_extra: LogExtra | None = None, log_metric: LogMetric | None = None,
                           reward_config: str | Path | None = None, ground_truth_key: str = GROUND_TRUTH_COLUMN,
                           **columns: Any) -> list[float | None]:
    """``trl_reward`` as an ``async`` function (TRL runs async reward functions concurrently): it awaits its judge
    batch without holding a thread, so concurrent calls coalesce into one batch and the event loop stays free
    (the judge is built in a worker thread on first use)."""
    texts, refs = _trl_inputs(prompts, completions, columns, ground_truth_key)
    scorer = await asyncio.to_thread(get_scorer, reward_config)
    results = await scorer.score_async(texts, refs)
    _log_trl(results, log_metric, log_extra)
    return [_judged(r) for r in results]


def _trl_inputs(prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any],
                key: str) -> tuple[list[str], list[Reference]]:
    """The completions' texts and their references, every ground truth read before anything is judged."""
    same_lengths("trl_reward", prompts=prompts, completions=completions)
    return [_completion_text(c) for c in completions], _trl_references(columns, key, len(completions))
