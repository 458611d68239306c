#!/usr/bin/env python
"""Matcher quality on real human labels (IBM Debater ArgKP, see ../shared/data/README.md).

For each matcher (embedding with the packaged default model, embedding with any local sentence-transformers
model passed by path, the LLM judge on any local model passed by path, a cross-encoder trained by
``rationalerm train``) it reports, against the crowd labels:

- **pairwise**: ROC AUC, the best-threshold F1 (with the threshold, precision and recall there) and Cohen's
  kappa at that threshold, beside the base rate; plus F1/kappa at a fixed threshold (``--threshold``).
  Embedding matchers are scored on raw cosine (thresholds in cosine units), the LLM on its [0, 1] score,
  a cross-encoder on its probability; "default" is the matcher's own threshold (a cross-encoder's training.json).
- **KPA-2021 Track 1 mAP** (strict and relaxed), the shared task's own metric, reproduced exactly from its
  script (``kpa_track1_map``); official only over all cells of the full split (``kpa_map.official``).
- **assignment**: per (topic, stance) task, the key points play the human checklist and the arguments the
  model items; the judge's score matrix goes through ``rationalerm.scoring.assign.assign`` (one-to-one max-weight
  matching, zero scores never matched) and the matched pairs that carry a human label are compared with the
  gold matches: precision = gold matches among labelled matched pairs, recall = gold matches recovered / all
  gold matches. ArgKP is many-to-one (a key point matches many arguments), so a one-to-one matching can
  recover at most ``recall_ceiling`` (the size of a maximum matching on the gold matches); it is reported
  beside recall.
- **prefilter** (embedding matchers): recall of the human matches kept by the embedding top-k per key point
  (``rationalerm.judges.prefilter.topk_keep``) at k = 1, 2, 3 with its ceiling (sum over key points of
  min(k, gold matches) / all gold matches), and, for reference, top-k per argument.

``--assign-cells all`` (default) lets the assignment and the prefilter see every (key point, argument) cell of
a task, labelled or not (the judge scores them all); ``labelled`` restricts both to labelled cells, so an LLM
run costs exactly one judge call per labelled pair. Every matcher in one run uses the same cells.

Examples::

    python benchmarks/quality.py --split dev --out runs/quality-dev.json
    python benchmarks/quality.py --split dev --train-cross-encoder runs/ce-argkp --markdown   # train, time, evaluate
    python benchmarks/quality.py --split dev --max-pairs 300 --assign-cells labelled \
        --llm ~/.cache/rationalerm/qwen2.5-coder-0.5b-instruct --llm-backend vllm \
        --llm-engine-arg max_model_len=2048 --out runs/quality-qwen.json
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, torch's spinning threads
# made cross-encoder training 2.5-3x slower (measured, see RESULTS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rationalerm.datasets.argkp import ArgKP, MatchTask, load_argkp  # noqa: E402
from rationalerm.judges.prefilter import topk_keep  # noqa: E402
from rationalerm.scoring.assign import assign  # noqa: E402
from tests.helpers.data import shared_argkp_path  # noqa: E402

PREFILTER_KS = (1, 2, 3)


# ----------------------------------------------------------------------------------------------------------
# Metric functions (pure; unit-tested in tests/test_argkp.py)
# ----------------------------------------------------------------------------------------------------------


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def binary_at(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and Cohen's kappa of ``score >= threshold`` against ``labels``."""
    from sklearn.metrics import cohen_kappa_score

    y = np.asarray(labels, dtype=int)
    pred = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    if len(set(y.tolist())) < 2 and len(set(pred.tolist())) < 2:
        kappa = 1.0 if (pred == y).all() else 0.0
    else:
        kappa = float(cohen_kappa_score(y, pred))
        if math.isnan(kappa):
            kappa = 0.0
    return {"threshold": float(threshold), "precision": p, "recall": r, "f1": _f1(p, r), "kappa": kappa,
            "predicted_positive_rate": float(pred.mean()) if len(pred) else 0.0}


def auc_interval(labels: np.ndarray, scores: np.ndarray, bootstrap: int, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the ROC AUC (resampling pairs); None when ``bootstrap`` is 0."""
    from sklearn.metrics import roc_auc_score

    if bootstrap <= 0:
        return None
    rng = np.random.default_rng(seed)
    n = len(labels)
    stats = []
    for _ in range(bootstrap):
        idx = rng.integers(0, n, n)
        y = labels[idx]
        if y.min() == y.max():
            continue
        stats.append(roc_auc_score(y, scores[idx]))
    if not stats:
        return None
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def pair_metrics(labels: Sequence[int], scores: Sequence[float], fixed_threshold: float | None = 0.5,
                 bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
    """AUC (with a bootstrap 95% interval when ``bootstrap`` > 0), best-threshold F1 (and kappa there) and,
    optionally, the same at a fixed threshold.

    The best threshold is the score value maximising F1 over all cut points ``score >= t`` (ties broken towards
    the higher threshold); kappa is computed at that threshold.
    """
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-D and of equal length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    out: dict[str, Any] = {"n": int(len(y)), "n_pos": int(y.sum()), "base_rate": float(y.mean()) if len(y) else 0.0}
    if len(set(y.tolist())) < 2:
        out.update(auc=float("nan"), auc_ci95=None, best=None, fixed=None)
        return out
    out["auc"] = float(roc_auc_score(y, s))
    out["auc_ci95"] = auc_interval(y, s, bootstrap, seed)
    prec, rec, thr = precision_recall_curve(y, s)
    f1 = np.where(prec[:-1] + rec[:-1] > 0, 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-300), 0.0)
    best = int(np.flatnonzero(f1 == f1.max())[-1])
    out["best"] = binary_at(y, s, float(thr[best]))
    out["fixed"] = binary_at(y, s, fixed_threshold) if fixed_threshold is not None else None
    return out


def max_matching_size(gold: np.ndarray) -> int:
    """Size of a maximum one-to-one matching using only gold matches (the ceiling for an assignment)."""
    from scipy.optimize import linear_sum_assignment

    g = np.nan_to_num(np.asarray(gold, dtype=float), nan=0.0)
    if g.size == 0 or g.sum() == 0:
        return 0
    r, c = linear_sum_assignment(g, maximize=True)
    return int(g[r, c].sum())


def assignment_metrics(
    tasks: Sequence[MatchTask], matrices: Sequence[np.ndarray], min_score: float = 0.0
) -> dict[str, Any]:
    """One-to-one assignment per task over the judge's matrix, compared with the gold matches.

    Only matched pairs that carry a human label count towards precision; unlabelled matched pairs are reported.
    """
    if len(tasks) != len(matrices):
        raise ValueError("one matrix per task")
    matched = matched_labelled = tp = gold_total = ceiling = 0
    for task, w in zip(tasks, matrices):
        if w.shape != task.gold.shape:
            raise ValueError(f"matrix shape {w.shape} != task shape {task.gold.shape} ({task.topic}, {task.stance})")
        gold_total += task.n_matches
        ceiling += max_matching_size(task.gold)
        for i, j, _ in assign(w, min_score=min_score):
            matched += 1
            g = task.gold[i, j]
            if not np.isnan(g):
                matched_labelled += 1
                tp += int(g == 1)
    p = tp / matched_labelled if matched_labelled else 0.0
    r = tp / gold_total if gold_total else 0.0
    ceil = ceiling / gold_total if gold_total else 0.0
    return {
        "tasks": len(tasks), "matched": matched, "matched_labelled": matched_labelled, "true_matches": tp,
        "gold_matches": gold_total, "precision": p, "recall": r, "f1": _f1(p, r),
        "recall_ceiling": ceil, "recall_of_ceiling": (r / ceil) if ceil else 0.0,
    }


def prefilter_recall(tasks: Sequence[MatchTask], cosines: Sequence[np.ndarray], ks: Sequence[int] = PREFILTER_KS,
                     axis: str = "key_point") -> dict[str, dict[str, float]]:
    """Share of the gold matches the embedding top-k keeps, per key point (rows) or per argument (columns).

    ``cosines[t]`` is the task's cosine matrix; cells excluded from consideration should be ``-inf``.
    """
    out: dict[str, dict[str, float]] = {}
    gold_total = sum(t.n_matches for t in tasks)
    for k in ks:
        kept = ceiling = cells_kept = cells_total = 0
        for task, cos in zip(tasks, cosines):
            c = cos if axis == "key_point" else cos.T
            g = task.gold if axis == "key_point" else task.gold.T
            valid = np.isfinite(c)
            mask = topk_keep(np.where(valid, c, -np.inf), k, None) & valid
            pos = np.nan_to_num(g, nan=0.0) == 1
            kept += int((mask & pos).sum())
            ceiling += int(np.minimum(pos.sum(axis=1), k).sum())
            cells_kept += int(mask.sum())
            cells_total += int(valid.sum())
        out[str(k)] = {
            "recall": kept / gold_total if gold_total else 0.0,
            "ceiling": ceiling / gold_total if gold_total else 0.0,
            "kept_fraction": cells_kept / cells_total if cells_total else 0.0,
        }
    return out


def _pandas_descending_order(scores: np.ndarray) -> np.ndarray:
    """The row order of pandas ``DataFrame.sort_values(col, ascending=False)`` (default quicksort, no NaN).

    pandas' ``nargsort`` reverses the values, argsorts them with ``kind="quicksort"`` and reverses the result;
    doing the same here keeps the KPA reference's order of tied scores (which decides the top-50% cut).
    """
    idx = np.arange(len(scores))[::-1]
    return idx[np.asarray(scores, dtype=float)[::-1].argsort(kind="quicksort")][::-1]


def kpa_track1_map(
    tasks: Sequence[MatchTask], scores: Sequence[np.ndarray], top_percentile: float = 0.5
) -> dict[str, Any]:
    """KPA-2021 shared task, Track 1 (key-point matching): mAP strict and relaxed, as the task's own script.

    Reproduces ``code/track_1_kp_matching.py`` of github.com/IBM/KPA_2021_shared_task (commit 2f5e2d5): each
    argument is paired with its best-scoring key point of its topic and stance (the first key point in file
    order on ties, as ``max`` over the submitted dict does); per topic-stance group the top
    ``int(len * 0.5)`` pairs by score are kept (pandas' quicksort order on ties); AP over them
    (``sklearn.metrics.average_precision_score``) with unlabelled pairs counted as no match (strict) or match
    (relaxed), times the share of positives among the kept pairs (the script's ``ap_retrieval``); the mean
    over groups. ``scores[t]`` is task t's key point x argument score matrix; ``-inf`` marks a cell the
    matcher did not score (never chosen while another key point has a score).
    """
    from sklearn.metrics import average_precision_score

    groups = []
    for task, w in zip(tasks, scores):
        w = np.asarray(w, dtype=float)
        if w.shape != task.gold.shape:
            raise ValueError(f"matrix shape {w.shape} != task shape {task.gold.shape} ({task.topic}, {task.stance})")
        n_args = w.shape[1]
        if n_args == 0 or w.shape[0] == 0:
            continue
        best = np.argmax(w, axis=0)  # first maximum = first key point in file order
        cols = np.arange(n_args)
        best_score = w[best, cols]
        # An argument with no scored key point is the script's "dummy" pair: score 0 for the cut, label 0,
        # then score 0.99 among the kept pairs.
        dummy = ~np.isfinite(best_score)
        best_score = np.where(dummy, 0.0, best_score)
        gold = np.where(dummy, 0.0, task.gold[best, cols])
        top = int(n_args * top_percentile)
        keep = _pandas_descending_order(best_score)[:top]
        kept_score = np.where(dummy[keep], 0.99, best_score[keep])
        row: dict[str, Any] = {"topic": task.topic, "stance": task.stance, "arguments": n_args, "kept": top,
                               "labelled_kept": int((~np.isnan(gold[keep])).sum())}
        for variant, fill in (("strict", 0.0), ("relaxed", 1.0)):
            y = np.nan_to_num(gold[keep], nan=fill).astype(int)
            if top == 0:
                row[variant] = float("nan")
                continue
            import warnings

            with warnings.catch_warnings():  # a group with no positive in its top half scores 0, as in the script
                warnings.simplefilter("ignore")
                ap = float(average_precision_score(y_true=y, y_score=kept_score))
            row[variant] = ap * int(y.sum()) / top
        groups.append(row)
    return {"strict": float(np.mean([g["strict"] for g in groups])) if groups else float("nan"),
            "relaxed": float(np.mean([g["relaxed"] for g in groups])) if groups else float("nan"),
            "groups": groups}


# ----------------------------------------------------------------------------------------------------------
# Running matchers
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Cells:
    """Which cells each task's judge matrix contains: ``mask[t]`` is True where the judge scores the cell."""

    tasks: list[MatchTask]
    masks: list[np.ndarray]
    pair_rows: list[tuple[int, int, int]] = field(default_factory=list)  # (task, i, j) of each labelled pair

    def unique_pairs(self) -> list[tuple[str, str]]:
        """Every (key point, argument) text pair to judge, sorted by key point (shared prompt prefixes)."""
        seen: dict[tuple[str, str], None] = {}
        for t, m in zip(self.tasks, self.masks):
            for i, j in zip(*np.nonzero(m)):
                seen.setdefault((t.key_points[i], t.arguments[j]), None)
        return sorted(seen)


def build_cells(data: ArgKP, assign_cells: str) -> Cells:
    masks = [np.ones(t.gold.shape, dtype=bool) if assign_cells == "all" else t.labelled for t in data.tasks]
    rows = [(ti, i, j) for ti, t in enumerate(data.tasks) for i, j in t.pairs()]
    return Cells(tasks=list(data.tasks), masks=masks, pair_rows=rows)


def _fill(cells: Cells, value: dict[tuple[str, str], float], missing: float) -> list[np.ndarray]:
    out = []
    for t, m in zip(cells.tasks, cells.masks):
        w = np.full(t.gold.shape, missing, dtype=float)
        for i, j in zip(*np.nonzero(m)):
            w[i, j] = value[(t.key_points[i], t.arguments[j])]
        out.append(w)
    return out


def evaluate_matcher(name: str, kind: str, judge: Any, cells: Cells, *, fixed_threshold: float,
                     min_score: float, bootstrap: int = 0, seed: int = 0, load_s: float | None = None,
                     default_threshold: float | None = None) -> dict[str, Any]:
    """Judge every needed pair once, then compute pairwise, KPA mAP, assignment and (embedding) prefilter metrics.

    Rankings (AUC, best F1, KPA mAP) use the matcher's raw scale: the cosine for embeddings, the sigmoid
    probability for cross-encoders, the [0, 1] score for LLM judges. ``default_threshold`` (on that scale) is
    the matcher's own decision threshold (embedding ``threshold``, the cross-encoder's training.json one).

    One throw-away pair is judged first so that lazy model loading and engine warm-up stay out of the
    throughput figure (they are reported as ``load_s``).
    """
    pairs = cells.unique_pairs()
    t0 = time.perf_counter()
    if pairs:
        judge.score_pairs([("warm-up reference", "warm-up candidate")])
    load_s = (load_s or 0.0) + (time.perf_counter() - t0)
    t0 = time.perf_counter()
    results = judge.score_pairs(pairs)
    elapsed = time.perf_counter() - t0
    score = {p: float(r.score) for p, r in zip(pairs, results)}
    cosine = {p: float((r.detail or {})["cosine"]) for p, r in zip(pairs, results)} if kind == "embedding" else None
    prob = {p: float((r.detail or {})["prob"]) for p, r in zip(pairs, results)} if kind == "cross-encoder" else None

    # Pairwise: labelled pairs; embedding on raw cosine, cross-encoder on its probability.
    ranking = cosine if cosine is not None else prob if prob is not None else score
    labels, values = [], []
    for ti, i, j in cells.pair_rows:
        t = cells.tasks[ti]
        labels.append(int(t.gold[i, j]))
        values.append(ranking[(t.key_points[i], t.arguments[j])])
    pairwise = pair_metrics(labels, values, fixed_threshold, bootstrap=bootstrap, seed=seed)
    pairwise["scale"] = "cosine" if cosine is not None else "probability" if prob is not None else "score"
    if default_threshold is not None and pairwise.get("best") is not None:
        pairwise["default"] = binary_at(labels, values, default_threshold)

    matrices = _fill(cells, score, 0.0)
    result: dict[str, Any] = {
        "name": name, "kind": kind, "fingerprint": _fingerprint(judge),
        "pairwise": pairwise,
        "kpa_map": kpa_track1_map(cells.tasks, _fill(cells, ranking, -np.inf)),
        "assignment": assignment_metrics(cells.tasks, matrices, min_score=min_score),
        "timing": {"pairs_judged": len(pairs), "seconds": elapsed, "load_s": load_s,
                   "pairs_per_s": len(pairs) / elapsed if elapsed else None},
    }
    if cosine is not None:
        cos_m = _fill(cells, cosine, -np.inf)
        result["prefilter"] = {
            "per_key_point": prefilter_recall(cells.tasks, cos_m, axis="key_point"),
            "per_argument": prefilter_recall(cells.tasks, cos_m, axis="argument"),
        }
    return result


def _fingerprint(judge: Any) -> Any:
    try:
        return judge.fingerprint()
    except Exception:  # noqa: BLE001 - informational only
        return None


def _short_name(path: str) -> str:
    p = Path(path).expanduser()
    return f"{p.parent.name}/{p.name}" if p.name.lower() in {"model", "models", "snapshot", "main"} else p.name


def _parse_engine_args(items: Sequence[str], option: str = "--llm-engine-arg") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{option} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


# ----------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _auc_cell(pw: dict[str, Any]) -> str:
    ci = pw.get("auc_ci95")
    return _fmt(pw.get("auc")) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


SUMMARY_COLUMNS = ("matcher", "scale", "AUC", "F1@best", "kappa@best", "default thr", "kappa@default",
                   "KPA mAP strict", "KPA mAP relaxed", "train time")


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per matcher: ranking quality, agreement at the matcher's own threshold, KPA-2021 Track 1 mAP."""
    rows = []
    training = report.get("training") or {}
    for m in report["matchers"]:
        pw = m["pairwise"]
        best, default = pw.get("best") or {}, pw.get("default") or {}
        kpa = m.get("kpa_map") or {}
        trained = training and m["name"] == f"cross-encoder:{_short_name(training['out'])}"
        rows.append([m["name"], pw["scale"], _fmt(pw.get("auc")), _fmt(best.get("f1")), _fmt(best.get("kappa")),
                     _fmt(default.get("threshold")), _fmt(default.get("kappa")), _fmt(kpa.get("strict")),
                     _fmt(kpa.get("relaxed")), f"{training['wall_s'] / 60:.1f} min" if trained else "-"])
    return rows


def print_tables(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    d = report["data"]
    console.print(
        f"ArgKP {d['split']}: {d['pairs']} labelled pairs ({d['matches']} matches, base rate {d['base_rate']:.3f}), "
        f"{d['tasks']} topic-stance tasks, assignment cells: {d['assign_cells']}"
    )
    t = Table(title="Summary (KPA mAP: KPA-2021 shared task, Track 1)")
    for col in SUMMARY_COLUMNS:
        t.add_column(col, justify="left" if col in ("matcher", "scale") else "right")
    for row in summary_rows(report):
        t.add_row(*row)
    console.print(t)
    t = Table(title="Pairwise agreement with human labels")
    for col in ("matcher", "scale", "AUC [95% CI]", "best thr", "F1@best", "P@best", "R@best", "kappa@best",
                f"F1@{report['config']['threshold']}", f"kappa@{report['config']['threshold']}", "pairs/s"):
        t.add_column(col, justify="left" if col in ("matcher", "scale") else "right")
    for m in report["matchers"]:
        pw, best, fixed = m["pairwise"], m["pairwise"].get("best") or {}, m["pairwise"].get("fixed") or {}
        t.add_row(m["name"], pw["scale"], _auc_cell(pw), _fmt(best.get("threshold")), _fmt(best.get("f1")),
                  _fmt(best.get("precision")), _fmt(best.get("recall")), _fmt(best.get("kappa")),
                  _fmt(fixed.get("f1")), _fmt(fixed.get("kappa")), _fmt(m["timing"]["pairs_per_s"], 1))
    console.print(t)

    t = Table(title="One-to-one assignment vs human matches (per topic-stance task)")
    for col in ("matcher", "matched", "labelled", "true", "gold", "precision", "recall", "ceiling", "recall/ceiling"):
        t.add_column(col, justify="left" if col == "matcher" else "right")
    for m in report["matchers"]:
        a = m["assignment"]
        t.add_row(m["name"], str(a["matched"]), str(a["matched_labelled"]), str(a["true_matches"]),
                  str(a["gold_matches"]),
                  _fmt(a["precision"]), _fmt(a["recall"]), _fmt(a["recall_ceiling"]), _fmt(a["recall_of_ceiling"]))
    console.print(t)

    emb = [m for m in report["matchers"] if "prefilter" in m]
    if emb:
        t = Table(title="Prefilter recall of human matches (embedding top-k)")
        t.add_column("matcher")
        t.add_column("top-k per")
        for k in PREFILTER_KS:
            t.add_column(f"k={k} recall (ceiling, kept)", justify="right")
        for m in emb:
            for axis in ("per_key_point", "per_argument"):
                row = m["prefilter"][axis]
                t.add_row(m["name"], axis.removeprefix("per_").replace("_", " "),
                          *[f"{row[str(k)]['recall']:.3f} "
                            f"({row[str(k)]['ceiling']:.3f}, {row[str(k)]['kept_fraction']:.2f})"
                            for k in PREFILTER_KS])
        console.print(t)


def markdown_tables(report: dict[str, Any]) -> str:
    """The same tables as GitHub markdown (for benchmarks/RESULTS.md)."""
    thr = report["config"]["threshold"]
    lines = ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|---|---|" + "---:|" * (len(SUMMARY_COLUMNS) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(report)]
    lines += ["", "| matcher | scale | AUC [95% CI] | best thr | F1@best | P@best | R@best | kappa@best | "
             f"F1@{thr} | kappa@{thr} | pairs/s |", "|---|---|" + "---:|" * 9]
    for m in report["matchers"]:
        pw, best, fixed = m["pairwise"], m["pairwise"].get("best") or {}, m["pairwise"].get("fixed") or {}
        lines.append("| " + " | ".join([
            m["name"], pw["scale"], _auc_cell(pw), _fmt(best.get("threshold")), _fmt(best.get("f1")),
            _fmt(best.get("precision")), _fmt(best.get("recall")), _fmt(best.get("kappa")), _fmt(fixed.get("f1")),
            _fmt(fixed.get("kappa")), _fmt(m["timing"]["pairs_per_s"], 1)]) + " |")
    lines += ["", "| matcher | matched | matched & labelled | true matches | gold matches | precision | recall | "
              "recall ceiling | recall / ceiling |", "|---|" + "---:|" * 8]
    for m in report["matchers"]:
        a = m["assignment"]
        lines.append("| " + " | ".join([
            m["name"], str(a["matched"]), str(a["matched_labelled"]), str(a["true_matches"]), str(a["gold_matches"]),
            _fmt(a["precision"]), _fmt(a["recall"]), _fmt(a["recall_ceiling"]), _fmt(a["recall_of_ceiling"])]) + " |")
    emb = [m for m in report["matchers"] if "prefilter" in m]
    if emb:
        lines += ["",
                  "| matcher | top-k per | " + " | ".join(f"k={k} recall (ceiling; kept)" for k in PREFILTER_KS) + " |",
                  "|---|---|" + "---:|" * len(PREFILTER_KS)]
        for m in emb:
            for axis in ("per_key_point", "per_argument"):
                row = m["prefilter"][axis]
                lines.append("| " + " | ".join([m["name"], axis.removeprefix("per_").replace("_", " "), *[
                    f"{row[str(k)]['recall']:.3f} ({row[str(k)]['ceiling']:.3f}; {row[str(k)]['kept_fraction']:.2f})"
                    for k in PREFILTER_KS]]) + " |")
    return "\n".join(lines) + "\n"


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------


def train_on_argkp(out: str, split: str, data_path: str | None, recipe: dict[str, Any] | None, base: str | None,
                   max_pairs: int | None, seed: int, log: Any, undecided: float | None = None) -> dict[str, Any]:
    """Train a cross-encoder on the ArgKP train labels (``rationalerm.training``, its default recipe unless told).

    ``undecided``: also train on the unlabelled (annotators undecided) pairs of each group, with this label.
    """
    from rationalerm.datasets.argkp import label_records
    from rationalerm.training.labels import LabelSet, PairLabel
    from rationalerm.training.recipe import Recipe
    from rationalerm.training.trainer import train

    if split != "dev":
        raise SystemExit("--train-cross-encoder trains on ArgKP train and evaluates on dev: use --split dev")
    data = load_argkp("train", data_path or shared_argkp_path()).sample(max_pairs, seed)  # type: ignore[arg-type]
    rows = label_records(data, undecided)
    labels = LabelSet([PairLabel(str(r["human"]), str(r["item"]), float(r["label"]),  # type: ignore[arg-type]
                                 f"argkp-train:{k + 1}")
                       for k, r in enumerate(rows)],
                      [f"{data.path} (train{', undecided=' + str(undecided) if undecided is not None else ''})"],
                      ["labels"])
    rec = Recipe(**(recipe or {}))
    last = [0.0]

    def progress(step: int, total: int, loss: float) -> None:
        now = time.perf_counter()
        if step == total or now - last[0] > 30:
            last[0] = now
            log(f"[quality] training: step {step}/{total}, loss {loss:.4f}")

    log(f"[quality] training a cross-encoder on ArgKP train ({len(labels.pairs)} pairs) into {out} ...")
    load_start = _load_average()
    t0 = time.perf_counter()
    res = train(labels, out, base=base, recipe=rec, overwrite=True, progress=progress, log=log)
    wall = time.perf_counter() - t0
    card = res.card
    log(f"[quality] trained in {wall:.0f}s (optimizer steps {card['timing']['train_s']:.0f}s)")
    import torch

    return {"out": str(out), "wall_s": wall, "train_s": card["timing"]["train_s"], "device": card["device"],
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average_start": load_start, "load_average_end": _load_average(), "recipe": card["recipe"],
            "data": card["data"],
            "validation": card["validation"], "threshold": card["threshold"], "base_model": card["base_model"]}


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run(
    *,
    split: str = "dev",
    data_path: str | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
    default_embedding: bool = True,
    embeddings: Sequence[str] = (),
    llms: Sequence[str] = (),
    llm_backend: str = "vllm",
    llm_engine_args: dict[str, Any] | None = None,
    llm_batch_size: int | None = None,
    llm_dtype: str | None = None,
    embedding_threshold: float = 0.5,
    threshold: float = 0.5,
    min_score: float = 0.0,
    assign_cells: str = "all",
    bootstrap: int = 200,
    cross_encoders: Sequence[str] = (),
    train_cross_encoder: str | None = None,
    train_recipe: dict[str, Any] | None = None,
    train_base: str | None = None,
    train_max_pairs: int | None = None,
    train_undecided: float | None = None,
    log: Any = print,
) -> dict[str, Any]:
    from rationalerm.judges.cross_encoder import CrossEncoderJudgeConfig
    from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig
    from rationalerm.judges.llm import LLMJudgeConfig

    if assign_cells not in ("all", "labelled"):
        raise ValueError("assign_cells must be all or labelled")
    data = load_argkp(split, data_path or shared_argkp_path()).sample(max_pairs, seed)  # type: ignore[arg-type]
    cells = build_cells(data, assign_cells)
    n_pairs, n_matches = len(data.pairs), data.n_matches
    report: dict[str, Any] = {
        "benchmark": "quality/argkp",
        "config": {"split": split, "max_pairs": max_pairs, "seed": seed, "threshold": threshold,
                   "embedding_threshold": embedding_threshold, "min_score": min_score, "assign_cells": assign_cells,
                   "bootstrap": bootstrap,
                   "llm_backend": llm_backend if llms else None, "llm_engine_args": llm_engine_args or {}},
        "data": {"path": str(data.path), "split": split, "pairs": n_pairs, "matches": n_matches,
                 "base_rate": n_matches / n_pairs if n_pairs else 0.0, "tasks": len(data.tasks),
                 "topics": len(data.topics), "cells": int(sum(m.sum() for m in cells.masks)),
                 "assign_cells": assign_cells},
        "matchers": [],
    }

    if train_cross_encoder:
        report["training"] = train_on_argkp(train_cross_encoder, split, data_path, train_recipe, train_base,
                                            train_max_pairs, seed, log, train_undecided)
        cross_encoders = [train_cross_encoder, *cross_encoders]

    specs: list[tuple[str, str, Any]] = []
    if default_embedding:
        specs.append(("embedding:all-MiniLM-L6-v2 (default)", "embedding",
                      EmbeddingJudgeConfig(threshold=embedding_threshold)))
    for path in embeddings:
        specs.append((f"embedding:{_short_name(path)}", "embedding",
                      EmbeddingJudgeConfig(model=str(path), threshold=embedding_threshold)))
    for path in llms:
        backend: dict[str, Any] = {"type": llm_backend}
        if llm_backend == "vllm":
            backend["engine_args"] = dict(llm_engine_args or {})
        if llm_dtype:
            backend["dtype"] = llm_dtype
        if llm_backend == "transformers":
            backend["device"] = "cpu"
        cfg_kwargs: dict[str, Any] = {"backend": backend, "model": str(path), "protocol": "pairwise"}
        if llm_batch_size:
            cfg_kwargs["batch_size"] = llm_batch_size
        specs.append((f"llm:{_short_name(path)} ({llm_backend})", "llm", LLMJudgeConfig(**cfg_kwargs)))
    for path in cross_encoders:
        specs.append((f"cross-encoder:{_short_name(path)}", "cross-encoder", CrossEncoderJudgeConfig(model=str(path))))

    for name, kind, cfg in specs:
        log(f"[quality] {name}: judging {len(cells.unique_pairs())} pairs ...")
        t0 = time.perf_counter()
        default_threshold = None
        if kind == "embedding":
            judge = EmbeddingJudge(cfg)
            default_threshold = cfg.threshold
        elif kind == "cross-encoder":
            from rationalerm.judges.cross_encoder import CrossEncoderJudge

            judge = CrossEncoderJudge(cfg)
            default_threshold = judge.threshold
        else:
            from rationalerm.judges.llm import make_llm_judge

            judge = make_llm_judge(cfg)
        try:
            res = evaluate_matcher(name, kind, judge, cells, fixed_threshold=threshold, min_score=min_score,
                                   bootstrap=bootstrap, seed=seed, load_s=time.perf_counter() - t0,
                                   default_threshold=default_threshold)
        finally:
            judge.close()
        # The shared task's metric needs every (argument, key point) cell of every group scored.
        res["kpa_map"]["official"] = assign_cells == "all" and max_pairs is None
        log(f"[quality] {name}: load {res['timing']['load_s']:.1f}s, judging {res['timing']['seconds']:.1f}s")
        report["matchers"].append(res)
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--split", choices=["dev", "train", "all"], default="dev")
    ap.add_argument("--data", default=None, help="ArgKP folder (default $RATIONALERM_ARGKP or ../shared/data/argkp)")
    ap.add_argument("--max-pairs", type=int, default=None, help="label-stratified subsample of labelled pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-default-embedding", action="store_true", help="skip the packaged all-MiniLM-L6-v2")
    ap.add_argument("--embedding", action="append", default=[], metavar="PATH",
                    help="another local sentence-transformers model (repeatable)")
    ap.add_argument("--llm", action="append", default=[], metavar="PATH", help="local LLM judge model (repeatable)")
    ap.add_argument("--llm-backend", choices=["vllm", "transformers"], default="vllm")
    ap.add_argument("--llm-engine-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="vllm.LLM engine argument, value parsed as JSON when possible (repeatable)")
    ap.add_argument("--llm-batch-size", type=int, default=None)
    ap.add_argument("--llm-dtype", default=None)
    ap.add_argument("--embedding-threshold", type=float, default=0.5,
                    help="embedding judge threshold (cosine -> score map used for the assignment)")
    ap.add_argument("--threshold", type=float, default=0.5, help="fixed threshold reported beside the best one")
    ap.add_argument("--min-score", type=float, default=0.0, help="assignment floor (scores below are never matched)")
    ap.add_argument("--assign-cells", choices=["all", "labelled"], default="all")
    ap.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the AUC interval (0: none)")
    ap.add_argument("--cross-encoder", action="append", default=[], metavar="DIR",
                    help="a trained cross-encoder folder (rationalerm train --out), repeatable")
    ap.add_argument("--train-cross-encoder", default=None, metavar="DIR",
                    help="first train a cross-encoder on ArgKP train (rationalerm's default recipe) into DIR, timed, "
                    "then evaluate it on --split dev beside the other matchers")
    ap.add_argument("--train-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="override a training recipe field (epochs, lr, batch_size, max_length, pos_weight, ...)")
    ap.add_argument("--train-base", default=None,
                    help="base encoder for --train-cross-encoder (default: packaged MiniLM)")
    ap.add_argument("--train-max-pairs", type=int, default=None, help="train on a label-stratified subsample")
    ap.add_argument("--train-undecided", type=float, default=None, metavar="LABEL",
                    help="also train on the unlabelled (annotators undecided) pairs of ArgKP train, with this label")
    ap.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown instead of rich tables")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report = run(split=args.split, data_path=args.data, max_pairs=args.max_pairs, seed=args.seed,
                 default_embedding=not args.no_default_embedding, embeddings=args.embedding, llms=args.llm,
                 llm_backend=args.llm_backend, llm_engine_args=_parse_engine_args(args.llm_engine_arg),
                 llm_batch_size=args.llm_batch_size, llm_dtype=args.llm_dtype,
                 embedding_threshold=args.embedding_threshold, threshold=args.threshold,
                 min_score=args.min_score, assign_cells=args.assign_cells, bootstrap=args.bootstrap,
                 cross_encoders=args.cross_encoder, train_cross_encoder=args.train_cross_encoder,
                 train_recipe=_parse_engine_args(args.train_arg, "--train-arg"), train_base=args.train_base,
                 train_max_pairs=args.train_max_pairs, train_undecided=args.train_undecided, log=log)
    report["command"] = " ".join(["python", "benchmarks/quality.py", *(argv if argv is not None else sys.argv[1:])])
    if args.markdown:
        print(markdown_tables(report), end="")
    else:
        print_tables(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        tmp.replace(args.out)
        log(f"[quality] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
