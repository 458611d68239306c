"""TRL 1.16 runs our reward through its own code: ``GRPOTrainer(reward_funcs=[trl_reward, trl_reward_async])``
with the tiny random-weight Qwen3 as the policy (CPU) and the embedding judge as the matcher. The trainer's own
``_calculate_rewards`` scores known completions (strings and conversations) as a direct call does, and one real
``train()`` step logs AP, outcome and the reason through ``log_metric`` / ``log_extra``."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from rationalerm.errors import RewardDataError
from rationalerm.reward.entry import trl_reward, trl_reward_async
from tests.helpers.trainers import ANSWERS, BAD_GROUND_TRUTH, EXPECTED, GROUND_TRUTH, PROMPT

NAMES = list(ANSWERS)


def rows(n: int, ground_truth: Any = GROUND_TRUTH) -> list[dict[str, Any]]:
    return [{"prompt": [{"role": "user", "content": PROMPT}], "ground_truth": ground_truth, "source": "argkp"}
            for _ in range(n)]


@pytest.fixture(scope="module")
def trainer(tiny_qwen: Path, tmp_path_factory: pytest.TempPathFactory) -> GRPOTrainer:
    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("grpo")), per_device_train_batch_size=4,
                      num_generations=4, max_completion_length=8, max_steps=1, learning_rate=1e-5,
                      use_cpu=True, bf16=False, report_to="none", logging_steps=1, save_strategy="no",
                      log_completions=False, dataloader_num_workers=0, seed=0)
    return GRPOTrainer(model=str(tiny_qwen), reward_funcs=[trl_reward, trl_reward_async], args=args,
                       train_dataset=Dataset.from_list(rows(8)))


def test_one_real_grpo_step_logs_ap_outcome_and_reason(trainer: GRPOTrainer) -> None:
    """First, so that only this step's calls are in its logs."""
    trainer.train()
    logged = trainer.state.log_history[0]
    for name in ("trl_reward", "trl_reward_async"):
        assert logged[f"rewards/{name}/mean"] == pytest.approx(0.0)  # a random policy writes no checklist
    assert logged["rationalerm/ap"] == 0.0 and logged["rationalerm/parsed"] == 0.0
    assert "rationalerm/correct" in logged
    reasons = list(trainer._logs["extra"]["rationalerm/reason"])
    n = len(trainer._logs["completion"])
    assert n >= 4 and len(reasons) == n and all(reasons)  # every completion: why it scored 0


def test_trainer_scores_known_completions_as_a_direct_call(trainer: GRPOTrainer) -> None:
    inputs = rows(len(NAMES) * 2)
    prompts = [r["prompt"] for r in inputs]
    completions: list[Any] = [[{"role": "assistant", "content": ANSWERS[n]}] for n in NAMES]  # conversational
    completions += [ANSWERS[n] for n in NAMES]  # plain strings
    rewards = trainer._calculate_rewards(inputs, prompts, completions, [[0]] * len(completions))
    want = [EXPECTED[n][0] for n in NAMES] * 2
    for col in range(2):  # trl_reward and trl_reward_async
        assert rewards[:, col].tolist() == pytest.approx(want, abs=1e-5)


def test_a_bad_ground_truth_is_an_error_naming_the_row(trainer: GRPOTrainer) -> None:
    inputs = rows(2) + rows(1, BAD_GROUND_TRUTH)
    with pytest.raises(RewardDataError, match=r"row 2\b.*no human checklist"):
        trainer._calculate_rewards(inputs, [r["prompt"] for r in inputs], [ANSWERS["perfect"]] * 3, [[0]] * 3)


def test_the_call_shape_trl_documents() -> None:
    """Keyword columns, ``log_metric`` / ``log_extra``, a bound column name and reward YAML, and the async twin."""
    metrics: dict[str, float] = {}
    extra: dict[str, list[Any]] = {}
    kwargs = {"trainer_state": None, "log_metric": metrics.__setitem__, "log_extra": extra.__setitem__}
    completions = [[{"role": "assistant", "content": [{"type": "text", "text": ANSWERS[n]}]}] for n in NAMES]
    fn = functools.partial(trl_reward, ground_truth_key="answer")
    got = fn(prompts=[PROMPT] * len(NAMES), completions=completions, completion_ids=None,
             answer=[GROUND_TRUTH] * len(NAMES), **kwargs)
    assert got == pytest.approx([EXPECTED[n][0] for n in NAMES], abs=1e-5)
    assert metrics["rationalerm/ap"] == pytest.approx(sum(EXPECTED[n][1] for n in NAMES) / len(NAMES), abs=1e-5)
    assert extra["rationalerm/reason"][-1].startswith("no <checklist> block")
    assert extra["rationalerm/correct"] == [1.0, 1.0, 0.0, 0.0]
    split = asyncio.run(trl_reward_async([PROMPT], [ANSWERS["perfect"]], None, ground_truth=["Response 1"],
                                         checklist=[GROUND_TRUTH["checklist"]]))
    assert split == pytest.approx([1.0], abs=1e-5)  # label in the column, checklist in another (verl's extra_info)
    with pytest.raises(RewardDataError, match="no dataset column 'ground_truth'"):
        trl_reward([PROMPT], [ANSWERS["perfect"]], None, label=["1"])


def test_concurrent_async_calls_are_judged_as_one_batch() -> None:
    """TRL awaits async reward functions together: 16 concurrent ``trl_reward_async`` calls reach the judge as one
    batch, with the numbers of one ``trl_reward`` call."""
    from rationalerm.reward.entry import get_scorer

    scorer = get_scorer(None)
    trl_reward([PROMPT], [ANSWERS["perfect"]], None, ground_truth=[GROUND_TRUTH])  # the judge is built and warm
    answers = [ANSWERS[n].replace("Response 1", f"Response 1 (case {k})") for k in range(4) for n in NAMES]

    async def each() -> list[list[float | None]]:
        return list(await asyncio.gather(*(trl_reward_async([PROMPT], [a], None, ground_truth=[GROUND_TRUTH])
                                           for a in answers)))

    before = scorer.batcher.batches
    together = [r for rs in asyncio.run(each()) for r in rs]
    assert scorer.batcher.batches - before == 1
    scorer.memo.clear()
    assert together == pytest.approx(trl_reward([PROMPT] * len(answers), answers, None,
                                                ground_truth=[GROUND_TRUTH] * len(answers)), abs=1e-6)
