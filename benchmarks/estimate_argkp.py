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
    python benchmarks/estimate_argkp.py --cross-encoder runs/ce-argkp --close-loop --seeds 3 --train-args "--epochs 2"

``--close-loop``: half of each audit fine-tunes the matcher (``rationalerm train --run``), the other half corrects
the base's and the fine-tuned matcher's estimates over the samples the first half did not label (``close_loop``).
``--cross-fit``: each half fine-tunes a matcher and the other half's labels correct it, so the whole audit both fits
and corrects (``cross_fit``, ``rationalerm.analysis.ppi.cross_ppi_mean``), beside the base matcher corrected by the
whole audit.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rationalerm._util.files import write_json, write_jsonl  # noqa: E402
from rationalerm.analysis.estimate import estimate_run, read_audit  # noqa: E402
from rationalerm.analysis.ppi import cross_ppi_mean  # noqa: E402
from rationalerm.config import load_config  # noqa: E402
from rationalerm.datasets.argkp import ArgKP, load_argkp  # noqa: E402
from rationalerm.judges import make_judge  # noqa: E402
from rationalerm.judges.cross_encoder import TRAINING_JSON, map_probability  # noqa: E402
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


def score_cells(items: list[dict[str, Any]], judge_overrides: dict[str, Any]) -> tuple[dict[tuple[str, str], float],
                                                                                   dict[str, Any]]:
    """The matcher's score of every (key point, argument) cell of ``items``, and the config it ran with."""
    cfg = load_config(None, judge_overrides)
    judge = make_judge(cfg.judge)
    pairs = sorted({(h, s["items"][0]) for s in items for h in s["human"]})
    score = {p: float(r.score) for p, r in zip(pairs, judge.score_pairs(pairs))}  # type: ignore[union-attr]
    return score, cfg.model_dump(mode="json")


def write_run(items: list[dict[str, Any]], score: dict[tuple[str, str], float], config: dict[str, Any],
              out: Path) -> Path:
    """A run directory of ``items`` with the matcher's scores (what ``rationalerm run`` would have written)."""
    rows = []
    for s in items:
        w = [[round(score[(h, s["items"][0])], 6)] for h in s["human"]]
        sc = score_sample(w)
        rows.append({"id": s["id"], "domain": s["domain"], "model": MODEL, "source": "argkp", "human": s["human"],
                     "items": s["items"], "matrix": w, "labels": {}, **sc.metrics(), "valid": True})
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "results.jsonl", rows)
    write_json(out / "run.json", {"models": [MODEL], "config": config})
    write_json(out / "metrics.json", {})
    return out


def write_matcher_run(items: list[dict[str, Any]], out: Path, judge_overrides: dict[str, Any]) -> Path:
    """Score every cell with the matcher and write a run directory (what ``rationalerm run`` would have scored)."""
    return write_run(items, *score_cells(items, judge_overrides), out)


def write_labels(items: list[dict[str, Any]], chosen: list[int], out: Path) -> Path:
    """The crowd labels of the ``chosen`` samples as audit cells ``{id, model, i, j, label}``."""
    write_jsonl(out, ({"id": items[k]["id"], "model": MODEL, "i": i, "j": 0, "label": g[0]}
                      for k in sorted(chosen) for i, g in enumerate(items[k]["gold"])))
    return out


def gold_rc(items: list[dict[str, Any]]) -> float:
    """The people's mean per-sample recall (the truth an estimate is checked against)."""
    return float(np.mean([score_sample(s["gold"]).recall for s in items]))


def argkp_estimate(data_path: Path, work: Path, share: float = 0.3, seed: int = 0, split: str = "dev",
                   judge_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """truth (the all-sample gold RC), and the estimate of RC from one seeded audit of ``share`` of the samples."""
    return argkp_estimates(data_path, work, share, [seed], split, judge_overrides)[0]


def argkp_estimates(data_path: Path, work: Path, share: float, seeds: list[int], split: str = "dev",
                    judge_overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The matcher scores the corpus once; each seed draws its own audit."""
    items = samples(load_argkp(split, data_path))  # type: ignore[arg-type]
    run = load_run(write_matcher_run(items, work / "run", judge_overrides or {}))
    truth = gold_rc(items)
    out = []
    for seed in seeds:
        audited = draw_audit(len(items), share, seed)
        labels = write_labels(items, audited, work / f"labels-{seed}.jsonl")
        res, notes = estimate_run(run, read_audit(run, labels))
        out.append({"split": split, "samples": len(items), "share": share, "seed": seed, "truth": truth,
                    "estimate": res["models"][MODEL], "notes": notes})
    return out


def draw_audit(n: int, share: float, seed: int) -> list[int]:
    """The indices of a seeded uniform audit of ``share`` of ``n`` samples, in the order drawn."""
    return [int(k) for k in np.random.default_rng(seed).choice(n, size=round(share * n), replace=False)]


# ---------------------------------------------------------------------------------------------------------------
# Closing the loop: half of the audit fits a matcher for these topics, the other half corrects its estimate
# ---------------------------------------------------------------------------------------------------------------


def close_loop(data_path: Path, work: Path, share: float, seeds: list[int], split: str = "dev",
               base: str | None = None, train_args: list[str] | None = None,
               log: Any = lambda _m: None) -> list[dict[str, Any]]:
    """Per seed: draw the audit, split it in two disjoint halves at random; ``rationalerm train`` fits a matcher
    on the first half's audit labels (``--run``, from ``base``: a cross-encoder folder, or the packaged encoder),
    and the second half corrects both matchers' estimates over the samples the matcher never saw.

    PPI needs a matcher that is independent of the units it is rectified with (and of the corpus mean's units):
    the fitting half is therefore left out of the estimated corpus; its gold RC is known exactly, so the whole
    corpus's figure is the share-weighted sum (``_whole``), its interval the rest's scaled by the rest's share."""
    items = samples(load_argkp(split, data_path))  # type: ignore[arg-type]
    base_scores = cross_encoder_scores(items, base) if base else {"": score_cells(items, {})}
    run_all = write_run(items, *base_scores[""], work / "run")
    whole = load_run(run_all)
    out = []
    for seed in seeds:
        drawn = draw_audit(len(items), share, seed)
        fit, held = drawn[: len(drawn) // 2], drawn[len(drawn) // 2:]
        rest = [s for k, s in enumerate(items) if k not in set(fit)]
        held_rest = [rest.index(items[k]) for k in held]
        held_labels = write_labels(rest, held_rest, work / f"held-{seed}.jsonl")
        all_labels = write_labels(items, drawn, work / f"audit-{seed}.jsonl")
        standard, _ = estimate_run(whole, read_audit(whole, all_labels))
        res: dict[str, Any] = {"split": split, "samples": len(items), "share": share, "seed": seed,
                               "truth": gold_rc(items), "fit": len(fit), "held": len(held), "rest": len(rest),
                               "truth_rest": gold_rc(rest), "fit_gold_rc": gold_rc([items[k] for k in fit]),
                               "base": base or "embedding (default)", "standard": standard["models"][MODEL]}
        for variant, (score, cfg) in base_scores.items():
            res[f"base_rest{variant}"] = _rest_estimate(rest, score, cfg, held_labels,
                                                        work / f"rest-base{variant}-{seed}")
        log(f"[close-loop] seed {seed}: training on the audit labels of {len(fit)} samples ...")
        res["training"] = train_matcher(write_labels(items, fit, work / f"fit-{seed}.jsonl"), run_all,
                                        work / f"matcher-{seed}", base, [*(train_args or []), "--seed", str(seed)])
        if res["training"]["saved"]:
            for variant, (score, cfg) in cross_encoder_scores(rest, str(work / f"matcher-{seed}")).items():
                res[f"adapted_rest{variant}"] = _rest_estimate(rest, score, cfg, held_labels,
                                                               work / f"rest-adapted{variant}-{seed}")
        log(f"[close-loop] {_loop_line(res)}")
        out.append(res)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Cross-fitting: each half of the audit fits a matcher, the other half corrects it, and the whole audit counts
# ---------------------------------------------------------------------------------------------------------------


def cross_fit(data_path: Path, work: Path, share: float, seeds: list[int], split: str, base: str,
              train_args: list[str] | None = None, log: Any = lambda _m: None) -> list[dict[str, Any]]:
    """Per seed: draw the audit and split it in two halves at random; ``rationalerm train`` fits matcher k on the
    labels of the half that is not k (from ``base``), and every audited sample is rectified by the matcher that
    never saw it; the unaudited samples take the two matchers' mean (``cross_ppi_mean``, the corpus's own mean as
    the target). A fit ``train`` refuses leaves ``base`` in its place (independent of the audit too, so still
    valid). Beside it: the base matcher with the whole audit, power-tuned (what ``estimate`` prints) and at lambda 1
    (the cross-fit's own weighting), on the same audit."""
    items = samples(load_argkp(split, data_path))  # type: ignore[arg-type]
    base_scores = cross_encoder_scores(items, base)
    whole = load_run(write_run(items, *base_scores[""], work / "run"))
    truth = gold_rc(items)
    y_all = np.array([score_sample(s["gold"]).recall for s in items])
    f_base = {v: sample_recalls(items, sc) for v, (sc, _cfg) in base_scores.items()}
    out = []
    for seed in seeds:
        drawn = draw_audit(len(items), share, seed)
        halves = [drawn[: len(drawn) // 2], drawn[len(drawn) // 2:]]
        standard, _ = estimate_run(whole, read_audit(whole, write_labels(items, drawn, work / f"audit-{seed}.jsonl")))
        res: dict[str, Any] = {"split": split, "samples": len(items), "share": share, "seed": seed, "truth": truth,
                               "audited": len(drawn), "base": base, "standard": standard["models"][MODEL],
                               "training": [], "estimates": {}}
        f_fold: dict[str, list[np.ndarray]] = {v: [] for v in f_base}
        for k in (0, 1):
            fit = halves[1 - k]
            log(f"[cross-fit] seed {seed}: matcher {k} trains on the labels of {len(fit)} samples ...")
            trained = train_matcher(write_labels(items, fit, work / f"fit-{seed}-{k}.jsonl"), whole.path,
                                    work / f"matcher-{seed}-{k}", base,
                                    [*(train_args or []), "--seed", str(100 * seed + k)])
            res["training"].append(trained)
            for v, (sc, _cfg) in (cross_encoder_scores(items, str(work / f"matcher-{seed}-{k}")).items()
                                  if trained["saved"] else base_scores.items()):
                f_fold[v].append(sample_recalls(items, sc))
        aud = np.array(drawn)
        rest = np.setdiff1d(np.arange(len(items)), aud)
        fold_of = np.array([0] * len(halves[0]) + [1] * len(halves[1]))
        for v in f_base:
            every = np.stack(f_fold[v], axis=1)
            own = every[aud, fold_of]
            cross = cross_ppi_mean(y_all[aud], own, every[rest], corpus=True)
            lam1 = cross_ppi_mean(y_all[aud], f_base[v][aud], f_base[v][rest, None], corpus=True)
            res["estimates"][v or "_linear"] = {
                "cross_fit": {"mean": cross.mean, "ci": list(cross.ci)},
                "base_lambda1": {"mean": lam1.mean, "ci": list(lam1.ci)},
                "rho_cross": float(np.corrcoef(y_all[aud], own)[0, 1]) if np.std(own) > 0 else None,
                "rho_base": float(np.corrcoef(y_all[aud], f_base[v][aud])[0, 1]) if np.std(f_base[v][aud]) > 0
                else None}
        log(f"[cross-fit] {_cross_line(res)}")
        out.append(res)
    return out


def sample_recalls(items: list[dict[str, Any]], score: dict[tuple[str, str], float]) -> np.ndarray:
    """Each sample's recall under a matcher's cell scores, as ``write_run`` scores it (rounded as a run saves)."""
    return np.array([score_sample([[round(score[(h, s["items"][0])], 6)] for h in s["human"]]).recall
                     for s in items])


def _cross_line(res: dict[str, Any]) -> str:
    saved = sum(t["saved"] for t in res["training"])
    parts = [f"seed {res['seed']}: truth {res['truth']:.4f}, fits saved {saved}/2",
             f"standard (base, whole audit, power-tuned) {_iv(res['standard']['corrected'], res['truth'])}"]
    for v, e in res["estimates"].items():
        parts.append(f"{v.strip('_')}: cross-fit {_iv(e['cross_fit'], res['truth'])} rho {_num(e['rho_cross'])} | "
                     f"base at lambda 1 {_iv(e['base_lambda1'], res['truth'])} rho {_num(e['rho_base'])}")
    return " | ".join(parts)


def _iv(iv: dict[str, Any], truth: float) -> str:
    return f"{iv['mean']:.4f} (width {_width(iv):.4f}, covers {_covers(iv, truth)})"


def _cross_summary(results: list[dict[str, Any]]) -> list[str]:
    n = len(results)

    def med(xs: list[float]) -> str:
        return f"{np.median(xs):.4f} [{min(xs):.4f}, {max(xs):.4f}]" if xs else "n/a"

    std = [r["standard"]["corrected"] for r in results]
    covered = sum(_covers(c, r["truth"]) for c, r in zip(std, results))
    lines = [f"standard (base matcher, whole audit, power-tuned): covers {covered}/{n}, "
             f"width median [min, max] {med([_width(c) for c in std])}"]
    for v in results[0]["estimates"]:
        for key in ("cross_fit", "base_lambda1"):
            ivs = [r["estimates"][v][key] for r in results]
            covered = sum(_covers(iv, r["truth"]) for iv, r in zip(ivs, results))
            lines.append(f"{v.strip('_')} {key}: covers {covered}/{n}, width {med([_width(iv) for iv in ivs])}")
        # like for like: the same corpus formula, the base matcher against the out-of-fold fine-tuned ones ("standard"
        # is estimate's PPI++ interval, which also counts the imputation's variance: wider by formula alone)
        ratio = [_width(r["estimates"][v]["cross_fit"]) / _width(r["estimates"][v]["base_lambda1"]) for r in results]
        lines.append(f"{v.strip('_')} cross-fit width / base at lambda 1, per seed: {med(ratio)}; narrower in "
                     f"{sum(x < 1 for x in ratio)}/{n}")
        rc = [r["estimates"][v]["rho_cross"] for r in results if r["estimates"][v]["rho_cross"] is not None]
        rb = [r["estimates"][v]["rho_base"] for r in results if r["estimates"][v]["rho_base"] is not None]
        lines.append(f"{v.strip('_')} rho (audited samples): out-of-fold matchers {med(rc)}, base {med(rb)}")
    fits = [t for r in results for t in r["training"]]
    lines.append(f"training: saved {sum(t['saved'] for t in fits)}/{len(fits)} fits, wall "
                 f"{np.median([t['wall_s'] for t in fits]):.0f}s median")
    return lines


def cross_encoder_scores(items: list[dict[str, Any]], model: str) -> dict[str, tuple[dict[tuple[str, str], float],
                                                                                   dict[str, Any]]]:
    """A cross-encoder's cells under its run's mapping (``""``: linear from its threshold, what ``rationalerm run``
    scores) and as the plain probability (``"_raw"``: ``mapping: raw``), from one scoring pass."""
    prob, cfg = score_cells(items, {"judge": {"type": "cross-encoder", "model": model, "mapping": "raw"}})
    threshold = json.loads((Path(model) / TRAINING_JSON).read_text())["threshold"]
    keys = list(prob)
    mapped = map_probability([prob[k] for k in keys], threshold, "linear")
    linear_cfg = {**cfg, "judge": {**cfg["judge"], "mapping": "linear", "threshold": threshold}}
    return {"": ({k: float(v) for k, v in zip(keys, mapped)}, linear_cfg), "_raw": (prob, cfg)}


def _rest_estimate(rest: list[dict[str, Any]], score: dict[tuple[str, str], float], config: dict[str, Any],
                   labels: Path, out: Path) -> dict[str, Any]:
    run = load_run(write_run(rest, score, config, out))
    res, notes = estimate_run(run, read_audit(run, labels))
    return {**res["models"][MODEL], "notes": notes}


def train_matcher(labels: Path, run: Path, out: Path, base: str | None, extra: list[str]) -> dict[str, Any]:
    """``rationalerm train LABELS --run RUN --out OUT [--base BASE]`` as a user runs it; what it printed and its
    card's figures (a model refused as no better than chance is ``saved: False``, with the reason)."""
    cmd = [sys.executable, "-m", "rationalerm", "train", str(labels), "--run", str(run), "--out", str(out),
           *(["--base", base] if base else []), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        said = done.stderr[done.stderr.rfind("error:"):] if "error:" in done.stderr else done.stderr.strip()[-500:]
        return {"saved": False, "wall_s": wall, "error": " ".join(said.split())}
    card = json.loads((out / "training.json").read_text())
    val = card["validation"] or {}
    return {"saved": True, "wall_s": wall, "train_s": card["timing"]["train_s"], "steps": card["recipe"]["steps"],
            "train_pairs": card["data"]["train_pairs"], "val_pairs": card["data"]["val_pairs"],
            "val_auc": val.get("auc"), "val_auc_ci": val.get("auc_ci"), "warnings": card["warnings"]}


def _whole(res: dict[str, Any], est: dict[str, Any]) -> dict[str, Any]:
    """The whole corpus's RC from the fitting half (known) and the rest's corrected estimate."""
    w = res["rest"] / res["samples"]
    known = (1 - w) * res["fit_gold_rc"]
    lo, hi = est["corrected"]["ci"]
    return {"mean": known + w * est["corrected"]["mean"], "ci": [known + w * lo, known + w * hi]}


def _covers(iv: dict[str, Any], truth: float) -> bool:
    return bool(iv["ci"][0] <= truth <= iv["ci"][1])


def _width(iv: dict[str, Any]) -> float:
    return float(iv["ci"][1] - iv["ci"][0])


def _num(x: float | None, digits: int = 3) -> str:
    """A figure, or "n/a" where it is undefined (rho of a matcher whose metric is constant)."""
    return "n/a" if x is None else f"{x:.{digits}f}"


def _loop_line(res: dict[str, Any]) -> str:
    def part(name: str, e: dict[str, Any]) -> str:
        c = e["corrected"]
        return (f"{name} corrected {c['mean']:.4f} (width {_width(c):.4f}, covers {_covers(c, res['truth_rest'])}) "
                f"rho {_num(e['rho'])} lambda {_num(e['lambda'])} gain {_num(e['effective_gain'], 1)}")

    t = res["training"]
    trained = (f"trained {t['steps']} steps in {t['wall_s']:.0f}s, val AUC {t['val_auc']:.3f}" if t["saved"]
               else f"not saved: {t['error']}")
    adapted = part("adapted", res["adapted_rest"]) if "adapted_rest" in res else "adapted: none"
    raw = "".join(f" | {part(k.replace('_rest', ''), res[k])}" for k in ("base_rest_raw", "adapted_rest_raw")
                  if k in res)
    return (f"seed {res['seed']}: {res['fit']} fit / {res['held']} held-out audited, rest {res['rest']} truth "
            f"{res['truth_rest']:.4f} | gold-only width {_width(res['base_rest']['gold_only']):.4f} | "
            f"{part('base', res['base_rest'])} | {trained} | {adapted}{raw}")


def _loop_summary(results: list[dict[str, Any]]) -> list[str]:
    """Over the seeds: coverage, widths, rho, lambda and gain of the base and adapted matchers on the same rest
    and the same held-out half, and the whole-corpus figure beside the standard one (base, the whole audit)."""
    n = len(results)
    lines = []
    for key in ("base_rest", "adapted_rest", "base_rest_raw", "adapted_rest_raw"):
        rows = [r for r in results if key in r]
        if not rows:
            continue

        def span(values: list[float | None]) -> str:
            xs = [x for x in values if x is not None]
            return f"{np.median(xs):.3f} [{min(xs):.3f}, {max(xs):.3f}]" if xs else "n/a"

        lines.append(
            f"{key.replace('_rest', '')} ({len(rows)}/{n} seeds): corrected covers the rest's truth in "
            f"{sum(_covers(r[key]['corrected'], r['truth_rest']) for r in rows)}/{len(rows)}, gold-only in "
            f"{sum(_covers(r[key]['gold_only'], r['truth_rest']) for r in rows)}/{len(rows)}; median [min, max]: "
            f"corrected width {span([_width(r[key]['corrected']) for r in rows])}, gold-only width "
            f"{span([_width(r[key]['gold_only']) for r in rows])}, rho {span([r[key]['rho'] for r in rows])}, "
            f"lambda {span([r[key]['lambda'] for r in rows])}, gain {span([r[key]['effective_gain'] for r in rows])}; "
            f"whole corpus covers the truth in {sum(_covers(_whole(r, r[key]), r['truth']) for r in rows)}/"
            f"{len(rows)}, width {span([_width(_whole(r, r[key])) for r in rows])}")
    std = [r["standard"]["corrected"] for r in results]
    lines.append(f"standard (base matcher, the whole audit as gold, whole corpus): covers the truth in "
                 f"{sum(_covers(c, r['truth']) for c, r in zip(std, results))}/{n}, width median "
                 f"{np.median([_width(c) for c in std]):.3f}")
    trained = [r["training"] for r in results]
    lines.append(f"training: saved {sum(t['saved'] for t in trained)}/{n}, wall "
                 f"{np.median([t['wall_s'] for t in trained]):.0f}s median" + "".join(
                     f"; seed {r['seed']} refused: {r['training']['error']}" for r in results
                     if not r["training"]["saved"]))
    return lines


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
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--close-loop", action="store_true",
                    help="fit a matcher on half of each audit (rationalerm train, from --cross-encoder when given) "
                    "and correct its estimate with the other half")
    mode.add_argument("--cross-fit", action="store_true",
                    help="fit a matcher on each half of each audit (from --cross-encoder, required) and correct each "
                    "with the other half: the whole audit fits and corrects")
    ap.add_argument("--train-args", default="",
                    help="more `rationalerm train` options for --close-loop / --cross-fit, one string")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.close_loop:
        return _main_trained(args, close_loop, _loop_line, _loop_summary)
    if args.cross_fit:
        if not args.cross_encoder:
            ap.error("--cross-fit needs --cross-encoder DIR (the base every fold's matcher is fine-tuned from)")
        return _main_trained(args, cross_fit, _cross_line, _cross_summary)
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


def _main_trained(args: argparse.Namespace, mode: Any, line: Any, summary: Any) -> int:
    """--close-loop / --cross-fit: ``mode`` (``close_loop`` or ``cross_fit``) trains matchers on parts of each audit;
    its per-seed lines go to stderr as they come, then each seed's ``line`` and the ``summary``."""
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        results = mode(args.data or shared_argkp_path(), Path(tmp), args.share, list(range(args.seeds)),
                       args.split, args.cross_encoder, shlex.split(args.train_args), log)
    for res in results:
        print(line(res))
    for text in summary(results):
        print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
