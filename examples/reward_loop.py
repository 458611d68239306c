"""A minimal RL-style loop around rationalerm's hybrid reward (no trainer needed).

For each prompt of examples/rationales.jsonl a stand-in "policy" proposes a group of answers in the reward's
default format (here: the two example judges' checklists and labels, plus a flipped label and an unparseable
answer); ``compute_score`` -- the function verl calls -- scores each; the loop prints the rewards and the
group-normalised advantages a GRPO-style trainer would use. Run from the repository root, with the project's
environment (``bash scripts/demo.sh`` sets it up; no venv needs to be active):

    .venv/bin/python examples/reward_loop.py                          # embedded embedding judge, product rule
    RATIONALERM_REWARD_CONFIG=my-reward.yaml .venv/bin/python examples/reward_loop.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from rationalerm.reward import compute_score

DATA = Path(__file__).with_name("rationales.jsonl")


def as_output(items: list[str], label: object) -> str:
    """An answer in the reward's default format."""
    lines = "\n".join(f"{k}. {item}" for k, item in enumerate(items, 1))
    return f"<checklist>\n{lines}\n</checklist>\n<label>Response {label}</label>"


def rollouts(rec: dict) -> list[tuple[str, str]]:
    """The group of answers the stand-in policy samples for one prompt: (name, text)."""
    flipped = 2 if rec["Qwen3-8B-label"] == 1 else 1
    return [
        ("qwen-like", as_output(rec["Qwen3-8B-checklist"], rec["Qwen3-8B-label"])),
        ("llama-like", as_output(rec["Llama-3.1-8B-checklist"], rec["Llama-3.1-8B-label"])),
        ("good reasons, wrong label", as_output(rec["Qwen3-8B-checklist"], flipped)),
        ("no format", "Response 1 is better."),
    ]


def main() -> None:
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()][:4]
    for step, rec in enumerate(records):
        # What a verl dataset row carries: reward_model.ground_truth and extra_info.
        ground_truth = {"checklist": rec["human-checklist"], "label": rec["label"]}
        group = rollouts(rec)
        scores = [compute_score("rationalerm/example", text, ground_truth, {"id": rec["id"]}) for _, text in group]
        rewards = [s["score"] for s in scores]
        mean, sd = statistics.fmean(rewards), statistics.pstdev(rewards) or 1.0
        print(f"step {step}  prompt {rec['id']} ({rec['domain']}): {rec['context'][:60]}")
        for (name, _), s in zip(group, scores):
            note = f"  ({s['reason']})" if s["reason"] else ""
            print(f"  {name:26s} reward {s['score']:.3f}  AP {s['ap']:.3f}  correct {s['correct']:.0f}  "
                  f"advantage {(s['score'] - mean) / sd:+.2f}{note}")


if __name__ == "__main__":
    main()
