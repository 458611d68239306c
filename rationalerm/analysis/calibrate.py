"""Pick the embedding threshold and the prefilter's k that best agree with a reference (DESIGN.md step 8).

The reference is an LLM run (its cells scoring >= ``match_threshold`` are matches) or human gold labels.
A cell is an embedding match when its mapped score reaches ``match_threshold`` (the same rule
``rationalerm compare`` applies), so the threshold is chosen by Cohen's kappa of that decision against
the reference, and a run with the chosen config compares to the reference with that kappa. The
per-sample RC error at each threshold is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rationalerm._util.files import atomic_write_bytes
from rationalerm.analysis.compare import binary_agreement
from rationalerm.config import RunConfig, load_config
from rationalerm.errors import RationaleRMError
from rationalerm.judges.embedding import Embedder, cosine_to_score
from rationalerm.judges.prefilter import topk_keep
from rationalerm.runs.directory import SavedRun
from rationalerm.runs.gold import GoldLabels, gold_cells
from rationalerm.scoring.metrics import score_matrices

DEFAULT_THRESHOLDS = tuple(round(t, 3) for t in np.arange(0.2, 0.951, 0.025))


def _reference(run: SavedRun, gold: GoldLabels | None, match_threshold: float) -> dict[Any, np.ndarray]:
    """Per unit the reference labels: 1 match, 0 no match, NaN unknown."""
    if gold is not None:
        return gold_cells(run, gold)
    out = {}
    for key in run.units:
        w = run.matrix(key)
        if w is not None:
            out[key] = (w >= match_threshold).astype(float)
    return out


def calibrate(
    run: SavedRun, *, gold: GoldLabels | None = None, embedder: Embedder | None = None,
    match_threshold: float = 0.5, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, mapping: str = "linear",
    ks: Sequence[int] = (1, 2, 3, 4, 5), floors: Sequence[float] = (0.2, 0.3, 0.4, 0.5),
    target_recall: float = 0.95,
) -> dict[str, Any]:
    ref = _reference(run, gold, match_threshold)
    if not ref:
        raise RationaleRMError(f"{run.path}: no scored unit to calibrate against")
    keys = sorted(ref)
    embedder = embedder or Embedder()
    embedder.embed(list(dict.fromkeys(t for k in keys for t in (*run.units[k]["human"], *run.units[k]["items"]))))
    cos = {k: embedder.cosine(run.units[k]["human"], run.units[k]["items"]) for k in keys}
    known = {k: ~np.isnan(ref[k]) for k in keys}
    ref_flat = np.concatenate([ref[k][known[k]] for k in keys]).astype(bool)
    ref_rc = {k: float(run.units[k]["recall"]) for k in keys if gold is None}

    grid = []
    for t in thresholds:
        pred = np.concatenate([(cosine_to_score(cos[k], t, mapping) >= match_threshold)[known[k]] for k in keys])
        row = {"threshold": float(t), **binary_agreement(pred, ref_flat)}
        if ref_rc:
            rc = [s.recall for s in score_matrices([cosine_to_score(cos[k], t, mapping) for k in ref_rc])]
            row["rc_mae"] = float(np.mean(np.abs(np.array(rc) - np.array(list(ref_rc.values())))))
        grid.append(row)
    best = max(grid, key=lambda r: (r["kappa"] if r["kappa"] is not None else -2.0, -r["threshold"]))

    def kept_recall(mask_of: Any) -> dict[str, float]:
        masks = {k: mask_of(cos[k]) for k in keys}
        pos = np.concatenate([masks[k][known[k] & (ref[k] == 1)] for k in keys])
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.size for m in masks.values())
        return {"recall": float(pos.mean()) if pos.size else float("nan"), "kept_fraction": kept / total}

    topk = [{"top_k": k, **kept_recall(lambda c, k=k: topk_keep(c, k, None))} for k in ks]
    floor = [{"min_cosine": f, **kept_recall(lambda c, f=f: topk_keep(c, None, f))} for f in floors]
    # The cheapest rule (fewest cells kept) that keeps the target share of reference matches.
    good = [r for r in (*topk, *floor) if r["recall"] >= target_recall]
    chosen = min(good, key=lambda r: r["kept_fraction"]) if good else max(topk, key=lambda r: r["recall"])
    rule = {"top_k": chosen.get("top_k"), "min_cosine": chosen.get("min_cosine"), **chosen}
    return {
        "reference": "gold" if gold is not None else str(run.path), "units": len(keys),
        "reference_matches": int(ref_flat.sum()), "labelled_pairs": int(ref_flat.size),
        "match_threshold": match_threshold, "thresholds": grid, "best": best,
        "prefilter": {"top_k": topk, "min_cosine": floor, "target_recall": target_recall, "chosen": rule},
    }


def write_calibrated_config(result: dict[str, Any], dest: str | Path, base: str | Path | None = None) -> RunConfig:
    """The base config (default: the embedded default) with the chosen threshold and prefilter k."""
    cfg = load_config(base)
    if cfg.judge.type == "embedding":
        cfg.judge.threshold = result["best"]["threshold"]
    rule = result["prefilter"]["chosen"]
    cfg.prefilter.top_k, cfg.prefilter.min_cosine = rule["top_k"], rule["min_cosine"]
    if cfg.judge.type == "llm":
        cfg.prefilter.enabled = True
    which = f"top_k {rule['top_k']}" if rule["top_k"] is not None else f"min_cosine {rule['min_cosine']}"
    header = (f"# written by `rationalerm calibrate` against {result['reference']}: embedding threshold "
              f"{result['best']['threshold']} (kappa {result['best']['kappa']}), prefilter {which} "
              f"(recall {rule['recall']:.3f} of the reference matches, {rule['kept_fraction']:.3f} of pairs kept)\n")
    atomic_write_bytes(dest, (header + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)).encode("utf-8"))
    return cfg
