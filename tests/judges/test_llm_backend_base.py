"""What the Backend base class owns, on a stub engine with the real Qwen tokenizer: per-call settings, the
context rule (pairwise: a per-prompt error, a failed pair; listwise: an invalid Generation), label ids, streaming
answers, the retry loop."""

from __future__ import annotations

import asyncio

import pytest

from rationalerm.judges.base import ListTask
from rationalerm.judges.llm import LLMJudgeConfig, make_llm_judge
from rationalerm.judges.llm.backend import Backend, GenerateBatch, Generation, LabelBatch
from rationalerm.judges.llm.prompts import LABELS, pairwise_messages

VALID = "<RESULT_START>\n- R1@S1: 0.50\n<RESULT_END>"


class StubBackend(Backend):
    """Answers every prompt that reaches it; records what the base handed over."""

    def __init__(self, cfg: LLMJudgeConfig, tokenizer, context: int | None) -> None:
        super().__init__(cfg)
        self.tokenizer = tokenizer
        self.context = context
        self.batches: list = []

    def context_length(self) -> int | None:
        return self.context

    def _label_logprobs(self, batch: LabelBatch, progress):
        self.batches.append(batch)
        if progress:
            progress(len(batch.prompts))
        return [[-2.0, -1.0, -0.5, -3.0, -4.0] for _ in batch.prompts]

    def _generate(self, batch: GenerateBatch):
        self.batches.append(batch)
        return [Generation(VALID, "stop", len(t), 9) for t in batch.token_ids]


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen)


def _cfg(**kw) -> LLMJudgeConfig:
    return LLMJudgeConfig(model="stub", backend="transformers", **kw)


def test_pairwise_prompt_too_long_is_a_per_prompt_error(tokenizer):
    backend = StubBackend(_cfg(), tokenizer, context=600)
    short, long = pairwise_messages("h", "s"), pairwise_messages("h", "word " * 400)
    seen: list[int] = []
    out = backend.label_logprobs([short, long, short], LABELS, seen.append)
    assert out[0].error is None and out[0].values == [-2.0, -1.0, -0.5, -3.0, -4.0] and out[2] == out[0]
    assert out[1].values == [None] * 5 and "no room to answer in the model's context of 600 tokens" in out[1].error
    assert len(backend.batches[0].prompts) == 2 and sum(seen) == 3  # only prompts that fit reach the engine
    assert backend.label_token_ids(LABELS) == [15, 16, 17, 18, 19]  # one way: the local tokenizer
    judge = make_llm_judge(_cfg(), backend)
    streamed: dict[int, object] = {}
    ok, failed = judge.score_pairs([("h", "s"), ("h", "word " * 400)], on_score=streamed.__setitem__)
    assert ok.score is not None and failed.score is None and failed.failed == "prompt too long"  # never a number
    assert "no room to answer in the model's context of 600 tokens" in failed.detail["error"]
    assert streamed == {0: ok, 1: failed}  # every answer is handed over once, as it arrives


def test_listwise_prompt_too_long_is_an_invalid_generation_and_budgets_fit_the_context(tokenizer):
    backend = StubBackend(_cfg(), tokenizer, context=900)
    judge = make_llm_judge(_cfg(protocol="listwise", listwise={"max_tokens": 500, "max_retries": 1}), backend)
    ok, too_long = judge.judge_lists([ListTask(("h",), ("s",)), ListTask(("h",), ("word " * 900,))])
    assert ok.valid and ok.matrix == [[0.5]]
    assert not too_long.valid and too_long.matrix is None and too_long.attempts == 2
    assert "no room to answer in the model's context of 900 tokens" in too_long.error
    (batch,) = backend.batches
    (n,) = [len(t) for t in batch.token_ids]
    assert batch.max_tokens == [min(500, 900 - n)]  # the budget is cut to the room left


def test_per_call_settings_are_the_calling_judges(tokenizer):
    backend = StubBackend(_cfg(seed=1), tokenizer, context=None)
    assert backend.settings() is backend.cfg
    mine = _cfg(seed=7, batch_size=3)
    make_llm_judge(mine, backend).score_pairs([("h", "s")])
    assert backend.batches[-1].settings is mine


class Flaky(StubBackend):
    max_retries, backoff_s = 2, 0.0

    def should_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionError)


def test_the_retry_loop_retries_transient_errors_only(tokenizer):
    backend = Flaky(_cfg(), tokenizer, context=None)
    calls: list[int] = []

    async def fails(times: int, exc: Exception):
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "ok"

    assert asyncio.run(backend.call_with_retries(lambda: fails(2, ConnectionError()))) == "ok"
    assert backend.retries == 2 and len(calls) == 3
    calls.clear()
    with pytest.raises(ConnectionError):
        asyncio.run(backend.call_with_retries(lambda: fails(3, ConnectionError())))
    assert len(calls) == 3  # max_retries exhausted
    calls.clear()
    with pytest.raises(ValueError):
        asyncio.run(backend.call_with_retries(lambda: fails(1, ValueError())))
    assert len(calls) == 1  # not transient: no retry
