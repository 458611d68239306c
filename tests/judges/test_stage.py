"""The one cache-then-judge loop (``judges.stage.judge_missing``) that a run's judge stage and the RL reward share:
the cache first, the judge for what is missing in chunks, each good answer cached (and handed on) once as it
arrives, failures never cached."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from rationalerm.judges.base import Pair, PairScore, PairSink, Progress
from rationalerm.judges.cache import JudgeCache
from rationalerm.judges.stage import judge_missing
from tests.helpers.judges import ScriptedJudge

PAIRS: list[Pair] = [(f"h{i}", f"h{i}" if i % 2 else f"s{i}") for i in range(7)]


def test_only_missing_pairs_reach_the_judge_in_chunks_and_failures_are_never_cached(tmp_path: Path) -> None:
    judge = ScriptedJudge(fail={PAIRS[3]})
    cache = JudgeCache(tmp_path / "c.sqlite", judge.fingerprint())
    cache.put_pairs(PAIRS[:2], [PairScore(0.0), PairScore(1.0)])
    done = judge_missing(judge, cache, PAIRS, chunk_size=2)
    assert judge.calls == [PAIRS[2:4], PAIRS[4:6], PAIRS[6:]]
    assert judge.prepared == [list(dict.fromkeys(t for p in PAIRS for t in p))]  # the whole text set, once
    assert (done.judged, done.cached, set(done.failures)) == (5, 2, {PAIRS[3]})
    assert done.failed() == Counter({"server error": 1})
    assert cache.missing_pairs(PAIRS) == [PAIRS[3]]
    assert cache.get_pairs([PAIRS[5]])[PAIRS[5]] == PairScore(1.0, {"same": True})
    judge.fail.clear()
    again = judge_missing(judge, cache, PAIRS, chunk_size=2)
    assert (again.judged, again.cached, again.failures) == (1, 6, {}) and judge.calls[-1] == [PAIRS[3]]
    cache.close()


def test_nothing_missing_asks_the_judge_nothing(tmp_path: Path) -> None:
    judge = ScriptedJudge()
    cache = JudgeCache(tmp_path / "c.sqlite", judge.fingerprint())
    cache.put_pairs(PAIRS, [PairScore(0.5)] * len(PAIRS))
    done = judge_missing(judge, cache, PAIRS, chunk_size=3)
    assert (done.judged, done.cached) == (0, 7) and judge.calls == [] and judge.prepared == []
    cache.close()


@pytest.mark.parametrize("stream", [True, False])
def test_each_answer_is_handed_on_once_with_or_without_a_cache(tmp_path: Path, stream: bool) -> None:
    """A streaming judge gives each answer to the loop twice (as it arrives, then in its return value); a
    non-streaming one only returns them: either way ``on_score`` and the progress see each pair once."""
    seen: list[tuple[Pair, PairScore]] = []
    advanced: list[int] = []

    @contextmanager
    def progress(_label: str, total: int) -> Iterator[Progress]:
        assert total == len(PAIRS)
        yield advanced.append

    judge = ScriptedJudge(fail={PAIRS[0]}, stream=stream)
    done = judge_missing(judge, None, PAIRS, chunk_size=4, progress=progress,
                         on_score=lambda p, s: seen.append((p, s)))
    assert [p for p, _ in seen] == PAIRS and sum(advanced) == len(PAIRS)
    assert seen[0][1].failed == "server error" and seen[1][1].score == 1.0
    assert (done.judged, done.cached, set(done.failures)) == (7, 0, {PAIRS[0]})


def test_a_judge_that_dies_midway_keeps_the_chunks_it_answered(tmp_path: Path) -> None:
    class Dies(ScriptedJudge):
        def score_pairs(self, pairs: Sequence[Pair], progress: Progress | None = None,
                        on_score: PairSink | None = None) -> list[PairScore]:
            if len(self.calls) == 2:
                raise KeyboardInterrupt
            return super().score_pairs(pairs, progress, on_score)

    judge = Dies()
    cache = JudgeCache(tmp_path / "c.sqlite", judge.fingerprint())
    with pytest.raises(KeyboardInterrupt):
        judge_missing(judge, cache, PAIRS, chunk_size=3)
    assert cache.missing_pairs(PAIRS) == PAIRS[6:]
    cache.close()
