"""Pick the embedding threshold and the prefilter's k that best agree with a reference (DESIGN.md step 8).

The reference is an LLM run (its cells scoring >= ``match_threshold`` are matches) or human gold labels.
A cell is an embedding match when its mapped score reaches ``match_threshold`` (the same rule
``rationalerm compare`` applies), so the threshold is chosen by Cohen's kappa of that decision against
the reference, and a run with the chosen config compares to the reference with that kappa. The
per-sample RC error at each threshold is reported beside it. Kappa and recall follow ``agreement``'s
convention: undefined (None) when the reference or the decision has a single class; such a row is never best.

The cosines are those of the texts as the calibrated judge sees them: with ``canonical_references`` (the judge
config's key, on by default) response references are rewritten first (``scoring/references.py``), as the judge and
the prefilter do, so the chosen threshold and prefilter rule are the ones that judge needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np
import yaml

from rationalerm._util.files import atomic_write_bytes
from rationalerm._util.numbers import fmt
from rationalerm.analysis.agreement import BinaryAgreement, Confusion, binary_agreement
from rationalerm.config import RunConfig, load_config
from rationalerm.errors import ConfigError, RationaleRMError
from rationalerm.judges.base import JudgeConfig
from rationalerm.judges.embedding import Embedder, EmbeddingJudgeConfig, cosine_to_score
from rationalerm.judges.prefilter import topk_keep
from rationalerm.runs.directory import SavedRun, UnitKey, one_row_per_unit
from rationalerm.runs.gold import MATCH_AT, GoldLabels, gold_cells
from rationalerm.scoring.metrics import score_matrices
from rationalerm.scoring.references import canonical_references as canonical_text

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(float(round(t, 3)) for t in np.arange(0.2, 0.951, 0.025))


class ThresholdRow(BinaryAgreement):
    """One embedding threshold: its decisions against the reference (and, against a run, the RC error)."""

    threshold: float
    rc_mae: NotRequired[float]


class TopKRow(TypedDict):
    top_k: int
    recall: float | None
    kept_fraction: float


class FloorRow(TypedDict):
    min_cosine: float
    recall: float | None
    kept_fraction: float


class PrefilterRule(TypedDict):
    """The chosen rule: one of ``top_k`` / ``min_cosine`` is set, the other None."""

    top_k: int | None
    min_cosine: float | None
    recall: float | None
    kept_fraction: float


class PrefilterChoice(TypedDict):
    top_k: list[TopKRow]
    min_cosine: list[FloorRow]
    target_recall: float
    chosen: PrefilterRule


class Calibration(TypedDict):
    """``calibrate``'s result (what ``--json`` writes)."""

    reference: str
    units: int
    reference_matches: int
    labelled_pairs: int
    match_threshold: float
    canonical_references: bool
    thresholds: list[ThresholdRow]
    best: ThresholdRow
    prefilter: PrefilterChoice
    embedding_model: NotRequired[str]


@dataclass(frozen=True)
class _Reference:
    """Per unit (sorted) the reference labels (1 match, 0 no match, NaN unknown) and the embedding cosines;
    ``truth`` is the known labels flat, in the order ``at_known`` flattens a decision."""

    labels: dict[UnitKey, np.ndarray]
    cosines: dict[UnitKey, np.ndarray]
    known: dict[UnitKey, np.ndarray]
    truth: np.ndarray

    @classmethod
    def build(cls, labels: dict[UnitKey, np.ndarray], cosines: dict[UnitKey, np.ndarray]) -> _Reference:
        known = {k: ~np.isnan(v) for k, v in labels.items()}
        return cls(labels, cosines, known, np.concatenate([labels[k][known[k]] for k in labels]) >= MATCH_AT)

    def at_known(self, per_unit: Mapping[UnitKey, np.ndarray]) -> np.ndarray:
        """A per-unit decision at the known cells, flat (aligned with ``truth``)."""
        return np.concatenate([per_unit[k][self.known[k]] for k in self.labels])


def _reference_labels(run: SavedRun, gold: GoldLabels | None, match_threshold: float) -> dict[UnitKey, np.ndarray]:
    """Per unit the reference labels: 1 match, 0 no match, NaN unknown."""
    if gold is not None:
        return gold_cells(run, gold)
    return {key: (w >= match_threshold).astype(float) for key in run.units if (w := run.matrix(key)) is not None}


def _cosines(run: SavedRun, keys: Sequence[UnitKey], embedder: Embedder,
             canonical: bool) -> dict[UnitKey, np.ndarray]:
    """Per unit the cosines of its texts as the judge sees them (references rewritten when ``canonical``)."""
    seen = canonical_text if canonical else str
    texts = {k: ([seen(t) for t in run.units[k]["human"]], [seen(t) for t in run.units[k]["items"]]) for k in keys}
    embedder.embed(list(dict.fromkeys(t for human, items in texts.values() for t in (*human, *items))))
    return {k: embedder.cosine(*texts[k]) for k in keys}


def _threshold_grid(ref: _Reference, ref_rc: dict[UnitKey, float], thresholds: Sequence[float], mapping: str,
                    match_threshold: float) -> list[ThresholdRow]:
    grid: list[ThresholdRow] = []
    for t in thresholds:
        scores = {k: cosine_to_score(c, t, mapping) for k, c in ref.cosines.items()}
        pred = ref.at_known({k: w >= match_threshold for k, w in scores.items()})
        row: ThresholdRow = {"threshold": float(t), **binary_agreement(pred, ref.truth)}
        if ref_rc:
            rc = [s.recall for s in score_matrices([scores[k] for k in ref_rc])]
            row["rc_mae"] = float(np.mean(np.abs(np.array(rc) - np.array(list(ref_rc.values())))))
        grid.append(row)
    return grid


def _kept(ref: _Reference, top_k: int | None, min_cosine: float | None) -> tuple[float | None, float]:
    """(share of reference matches a prefilter rule keeps, share of all cells it keeps)."""
    masks = {k: topk_keep(c, top_k, min_cosine) for k, c in ref.cosines.items()}
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values())
    return Confusion.of(ref.at_known(masks), ref.truth).recall, kept


def _chosen(topk: list[TopKRow], floor: list[FloorRow], target_recall: float) -> PrefilterRule:
    """The cheapest rule (fewest cells kept) that keeps the target share of reference matches, else the best top-k."""
    rules: list[PrefilterRule] = [{"top_k": r["top_k"], "min_cosine": None, "recall": r["recall"],
                                   "kept_fraction": r["kept_fraction"]} for r in topk]
    rules += [{"top_k": None, "min_cosine": r["min_cosine"], "recall": r["recall"],
               "kept_fraction": r["kept_fraction"]} for r in floor]
    good = [r for r in rules if r["recall"] is not None and r["recall"] >= target_recall]
    if good:
        return min(good, key=lambda r: r["kept_fraction"])
    return max(rules[: len(topk)], key=lambda r: r["recall"] if r["recall"] is not None else -1.0)


def _prefilter(ref: _Reference, ks: Sequence[int], floors: Sequence[float], target_recall: float) -> PrefilterChoice:
    topk: list[TopKRow] = []
    for k in ks:
        recall, kept = _kept(ref, k, None)
        topk.append({"top_k": k, "recall": recall, "kept_fraction": kept})
    floor: list[FloorRow] = []
    for f in floors:
        recall, kept = _kept(ref, None, f)
        floor.append({"min_cosine": f, "recall": recall, "kept_fraction": kept})
    return {"top_k": topk, "min_cosine": floor, "target_recall": target_recall,
            "chosen": _chosen(topk, floor, target_recall)}


def calibrate(
    run: SavedRun, *, gold: GoldLabels | None = None, embedder: Embedder | None = None,
    match_threshold: float = 0.5, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, mapping: str = "linear",
    ks: Sequence[int] = (1, 2, 3, 4, 5), floors: Sequence[float] = (0.2, 0.3, 0.4, 0.5),
    target_recall: float = 0.95, canonical_references: bool = True,
) -> Calibration:
    """``canonical_references``: the calibrated judge config's key (its default is on); the CLI passes the base
    config's."""
    labels = _reference_labels(one_row_per_unit(run, "calibrate"), gold, match_threshold)
    if not labels:
        raise RationaleRMError(f"{run.path}: no scored unit to calibrate against")
    keys = sorted(labels)
    cosines = _cosines(run, keys, embedder or Embedder(), canonical_references)
    ref = _Reference.build({k: labels[k] for k in keys}, cosines)
    ref_rc = {k: float(run.units[k]["recall"]) for k in keys if gold is None}
    grid = _threshold_grid(ref, ref_rc, thresholds, mapping, match_threshold)
    best = max(grid, key=lambda r: (r["kappa"] if r["kappa"] is not None else -2.0, -r["threshold"]))
    return {
        "reference": "gold" if gold is not None else str(run.path), "units": len(keys),
        "reference_matches": int(ref.truth.sum()), "labelled_pairs": int(ref.truth.size),
        "match_threshold": match_threshold, "canonical_references": canonical_references, "thresholds": grid,
        "best": best,
        "prefilter": _prefilter(ref, ks, floors, target_recall),
    }


def write_calibrated_config(result: Calibration, dest: str | Path, base: str | Path | None = None) -> RunConfig:
    """The base config (default: the embedded default) with the chosen threshold and prefilter rule, enabled. The
    base must apply the reference rule as the calibration did (else the threshold fits texts its judge never sees)."""
    cfg = load_config(base)
    judge: JudgeConfig = cfg.judge
    if judge.canonical_references != result["canonical_references"]:
        state = "on" if result["canonical_references"] else "off"
        raise ConfigError(f"{base or '<default>'}: judge.canonical_references is {judge.canonical_references} but "
                          f"the calibration embedded the texts with the reference rule {state}; calibrate against "
                          f"this base config")
    if isinstance(judge, EmbeddingJudgeConfig):
        judge.threshold = result["best"]["threshold"]
    rule = result["prefilter"]["chosen"]
    cfg.prefilter.enabled = False  # each assignment is validated: set the rule first
    cfg.prefilter.top_k, cfg.prefilter.min_cosine = rule["top_k"], rule["min_cosine"]
    cfg.prefilter.enabled = True  # the rule the header reports is the rule the config runs (in front of any judge)
    which = f"top_k {rule['top_k']}" if rule["top_k"] is not None else f"min_cosine {rule['min_cosine']}"
    header = (f"# written by `rationalerm calibrate` against {result['reference']}: embedding threshold "
              f"{result['best']['threshold']} (kappa {result['best']['kappa']}), prefilter {which} "
              f"(recall {fmt(rule['recall'])} of the reference matches, {fmt(rule['kept_fraction'])} of pairs kept)\n")
    atomic_write_bytes(dest, (header + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)).encode("utf-8"))
    return cfg
