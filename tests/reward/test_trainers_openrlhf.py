"""OpenRLHF 0.11 runs our reward through its own code: ``PromptDataset`` builds the prompt (chat template) and the
label (``--data.label_key ground_truth``), ``SingleTurnAgentExecutor`` loads ``reward_func`` from
``rationalerm/reward_entry.py`` (``--reward.remote_url``) and calls it with one rollout at a time, many rollouts
concurrently, the query decoded *with* special tokens; ``SamplesGenerator`` turns its output into the
``Experience`` the trainer learns from. The generation engine is the one stand-in: it returns fixed answers
(token ids of the tiny Qwen tokenizer), since the reward, not the policy, is under test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openrlhf.datasets.prompts_dataset import PromptDataset
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
from openrlhf.utils.agent import SingleTurnAgentExecutor
from transformers import AutoTokenizer
from vllm import SamplingParams

from rationalerm.errors import RewardDataAbort
from rationalerm.reward.entry import compute_score, reward_func
from tests.helpers.paths import ROOT
from tests.helpers.trainers import ANSWERS, BAD_GROUND_TRUTH, EXPECTED, GROUND_TRUTH, HUMAN, PROMPT, as_json

ENTRY = ROOT / "rationalerm" / "reward_entry.py"


class FixedEngine:
    """Stands in for OpenRLHF's vLLM actor: ``generate`` returns a fixed answer, ending with the EOS token."""

    def __init__(self, tokenizer: Any, answer: str) -> None:
        self.ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        self.text = answer

    async def generate(self, prompt_token_ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        await asyncio.sleep(0)
        out = SimpleNamespace(token_ids=self.ids[:params.max_tokens], text=self.text, finish_reason="stop",
                              logprobs=None)
        return SimpleNamespace(outputs=[out])


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_qwen)


@pytest.fixture(scope="module")
def executor() -> SingleTurnAgentExecutor:
    """As ``train_ppo_ray`` builds it: ``--reward.remote_url`` split on commas."""
    ex = SingleTurnAgentExecutor(remote_rm_url=str(ENTRY).split(","))
    assert ex.reward_func is not None and ex.reward_func.__module__ == "rationalerm.reward.entry"
    return ex


def dataset(tokenizer: Any, rows: list[dict[str, Any]]) -> PromptDataset:
    """OpenRLHF's prompt dataset with ``--data.input_key prompt --data.label_key ground_truth
    --data.apply_chat_template``."""
    data = SimpleNamespace(input_key="prompt", label_key="ground_truth", apply_chat_template=True, image_key="images")
    strategy = SimpleNamespace(args=SimpleNamespace(data=data), is_rank_0=lambda: True)
    return PromptDataset(rows, tokenizer, strategy)


def rollouts(executor: SingleTurnAgentExecutor, tokenizer: Any, prompts: PromptDataset, answers: list[str],
             max_length: int = 4096, max_tokens: int | None = None) -> list[dict[str, Any]]:
    """Each (prompt, answer) rolled out at once, as ``LLMRayActor.generate_responses`` gathers them."""
    params = SamplingParams(max_tokens=max_tokens, temperature=1.0)

    async def run() -> list[dict[str, Any]]:
        calls = [executor.execute(prompt=prompts[k % len(prompts)][1], label=prompts[k % len(prompts)][2],
                                  sampling_params=params, max_length=max_length, hf_tokenizer=tokenizer,
                                  llm_engine=FixedEngine(tokenizer, a)) for k, a in enumerate(answers)]
        return await asyncio.gather(*calls)

    return asyncio.run(run())


def reward(response: dict[str, Any]) -> float:
    """The reward as the trainer sees it: through ``SamplesGenerator``'s conversion to an ``Experience``."""
    exp = SamplesGenerator._process_response_into_experience(None, response, max_len=8192)
    return float(exp.rewards.flatten()[0])


def test_concurrent_single_rollouts_score_as_a_direct_call(executor: SingleTurnAgentExecutor, tokenizer: Any) -> None:
    prompts = dataset(tokenizer, [{"prompt": PROMPT, "ground_truth": GROUND_TRUTH},
                                  {"prompt": PROMPT, "ground_truth": json.dumps(GROUND_TRUTH)}])
    names = list(ANSWERS) * 4
    out = rollouts(executor, tokenizer, prompts, [ANSWERS[n] for n in names])
    for name, response in zip(names, out):
        assert reward(response) == pytest.approx(EXPECTED[name][0], abs=1e-5), name
        assert reward(response) == pytest.approx(compute_score("x", ANSWERS[name], GROUND_TRUTH)["score"], abs=1e-6)
        assert float(response["extra_logs"]["ap"][0]) == pytest.approx(EXPECTED[name][1], abs=1e-5)


def test_json_answer_followed_by_the_end_of_turn_token(executor: SingleTurnAgentExecutor, tokenizer: Any) -> None:
    """The query is decoded with special tokens, so a JSON answer is followed by ``<|im_end|>`` (the parser
    ignores trailing special tokens after JSON: issue 23's parsing rules)."""
    prompts = dataset(tokenizer, [{"prompt": PROMPT, "ground_truth": GROUND_TRUTH}])
    (out,) = rollouts(executor, tokenizer, prompts, [as_json(HUMAN, "Response 1")])
    assert reward(out) == pytest.approx(1.0, abs=1e-5)


def test_query_that_does_not_start_with_the_prompt(executor: SingleTurnAgentExecutor, tokenizer: Any) -> None:
    """Decoding normalises Unicode (NFC), and a long prompt is cut from the left: the query then does not start
    with the prompt, which carries its own <checklist> format example; the answer still scores in full."""
    decomposed = dataset(tokenizer, [{"prompt": "Cafe\u0301 menu code review. " + PROMPT,
                                      "ground_truth": GROUND_TRUTH}])
    (out,) = rollouts(executor, tokenizer, decomposed, [ANSWERS["perfect"]])
    assert reward(out) == pytest.approx(1.0, abs=1e-5)

    long = dataset(tokenizer, [{"prompt": "Some context. " * 200 + PROMPT, "ground_truth": GROUND_TRUTH}])
    answer_tokens = len(tokenizer(ANSWERS["perfect"], add_special_tokens=False)["input_ids"]) + 1
    (cut,) = rollouts(executor, tokenizer, long, [ANSWERS["perfect"]], max_length=answer_tokens + 60,
                      max_tokens=answer_tokens)
    assert len(cut["observation_tokens"]) == answer_tokens + 60  # the prompt was cut from the left
    assert reward(cut) == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.text(st.characters(codec="utf-8"), max_size=80), cut=st.integers(0, 40))
def test_any_prompt_decoded_and_cut_as_openrlhf_does(tokenizer: Any, user: str, cut: int) -> None:
    """The query exactly as ``SingleTurnAgentExecutor`` builds it (the prompt's tokens, cut from the left by
    ``cut``, then the answer's and EOS, decoded with special tokens): the answer scores in full, whatever the
    user's text (combining marks, special-token look-alikes, its own answer blocks)."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": user + "\n" + PROMPT}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][cut:]
    ids += tokenizer(ANSWERS["perfect"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    query = tokenizer.decode(ids, skip_special_tokens=False)
    out = reward_func([query], [prompt], [GROUND_TRUTH])
    assert float(out["rewards"][0]) == pytest.approx(1.0, abs=1e-5)


def test_a_bad_ground_truth_stops_the_rollout(executor: SingleTurnAgentExecutor, tokenizer: Any) -> None:
    """OpenRLHF catches every Exception of a reward function (an INFO line, reward None): a dataset bug must not
    pass that way."""
    prompts = dataset(tokenizer, [{"prompt": PROMPT, "ground_truth": GROUND_TRUTH},
                                  {"prompt": PROMPT, "ground_truth": BAD_GROUND_TRUTH}])
    with pytest.raises(RewardDataAbort, match=r"row 0\b.*no human checklist"):
        rollouts(executor, tokenizer, prompts, [ANSWERS["perfect"]] * 2)
