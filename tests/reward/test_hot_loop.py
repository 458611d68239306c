"""The reward in a trainer's hot loop (issue 23): parsing that cannot hang and stays within documented caps, the
checklist cut to ``max_model_items`` before judging, trailing special tokens, the last answer block, text a
tokenizer cannot take, and the empty checklist."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationalerm.config import RunConfig
from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig
from rationalerm.reward.parse import Parsed, make_parser, parse_output, read_output
from rationalerm.reward.reference import Reference
from rationalerm.reward.scorer import RewardScorer, RewardSettings, load_reward_config
from tests.helpers.deadline import within
from tests.helpers.judges import ScriptedJudge

HUMAN = ["Response 1 keeps the order.", "Response 2 loses the order.", "Response 1 is linear."]
REF = Reference(tuple(HUMAN), 1)
TOP5 = RunConfig.model_validate({"scoring": {"max_model_items": 5}})


def answer(items: list[str], label: str) -> str:
    lines = "\n".join(f"{k}. {item}" for k, item in enumerate(items, 1))
    return f"<checklist>\n{lines}\n</checklist>\n<label>{label}</label>"


def scripted(config: RunConfig = TOP5, **reward: object) -> RewardScorer:
    """A scorer whose judge scores identical texts 1 and others 0, and records every pair it is asked."""
    return RewardScorer(config, RewardSettings(**reward), judge=ScriptedJudge())


PATHOLOGICAL = {
    "200 KB of unclosed <think>": "<think>" * 30_000,
    "<think> then 200 KB, never closed": "<think>" + "x" * 200_000,
    "a fence then 100 KB of spaces": "```" + " " * 100_000 + "x",
    "a json fence then 100 KB of spaces": "```json\n{" + " " * 100_000 + "\n```",
    "100 KB of digits as a list marker": "<checklist>\n" + "1" * 100_000 + " x\n</checklist><label>1</label>",
    "100 KB of spaces in an item": "<checklist>\n1." + " " * 100_000 + "x\n</checklist><label>1</label>",
    "20,000 <label> tags": answer(HUMAN, "1") + "<label>" * 20_000,
    "4 MB of newlines in a checklist": "<checklist>" + "\n" * 4_000_000 + "x</checklist><label>1</label>",
    "a window of marker-only lines": "<checklist>" + "-\n" * 99_000 + "</checklist><label>1</label>",
    "a window of numbered empty lines": "<checklist>" + "1.\n" * 66_000 + "</checklist><label>1</label>",
    "<|im_end|> 150,000 times": json.dumps({"checklist": HUMAN, "label": 1}) + "<|im_end|>" * 150_000,
    "deeply nested JSON": "[" * 200_000 + "]" * 200_000,
    "a JSON object nested deeply": '{"checklist": ' + "[" * 100_000 + "]" * 100_000 + ', "label": 1}',
}


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_outputs_score_within_a_second(text: str) -> None:
    s = scripted()
    with within(1.0):
        (r,) = s.score([text], [REF])
    assert 0.0 <= r.score <= 1.0 and (r.parsed or r.reason)


def test_a_huge_checklist_is_cut_to_max_model_items_before_judging() -> None:
    """48,000 checklist lines (1.8 MB) with max_model_items 5: at most 5 x 3 pairs judged, not 144,000. With the
    default caps the output is past the window (0, with the reason); with the window widened, exactly the first 5
    items are judged and the reward is theirs."""
    items = HUMAN + [f"reason {k} why one is better" for k in range(48_000 - len(HUMAN))]
    text = answer(items, "1")
    assert len(text) > 1_400_000  # the case: 34.5 minutes for one call
    s = scripted()
    with within(5.0):
        (r,) = s.score([text], [REF])
    assert s.judged <= 5 * len(HUMAN) and r.score == 0.0 and "reward.max_output_chars" in r.reason
    wide = scripted(max_output_chars=3_000_000, max_items=100_000)
    with within(5.0):
        (r,) = wide.score([text], [REF])
    assert wide.judged == 5 * len(HUMAN) and len(r.checklist) == 48_000
    (first5,) = scripted().score([answer(items[:5], "1")], [REF])
    assert (r.score, r.ap, r.correct) == (first5.score, first5.ap, first5.correct) == (1.0, 1.0, True)


def test_without_max_model_items_the_items_cap_bounds_the_judging() -> None:
    s = scripted(RunConfig(), max_items=7)
    (r,) = s.score([answer([f"reason {k}" for k in range(1000)], "1")], [REF])
    assert s.judged == 7 * len(HUMAN) and r.checklist == tuple(f"reason {k}" for k in range(7))


def test_the_caps_are_reward_config_keys_and_apply(tmp_path) -> None:
    path = tmp_path / "reward.yaml"
    path.write_text(yaml.safe_dump({"reward": {"max_output_chars": 300, "max_items": 2, "max_item_chars": 10}}))
    _, limits = load_reward_config(path)
    assert (limits.max_output_chars, limits.max_items, limits.max_item_chars) == (300, 2, 10)
    parse = make_parser(None, limits)
    p = read_output(parse, "x" * 10_000 + answer(["a" * 50, "b", "c"], "1"), limits)
    assert isinstance(p, Parsed) and p.checklist == ("a" * 10, "b") and p.label == 1
    cut = read_output(parse, answer(["a" * 400], "1"), limits)  # the window loses the <checklist> tag
    assert cut == "no <checklist> block (only the last 300 characters of an output are read: " \
                  "reward.max_output_chars)"
    defaults = RewardSettings()
    assert (defaults.max_output_chars, defaults.max_items, defaults.max_item_chars) == (200_000, 100, 2000)


SPECIAL = ["<|im_end|>", "<|endoftext|>", "<|im_end|>\n<|endoftext|>", "</s>", "<|eot_id|>", "<end_of_turn>\n"]


@pytest.mark.parametrize("tail", SPECIAL)
def test_special_tokens_after_a_json_answer_are_ignored(tail: str) -> None:
    obj = json.dumps({"checklist": HUMAN, "label": "Response 1"})
    for text in (obj + tail, f"```json\n{obj}\n```{tail}", answer(HUMAN, "1") + tail):
        (r,) = scripted().score([text], [REF])
        assert (r.score, r.reason) == (1.0, ""), text


def test_the_last_answer_block_counts() -> None:
    """OpenRLHF hands over prompt + response when the prompt is not a prefix of the decoded query: the prompt's
    own format example precedes the answer, and the answer (the last block) is what is scored."""
    example = answer(["Response 2 is shorter.", "Response 2 uses fewer lines."], "Response 2")
    prompt = f"<|im_start|>user\nCompare. Answer like this:\n{example}<|im_end|>\n<|im_start|>assistant\n"
    good = prompt + "<think>one <checklist>draft</checklist></think>" + answer(HUMAN, "Response 1") + "<|im_end|>"
    j_example = json.dumps({"checklist": ["Response 2 is shorter."], "label": 2})
    j_good = f"Answer as {j_example}<|im_end|>\n<|im_start|>assistant\n" + json.dumps(
        {"checklist": HUMAN, "label": 1, "meta": {"label": 2}}) + "<|im_end|>"
    no_label = prompt + "<checklist>\n" + "\n".join(HUMAN) + "\n</checklist>"
    s = scripted()
    r_good, r_json, r_no_label = s.score([good, j_good, no_label], [REF] * 3)
    assert (r_good.score, r_good.checklist) == (1.0, tuple(HUMAN))
    assert (r_json.score, r_json.checklist) == (1.0, tuple(HUMAN))
    assert r_no_label.score == 0.0 and r_no_label.reason.startswith("no <label> block")  # not the example's label


def test_an_orphan_think_close_drops_the_thought_before_it() -> None:
    """Templates that open ``<think>`` in the prompt (Qwen3, R1) leave only ``</think>`` in the response."""
    text = "draft <checklist>wrong</checklist><label>2</label>\n</think>\n" + answer(HUMAN, "1")
    p = parse_output(text)
    assert p.checklist == tuple(HUMAN) and p.label == "1"


def test_surrogates_in_items_are_cleaned_not_a_failed_batch() -> None:
    """A lone surrogate made the tokenizer raise TypeError for the whole batch; it becomes U+FFFD, a valid pair is
    joined, and the other outputs of the batch score as before."""
    judge = EmbeddingJudge(EmbeddingJudgeConfig())
    s = RewardScorer(TOP5, judge=judge)
    bad = answer(["Response 1 keeps \ud800 the order.", "emoji \ud83d\ude00"], "1")
    json_bad = '{"checklist": ["a \\udfff b"], "label": 1}'
    r_bad, r_json, r_good = s.score([bad, json_bad, answer(HUMAN, "1")], [REF] * 3)
    assert r_bad.parsed and r_bad.checklist == ("Response 1 keeps \ufffd the order.", "emoji \U0001f600")
    assert r_json.parsed and r_json.checklist == ("a \ufffd b",)
    assert r_good.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("text", [
    answer([], "1"), "<checklist>\n - \n 2. \n</checklist><label>1</label>", '{"checklist": [], "label": 1}',
])
@pytest.mark.parametrize("how", ["product", "sum", "outcome_gated"])
def test_an_empty_checklist_scores_zero_with_a_reason(text: str, how: str) -> None:
    (r,) = scripted(combine=how).score([text], [REF])
    assert (r.score, r.parsed, r.reason) == (0.0, False, "empty checklist")


_PIECES = ["<think>", "</think>", "<checklist>", "</checklist>", "<label>", "</label>", "```", "```json\n", "{", "}",
           "[", "]", '"checklist": ', '"label": ', ", ", "\n", " ", "1. ", "- ", "x", "Response 1", "\x00", "\ud800",
           "\udfff", "\\ud800", "<|im_end|>", "\u2028", "é", answer(HUMAN, "1"), json.dumps({"checklist": HUMAN,
                                                                                             "label": 1})]
_REPEATS = st.one_of(st.integers(1, 100), st.sampled_from([1_000, 40_000, 150_000]))
ADVERSARIAL = st.lists(st.tuples(st.sampled_from(_PIECES), _REPEATS), max_size=8).map(
    lambda runs: "".join(piece * n for piece, n in runs))


@settings(max_examples=60, deadline=1000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ADVERSARIAL)
def test_no_output_raises_or_takes_over_a_second_to_parse(text: str) -> None:
    limits = RewardSettings()
    with within(1.0):
        p = read_output(make_parser(None, limits), text, limits)
    assert isinstance(p, (Parsed, str))
    if isinstance(p, Parsed):
        assert 0 < len(p.checklist) <= limits.max_items and p.label in (1, 2, "tie")
        assert all(0 < len(x) <= limits.max_item_chars and x.encode("utf-8") for x in p.checklist)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(ADVERSARIAL, min_size=1, max_size=4))
def test_an_adversarial_batch_scores_every_output(texts: list[str]) -> None:
    s = scripted()
    with within(1.0 * len(texts) + 1.0):
        results = s.score(texts, [REF] * len(texts))
    assert len(results) == len(texts) and all(0.0 <= r.score <= 1.0 and (r.parsed or r.reason) for r in results)
