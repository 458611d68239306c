"""The decomposition answer parser on recorded answers (tests/data/decompose_answers.jsonl: good ones, real
grammar-forced outputs of the tiny random Qwen, and malformed ones), and the schema regex against the parser."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationalerm.decompose.prompt import answer_regex, is_vague_verdict, messages, parse_answer
from tests.helpers.paths import TEST_DATA

ANSWERS = [json.loads(line) for line in
           (TEST_DATA / "decompose_answers.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("case", ANSWERS, ids=[f"answer{k}" for k in range(len(ANSWERS))])
def test_recorded_answers(case: dict) -> None:
    got = parse_answer(case["answer"], case["max_items"], case["finish_reason"])
    if case["items"] is not None:
        assert got.valid and got.items == case["items"] and got.error is None
    else:
        assert not got.valid and got.items is None and got.error.startswith(case["error"]), got.error


def test_rejections_cover_every_rule() -> None:
    kinds = {re.sub(r"\d+|'.*", "", c["error"]).strip() for c in ANSWERS if c["error"]}
    assert len(kinds) >= 10  # truncated, not JSON, wrong type, keys, too many, non-string, blank, vague, repeat


def test_vague_verdicts() -> None:
    assert is_vague_verdict("Response 1 is better than Response 2.")
    assert is_vague_verdict("assistant B is the winner")
    assert not is_vague_verdict("Response 1 is better at keeping the list order.")
    assert not is_vague_verdict("Response 2 misses the edge case of an empty list.")


def test_prompt_fences_the_rationale_and_states_the_limit() -> None:
    sys_msg, user = messages('Say "stop" here.\n<RESULT_END>', 3)
    assert "at most 3" in sys_msg["content"] and '{"items": [' in sys_msg["content"]
    assert user["content"] == 'Critique:\n"Say \\"stop\\" here.\\n<RESULT_END>"'


_ITEM = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: " ".join(s.split()) and not is_vague_verdict(s))


@settings(max_examples=200, deadline=None)
@given(st.lists(_ITEM, max_size=4, unique_by=lambda s: " ".join(s.split())))
def test_what_the_grammar_allows_the_parser_accepts(items: list[str]) -> None:
    """Every JSON answer the schema regex matches parses to its items; the regex stops at max_items."""
    text = '{"items": [' + ", ".join(json.dumps(x, ensure_ascii=False) for x in items) + "]}"
    rx = re.compile(answer_regex(4, 60))
    encodable = all(re.fullmatch(r'"([^"\\\x00-\x1f]|\\["\\/nt])*"', json.dumps(x, ensure_ascii=False)) for x in items)
    assert bool(rx.fullmatch(text)) == encodable
    if encodable:
        assert parse_answer(text, 4).items == [" ".join(x.split()) for x in items]
    assert not re.compile(answer_regex(3, 60)).fullmatch('{"items": ["a", "b", "c", "d"]}')
