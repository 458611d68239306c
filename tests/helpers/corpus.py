"""Generated corpora for scale tests and benchmarks: ``n`` samples of 6 human x 6 model items, two models.

Item texts come from a fixed vocabulary (``vocab`` sentences built from a few word lists), so the distinct
texts -- and so the distinct pairs a pairwise judge sees, which the run deduplicates -- stay bounded while the
sample count grows: memory and judge cost then measure the run's own per-sample work, not the judge's.
Domains, labels, and the odd sample with a missing model key or an empty model list are mixed in.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson

SUBJECTS = ["Response 1", "Response 2", "The answer", "The first reply", "The second reply", "The explanation"]
VERBS = ["explains", "omits", "verifies", "cites", "summarises", "questions", "corrects", "repeats"]
OBJECTS = ["the safety risk", "the edge case", "the final number", "the user's intent", "the code's complexity",
           "the historical context", "the unit conversion", "the legal caveat", "the proof's last step",
           "the cheaper option"]
DOMAINS = ["chat", "code", "math", "safety", "reasoning"]
MODELS = ["Qwen3-8B", "Llama-3.1-8B"]


def vocabulary(size: int, seed: int = 0) -> list[str]:
    """``size`` distinct item texts (at most len(SUBJECTS) * len(VERBS) * len(OBJECTS) = 480)."""
    rng = random.Random(seed)
    texts = [f"{s} {v} {o}." for s in SUBJECTS for v in VERBS for o in OBJECTS]
    rng.shuffle(texts)
    return texts[:size]


def records(n: int, vocab: int = 120, seed: int = 0, items: int = 6) -> list[bytes]:
    """``n`` JSONL lines (bytes, newline included)."""
    return list(iter_records(n, vocab, seed, items))


def iter_records(n: int, vocab: int = 120, seed: int = 0, items: int = 6):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    words = vocabulary(vocab, seed)
    for k in range(n):
        human = rng.sample(words, items)
        rec: dict[str, object] = {"id": f"g{k}", "domain": DOMAINS[k % len(DOMAINS)], "human-checklist": human,
                                  "label": rng.choice([1, 2, "Response 1", "B", "tie", None, "maybe"])}
        for m, model in enumerate(MODELS):
            if k % 97 == 13 and m == 1:
                continue  # this model has no key for this sample: not evaluated for it
            if k % 89 == 7 and m == 0:
                rec[f"{model}-checklist"] = []  # an empty list: no rationale given
            else:
                overlap = rng.randint(0, items)
                rec[f"{model}-checklist"] = rng.sample(human, overlap) + rng.sample(words, items - overlap)
            rec[f"{model}-label"] = rng.choice([1, 2, "A", "Response 2"])
        yield orjson.dumps(rec) + b"\n"


def write_corpus(path: Path, n: int, vocab: int = 120, seed: int = 0) -> Path:
    with path.open("wb") as f:
        for line in iter_records(n, vocab, seed):
            f.write(line)
    return path
