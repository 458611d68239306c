"""int8 against fp32 (``judge.precision``): how closely the quantized judges agree, and how much faster they are.

    python -m benchmarks.int8_agreement                          # the embedding judge on examples/
    python -m benchmarks.int8_agreement --cross-encoder DIR      # also a trained cross-encoder on ArgKP dev

One torch thread, the same texts for both precisions. Embedding: the cosine of each text's int8 vector to its fp32
one, the pair cosines' difference and correlation, and the agreement of the match decisions at 0.5 on every
(human, model item) pair of ``examples/``. Cross-encoder: ArgKP dev AUC and kappa at the model's threshold, both
precisions, on ``--pairs`` sampled pairs (``../shared/data/argkp``), and pairs/s.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


def embedding_agreement() -> None:
    import orjson

    from rationalerm.analysis.agreement import binary_agreement
    from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig

    recs = [orjson.loads(line) for line in (ROOT / "examples" / "rationales.jsonl").read_bytes().splitlines()]
    pairs = [(h, s) for r in recs for k, v in r.items() if k.endswith("-checklist") and k != "human-checklist"
             for h in r["human-checklist"] for s in v]
    texts = list(dict.fromkeys(t for p in pairs for t in p))
    fp32 = EmbeddingJudge(EmbeddingJudgeConfig(threads=1))
    int8 = EmbeddingJudge(EmbeddingJudgeConfig(precision="int8", threads=1))
    cos = np.einsum("ij,ij->i", fp32.embed(texts), int8.embed(texts))
    cf = np.array([s.detail["cosine"] for s in fp32.score_pairs(pairs) if s.detail])
    cq = np.array([s.detail["cosine"] for s in int8.score_pairs(pairs) if s.detail])
    print(f"embedding, examples/: {len(texts)} texts, {len(pairs)} pairs")
    print(f"  vector cosine int8 vs fp32: mean {cos.mean():.4f}, min {cos.min():.4f}")
    print(f"  pair cosine |int8 - fp32|: mean {np.abs(cq - cf).mean():.4f}, max {np.abs(cq - cf).max():.4f}; "
          f"Pearson {np.corrcoef(cf, cq)[0, 1]:.4f}")
    print(f"  match decisions at 0.5: kappa {binary_agreement(cf >= 0.5, cq >= 0.5)['kappa']:.3f}")


def cross_encoder_agreement(model: str, n: int, data: Path) -> None:
    from rationalerm.analysis.agreement import roc_auc, threshold_metrics
    from rationalerm.datasets.argkp import load_argkp
    from rationalerm.judges.cross_encoder import CrossEncoderJudge, CrossEncoderJudgeConfig

    dev = load_argkp("dev", data).sample(n, 0)
    pairs = [(p.key_point, p.argument) for p in dev.pairs]
    labels = np.array([float(p.label) for p in dev.pairs])
    print(f"cross-encoder {model}, ArgKP dev: {len(pairs)} pairs, {int(labels.sum())} matches")
    for precision in ("fp32", "int8"):
        judge = CrossEncoderJudge(CrossEncoderJudgeConfig(model=model, precision=precision, threads=1))
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
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "argkp")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    embedding_agreement()
    if args.cross_encoder:
        cross_encoder_agreement(args.cross_encoder, args.pairs, args.data)


if __name__ == "__main__":
    main()
