"""The pairwise judge as pure prefill: prompt structure, shared-prefix batching on transformers, prefix reuse on vLLM.

The tiny random-weight Qwen3 (real Qwen tokenizer) on the CPU: the shared part of a pair's prompt (template,
rubric, human item) is a token prefix and only the model item and the answer cue are unique; the transformers
backend's shared-prefix KV batches give the plain forward pass's label logprobs; vLLM's own prefix-cache counters
show what one engine computes per pair.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationalerm.judges.llm import LABELS, LLMJudgeConfig, make_backend
from rationalerm.judges.llm.prompts import fence, pairwise_messages, pairwise_split
from rationalerm.judges.llm.tokenize import common_prefix, encode_chats, prefix_groups, prefix_order
from tests.helpers.prefill import unique_tokens

HUMAN = ["Response 1 gives a ready-to-send message the user can copy.",
         "Response 2 uses set(), which loses the original order.",
         "Response 1 explains the O(n) time complexity, step by step, with an example input of ten items."]
MODEL = ["Response A provides a complete example message.", "Response 1 is better.", "Linear time.",
         "Response 2's set() does not keep the order; a dict would.", "中文 item", "x" * 120]
PAIRS = [(h, m) for h in HUMAN for m in MODEL]
CUE = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
"""What follows the model item in a rendered pairwise prompt (Qwen3, thinking off): the answer cue."""


@pytest.fixture(scope="module")
def tok(tiny_qwen):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen)


def test_shared_prefix_and_unique_suffix_of_one_human_item(tok):
    """Pairs of one human item share every token up to the model item; what follows is the model item + cue."""
    splits = [pairwise_split(h, m) for h, m in PAIRS]
    ids = encode_chats(tok, [pairwise_messages(h, m) for h, m in PAIRS], False, splits)
    for h in HUMAN:
        rows = [(m, x) for (hh, m), x in zip(PAIRS, ids) if hh == h]
        shared = min(common_prefix(rows[0][1], x) for _, x in rows[1:])
        head = rows[0][1][:shared]
        assert all(x[:shared] == head for _, x in rows)
        text = tok.decode(head)
        opened = text.split("Candidate critique S:\n")[1]
        assert fence(h) in text and opened in ("", '"')  # the shared prefix may end with the fence's opening quote
        for m, x in rows:
            # the unique part: the fenced model item (past that quote), then the answer cue, nothing else
            assert tok.decode(x[shared:]) == fence(m)[len(opened):] + CUE
    # across human items only the template and rubric are shared
    assert common_prefix(ids[0], ids[-1]) < len(ids[0]) - len(tok.encode(fence(HUMAN[0]) + fence(MODEL[0]) + CUE))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.text(min_size=1, max_size=5)), min_size=1, max_size=30))
def test_prefix_order_sends_the_pairs_of_one_human_item_together(pairs):
    order = prefix_order([pairwise_messages(h, m) for h, m in pairs])
    humans = [pairs[i][0] for i in order]
    assert humans == sorted(humans)  # one run per human item
    assert sorted(order) == list(range(len(pairs)))


def test_prefix_groups_share_the_root_then_each_group_prefix():
    ids = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 6, 7], [1, 2, 9, 9], [1, 2, 9, 8, 8], [1, 2, 3]]
    root, groups = prefix_groups(ids, ["x", "x", "y", "y", "z"])
    assert root == 2
    assert groups == [([0, 1], 4), ([2, 3], 3), ([4], 2)]  # a single prompt keeps its last token
    assert prefix_groups([[5]], ["k"]) == (0, [([0], 0)])


def _plain_logprobs(backend, ids: list[int], label_ids: list[int]) -> list[float]:
    """The reference: the whole prompt in one forward pass, no cache, no padding."""
    import torch

    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), dim=-1)[label_ids].tolist()


def test_transformers_shared_prefix_batches_equal_the_plain_forward_pass(tiny_qwen):
    cfg = LLMJudgeConfig(model=str(tiny_qwen), batch_size=4,
                         backend={"type": "transformers", "dtype": "float32", "device": "cpu"})
    backend = make_backend(cfg)
    try:
        # a batch_size of 4 mixes human items (and prefix lengths) in one forward pass and splits groups
        pairs = PAIRS + [("Short.", "A lone pair.")]
        prompts = [pairwise_messages(h, m) for h, m in pairs]
        splits = [pairwise_split(h, m) for h, m in pairs]
        got = backend.label_logprobs(prompts, LABELS, splits=splits)
        ids = backend.encode(prompts, splits=splits)
        label_ids = backend.label_token_ids(LABELS)
        for answer, x in zip(got, ids):
            want = _plain_logprobs(backend, x, label_ids)
            assert answer.error is None
            assert all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(answer.values, want)), (answer.values, want)
        # computed: the rubric once, each human item's prefix once, each pair's suffix
        unique = unique_tokens(backend, pairs)
        assert backend.prompt_tokens == sum(len(x) for x in ids)
        assert unique < backend.computed_tokens < unique + len(ids[0]) + 40 * (len(HUMAN) + 1)
        # without splits every prompt is its own group, still on the shared rubric, same answers
        again = backend.label_logprobs(prompts, LABELS)
        for a, b in zip(again, got):
            assert all(math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a.values, b.values))
    finally:
        backend.close()


@pytest.mark.slow
def test_vllm_prefix_cache_computes_little_more_than_the_unique_part(tiny_qwen):
    """vLLM's own counters: the rubric and each human item are computed about once, the rest per pair."""
    pytest.importorskip("vllm", reason="needs vllm")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    cfg = LLMJudgeConfig(model=str(tiny_qwen), backend={"type": "vllm", "dtype": "float32", "engine_args": {
        "max_model_len": 4096, "enforce_eager": True, "disable_log_stats": False}})
    backend = make_backend(cfg)
    try:
        assert backend.llm.llm_engine.vllm_config.cache_config.block_size == 32  # CPU_PAIRWISE_BLOCK
        prompts = [pairwise_messages(h, m) for h, m in PAIRS]
        splits = [pairwise_split(h, m) for h, m in PAIRS]
        unique = unique_tokens(backend, PAIRS)
        backend.llm.reset_prefix_cache()
        q0, h0 = backend.prefix_cache_tokens()
        backend.label_logprobs(prompts, LABELS, splits=splits)
        q1, h1 = backend.prefix_cache_tokens()
        computed = (q1 - q0) - (h1 - h0)
        ids = backend.encode(prompts, splits=splits)
        assert q1 - q0 == sum(len(x) for x in ids)
        # the rubric once, each human item once, then the unique part plus at most one block per pair
        assert computed <= unique + len(ids[0]) + len(HUMAN) * 64 + len(PAIRS) * 32
    finally:
        backend.close()
