"""The reference rule in front of a judge (judges/canonical.py): what the judge sees, what is cached and written,
the fingerprint on and off, and its effect on examples/ ex-10."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from rationalerm import load_config, run
from rationalerm.judges import make_judge
from rationalerm.judges.base import ListResult, ListSink, ListTask, Progress
from rationalerm.judges.cache import JudgeCache
from rationalerm.judges.canonical import CanonicalLists, CanonicalPairs, canonical_judge
from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig
from rationalerm.judges.stage import judge_missing
from tests.helpers.judges import ScriptedJudge
from tests.helpers.paths import ROOT

EXAMPLES = ROOT / "examples" / "rationales.jsonl"
DEFAULT = ROOT / "configs" / "default.yaml"


class ScriptedLists:
    """A listwise judge that records the tasks it is given."""

    kind = "listwise"

    def __init__(self) -> None:
        self.tasks: list[ListTask] = []

    def fingerprint(self) -> dict[str, Any]:
        return {"judge": "scripted-lists"}

    def judge_lists(self, tasks: Sequence[ListTask], progress: Progress | None = None,
                    on_result: ListSink | None = None) -> list[ListResult]:
        self.tasks.extend(tasks)
        return [ListResult(None, False) for _ in tasks]

    def close(self) -> None:
        pass


def test_the_judge_sees_canonical_pairs_and_the_cache_keeps_the_originals(tmp_path: Path) -> None:
    inner = ScriptedJudge()  # scores identical texts 1
    judge = CanonicalPairs(inner)
    pair = ("Response 1 is right.", "Response A is right.")
    cache = JudgeCache(tmp_path / "c.sqlite", judge.fingerprint())
    done = judge_missing(judge, cache, [pair, ("the first response", "Output (a)")], chunk_size=8)
    assert done.judged == 2
    assert inner.prepared == [["Response 1 is right.", "Response 1"]]  # distinct canonical texts, once
    assert inner.asked == [("Response 1 is right.", "Response 1 is right."), ("Response 1", "Response 1")]
    assert cache.get_pairs([pair])[pair].score == 1.0  # keyed by the texts as written
    cache.close()
    judge.forget()  # the scripted judge keeps no memo: nothing to drop, no error


def test_a_listwise_judge_sees_canonical_items_and_the_context_as_it_is() -> None:
    inner = ScriptedLists()
    task = ListTask(("Response 1 is kind.",), ("Assistant A is kind.", "the second response is rude"),
                    "Response A: hello. Response B: go away.")
    CanonicalLists(inner).judge_lists([task])
    assert inner.tasks == [ListTask(("Response 1 is kind.",), ("Response 1 is kind.", "Response 2 is rude"),
                                    task.context)]


def test_the_fingerprint_records_the_rule_when_on_and_is_the_old_one_when_off() -> None:
    bare = EmbeddingJudge(EmbeddingJudgeConfig()).fingerprint()
    off = make_judge(EmbeddingJudgeConfig(canonical_references=False))
    assert isinstance(off, EmbeddingJudge) and off.fingerprint() == bare
    on = make_judge(EmbeddingJudgeConfig())  # on by default
    assert isinstance(on, CanonicalPairs) and on.fingerprint() == {**bare, "canonical_references": 1}
    assert isinstance(canonical_judge(ScriptedLists()), CanonicalLists)
    with pytest.raises(TypeError):
        canonical_judge(object())  # type: ignore[arg-type]  # deliberately not a judge


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """examples/ run by the embedded default with the rule on (the default) and off."""
    base = tmp_path_factory.mktemp("examples")
    run(EXAMPLES, load_config(DEFAULT), base / "on")
    run(EXAMPLES, load_config(DEFAULT, {"judge.canonical_references": False}), base / "off")
    return {"on": base / "on", "off": base / "off"}


def _row(out: Path, sid: str, model: str) -> dict[str, Any]:
    rows = [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]
    return next(r for r in rows if r["id"] == sid and r["model"] == model)


def _cell(row: dict[str, Any], human: str, item: str) -> float:
    i = next(i for i, h in enumerate(row["human"]) if h.startswith(human))
    j = next(j for j, s in enumerate(row["items"]) if s.startswith(item))
    return float(row["matrix"][i][j])


def test_examples_a_pair_apart_only_by_its_references_is_matched_with_the_rule(examples: dict[str, Path]) -> None:
    """ex-03, Qwen3-8B: "Response 2 shows each step of the product rule." vs "Response B walks through the
    computation step by step" is cosine 0.48 as written (score 0 at the 0.5 threshold), 0.57 with the rule."""
    on, off = _row(examples["on"], "ex-03", "Qwen3-8B"), _row(examples["off"], "ex-03", "Qwen3-8B")
    pair = ("Response 2 shows each step", "Response B walks through")
    assert _cell(off, *pair) == 0.0 and _cell(on, *pair) > 0.0
    assert on["items"] == off["items"] and any(s.startswith("Response B") for s in on["items"])  # written as input


def test_examples_ex10_stays_unmatched_by_the_embedding_with_or_without_the_rule(examples: dict[str, Path]) -> None:
    """Issue 22 expected the rule to match ex-10's R1 "Response 1 correctly concludes yes by transitivity ..."
    with S1 "Response A correctly applies transitivity ...". With the embedded default it does not: the cosine
    is 0.368 as written and 0.352 with the rule, below the 0.5 threshold either way, so the reference was not
    what kept them apart (README "Response references")."""
    for run_dir in examples.values():
        row = _row(run_dir, "ex-10", "Qwen3-8B")
        assert _cell(row, "Response 1 correctly concludes", "Response A correctly applies") == 0.0
        assert row["recall"] == 0.0


def test_examples_rc_and_deceptive_counts_before_and_after(examples: dict[str, Path]) -> None:
    """The figures of README "Response references" (RC to 4 places, deceptive cases of the right labels)."""
    got = {}
    for name, run_dir in examples.items():
        models = orjson.loads((run_dir / "metrics.json").read_bytes())["models"]
        got[name] = {m: (round(v["recall"], 4), v["oa"]["deceptive"]["count"], v["oa"]["deceptive"]["correct_with_rc"])
                     for m, v in models.items()}
    assert got == {"off": {"Qwen3-8B": (0.2568, 6, 14), "Llama-3.1-8B": (0.1354, 9, 11)},
                   "on": {"Qwen3-8B": (0.2816, 5, 14), "Llama-3.1-8B": (0.1401, 9, 11)}}
