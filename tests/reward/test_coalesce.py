"""Concurrent reward calls coalesce (rationalerm.reward.coalesce): real threads and tasks, the real embedding judge
behind a judge that sleeps per call (a judge server's latency). Per-sample calls made together reach the judge as
one batch, give what one batch call gives, and share the judge's exceptions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rationalerm.errors import ConfigError
from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig
from rationalerm.reward.coalesce import Coalescer
from rationalerm.reward.entry import compute_score, get_scorer
from rationalerm.reward.reference import Reference
from rationalerm.reward.scorer import RewardResult, RewardScorer, RewardSettings, load_reward_config
from tests.helpers.judges import SlowJudge

HUMAN = ["Response 1 keeps the original order.", "Response 2 loses the order with set().",
         "Response 1 explains the O(n) bound."]
POLICY = ["Response 1 preserves the order of the input.", "Response 2 uses a set and so drops the order.",
          "Response 1 states the linear time bound.", "Response 2 has a typo in a comment.",
          "Response 1 adds a docstring.", "The weather is mild in spring."]
N = 32


def output(k: int) -> str:
    """Outputs that differ from one another (their own items), so each call brings pairs of its own."""
    items = [f"{POLICY[(k + j) % len(POLICY)]} (point {k}.{j})" for j in range(1 + k % 4)]
    label = "Response 1" if k % 3 else "Response 2"
    return "<checklist>\n" + "\n".join(f"{j + 1}. {s}" for j, s in enumerate(items)) + f"\n</checklist>\n" \
        f"<label>{label}</label>"


OUTPUTS = [output(k) for k in range(N)] + ["no checklist at all"]
REFS = [Reference(tuple(HUMAN[: 1 + k % 3]), 1) for k in range(len(OUTPUTS))]


@pytest.fixture(scope="module")
def embedding() -> EmbeddingJudge:
    judge = EmbeddingJudge(EmbeddingJudgeConfig())
    judge.embed(["load the model before any timing"])
    return judge


def slow_scorer(embedding: EmbeddingJudge, delay: float = 0.25, coalesce_ms: float = 50.0,
                error: BaseException | None = None) -> tuple[RewardScorer, SlowJudge]:
    """A scorer behind ``embedding`` slowed down; its window is wide, for a loaded test machine's late threads."""
    judge = SlowJudge(embedding, delay, error)
    judge.inner.forget()  # every pair new to the judge: each test pays for its own embeddings
    settings = RewardSettings(coalesce_ms=coalesce_ms, coalesce_max_ms=5000)
    return RewardScorer(settings=settings, judge=judge), judge


def in_threads(call: Callable[[int], Any], n: int) -> list[Any]:
    """``call(k)`` for k < n, each from its own thread, released together; results (or exceptions) in order."""
    out: list[Any] = [None] * n
    gate = threading.Barrier(n)

    def run(k: int) -> None:
        gate.wait()
        try:
            out[k] = call(k)
        except BaseException as e:
            out[k] = e

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def assert_same(got: list[RewardResult], want: list[RewardResult]) -> None:
    for x, y in zip(got, want, strict=True):
        assert (x.parsed, x.correct, x.reason, x.checklist, x.label, [p[:2] for p in x.pairs]) == \
            (y.parsed, y.correct, y.reason, y.checklist, y.label, [p[:2] for p in y.pairs])
        assert (x.score, x.ap, x.precision, x.recall) == pytest.approx((y.score, y.ap, y.precision, y.recall),
                                                                       abs=1e-6)


def test_per_sample_calls_from_threads_are_judged_as_one_batch(embedding: EmbeddingJudge) -> None:
    s, judge = slow_scorer(embedding)
    got = in_threads(lambda k: s.score([OUTPUTS[k]], [REFS[k]])[0], len(OUTPUTS))
    # one judge call, not one per sample (the time it saves: benchmarks/reward.py)
    assert len(judge.calls) == 1 and (s.batcher.batches, s.batcher.requests) == (1, N)  # the last has no pairs

    one, one_judge = slow_scorer(embedding)
    want = one.score(OUTPUTS, REFS)
    assert len(one_judge.calls) == 1 and judge.calls == one_judge.calls and s.judged == one.judged
    assert_same(got, want)
    assert got[-1].reason and not got[-1].parsed and all(r.parsed for r in got[:-1])


def test_calls_arriving_while_the_judge_works_form_the_next_batch(embedding: EmbeddingJudge) -> None:
    """The judge is never called from two threads at once; the calls made meanwhile wait as one batch."""
    s, judge = slow_scorer(embedding, delay=0.6)

    def call(k: int) -> RewardResult:
        if k >= 8:
            time.sleep(0.25)  # the second wave: while the first wave's batch is with the judge
        return s.score([OUTPUTS[k]], [REFS[k]])[0]

    got = in_threads(call, 16)
    assert len(judge.calls) == 2 and judge.max_at_once == 1 and s.batcher.requests == 16
    assert_same(got, RewardScorer(judge=embedding).score(OUTPUTS[:16], REFS[:16]))


def test_a_judge_error_reaches_every_caller_as_the_same_exception(embedding: EmbeddingJudge) -> None:
    boom = RuntimeError("judge server unreachable")
    s, judge = slow_scorer(embedding, delay=0.05, error=boom)
    got = in_threads(lambda k: s.score([OUTPUTS[k]], [REFS[k]]), 12)
    assert len(judge.calls) == 1 and all(e is boom for e in got)  # never a number
    assert not s.memo and s.judged == 0
    judge.error = None  # the next calls are judged afresh
    again = in_threads(lambda k: s.score([OUTPUTS[k]], [REFS[k]])[0], 12)
    assert len(judge.calls) == 2
    assert_same(again, RewardScorer(judge=embedding).score(OUTPUTS[:12], REFS[:12]))


def test_async_calls_coalesce_without_holding_threads(embedding: EmbeddingJudge) -> None:
    s, judge = slow_scorer(embedding)

    async def main() -> list[list[RewardResult]]:
        return await asyncio.gather(*(s.score_async([o], [r]) for o, r in zip(OUTPUTS, REFS)))

    got = [r for (r,) in asyncio.run(main())]
    assert len(judge.calls) == 1 and s.batcher.batches == 1
    assert_same(got, RewardScorer(judge=embedding).score(OUTPUTS, REFS))
    before = threading.active_count()
    assert asyncio.run(main()) and s.batcher.batches == 1  # all from the memo: no batch, no wait, no thread
    assert threading.active_count() <= before


def test_the_pair_cache_works_across_coalesced_calls(embedding: EmbeddingJudge, tmp_path: Path) -> None:
    cache = str(tmp_path / "pairs.sqlite")
    s = RewardScorer(settings=RewardSettings(cache=cache, coalesce_ms=50, coalesce_max_ms=5000), judge=embedding)
    got = in_threads(lambda k: s.score([OUTPUTS[k]], [REFS[k]])[0], 16)
    judge = SlowJudge(embedding)
    fresh = RewardScorer(settings=RewardSettings(cache=cache), judge=judge)  # another worker, same cache
    assert_same(fresh.score(OUTPUTS[:16], REFS[:16]), got)
    assert fresh.judged == 0 and s.judged > 0 and not judge.calls


def test_verl_per_sample_calls_coalesce(tmp_path: Path) -> None:
    """verl calls ``compute_score`` per sample from executor threads: one judge pass serves them."""
    cfg = tmp_path / "reward.yaml"
    cfg.write_text("reward:\n  coalesce_ms: 50\n  coalesce_max_ms: 5000\n")
    gts = [{"checklist": list(r.checklist), "label": r.label} for r in REFS]
    got = in_threads(lambda k: compute_score("d", OUTPUTS[k], gts[k], config=str(cfg)), len(OUTPUTS))
    scorer = get_scorer(str(cfg))
    assert (scorer.batcher.batches, scorer.batcher.requests) == (1, N)
    want = RewardScorer(judge=scorer.judge).score(OUTPUTS, REFS)
    assert [g["score"] for g in got] == pytest.approx([w.score for w in want], abs=1e-6)


def test_the_window_is_a_reward_config_key(tmp_path: Path) -> None:
    path = tmp_path / "reward.yaml"
    path.write_text("reward:\n  coalesce_ms: 0\n")
    assert load_reward_config(path)[1].coalesce_ms == 0.0
    assert (RewardSettings().coalesce_ms, RewardSettings().coalesce_max_ms) == (20.0, 200.0)
    for bad in ("coalesce_ms: -1", "coalesce_ms: 300"):  # the second: above coalesce_max_ms
        path.write_text(f"reward:\n  {bad}\n")
        with pytest.raises(ConfigError, match="coalesce_ms"):
            load_reward_config(path)


def test_the_coalescer_fetches_the_deduplicated_union_once() -> None:
    fetched: list[list[int]] = []

    def fetch(keys: list[int]) -> dict[int, int]:
        fetched.append(keys)
        return {k: k * k for k in keys}

    c: Coalescer[int, int] = Coalescer(fetch, window=0.1, max_wait=5)
    got = in_threads(lambda k: dict(c.get([k % 5, 7])), 10)
    assert len(fetched) == 1 and sorted(fetched[0]) == [0, 1, 2, 3, 4, 7]
    assert all(g == {k: k * k for k in fetched[0]} for g in got)
    for window, max_wait in ((-0.001, None), (0.1, 0.05)):
        with pytest.raises(ValueError, match="window"):
            Coalescer(fetch, window, max_wait)


def test_a_steady_stream_of_calls_is_still_judged_every_max_wait() -> None:
    """Calls closer together than the window keep a batch open only up to ``max_wait``."""
    fetched: list[list[int]] = []
    c: Coalescer[int, int] = Coalescer(lambda keys: fetched.append(keys) or {k: k for k in keys}, 0.05, 0.3)
    t0 = time.perf_counter()
    futures = []
    for k in range(30):  # one call every 20 ms for 0.6 s: never a 50 ms gap
        futures.append(c.submit([k]))
        time.sleep(0.02)
    assert futures[0].done() and futures[0].result()[0] == 0 and time.perf_counter() - t0 >= 0.6
    assert all(f.result()[k] == k for k, f in enumerate(futures)) and len(fetched) >= 2
