"""What the pairwise prompts of some pairs leave to compute, counted with a backend's tokenizer (tests and
benchmarks): the unique part of each prompt is what follows the tokens it shares with every prompt of its
human item, i.e. the model item and the answer cue."""

from __future__ import annotations

from collections.abc import Sequence

from rationalerm.judges.llm.backend import Backend
from rationalerm.judges.llm.prompts import pairwise_messages, pairwise_split
from rationalerm.judges.llm.tokenize import common_prefix


def shared_prefixes(backend: Backend, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[int]]:
    """Each pair's prompt token ids and how many of them it shares with every prompt of its human item (found
    against the same human item with a placeholder model item)."""
    prompts = [pairwise_messages(h, m) for h, m in pairs]
    ids = backend.encode(prompts, splits=[pairwise_split(h, m) for h, m in pairs])
    probes = backend.encode([pairwise_messages(h, "\x01") for h, _ in pairs])
    assert ids is not None and probes is not None, "the backend needs a local tokenizer"
    return ids, [common_prefix(x, p) for x, p in zip(ids, probes)]


def unique_tokens(backend: Backend, pairs: Sequence[tuple[str, str]]) -> int:
    """Unique prompt tokens of ``pairs``: what follows each prompt's shared prefix."""
    ids, shared = shared_prefixes(backend, pairs)
    return sum(len(x) - k for x, k in zip(ids, shared))
