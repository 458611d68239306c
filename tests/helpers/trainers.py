"""Samples shared by the RL trainer tests (verl, OpenRLHF, TRL): one human ground truth and policy answers whose
rewards are known, so each trainer's own calling code must give the numbers a direct call gives."""

from __future__ import annotations

import json
from typing import Any

HUMAN = [
    "Response 1 preserves the original order using a seen set.",
    "Response 2 uses set(), which loses the original order the user asked for.",
    "Response 1 explains the O(n) time complexity.",
]
UNRELATED = ["The weather in Paris is mild in spring.", "Bananas are rich in potassium."]
GROUND_TRUTH: dict[str, Any] = {"checklist": HUMAN, "label": 1}
BAD_GROUND_TRUTH: dict[str, Any] = {"label": 1}
"""No human checklist: a dataset bug every trainer must show as an error."""

PROMPT = ("Which response removes duplicates from a list while keeping its order? Answer in this format:\n"
          "<checklist>\n1. a reason\n</checklist>\n<label>Response 1 or Response 2</label>")
"""The user turn; its own format example is a <checklist> block, so a parser given the whole text sees two."""


def tagged(items: list[str], label: str) -> str:
    lines = "\n".join(f"{k}. {item}" for k, item in enumerate(items, 1))
    return f"<think>draft</think>\n<checklist>\n{lines}\n</checklist>\n<label>{label}</label>"


def as_json(items: list[str], label: Any) -> str:
    return json.dumps({"checklist": items, "label": label})


ANSWERS: dict[str, str] = {
    "perfect": tagged(HUMAN, "Response 1"),
    "wrong_reasons": tagged(UNRELATED, "Response 1"),
    "wrong_label": tagged(HUMAN, "Response 2"),
    "unparseable": "Response 1 is better.",
}
"""Policy outputs and their rewards under the default rules (product): 1, 0, 0, 0 (AP 1, 0, 1, 0)."""
EXPECTED = {"perfect": (1.0, 1.0), "wrong_reasons": (0.0, 0.0), "wrong_label": (0.0, 1.0), "unparseable": (0.0, 0.0)}
"""(reward, AP) per answer."""
