"""The run's steps (``rationalerm.pipeline``): whichever step fails, the judge and its cache are closed again; the
stage clock counts what it times. (Outputs, resuming and caches: tests/runs/.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import rationalerm.pipeline as pipeline
from rationalerm.config import load_config
from rationalerm.errors import ConfigError, OutputError
from rationalerm.judges import PairScore
from rationalerm.judges.cache import JudgeCache
from tests.helpers.paths import ROOT

EXAMPLE = ROOT / "examples" / "rationales.jsonl"


class FakeJudge:
    """Scores every pair 0.5; counts how often it is closed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.closed = 0

    def fingerprint(self) -> dict[str, Any]:
        return {"judge": "fake", "kind": self.kind}

    def prepare(self, _texts: Sequence[str], _progress: Any = None) -> None:
        pass

    def score_pairs(self, pairs: Sequence[tuple[str, str]], on_score: Any = None) -> list[PairScore]:
        return [PairScore(0.5, None) for _ in pairs]

    def close(self) -> None:
        self.closed += 1


class CountedCache(JudgeCache):
    closed = 0

    def close(self) -> None:
        CountedCache.closed += 1
        super().close()


@pytest.fixture
def judge(monkeypatch: pytest.MonkeyPatch) -> FakeJudge:
    fake = FakeJudge("pairwise")
    monkeypatch.setattr(pipeline, "make_judge", lambda _cfg: fake)
    monkeypatch.setattr(pipeline, "JudgeCache", CountedCache)
    CountedCache.closed = 0
    return fake


def test_a_complete_run_closes_the_judge_and_the_cache_once(judge: FakeJudge, tmp_path: Path) -> None:
    outcome = pipeline.run(EXAMPLE, load_config(), tmp_path / "run")
    assert outcome.judged > 0 and not outcome.failed
    assert (judge.closed, CountedCache.closed) == (1, 1)


def test_a_listwise_judge_behind_the_prefilter_is_closed_before_the_error(judge: FakeJudge, tmp_path: Path) -> None:
    judge.kind = "listwise"
    with pytest.raises(ConfigError, match="pairwise judges only"):
        pipeline.run(EXAMPLE, load_config(None, {"prefilter.enabled": True}), tmp_path / "run")
    assert (judge.closed, CountedCache.closed) == (1, 0)  # the cache was never opened


def test_a_cache_path_that_cannot_be_a_cache_fails_before_the_judge_is_built(
    judge: FakeJudge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[object] = []
    monkeypatch.setattr(pipeline, "make_judge", lambda _cfg: built.append(_cfg) or judge)
    (tmp_path / "file.txt").write_text("not a directory")
    with pytest.raises(OSError):
        pipeline.run(EXAMPLE, load_config(None, {"cache": str(tmp_path / "file.txt" / "c.sqlite")}), tmp_path / "run")
    assert built == [] and judge.closed == 0


def test_a_cache_that_fails_to_open_after_the_judge_is_built_closes_the_judge(
    judge: FakeJudge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: CountedCache, *_args: object) -> None:
        raise OutputError("the disk went away")

    monkeypatch.setattr(CountedCache, "__init__", refuse)
    with pytest.raises(OutputError, match="went away"):
        pipeline.run(EXAMPLE, load_config(), tmp_path / "run")
    assert judge.closed == 1


def test_a_failing_judge_stage_closes_the_judge_and_the_cache(
    judge: FakeJudge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        def judge_pairs(self, *_args: object) -> None:
            raise RuntimeError("the cluster went away")

    monkeypatch.setattr(pipeline, "make_runner", lambda _cfg: Broken())
    with pytest.raises(RuntimeError, match="went away"):
        pipeline.run(EXAMPLE, load_config(), tmp_path / "run")
    assert (judge.closed, CountedCache.closed) == (1, 1)


def test_the_stage_clock_times_each_item_under_its_stage() -> None:
    clock = pipeline.StageClock()
    assert list(clock.timed("load", iter([1, 2, 3]))) == [1, 2, 3]
    assert list(clock.timed("load", iter([]))) == []
    with clock("score"):
        pass
    totals = clock.totals()
    assert set(totals) == {"load", "score", "total"}
    assert totals["total"] >= totals["load"] + totals["score"] >= 0
