"""The one cache-then-judge loop (``judges.stage.judge_missing``) that a run's judge stage and the RL reward share:
the cache first, the judge for what is missing in chunks, each good answer cached (and handed on) once as it
arrives, failures never cached."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationalerm.inputs.grids import Grid
from rationalerm.inputs.load import Sample
from rationalerm.judges.base import Pair, PairScore, PairSink, Progress
from rationalerm.judges.cache import JudgeCache
from rationalerm.judges.stage import JudgedPairs, judge_missing, read_matrices
from tests.helpers.judges import ScriptedJudge
from tests.helpers.reference_run import cellwise_matrices, cellwise_scores

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


WORDS = ["", "a", "b", "c", "d", "é"]  # "" is a blank item: never judged, its cells score 0 with no detail


@st.composite
def shards(draw: st.DrawFn) -> tuple[list[Grid], list[np.ndarray] | None, dict[Pair, PairScore]]:
    """A few samples x models with repeated and blank items, a prefilter mask or none, and a score per pair: a
    number with a detail, a number without one, or a failure."""
    texts = st.lists(st.sampled_from(WORDS), max_size=4)
    units = []
    for k in range(draw(st.integers(0, 4))):
        sample = Sample(f"s{k}", draw(texts), {m: draw(texts) for m in ("A", "B")})
        units += [Grid(sample, m) for m in sample.models if draw(st.booleans())]
    masks = None
    if draw(st.booleans()):
        masks = [np.array(draw(st.lists(st.booleans(), min_size=len(u.human) * len(u.items),
                                        max_size=len(u.human) * len(u.items))), dtype=bool)
                 .reshape(len(u.human), len(u.items)) for u in units]
    kinds = st.sampled_from(["scored", "plain", "failed"])
    scores = {}
    for h in WORDS[1:]:
        for s in WORDS[1:]:
            kind, value = draw(kinds), draw(st.floats(0.0, 1.0))
            scores[(h, s)] = (PairScore(value, {"cosine": value}) if kind == "scored" else PairScore(value)
                              if kind == "plain" else PairScore.failure("server error", f"{h}{s}"))
    return units, masks, scores


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shard=shards())
def test_the_array_read_back_equals_the_cell_by_cell_one(
        tmp_path: Path, shard: tuple[list[Grid], list[np.ndarray] | None, dict[Pair, PairScore]]) -> None:
    """``read_matrices`` (text ids, one index array per shard) gives the matrices and details that filling one cell
    at a time gives, NaN for a failed pair included; good answers come from a real cache, failures from the run."""
    units, masks, scores = shard
    cache = JudgeCache(tmp_path / f"c{uuid.uuid4().hex}.sqlite", {"judge": "scripted"})
    try:
        good = [(p, ps) for p, ps in scores.items() if not ps.failed]
        cache.put_pairs([p for p, _ in good], [ps for _, ps in good])
        judged = JudgedPairs(0, len(good), {p: ps for p, ps in scores.items() if ps.failed})
        matrices, details = read_matrices(cache, units, masks, judged, memo={})
        want_matrices, want_details = cellwise_matrices(units, masks, cellwise_scores(cache, units, masks, judged))
    finally:
        cache.close()
    assert len(matrices) == len(want_matrices) == len(units)
    for got, want in zip(matrices, want_matrices):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)  # NaN where NaN
    assert details == want_details
