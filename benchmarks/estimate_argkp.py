#!/usr/bin/env python
"""``estimate`` on real human labels: ArgKP with the run's default matcher and the crowd labels of a random share.

One sample per ArgKP argument: its human items are the key points of its topic and stance, its one model item
the argument. Only the key points with a decided crowd label for the argument are kept (ArgKP leaves undecided
pairs unlabelled, and ``datasets.argkp`` never reads them as 0), so every grid is fully labelled and the gold RC
of every sample is known: the truth the estimate is checked against. The matcher (default: the embedded
all-MiniLM judge of ``rationalerm run``) scores every cell; the crowd labels of a random ``--share`` of the
samples are the audit.

    python benchmarks/estimate_argkp.py --split dev --share 0.3 --seeds 20        # truth, raw, corrected per audit
    python benchmarks/estimate_argkp.py --cross-encoder runs/ce-argkp              # a trained cross-encoder instead
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rationalerm._util.files import write_json, write_jsonl  # noqa: E402
from rationalerm.analysis.estimate import estimate_run, read_audit  # noqa: E402
from rationalerm.config import load_config  # noqa: E402
from rationalerm.datasets.argkp import ArgKP, load_argkp  # noqa: E402
from rationalerm.judges import make_judge  # noqa: E402
from rationalerm.runs.directory import load_run  # noqa: E402
from rationalerm.scoring.metrics import score_sample  # noqa: E402
from tests.helpers.data import shared_argkp_path  # noqa: E402

MODEL = "argkp"


def samples(data: ArgKP) -> list[dict[str, Any]]:
    """One sample per argument: the decided key points of its topic and stance, the argument, the gold column."""
    out = []
    for t in data.tasks:
        for j, arg_id in enumerate(t.arg_ids):
            rows = [i for i in range(len(t.key_points)) if not np.isnan(t.gold[i, j])]
            if rows:
                out.append({"id": arg_id, "domain": f"{t.topic} ({t.stance:+d})",
                            "human": [t.key_points[i] for i in rows], "items": [t.arguments[j]],
                            "gold": [[float(t.gold[i, j])] for i in rows]})
    return out


def write_matcher_run(items: list[dict[str, Any]], out: Path, judge_overrides: dict[str, Any]) -> Path:
    """Score every cell with the matcher and write a run directory (what ``rationalerm run`` would have scored)."""
    cfg = load_config(None, judge_overrides)
    judge = make_judge(cfg.judge)
    pairs = sorted({(h, s["items"][0]) for s in items for h in s["human"]})
    score = {p: r.score for p, r in zip(pairs, judge.score_pairs(pairs))}  # type: ignore[union-attr]
    rows = []
    for s in items:
        w = [[round(float(score[(h, s["items"][0])]), 6)] for h in s["human"]]
        sc = score_sample(w)
        rows.append({"id": s["id"], "domain": s["domain"], "model": MODEL, "source": "argkp", "human": s["human"],
                     "items": s["items"], "matrix": w, "labels": {}, **sc.metrics(), "valid": True})
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "results.jsonl", rows)
    write_json(out / "run.json", {"models": [MODEL], "config": cfg.model_dump(mode="json")})
    write_json(out / "metrics.json", {})
    return out


def argkp_estimate(data_path: Path, work: Path, share: float = 0.3, seed: int = 0, split: str = "dev",
                   judge_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """truth (the all-sample gold RC), and the estimate of RC from one seeded audit of ``share`` of the samples."""
    return argkp_estimates(data_path, work, share, [seed], split, judge_overrides)[0]


def argkp_estimates(data_path: Path, work: Path, share: float, seeds: list[int], split: str = "dev",
                    judge_overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The matcher scores the corpus once; each seed draws its own audit."""
    items = samples(load_argkp(split, data_path))  # type: ignore[arg-type]
    run = load_run(write_matcher_run(items, work / "run", judge_overrides or {}))
    truth = float(np.mean([score_sample(s["gold"]).recall for s in items]))
    out = []
    for seed in seeds:
        audited = np.random.default_rng(seed).choice(len(items), size=round(share * len(items)), replace=False)
        labels = work / f"labels-{seed}.jsonl"
        write_jsonl(labels, ({"id": items[k]["id"], "model": MODEL, "i": i, "j": 0, "label": g[0]}
                             for k in sorted(audited.tolist()) for i, g in enumerate(items[k]["gold"])))
        res, notes = estimate_run(run, read_audit(run, labels))
        out.append({"split": split, "samples": len(items), "share": share, "seed": seed, "truth": truth,
                    "estimate": res["models"][MODEL], "notes": notes})
    return out


def _line(res: dict[str, Any]) -> str:
    e = res["estimate"]

    def iv(k: str) -> str:
        lo, hi = e[k]["ci"]
        return f"{e[k]['mean']:.4f} [{lo:.4f}, {hi:.4f}] (width {hi - lo:.4f})"

    return (f"seed {res['seed']}: truth {res['truth']:.4f} | raw {iv('raw')} | gold-only {iv('gold_only')} | "
            f"corrected {iv('corrected')} | n {e['n']} audited {e['n_gold']} rho {e['rho']:.3f} "
            f"lambda {e['lambda']:.3f} gain {e['effective_gain']:.1f} | pair kappa {e['agreement']['kappa']:.3f}")


def _coverage(results: list[dict[str, Any]]) -> str:
    def covers(r: dict[str, Any], k: str) -> bool:
        lo, hi = r["estimate"][k]["ci"]
        return bool(lo <= r["truth"] <= hi)

    n = len(results)
    return " | ".join(f"{k} covers the truth in {sum(covers(r, k) for r in results)}/{n}"
                      for k in ("raw", "gold_only", "corrected"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="ArgKP folder (default $RATIONALERM_ARGKP or ../shared)")
    ap.add_argument("--split", default="dev", choices=["dev", "train", "all"])
    ap.add_argument("--share", type=float, default=0.3)
    ap.add_argument("--seeds", type=int, default=1, help="audits drawn with seeds 0 .. N-1 (the matcher runs once)")
    ap.add_argument("--cross-encoder", default=None, help="a trained cross-encoder folder as the matcher")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    overrides = {"judge": {"type": "cross-encoder", "model": args.cross_encoder}} if args.cross_encoder else {}
    with tempfile.TemporaryDirectory() as tmp:
        results = argkp_estimates(args.data or shared_argkp_path(), Path(tmp), args.share, list(range(args.seeds)),
                                  args.split, overrides)
    for res in results:
        print(_line(res))
    if len(results) > 1:
        print(_coverage(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
