"""The one generate-parse-re-ask loop (``judges/llm/reask.py``) on a scripted engine, and its two users: the
listwise judge and ``rationalerm decompose``. What is re-asked, at what temperature and seed, in which order; a
request that got no answer is final at once; every prompt's final answer is handed over exactly once."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from rationalerm.decompose.prompt import answer_regex
from rationalerm.decompose.run import DecomposeSettings, Decomposition, decompose_texts
from rationalerm.judges.base import ListTask
from rationalerm.judges.llm import ListwiseConfig, LLMJudgeConfig, make_llm_judge
from rationalerm.judges.llm.backend import Backend, GenerateBatch, Generation, LabelBatch
from rationalerm.judges.llm.reask import Final, ask_until_accepted

Script = Callable[[str, int], Generation]
"""(the prompt's last message, the engine call number from 1) -> the answer."""
VALID_LIST = "<RESULT_START>\n- R1@S1: 0.50\n<RESULT_END>"


class Scripted(Backend):
    """Answers from a script, handed over in reverse order (the loop must not depend on the order of arrival)."""

    def __init__(self, cfg: LLMJudgeConfig, script: Script, grammar: bool = False) -> None:
        super().__init__(cfg)
        self.script = script
        self.supports_grammar = grammar
        self.calls: list[GenerateBatch] = []

    def _label_logprobs(self, batch: LabelBatch, progress: object) -> list[list[float | None]]:
        raise AssertionError("not a pairwise test")

    def _generate(self, batch: GenerateBatch) -> list[Generation]:
        self.calls.append(batch)
        gens = [self.script(p[-1]["content"], len(self.calls)) for p in batch.prompts]
        for k in reversed(range(len(gens))):
            batch.answer(k, gens[k])
        return gens


def _cfg(**kw: object) -> LLMJudgeConfig:
    return LLMJudgeConfig(model="stub", backend="transformers", **kw)


def _ok(text: str) -> Generation:
    return Generation(text, "stop")


def _asked(backend: Scripted) -> list[list[str]]:
    return [[p[-1]["content"] for p in call.prompts] for call in backend.calls]


def test_rejected_answers_are_asked_again_in_prompt_order_at_the_retry_temperature_and_next_seed() -> None:
    def script(prompt: str, call: int) -> Generation:
        if prompt == "p3":
            return Generation("", None, error="server down", fault="timeout")
        accepted_at = {"p0": 1, "p1": 2, "p2": 99}[prompt]
        return _ok("ok" if call >= accepted_at else f"bad{call}")

    backend = Scripted(_cfg(temperature=0.0, seed=5), script)
    checked: list[int] = []
    finals: dict[int, list[Final[str]]] = {}

    def check(i: int, gen: Generation) -> tuple[str, bool]:
        checked.append(i)
        return gen.text, gen.text == "ok"

    prompts = [[{"role": "user", "content": f"p{i}"}] for i in range(4)]
    ask_until_accepted(backend, prompts, [f"r{i}" for i in range(4)], call=backend.cfg,
                       budget=ListwiseConfig(max_tokens=9, max_retries=2, retry_temperature=0.7), check=check,
                       on_final=lambda i, f: finals.setdefault(i, []).append(f))
    assert _asked(backend) == [["p0", "p1", "p2", "p3"], ["p1", "p2"], ["p2"]]
    assert [c.regexes for c in backend.calls] == [["r0", "r1", "r2", "r3"], ["r1", "r2"], ["r2"]]
    assert [(c.temperature, c.seed, c.max_tokens) for c in backend.calls] == [
        (0.0, 5, [9, 9, 9, 9]), (0.7, 6, [9, 9]), (0.7, 7, [9])]
    assert {i: [(f.parsed, f.attempts) for f in fs] for i, fs in finals.items()} == {
        0: [("ok", 1)], 1: [("ok", 2)], 2: [("bad3", 3)], 3: [(None, 1)]}  # each final exactly once
    assert finals[3][0].gen.fault == "timeout" and 3 not in checked  # no answer: final at once, never parsed


def test_a_hotter_first_ask_keeps_its_temperature_and_no_retries_means_one_ask() -> None:
    backend = Scripted(_cfg(temperature=1.0, seed=0), lambda prompt, call: _ok("bad"))
    finals: list[tuple[int, Final[str]]] = []
    budget = ListwiseConfig(max_tokens=4, max_retries=1, retry_temperature=0.7)
    prompts = [[{"role": "user", "content": "p"}]]
    ask_until_accepted(backend, prompts, None, call=backend.cfg, budget=budget,
                       check=lambda i, gen: (gen.text, False), on_final=lambda i, f: finals.append((i, f)))
    assert [c.temperature for c in backend.calls] == [1.0, 1.0] and backend.calls[0].regexes is None
    assert [(i, f.attempts) for i, f in finals] == [(0, 2)]
    once = Scripted(_cfg(), lambda prompt, call: _ok("bad"))
    ask_until_accepted(once, prompts, None, call=once.cfg, budget=ListwiseConfig(max_retries=0),
                       check=lambda i, gen: (gen.text, False), on_final=lambda i, f: None)
    assert len(once.calls) == 1
    nothing = Scripted(_cfg(), lambda prompt, call: _ok("ok"))
    ask_until_accepted(nothing, [], None, call=nothing.cfg, budget=budget, check=lambda i, gen: (gen.text, True),
                       on_final=lambda i, f: None)
    assert nothing.calls == []


def test_the_listwise_judge_re_asks_through_the_loop() -> None:
    def script(prompt: str, call: int) -> Generation:
        if "never answered" in prompt:
            return Generation("", None, error="HTTP 500", fault="server error")
        if "right away" in prompt:
            return _ok(VALID_LIST)
        return _ok(VALID_LIST if call == 2 else "no result block")

    backend = Scripted(_cfg(), script)
    judge = make_llm_judge(_cfg(protocol="listwise", listwise={"max_retries": 2}), backend)
    tasks = [ListTask(("right away",), ("s",)), ListTask(("h",), ("s",)), ListTask((), ("s",)),
             ListTask(("never answered",), ("s",))]
    streamed: dict[int, object] = {}
    fine, second, empty, failed = judge.judge_lists(tasks, on_result=streamed.__setitem__)
    assert (fine.valid, fine.attempts, fine.matrix) == (True, 1, [[0.5]])
    assert (second.valid, second.attempts, second.raw) == (True, 2, VALID_LIST)
    assert (empty.valid, empty.attempts, empty.matrix) == (True, 0, [])  # nothing to ask
    assert failed.failed == "server error" and failed.attempts == 1 and failed.error == "HTTP 500"
    assert failed.detail == {"finish_reason": None} and not failed.valid
    assert len(backend.calls) == 2 and len(backend.calls[1].prompts) == 1
    assert set(streamed) == {0, 1, 2, 3}


def test_decompose_re_asks_through_the_loop_and_keeps_its_results() -> None:
    good = orjson.dumps({"items": ["Response 1 keeps the order."]}).decode()

    def script(prompt: str, call: int) -> Generation:
        if "timeout" in prompt:
            return Generation("", None, error="no answer after 3 attempts", fault="timeout")
        if "first" in prompt or call == 2 and "second" in prompt:
            return _ok(good)
        return _ok("not json")

    settings = DecomposeSettings(max_items=3, max_retries=2)
    out: dict[int, list[Decomposition]] = {}
    texts = ["first", "second", "never", "timeout"]
    backend = Scripted(_cfg(seed=3), script)
    decompose_texts(backend, backend.cfg, texts, settings, lambda i, d: out.setdefault(i, []).append(d))
    items = ["Response 1 keeps the order."]
    assert out[0] == [Decomposition(items, None, good, 1)] and out[1] == [Decomposition(items, None, good, 2)]
    (never,) = out[2]
    assert never.items is None and never.error.startswith("not one JSON object") and never.attempts == 3
    assert never.raw == "not json" and never.fault is None  # rejected after the re-asks: cached like a good one
    assert out[3] == [Decomposition(None, "no answer after 3 attempts", attempts=1, fault="timeout")]
    assert [c.seed for c in backend.calls] == [3, 4, 5] and backend.calls[0].regexes is None
    forced = Scripted(_cfg(), lambda prompt, call: _ok(good), grammar=True)
    decompose_texts(forced, forced.cfg, ["a", "b"], settings, lambda i, d: None)
    assert forced.calls[0].regexes == [answer_regex(3, 300)] * 2
