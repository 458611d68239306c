"""bf16 and int8 against fp32 (``judge.precision``): how closely each judge agrees with fp32, and how much faster.

    python -m benchmarks.precision                          # the embedding judge on examples/ (and a speed corpus)
    python -m benchmarks.precision --cross-encoder DIR      # also a trained cross-encoder on ArgKP dev
    python -m benchmarks.precision --precision int8         # one precision only

One torch thread, the same texts for every precision. Embedding: the cosine of each text's vector to its fp32
one, the pair cosines' difference and correlation, and the agreement of the match decisions at 0.5 on every
(human, model item) pair of ``examples/``; then texts/s on a corpus of distinct texts, side by side with fp32.
Cross-encoder: ArgKP dev AUC and kappa at the model's threshold, every precision, on ``--pairs`` sampled pairs
(``../shared/data/argkp``), and pairs/s. The bounds a precision must meet to be recommended: vector cosine to
fp32 > 0.99; AUC and kappa within 0.005 of fp32. bf16 runs only where the CPU or GPU has bf16 units.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
PRECISIONS = ("bf16", "int8")


def _corpus(words: list[str], n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return list(dict.fromkeys(" ".join(rng.choice(words, int(rng.integers(8, 30)))) for _ in range(n)))


def embedding_agreement(precisions: list[str], speed_texts: int) -> None:
    import orjson

    from rationalerm.analysis.agreement import binary_agreement
    from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig

    recs = [orjson.loads(line) for line in (ROOT / "examples" / "rationales.jsonl").read_bytes().splitlines()]
    pairs = [(h, s) for r in recs for k, v in r.items() if k.endswith("-checklist") and k != "human-checklist"
             for h in r["human-checklist"] for s in v]
    texts = list(dict.fromkeys(t for p in pairs for t in p))
    fp32 = EmbeddingJudge(EmbeddingJudgeConfig(threads=1))
    vf = fp32.embed(texts)
    cf = np.array([s.detail["cosine"] for s in fp32.score_pairs(pairs) if s.detail])
    print(f"embedding, examples/: {len(texts)} texts, {len(pairs)} pairs")
    corpus = _corpus(" ".join(texts).split(), speed_texts)
    for precision in precisions:
        other = EmbeddingJudge(EmbeddingJudgeConfig(precision=precision, threads=1))  # type: ignore[arg-type]
        cos = np.einsum("ij,ij->i", vf, other.embed(texts))
        cq = np.array([s.detail["cosine"] for s in other.score_pairs(pairs) if s.detail])
        print(f"  {precision}: vector cosine to fp32 mean {cos.mean():.5f}, min {cos.min():.5f}; pair cosine "
              f"|{precision} - fp32| mean {np.abs(cq - cf).mean():.4f}, max {np.abs(cq - cf).max():.4f}; Pearson "
              f"{np.corrcoef(cf, cq)[0, 1]:.4f}; match decisions at 0.5: kappa "
              f"{binary_agreement(cf >= 0.5, cq >= 0.5)['kappa']:.3f}")
        ratios = []
        for _ in range(3):  # back to back, fresh memo each time: the ratio of the same work
            fp32.forget()
            other.forget()
            start = time.perf_counter()
            fp32.embed(corpus)
            base = time.perf_counter() - start
            start = time.perf_counter()
            other.embed(corpus)
            ratios.append(base / (time.perf_counter() - start))
        print(f"  {precision}: {len(corpus)} distinct texts, speed vs fp32 (median of 3 back-to-back runs) "
              f"{float(np.median(ratios)):.2f}x")


def cross_encoder_agreement(model: str, n: int, data: Path, precisions: list[str]) -> None:
    from rationalerm.analysis.agreement import roc_auc, threshold_metrics
    from rationalerm.datasets.argkp import load_argkp
    from rationalerm.judges.cross_encoder import CrossEncoderJudge, CrossEncoderJudgeConfig

    dev = load_argkp("dev", data).sample(n, 0)
    pairs = [(p.key_point, p.argument) for p in dev.pairs]
    labels = np.array([float(p.label) for p in dev.pairs])
    print(f"cross-encoder {model}, ArgKP dev: {len(pairs)} pairs, {int(labels.sum())} matches")
    for precision in ("fp32", *precisions):
        judge = CrossEncoderJudge(CrossEncoderJudgeConfig(model=model, precision=precision, threads=1))  # type: ignore[arg-type]
        judge.probabilities(pairs[:16])  # load and warm up
        start = time.perf_counter()
        p = judge.probabilities(pairs)
        rate = len(pairs) / (time.perf_counter() - start)
        kappa = threshold_metrics(labels, p, judge.threshold)["kappa"]
        print(f"  {precision}: AUC {roc_auc(labels, p):.4f}, kappa at {judge.threshold} {kappa:.4f}, "
              f"{rate:.1f} pairs/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cross-encoder", default=None, help="a trained CrossEncoder folder (rationalerm train --out)")
    ap.add_argument("--pairs", type=int, default=1000, help="ArgKP dev pairs sampled (seed 0)")
    ap.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                    help="the precisions to compare with fp32")
    ap.add_argument("--speed-texts", type=int, default=600, help="distinct texts of the embedding speed corpus")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "argkp")
    args = ap.parse_args()
    import torch

    from rationalerm.judges.compute import has_bf16_units

    torch.set_num_threads(1)
    precisions = list(args.precision)
    if "bf16" in precisions and not has_bf16_units("cpu"):
        print("bf16: this CPU has no bf16 units (AVX512-BF16 or AMX); left out")
        precisions.remove("bf16")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    embedding_agreement(precisions, args.speed_texts)
    if args.cross_encoder:
        cross_encoder_agreement(args.cross_encoder, args.pairs, args.data, precisions)


if __name__ == "__main__":
    main()
