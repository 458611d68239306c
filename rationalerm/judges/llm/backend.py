"""What an LLM backend provides to the pairwise and listwise judges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rationalerm.config import LLMJudgeConfig
from rationalerm.errors import JudgeError
from rationalerm.judges.base import Progress

Messages = list[dict[str, str]]
Split = tuple[str, str]
"""A last-message content as two parts (``a + b == content``) that may be tokenised separately."""


@dataclass(frozen=True)
class Generation:
    """One generated answer (listwise)."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    """Set when the request itself failed or could not be made (e.g. prompt longer than the context)."""


class Backend(Protocol):
    supports_grammar: bool

    def label_logprobs(
        self,
        prompts: Sequence[Messages],
        labels: Sequence[str],
        progress: Progress | None = None,
        *,
        settings: LLMJudgeConfig | None = None,
        splits: Sequence[Split] | None = None,
    ) -> list[list[float | None]]:
        """For each prompt, the next-token log-probability (or logit) of each label (None where unknown).

        ``settings`` is the calling judge's config: its per-call settings (seed, enable_thinking, batch_size)
        apply, so judges with different settings can share one engine. The model is the backend's own.
        ``splits`` is an optional tokenisation hint (see ``encode_chats``).
        """
        ...

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        regexes: Sequence[str] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
        settings: LLMJudgeConfig | None = None,
    ) -> list[Generation]:
        """Free (or regex-constrained) generation, one answer per prompt, in prompt order."""
        ...

    def close(self) -> None: ...


def render_chat(tokenizer, messages: Messages, enable_thinking: bool) -> str:
    """Apply the model's chat template (thinking off for Qwen3 unless asked) and open the assistant turn."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking
    )


_SENTINEL = "\x00rationalerm-content\x00"


def token_batch(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of many texts, no special tokens added (the Rust tokenizer directly when there is one)."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None) or getattr(backend, "encode_batch", None)
    if fast is not None:
        return [e.ids for e in fast(list(texts), add_special_tokens=False)]
    return [list(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def encode_chats(
    tokenizer, prompts: Sequence[Messages], enable_thinking: bool, splits: Sequence[Split] | None = None
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
    tokenizer, prompts: Sequence[Messages], enable_thinking: bool, splits: Sequence[Split] | None = None
) -> list[list[int]] | None:
    first = prompts[0]
    last_role = first[-1].get("role")
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
    if splits is not None and len(splits) == len(prompts) and all(
        a + b == c and (not b or not b[0].isspace()) for (a, b), c in zip(splits, contents)
    ):
        parts: dict[str, list[int]] = {}
        for (a, b) in splits:
            parts.setdefault(a, [])
            parts.setdefault(b, [])
        keys = list(parts)
        for key, ids in zip(keys, token_batch(tokenizer, keys)):
            parts[key] = ids
        ids = [head_ids + parts[a] + parts[b] + tail_ids for a, b in splits]
    else:
        ids = [head_ids + b + tail_ids for b in token_batch(tokenizer, contents)]
    n = len(prompts)
    checks = sorted({0, n // 4, n // 2, 3 * n // 4, n - 1})
    full = token_batch(tokenizer, [render_chat(tokenizer, prompts[k], enable_thinking) for k in checks])
    if any(f != ids[k] for k, f in zip(checks, full)):
        return None if splits is None else _encode_shared_head(tokenizer, prompts, enable_thinking, None)
    return ids


def single_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
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
