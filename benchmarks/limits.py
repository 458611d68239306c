"""How far each judge path is from the bare library and from the hardware, side by side in one process.

    python -m benchmarks.limits                               # distinct texts, one torch thread
    python -m benchmarks.limits --cross-encoder DIR --int8    # a trained cross-encoder; int8 rows too
    python -m benchmarks.limits --int8 --bf16                 # int8 and bf16 rows (bf16: CPUs with bf16 units)

Every path runs the same texts as the bare library doing the same work, alternately (A, B, A, B, ...: a noisy
shared machine slows both alike; the ratio is the median of the back-to-back pairs' ratios), with the same loaded
model and the same torch threads:

- ``embedding``: ``EmbeddingJudge.prepare`` + ``score_pairs`` on every (human, model item) pair of each sample,
  against sentence-transformers ``encode`` of the distinct texts + a numpy cosine per pair;
- ``cross-encoder``: ``CrossEncoderJudge.score_pairs`` against ``CrossEncoder.predict`` on the same pairs;
- ``reward``: ``RewardScorer.score`` (what ``compute_score_batch`` runs) on a fresh batch against the encode of
  that batch's new texts + a cosine per pair.

The corpus has no repeated text (no deduplication credit). For each path it prints the median time of both, the
ratio, where the project's time went (inside the encoder vs around it) and the share of the machine's fp32
FLOP limit the encoder reached: model FLOPs from its shapes and the real token lengths (padding not counted), over
the peak from ``lscpu`` (cores x clock x FMA lanes, an upper bound) and over a measured one-thread matmul rate (what
the CPU achieves in practice). ``--int8`` / ``--bf16`` add those judges' speed-up over fp32 (not in the worst
ratio: a different computation). The last line is ``worst ratio to the bare library: R`` (goal: R <= 1.2).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.reward import make_batch  # noqa: E402  (after the environment above)


@dataclass
class Timed:
    """Seconds of each repeat, and of those the seconds spent inside the encoder."""

    total: list[float] = field(default_factory=list)
    encoder: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.total)

    def encoder_share(self) -> float:
        return statistics.median(e / t for e, t in zip(self.encoder, self.total))


class EncoderClock:
    """Wraps a model's ``encode`` / ``predict`` to add up the seconds spent inside it."""

    def __init__(self, model: Any, method: str) -> None:
        self.seconds = 0.0
        inner = getattr(model, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(model, method, timed)

    def run(self, work: Callable[[], object]) -> tuple[float, float]:
        """(seconds in all, seconds inside the encoder) of one call of ``work``."""
        self.seconds = 0.0
        start = time.perf_counter()
        work()
        return time.perf_counter() - start, self.seconds


# ------------------------------------------------------------------------------------------------------------
# The machine's limit
# ------------------------------------------------------------------------------------------------------------


def lscpu() -> dict[str, str]:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def peak_gflops_per_core(info: dict[str, str]) -> tuple[float, str]:
    """fp32 peak of one core from ``lscpu``: clock x 2 FMA pipes x 2 FLOPs x lanes of the widest vector unit."""
    flags = set(info.get("Flags", "").split())
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    mhz = float(info.get("CPU max MHz") or 0) or float(info.get("BogoMIPS") or 0) / 2
    return mhz / 1000 * 2 * 2 * lanes, f"{info.get('Model name', '?')}, {mhz / 1000:.2f} GHz, {lanes} fp32 lanes/FMA"


def matmul_gflops(threads: int, n: int = 1024, seconds: float = 2.0) -> float:
    """The fp32 matrix-multiply rate torch reaches here with ``threads`` threads (the best of ~``seconds``)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def encoder_flops(config: Any, lengths: list[int]) -> float:
    """Forward FLOPs of a BERT-like encoder over sequences of ``lengths`` tokens (no padding): per token and
    layer, the Linear layers (4 d^2 + 2 d f multiply-adds) and attention (2 n d multiply-adds)."""
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return float(sum(layers * n * 2 * (4 * d * d + 2 * d * f + 2 * n * d) for n in lengths))


# ------------------------------------------------------------------------------------------------------------
# The corpus: distinct texts
# ------------------------------------------------------------------------------------------------------------


def distinct_grids(samples: int, human: int, items: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """``samples`` (human items, model items) grids of sentences that never repeat."""
    rng = np.random.default_rng(seed)
    outputs, truths = make_batch(rng, samples, items, human, round_=seed)
    grids = [(list(t["checklist"]), re.findall(r"^\d+\. (.*)$", o, re.M)) for o, t in zip(outputs, truths)]
    texts = [t for h, m in grids for t in (*h, *m)]
    assert len(set(texts)) == len(texts), "the corpus repeats a text"
    return grids


def grid_pairs(grids: list[tuple[list[str], list[str]]]) -> list[tuple[str, str]]:
    return [(h, s) for hs, ss in grids for h in hs for s in ss]


# ------------------------------------------------------------------------------------------------------------
# The paths, each against its bare library
# ------------------------------------------------------------------------------------------------------------

Runner = Callable[[int], tuple[float, float]]
"""Repeat number -> (seconds in all, seconds inside the encoder)."""


def side_by_side(project: Runner, bare: Runner, repeats: int) -> tuple[Timed, Timed]:
    """Alternate the two (which goes first alternates too), ``repeats`` times each."""
    p, b = Timed(), Timed()
    for k in range(repeats):
        order = [(project, p), (bare, b)] if k % 2 == 0 else [(bare, b), (project, p)]
        for run, into in order:
            total, enc = run(k)
            into.total.append(total)
            into.encoder.append(enc)
    return p, b


def bare_cosines(model: Any, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The bare library's way to the pairs' cosines: encode each distinct text once, then row-wise dot products."""
    texts = list(dict.fromkeys(t for p in pairs for t in p))
    vecs = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    row = {t: i for i, t in enumerate(texts)}
    return np.einsum("ij,ij->i", vecs[[row[h] for h, _ in pairs]], vecs[[row[s] for _, s in pairs]])


def embedding_path(model: Any, grids_of: Callable[[int], list], threads: int, precision: str = "fp32"
                   ) -> tuple[Runner, Runner]:
    from rationalerm.judges.embedding import Embedder, EmbeddingJudge, EmbeddingJudgeConfig

    clock = EncoderClock(model, "encode")

    def project(k: int) -> tuple[float, float]:
        pairs = grid_pairs(grids_of(k))
        embedder = Embedder(threads=threads, precision=precision)  # type: ignore[arg-type]
        embedder._encoder = model
        judge = EmbeddingJudge(EmbeddingJudgeConfig(threads=threads), embedder=embedder)

        def work() -> None:
            judge.prepare(list(dict.fromkeys(t for p in pairs for t in p)))
            judge.score_pairs(pairs)
        return clock.run(work)

    def bare(k: int) -> tuple[float, float]:
        pairs = grid_pairs(grids_of(k))
        return clock.run(lambda: bare_cosines(model, pairs))

    return project, bare


def cross_encoder_path(judge: Any, grids_of: Callable[[int], list]) -> tuple[Runner, Runner]:
    import torch

    model = judge.model
    clock = EncoderClock(model, "predict")

    def project(k: int) -> tuple[float, float]:
        pairs = grid_pairs(grids_of(k))
        return clock.run(lambda: judge.score_pairs(pairs))

    def bare(k: int) -> tuple[float, float]:
        pairs = grid_pairs(grids_of(k))
        return clock.run(lambda: model.predict(pairs, batch_size=64, activation_fn=torch.nn.Sigmoid(),
                                               show_progress_bar=False))

    return project, bare


def reward_path(model: Any, batches_of: Callable[[int], tuple[list[str], list[Any]]], threads: int
                ) -> tuple[Runner, Runner]:
    from rationalerm.judges.embedding import Embedder, EmbeddingJudge, EmbeddingJudgeConfig
    from rationalerm.reward.reference import reference
    from rationalerm.reward.scorer import RewardScorer

    clock = EncoderClock(model, "encode")

    def project(k: int) -> tuple[float, float]:
        outputs, truths = batches_of(k)
        embedder = Embedder(threads=threads)
        embedder._encoder = model
        scorer = RewardScorer(judge=EmbeddingJudge(EmbeddingJudgeConfig(threads=threads), embedder=embedder))
        return clock.run(lambda: scorer.score(outputs, [reference(t, None) for t in truths]))

    def bare(k: int) -> tuple[float, float]:
        outputs, truths = batches_of(k)

        def work() -> None:  # the reward's parse is part of its work
            grids = [(t["checklist"], re.findall(r"^\d+\. (.*)$", o, re.M)) for o, t in zip(outputs, truths)]
            bare_cosines(model, grid_pairs(grids))
        return clock.run(work)

    return project, bare


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------


def token_lengths(tokenizer: Any, texts: list[str] | list[tuple[str, str]], max_length: int) -> list[int]:
    if texts and isinstance(texts[0], tuple):
        enc = tokenizer([a for a, _ in texts], [b for _, b in texts], truncation=True, max_length=max_length)
    else:
        enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [len(ids) for ids in enc["input_ids"]]


def report(name: str, p: Timed, b: Timed, flops: float, peak: float, achievable: float, unit: str, n: int) -> float:
    ratio = statistics.median(a / c for a, c in zip(p.total, b.total))  # each pair ran back to back
    gflops = flops / 1e9 / (statistics.median(p.encoder) or p.median())
    print(f"{name:14s} project {p.median():7.2f} s  bare {b.median():7.2f} s  ratio {ratio:5.3f}  "
          f"({n / p.median():7.1f} {unit}/s)")
    print(f"{'':14s} stages: inside the encoder {p.encoder_share():6.1%}, around it {1 - p.encoder_share():6.1%}; "
          f"encoder {gflops:5.1f} GFLOP/s = {gflops / peak:5.1%} of the lscpu peak, "
          f"{gflops / achievable:5.1%} of the measured matmul rate")
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100, help="grids per repeat (each: --human x --items pairs)")
    ap.add_argument("--human", type=int, default=5)
    ap.add_argument("--items", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side (medians are reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, for both sides alike")
    ap.add_argument("--cross-encoder", default=None, help="a CrossEncoder folder (default: the packaged MiniLM with "
                                                          "a fresh one-logit head: timing only)")
    ap.add_argument("--int8", action="store_true", help="also time the int8 judges against their fp32 selves")
    ap.add_argument("--bf16", action="store_true", help="also time the bf16 judges against their fp32 selves (a CPU "
                                                        "with bf16 units)")
    args = ap.parse_args()

    import torch

    from rationalerm.judges.cross_encoder import CrossEncoderJudge, CrossEncoderJudgeConfig, load_cross_encoder
    from rationalerm.judges.embedding import default_model_path, load_encoder

    torch.set_num_threads(args.threads)
    info = lscpu()
    per_core, cpu = peak_gflops_per_core(info)
    peak = per_core * args.threads
    achievable = matmul_gflops(args.threads)
    print(f"machine: {cpu}; fp32 peak {peak:.0f} GFLOP/s on {args.threads} thread(s) (lscpu), matmul measured "
          f"{achievable:.0f} GFLOP/s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    def grids_of(k: int) -> list:
        return distinct_grids(args.samples, args.human, args.items, seed=k)

    from rationalerm.judges.compute import quantize

    encoder = load_encoder(None)
    lower = [name for name in ("int8", "bf16") if getattr(args, name)]
    from rationalerm.judges.compute import has_bf16_units

    if "bf16" in lower and not has_bf16_units("cpu"):
        print("bf16: this CPU has no bf16 units (AVX512-BF16 or AMX); left out")
        lower.remove("bf16")
    # converted copies, made before any clock wraps a method (bf16 converts a module in place)
    low_encoders = {name: quantize(copy.deepcopy(encoder), name, "cpu") for name in lower}
    for grids in (grids_of(99),):  # warm up: first calls allocate
        encoder.encode([t for h, m in grids for t in (*h, *m)][:128])
    ratios: dict[str, float] = {}
    example = grids_of(0)
    texts = [t for h, m in example for t in (*h, *m)]
    pairs = grid_pairs(example)
    emb_flops = encoder_flops(encoder[0].auto_model.config, token_lengths(encoder.tokenizer, texts, 256))

    p, b = side_by_side(*embedding_path(encoder, grids_of, args.threads), repeats=args.repeats)
    ratios["embedding"] = report("embedding", p, b, emb_flops, peak, achievable, "pairs", len(pairs))

    def batches_of(k: int) -> tuple[list[str], list[Any]]:
        return make_batch(np.random.default_rng(1000 + k), args.samples, args.items, args.human, round_=1000 + k)

    p, b = side_by_side(*reward_path(encoder, batches_of, args.threads), repeats=args.repeats)
    ratios["reward"] = report("reward", p, b, emb_flops, peak, achievable, "outputs", args.samples)

    if args.cross_encoder:
        ce_cfg = CrossEncoderJudgeConfig(model=args.cross_encoder, threads=args.threads)
        judge = CrossEncoderJudge(ce_cfg)
    else:
        judge = CrossEncoderJudge(CrossEncoderJudgeConfig(model="packaged-minilm", threads=args.threads,
                                                          threshold=0.5, mapping="raw"))
        judge._model = load_cross_encoder(default_model_path(), "cpu", 128, num_labels=1)
    ce = judge.model
    low_ces = {name: quantize(copy.deepcopy(ce), name, "cpu") for name in lower}
    assert ce.model is not None
    ce_flops = encoder_flops(ce.model.config, token_lengths(ce.tokenizer, pairs, ce.max_seq_length or 512))
    p, b = side_by_side(*cross_encoder_path(judge, grids_of), repeats=args.repeats)
    ratios["cross-encoder"] = report("cross-encoder", p, b, ce_flops, peak, achievable, "pairs", len(pairs))

    for name in lower:
        precision_rows(args, name, (encoder, low_encoders[name]), grids_of, (judge, low_ces[name]))
    worst = max(ratios, key=lambda k: ratios[k])
    print(f"worst ratio to the bare library: {ratios[worst]:.3f}")


def precision_rows(args: argparse.Namespace, precision: str, encoders: tuple[Any, Any],
                   grids_of: Callable[[int], list], judges: tuple[Any, Any]) -> None:
    """The ``precision`` judges against their fp32 selves: speed-up on the same texts (models converted before
    timing)."""
    from rationalerm.judges.cross_encoder import CrossEncoderJudge

    encoder, q_encoder = encoders
    judge, q_model = judges
    q_project, _ = embedding_path(q_encoder, grids_of, args.threads, precision)
    f_project, _ = embedding_path(encoder, grids_of, args.threads)
    q, f = side_by_side(q_project, f_project, args.repeats)
    print(f"{precision:14s} embedding judge: {statistics.median(a / c for a, c in zip(f.total, q.total)):4.2f}x "
          "the fp32 rate")
    q_judge = CrossEncoderJudge(judge.cfg.model_copy(update={"precision": precision}))
    q_judge._model = q_model
    q_project, _ = cross_encoder_path(q_judge, grids_of)
    f_project, _ = cross_encoder_path(judge, grids_of)
    q, f = side_by_side(q_project, f_project, args.repeats)
    print(f"{precision:14s} cross-encoder judge: {statistics.median(a / c for a, c in zip(f.total, q.total)):4.2f}x "
          "the fp32 rate")


if __name__ == "__main__":
    main()
