"""The Inspect AI scorer (rationalerm.integrations.inspect_ai) in a real ``inspect_ai.eval`` on Inspect's built-in
``mockllm`` model: its scores are the reward's numbers, the metrics are per key, an unreadable output scores 0, and
a judge that cannot score (the real openai backend against the fault server on 127.0.0.1) leaves samples
unscored, never a number."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import Task, eval  # noqa: E402
from inspect_ai.dataset import Sample  # noqa: E402
from inspect_ai.log import EvalLog  # noqa: E402
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402
from inspect_ai.solver import generate  # noqa: E402

from rationalerm.errors import ConfigError  # noqa: E402
from rationalerm.integrations.inspect_ai import rationale_consistency  # noqa: E402
from rationalerm.reward.entry import get_scorer  # noqa: E402
from rationalerm.reward.reference import reference  # noqa: E402
from tests.helpers.fault_server import FaultServer  # noqa: E402
from tests.helpers.faults import write_config  # noqa: E402

HUMAN = ["Response 1 preserves the original order using a seen set.",
         "Response 2 uses set(), which loses the original order the user asked for.",
         "Response 1 explains the O(n) time complexity."]
UNRELATED = ["The weather in Paris is mild in spring.", "Bananas are rich in potassium."]


def answer(items: list[str], label: str) -> str:
    return "<checklist>\n" + "\n".join(f"{k}. {s}" for k, s in enumerate(items, 1)) + \
        f"\n</checklist>\n<label>{label}</label>"


ANSWERS = {  # the prompt -> what the mock model answers
    "all reasons": answer(HUMAN, "Response 1"),
    "half right": answer([HUMAN[1], UNRELATED[0], HUMAN[0]], "Response 2"),
    "no reasons": answer(UNRELATED, "Response 1"),
    "no format": "Response 1 is better because it keeps the order.",
    "empty": "<checklist>\n</checklist>\n<label>Response 1</label>",
}
TARGET = json.dumps({"checklist": HUMAN, "label": 1})


def run_eval(tmp_path: Path, prompts: list[str], config: str | None = None) -> EvalLog:
    def respond(messages: list[Any], *_: Any) -> ModelOutput:
        out = ModelOutput.from_content(model="mockllm/model", content=ANSWERS[messages[-1].text])
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # else a tokenizer is downloaded
        return out

    samples = [Sample(input=p, target=TARGET, id=p) for p in prompts]
    task = Task(dataset=samples, solver=generate(), scorer=rationale_consistency(config))
    [log] = eval(task, model=get_model("mockllm/model", custom_outputs=respond), log_dir=str(tmp_path / "logs"),
                 display="none")
    assert log.status == "success", log.error
    return log


def sample_scores(log: EvalLog) -> dict[str, Any]:
    assert log.samples is not None
    return {str(s.id): s.scores["rationale_consistency"] for s in log.samples if s.scores}


def metrics(log: EvalLog) -> dict[str, dict[str, float]]:
    assert log.results is not None
    return {s.name: {k: m.value for k, m in s.metrics.items()} for s in log.results.scores}


def test_scores_are_the_rewards_numbers_with_metrics_per_key(tmp_path: Path) -> None:
    log = run_eval(tmp_path, list(ANSWERS))
    got = sample_scores(log)
    results = get_scorer(None).score(list(ANSWERS.values()), [reference(TARGET)] * len(ANSWERS))
    for prompt, r in zip(ANSWERS, results):
        assert got[prompt].value == pytest.approx({"rc": r.recall, "precision": r.precision, "ap": r.ap}, abs=1e-6)
    full, half, none, bad, empty = (got[p] for p in ANSWERS)
    assert full.value == pytest.approx({"rc": 1.0, "precision": 1.0, "ap": 1.0}, abs=1e-5)
    assert full.metadata["correct"] and full.answer == "1" and len(full.metadata["pairs"]) == 3
    assert {(p["human"], p["model"]) for p in half.metadata["pairs"]} == {(HUMAN[1], HUMAN[1]),
                                                                          (HUMAN[0], HUMAN[0])}
    assert half.value["rc"] == pytest.approx(2 / 3, abs=1e-5) and not half.metadata["correct"]
    assert 0 < half.value["ap"] < half.value["rc"]  # a miss in second place costs AP, not RC
    assert none.value == {"rc": 0.0, "precision": 0.0, "ap": 0.0} and none.metadata["pairs"] == []
    assert bad.value == {"rc": 0.0, "precision": 0.0, "ap": 0.0} and bad.reason == "invalid_response_format"
    assert bad.explanation.startswith("no <checklist> block")
    assert empty.value == {"rc": 0.0, "precision": 0.0, "ap": 0.0} and empty.reason == "invalid_response_format"

    per_key = metrics(log)
    assert set(per_key) == {"rc", "precision", "ap"}
    for key in per_key:
        values = [got[p].value[key] for p in ANSWERS]
        assert per_key[key]["mean"] == pytest.approx(sum(values) / len(values), abs=1e-6)
        assert per_key[key]["stderr"] > 0


def test_a_judge_that_cannot_score_leaves_samples_unscored(tmp_path: Path) -> None:
    server = FaultServer(permanent=1.0, permanent_kind="nolabels")  # no answer of this server is ever a score
    try:
        config = write_config(tmp_path / "reward.yaml", server.base_url, timeout_s=5.0, max_retries=0)
        log = run_eval(tmp_path, ["all reasons", "no reasons", "no format"], str(config))
        got = sample_scores(log)
        for prompt in ("all reasons", "no reasons"):
            assert math.isnan(got[prompt].value) and got[prompt].reason == "grader_failed"
            assert "judge failed (no label logprobs)" in got[prompt].explanation
        assert got["no format"].reason == "invalid_response_format"  # the model's fault: judged without the judge
        assert log.results is not None
        assert {s.name: (s.scored_samples, s.unscored_samples) for s in log.results.scores} == \
            {k: (1, 2) for k in ("rc", "precision", "ap")}

        server.permanent = 0.0  # the server recovers: the failed pairs were not kept, they are asked again
        again = sample_scores(run_eval(tmp_path, ["all reasons", "no reasons"], str(config)))
        assert all(not math.isnan(s.value["rc"]) and s.reason is None for s in again.values())
    finally:
        server.close()


def test_without_inspect_ai_the_import_is_one_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "inspect_ai" or m.startswith("inspect_ai.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "rationalerm.integrations.inspect_ai")
    with pytest.raises(ConfigError, match=r"Inspect AI scorer .* pip install -e '\.\[inspect\]'"):
        importlib.import_module("rationalerm.integrations.inspect_ai")
