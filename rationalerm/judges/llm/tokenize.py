"""Prompt tokenisation the backends share: chat rendering, batched token ids (the shared rubric tokenised once),
the label token ids, and the prefix order that keeps shared prefixes side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rationalerm.errors import JudgeError

Messages = list[dict[str, str]]
Split = tuple[str, str]
"""A last-message content as two parts (``a + b == content``) that may be tokenised separately."""
Tokenizer = Any
"""A Hugging Face tokenizer (``transformers.PreTrainedTokenizerBase``); read duck-typed, its fast Rust tokenizer
when it has one."""


def render_chat(tokenizer: Tokenizer, messages: Messages, enable_thinking: bool) -> str:
    """Apply the model's chat template (thinking off for Qwen3 unless asked) and open the assistant turn."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking
    )


_SENTINEL = "\x00rationalerm-content\x00"


def token_batch(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of many texts, no special tokens added (the Rust tokenizer directly when there is one)."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None) or getattr(backend, "encode_batch", None)
    if fast is not None:
        return [e.ids for e in fast(list(texts), add_special_tokens=False)]
    return [list(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def encode_chats(
    tokenizer: Tokenizer, prompts: Sequence[Messages], enable_thinking: bool, splits: Sequence[Split] | None = None
) -> list[list[int]]:
    """Token ids of many rendered chat prompts.

    When all prompts share every message but the content of the last one (the pairwise protocol: same
    rubric, one user message per pair), the template is rendered once around a sentinel and only the varying
    contents are tokenised: the shared head (the long rubric) and tail are tokenised once. With ``splits``
    (each content as two parts, e.g. ``prompts.pairwise_split``) each distinct part is tokenised once, so a
    human item shared by many pairs costs one tokenisation. The result is checked against full
    tokenisation on a few prompts; on any difference it falls back to the full path.
    """
    if not prompts:
        return []
    fast = _encode_shared_head(tokenizer, prompts, enable_thinking, splits) if len(prompts) >= 8 else None
    if fast is not None:
        return fast
    return token_batch(tokenizer, [render_chat(tokenizer, m, enable_thinking) for m in prompts])


def _encode_shared_head(
    tokenizer: Tokenizer, prompts: Sequence[Messages], enable_thinking: bool, splits: Sequence[Split] | None = None
) -> list[list[int]] | None:
    first = prompts[0]
    last_role = first[-1]["role"]
    if any(len(p) != len(first) or p[:-1] != first[:-1] or p[-1].get("role") != last_role for p in prompts):
        return None
    probe = list(first[:-1]) + [{"role": last_role, "content": _SENTINEL}]
    text = render_chat(tokenizer, probe, enable_thinking)
    if text.count(_SENTINEL) != 1:
        return None
    head, tail = text.split(_SENTINEL)
    # Only split where tokenisation cannot cross the seams: the content is followed by a special token
    # (ChatML's <|im_end|>) and does not start with whitespace that could merge with the head's newline.
    specials = [t for t in getattr(tokenizer, "added_tokens_encoder", {}) if t]
    if not any(tail.startswith(t) for t in specials):
        return None
    contents = [p[-1]["content"] for p in prompts]
    if any(not c or c[0].isspace() for c in contents):
        return None
    head_ids, tail_ids = token_batch(tokenizer, [head, tail])
    # A split is used only at a seam no pre-tokeniser merges across: its first part ends a line and the second
    # starts with a non-space (pairwise_split: "...S:\n" + '"item"'); the sample check below is a second guard.
    if splits is not None and len(splits) == len(prompts) and all(
        a + b == c and a.endswith("\n") and (not b or not b[0].isspace()) for (a, b), c in zip(splits, contents)
    ):
        parts: dict[str, list[int]] = {}
        for (a, b) in splits:
            parts.setdefault(a, [])
            parts.setdefault(b, [])
        keys = list(parts)
        for key, key_ids in zip(keys, token_batch(tokenizer, keys)):
            parts[key] = key_ids
        ids = [head_ids + parts[a] + parts[b] + tail_ids for a, b in splits]
    else:
        ids = [head_ids + b + tail_ids for b in token_batch(tokenizer, contents)]
    n = len(prompts)
    checks = sorted({0, n // 4, n // 2, 3 * n // 4, n - 1})
    full = token_batch(tokenizer, [render_chat(tokenizer, prompts[k], enable_thinking) for k in checks])
    if any(f != ids[k] for k, f in zip(checks, full)):
        return None if splits is None else _encode_shared_head(tokenizer, prompts, enable_thinking, None)
    return ids


def single_token_ids(tokenizer: Tokenizer, labels: Sequence[str]) -> list[int]:
    """Token id of each label; each must be exactly one token (true of 0..4 in every Qwen tokenizer)."""
    ids = []
    for label in labels:
        enc = tokenizer.encode(label, add_special_tokens=False)
        if len(enc) != 1:
            raise JudgeError(f"label {label!r} is {len(enc)} tokens in this tokenizer; the pairwise protocol needs 1")
        ids.append(enc[0])
    if len(set(ids)) != len(ids):
        raise JudgeError("pairwise labels map to the same token")
    return ids


def prefix_order(prompts: Sequence[Messages]) -> list[int]:
    """Indices sorted by message contents: prompts with long shared prefixes end up side by side."""
    keys = [tuple(m["content"] for m in p) for p in prompts]
    return sorted(range(len(keys)), key=keys.__getitem__)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefix_groups(ids: Sequence[list[int]], keys: Sequence[object]) -> tuple[int, list[tuple[list[int], int]]]:
    """How a batch shares prefixes: (root, [(indices, prefix), ...]).

    ``root`` is the token count every prompt shares (chat template + rubric); each group is the prompts of one
    ``key`` (e.g. the pairwise split's human part) with the tokens they all share (rubric + human item). Every
    prompt keeps at least its last token past its group's prefix, so each has a position whose next-token
    logits are read. Groups come in first-seen order (``prefix_order`` puts a key's prompts side by side).
    """
    members: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    root = min(len(x) for x in ids) - 1
    for x in ids[1:]:
        root = min(root, common_prefix(ids[0], x))
    groups = []
    for idx in members.values():
        first = ids[idx[0]]
        prefix = min(len(ids[i]) for i in idx) - 1
        for i in idx[1:]:
            prefix = min(prefix, common_prefix(first, ids[i]))
        groups.append((idx, max(root, prefix)))
    return max(root, 0), groups
