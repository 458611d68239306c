"""Reward throughput (rationalerm.reward) for one RL batch: N policy outputs x K items against H human items.

    python -m benchmarks.reward                                 # 256 x 5 vs 5, the embedded embedding judge, CPU
    python -m benchmarks.reward --judge-config reward-ce.yaml   # any judge, e.g.
                                                                # judge: {type: cross-encoder, model: DIR}
    python -m benchmarks.reward --group 8                       # 32 prompts x 8 rollouts (GRPO-like)
    python -m benchmarks.reward --coalescing-only               # per-sample concurrent calls vs one batch only

Each round uses fresh texts (every pair is new to the judge: the cost of a new batch of rollouts) through
``compute_score_batch``; then the same batch once more, all from the pair memo (the cost of re-scoring). The judge
is loaded and warmed before timing. Prints outputs/s and judged pairs/s for both.

Then coalescing, side by side: ``--concurrency`` outputs (32) scored by one ``compute_score_batch`` call, and
per sample as the trainers call (verl's ``compute_score`` and OpenRLHF's ``reward_func``, one call per output,
all at once from a pool of threads), each with fresh texts; once behind a judge that sleeps ``--judge-delay``
seconds per call (0.25: a judge server's latency) and once with the judge itself. Prints the time, outputs/s,
judge passes and the ratio per-sample / batch (goal: within 1.5x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SUBJECTS = ["Response 1", "Response 2", "Response A", "Response B"]
VERBS = ["misstates", "correctly derives", "omits", "explains", "contradicts", "cites", "ignores", "tests"]
OBJECTS = ["the boundary case n = 0", "the product rule", "the user's word limit", "the O(n) bound",
           "the safety caveat", "the unit conversion", "the edge case of an empty list", "the final answer",
           "the requested JSON format", "the citation for the claim", "the time zone offset", "the recursion base case"]


def sentence(rng: np.random.Generator, tag: int) -> str:
    return (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
            f"in step {tag} and {rng.choice(VERBS)} {rng.choice(OBJECTS)}.")


def make_batch(rng: np.random.Generator, n: int, k: int, h: int, round_: int,
               group: int = 1) -> tuple[list[str], list[dict]]:
    """``n`` outputs; each run of ``group`` consecutive outputs answers one prompt (shares its human items)."""
    outputs, truths = [], []
    human: list[str] = []
    for i in range(n):
        if i % group == 0:
            human = [sentence(rng, 1000 * round_ + 10 * i + j) for j in range(h)]
        items = [sentence(rng, 1000 * round_ + 10 * i + j) for j in range(k)]
        label = str(rng.choice(["Response 1", "Response 2"]))
        outputs.append("<checklist>\n" + "\n".join(f"{j + 1}. {s}" for j, s in enumerate(items))
                       + f"\n</checklist>\n<label>{label}</label>")
        truths.append({"checklist": human, "label": int(rng.integers(1, 3))})
    return outputs, truths


class SleepingJudge:
    """A judge as a judge server looks to its caller: each call waits ``delay`` s whatever its size, and the
    scores cost nothing here (word overlap), so only the waiting counts."""

    kind = "pairwise"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def fingerprint(self) -> dict[str, Any]:
        return {"judge": "sleeping", "delay": self.delay}

    def prepare(self, texts: Sequence[str], progress: Any = None) -> None:
        pass

    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress: Any = None, on_score: Any = None) -> list:
        from rationalerm.judges.base import PairScore

        time.sleep(self.delay)
        words = [(set(h.lower().split()), set(m.lower().split())) for h, m in pairs]
        return [PairScore(len(a & b) / max(1, len(a | b))) for a, b in words]

    def close(self) -> None:
        pass


def _ways(config: str | None, pool: ThreadPoolExecutor) -> dict[str, Callable[[list[str], list[dict]], object]]:
    """The entry points, called as the trainers call them: one batch call, or one call per output at once."""
    import asyncio

    from rationalerm.reward import compute_score, compute_score_batch, reward_func
    from rationalerm.reward_entry import trl_reward, trl_reward_async

    def batch(outs: list[str], gts: list[dict]) -> object:
        return compute_score_batch(["bench"] * len(outs), outs, gts, config=config)

    def verl(outs: list[str], gts: list[dict]) -> object:
        return list(pool.map(lambda og: compute_score("bench", og[0], og[1], config=config), zip(outs, gts)))

    def openrlhf(outs: list[str], gts: list[dict]) -> object:
        return list(pool.map(lambda og: reward_func(["Q: " + og[0]], ["Q: "], [og[1]], config=config),
                             zip(outs, gts)))

    def trl(outs: list[str], gts: list[dict]) -> object:  # GRPOTrainer: one call with the batch's completions
        return trl_reward(["Q: "] * len(outs), outs, ground_truth=gts, reward_config=config)

    def trl_async(outs: list[str], gts: list[dict]) -> object:  # async reward functions, one task per completion
        async def each() -> list[object]:
            return list(await asyncio.gather(*(trl_reward_async(["Q: "], [o], ground_truth=[g], reward_config=config)
                                               for o, g in zip(outs, gts))))
        return asyncio.run(each())

    return {"one batch call (compute_score_batch)": batch, "per sample, threads (verl compute_score)": verl,
            "per sample, threads (OpenRLHF reward_func)": openrlhf, "one call (TRL trl_reward)": trl,
            "per sample, tasks (TRL trl_reward_async)": trl_async}


def coalescing(args: argparse.Namespace, rng: np.random.Generator) -> None:
    """Per-sample concurrent calls against one batch call, behind a slow judge and the judge itself."""
    from rationalerm.reward import get_scorer

    scorer = get_scorer(args.judge_config)
    base = scorer.judge
    n = args.concurrency
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(time.sleep, [0.01] * n))  # the pool's threads exist before timing, as a trainer's do
        ways = _ways(args.judge_config, pool)
        print(f"coalescing: {n} outputs x {args.items} items vs {args.human} human items, "
              f"{n} threads, window {scorer.settings.coalesce_ms:g} ms")
        for judge_name, judge in ((f"judge sleeping {args.judge_delay:g} s per call", SleepingJudge(args.judge_delay)),
                                  (f"judge {scorer.config.judge.type}", base)):
            scorer.judge = judge
            times: dict[str, list[float]] = {w: [] for w in ways}
            passes: dict[str, list[int]] = {w: [] for w in ways}
            for r in range(args.rounds):
                for k, (w, call) in enumerate(ways.items()):
                    outs, gts = make_batch(rng, n, args.items, args.human, 100 + len(ways) * r + k)  # new texts
                    before = scorer.batcher.batches
                    t0 = time.perf_counter()
                    call(outs, gts)
                    times[w].append(time.perf_counter() - t0)
                    passes[w].append(scorer.batcher.batches - before)
            batch_med = statistics.median(next(iter(times.values())))
            print(f"  {judge_name}")
            for w, ts in times.items():
                med = statistics.median(ts)
                print(f"    {w:42s} median {med * 1000:8.1f} ms  {n / med:8.1f} outputs/s  "
                      f"ratio {med / batch_med:5.2f}x"
                      f"   (rounds: {', '.join(f'{t * 1000:.0f}' for t in ts)} ms; judge passes: "
                      f"{', '.join(map(str, passes[w]))})")
    scorer.judge = base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge-config", default=None, help="reward YAML (judge:, scoring:, reward:); default: embedding")
    ap.add_argument("--outputs", type=int, default=256)
    ap.add_argument("--items", type=int, default=5, help="checklist items per policy output")
    ap.add_argument("--human", type=int, default=5, help="human checklist items per sample")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--group", type=int, default=1,
                    help="rollouts per prompt sharing its human items (1: every output its own prompt, the worst case)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--concurrency", type=int, default=32, help="coalescing: outputs scored per sample at once")
    ap.add_argument("--judge-delay", type=float, default=0.25, help="coalescing: the slow judge's seconds per call")
    ap.add_argument("--coalescing-only", action="store_true", help="skip the throughput part")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from rationalerm.reward import compute_score_batch, get_scorer

    scorer = get_scorer(args.judge_config)
    rng = np.random.default_rng(0)
    warm_out, warm_gt = make_batch(rng, 8, args.items, args.human, 999)
    compute_score_batch(["bench"] * 8, warm_out, warm_gt, config=args.judge_config)  # load and warm the judge
    if args.coalescing_only:
        coalescing(args, rng)
        return

    pairs = args.outputs * args.items * args.human
    cold, hot = [], []
    for r in range(args.rounds):
        outs, gts = make_batch(rng, args.outputs, args.items, args.human, r, args.group)
        before = scorer.judged
        t0 = time.perf_counter()
        res = compute_score_batch(["bench"] * len(outs), outs, gts, config=args.judge_config)
        cold.append(time.perf_counter() - t0)
        judged = scorer.judged - before
        t0 = time.perf_counter()
        compute_score_batch(["bench"] * len(outs), outs, gts, config=args.judge_config)
        hot.append(time.perf_counter() - t0)
        assert all(x["parsed"] == 1.0 for x in res)
    judge = scorer.config.judge
    name = judge.type + (f" ({judge.model})" if getattr(judge, "model", None) else "")
    print(f"reward throughput: {args.outputs} outputs x {args.items} items vs {args.human} human items "
          f"({pairs} pairs, {judged} judged per new batch, {args.group} rollouts per prompt), judge: {name}")
    for label, times in (("new batch (judge)", cold), ("same batch (memo)", hot)):
        med = statistics.median(times)
        print(f"  {label:18s} median {med * 1000:8.1f} ms   {args.outputs / med:9.1f} outputs/s   "
              f"{pairs / med:10.0f} pairs/s   (rounds: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)")
    coalescing(args, rng)


if __name__ == "__main__":
    main()
