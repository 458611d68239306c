"""Correct a run's figures with an audit (DESIGN.md "Trusting a matcher"): PPI++ over the matcher's per-sample metric.

The matcher's metric ``f`` is known on every valid unit of the run; the gold metric ``y`` (people's labels, or a
strong judge's run on a subset) on the audited units, scored by the run's own rules (``score_matrices`` with its
scoring settings: same assignment, same tie rule). A unit is audited only when every cell of its grid has a gold
label. Per model (and per domain, and for paired model differences on the same samples) the result gives

- ``raw``: the run's own mean and bootstrap interval (what ``run`` prints);
- ``gold_only``: the classical mean and CLT interval of the audited units alone;
- ``corrected``: the PPI++ estimate (``ppi.ppi_mean``, power-tuned lambda, finite-population correction when the
  audit is at least ``FPC_SHARE`` of its stratum), with ``rho`` (per-sample correlation of gold and matcher),
  ``lambda`` and ``effective_gain``: the number of audited units a gold-only interval would need to be as narrow,
  ``n_gold * (gold-only width / corrected width)^2``.

``rationalerm estimate`` also saves its result in the run directory (``estimate.json``: ``SavedEstimate``, with the
sha256 of the run's results and figures and of the gold it used), so the HTML report can show the corrected figures
beside the raw ones; ``saved_estimate`` reads it back and says when it no longer matches the run (a re-score or a
resume that changed the results since) or its gold.

Strata: units without a grid (no model items) score the same under any judge, so they form a census stratum
(gold = matcher). An audit stratified by domain (``audit.jsonl``'s ``stratum``) weights each domain by its share of
the units; otherwise the audited units are a uniform sample. A stratum with fewer than 2 audited units cannot carry
its own variance: then the strata are pooled (uniform) and a warning says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
from scipy.stats import norm

from rationalerm._util.files import read_json, write_json
from rationalerm._util.hashing import file_sha256
from rationalerm.analysis.agreement import BinaryAgreement, binary_agreement, correlation
from rationalerm.analysis.audit import AuditUnit, read_units
from rationalerm.analysis.ppi import audits_needed, ppi_mean
from rationalerm.errors import LoadError, OutputError
from rationalerm.runs.directory import METRICS as METRICS_JSON
from rationalerm.runs.directory import RESULTS, SavedRun, UnitKey, load_run, one_row_per_unit
from rationalerm.runs.gold import gold_cells, load_gold
from rationalerm.scoring.metrics import score_matrices
from rationalerm.scoring.rows import row_status

Metric = Literal["recall", "precision", "f1", "ap"]
METRICS: tuple[Metric, ...] = ("recall", "precision", "f1", "ap")
FPC_SHARE = 0.05
"""An audit of at least this share of its stratum gets the finite-population correction (the survey rule)."""
MIN_AUDITED = 10
"""Fewer audited units than this: a warning (the CLT interval is not to be trusted)."""
THRESHOLD = 0.5
"""A cell at or above this is a match, for the pair-level agreement (``compare``'s default)."""
CENSUS = "\x00no grid"


class Interval(TypedDict):
    mean: float | None
    ci: list[float] | None


Estimate = TypedDict("Estimate", {
    "raw": Interval, "gold_only": Interval, "corrected": Interval, "n": int, "n_gold": int, "rho": float | None,
    "lambda": float | None, "effective_gain": float | None})


class ModelEstimate(Estimate, total=False):
    metric: Metric
    agreement: BinaryAgreement
    by_domain: dict[str, Estimate]


class EstimateResult(TypedDict):
    models: dict[str, ModelEstimate]
    differences: dict[str, Estimate]


@dataclass
class Audit:
    """The gold side aligned with a run: per audited unit its gold matrix, and whether the draw was stratified by
    domain (then each domain is a stratum, weighted by its share of the units)."""

    gold: dict[UnitKey, np.ndarray]
    by_domain: bool = False
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# Reading the gold side
# ---------------------------------------------------------------------------------------------------------------


def read_audit(run: SavedRun, gold: str | Path, audit: str | Path | None = None) -> Audit:
    """The audited units of ``run``: from a labels file or a (strong judge's) run directory."""
    one_row_per_unit(run, "estimate")
    found = _gold_from_run(run, Path(gold)) if Path(gold).is_dir() else _gold_from_labels(run, Path(gold))
    if not found.gold:
        raise LoadError(f"{gold}: no unit of {run.path} has every cell of its grid labelled")
    if audit is not None:
        _apply_audit(found, read_units(Path(audit)), str(audit))
    return found


def _gold_from_labels(run: SavedRun, path: Path) -> Audit:
    labels = load_gold(path)
    named = {(k[0], k[1]) for k in labels.by_index} & set(run.units)
    if labels.by_index and not named:
        raise LoadError(f"{path}: names no (id, model) unit of {run.path}")
    for (sid, model, i, j), where in labels.where.items():
        row = run.units.get((sid, model))
        if row is not None and not (0 <= i < len(row["human"]) and 0 <= j < len(row["items"])):
            raise LoadError(f"{where}: cell ({i}, {j}) is outside the {len(row['human'])} x {len(row['items'])} grid "
                            f"of id {sid!r} model {model!r}")
    out = Audit({})
    cells = gold_cells(run, labels)
    out.gold = {k: g for k, g in cells.items() if g.size and not np.isnan(g).any()}
    if partly := len(cells) - len(out.gold):
        out.warnings.append(f"{path}: {partly} unit(s) partly labelled, left out (a unit counts when every cell is)")
    return out


def _gold_from_run(run: SavedRun, path: Path) -> Audit:
    strong = one_row_per_unit(load_run(path), "estimate")
    out = Audit({})
    for key, row in run.units.items():
        other = strong.units.get(key)
        if other is None or not row["items"]:
            continue
        if other["human"] != row["human"] or other["items"] != row["items"]:
            raise LoadError(f"{path}: id {key[0]!r} model {key[1]!r} has other texts than in {run.path}")
        if (w := strong.matrix(key)) is not None:
            out.gold[key] = w
    if not out.gold:
        raise LoadError(f"{path}: shares no scored unit with {run.path}")
    return out


def _apply_audit(found: Audit, units: Sequence[AuditUnit], where: str) -> None:
    """Keep the labelled units the audit drew; strata when it was stratified by domain (by model: uniform within)."""
    drawn = {(u.id, u.model): u for u in units}
    extra = [k for k in found.gold if k not in drawn]
    for k in extra:
        del found.gold[k]
    if extra:
        found.warnings.append(f"{len(extra)} labelled unit(s) not drawn in {where}: left out")
    if any(u.stratum is not None and u.stratum == str(u.domain) and u.stratum != u.model for u in units):
        found.by_domain = True


# ---------------------------------------------------------------------------------------------------------------
# The estimator over one population
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Population:
    """One target: the matcher's per-unit value ``f``, its stratum, and the gold value where audited (NaN else)."""

    f: np.ndarray
    y: np.ndarray
    strata: np.ndarray


def _z(confidence: float) -> float:
    return float(norm.ppf(0.5 + confidence / 2.0))


def _interval(mean: float, se: float, z: float) -> Interval:
    return {"mean": mean, "ci": [mean - z * se, mean + z * se]}


NONE: Interval = {"mean": None, "ci": None}


def _stratum_terms(pop: Population, confidence: float) -> list[tuple[float, float, float, float, float, float]]:
    """Per stratum: (weight, corrected mean, its se, lambda, gold-only mean, its se)."""
    out = []
    for h in np.unique(pop.strata):
        sel = pop.strata == h
        f, y = pop.f[sel], pop.y[sel]
        aud = ~np.isnan(y)
        n, big_n = int(aud.sum()), int(sel.sum())
        fpc = n / big_n >= FPC_SHARE
        est = ppi_mean(y[aud], f[aud], f, confidence, fpc=fpc)
        shrink = max(0.0, 1.0 - n / big_n) if fpc else 1.0
        gold_se = float(np.std(y[aud], ddof=1) * np.sqrt(shrink / n)) if n > 1 else 0.0
        out.append((big_n / len(pop.f), est.mean, est.se, est.lam, float(y[aud].mean()), gold_se))
    return out


def estimate(pop: Population, confidence: float, raw: Interval) -> tuple[Estimate, list[str]]:
    """raw / gold_only / corrected of one population; strata pooled (with a warning) when one is too thin."""
    notes: list[str] = []
    aud = ~np.isnan(pop.y) & (pop.strata != CENSUS)
    n_gold, z = int(aud.sum()), _z(confidence)
    base: Estimate = {"raw": raw, "gold_only": NONE, "corrected": NONE, "n": len(pop.f), "n_gold": n_gold,
                      "rho": None, "lambda": None, "effective_gain": None}
    if n_gold < 2:
        return base, [f"{n_gold} audited unit(s): no interval"]
    if n_gold < MIN_AUDITED:
        notes.append(f"only {n_gold} audited units (fewer than {MIN_AUDITED}): the intervals are rough")
    if any(np.sum(aud & (pop.strata == h)) < 2 for h in np.unique(pop.strata) if h != CENSUS):
        notes.append("a stratum has fewer than 2 audited units: strata pooled (uniform sample assumed)")
        pop = Population(pop.f, pop.y, np.where(pop.strata == CENSUS, CENSUS, ""))
    terms = np.array(_stratum_terms(pop, confidence))
    w = terms[:, 0]
    corrected = _interval(float(w @ terms[:, 1]), float(np.sqrt(w**2 @ terms[:, 2] ** 2)), z)
    gold_only = _interval(float(w @ terms[:, 4]), float(np.sqrt(w**2 @ terms[:, 5] ** 2)), z)
    base.update({"gold_only": gold_only, "corrected": corrected, "rho": correlation(pop.y[aud], pop.f[aud])["pearson"],
                 "lambda": float(w @ terms[:, 3]), "effective_gain": _gain(n_gold, gold_only, corrected)})
    return base, notes


def _width(iv: Interval) -> float:
    return iv["ci"][1] - iv["ci"][0] if iv["ci"] is not None else float("nan")


def _gain(n_gold: int, gold_only: Interval, corrected: Interval) -> float | None:
    wg, wc = _width(gold_only), _width(corrected)
    return float(n_gold * (wg / wc) ** 2) if wc > 0 and np.isfinite(wg) else None


# ---------------------------------------------------------------------------------------------------------------
# A run and its audit
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Scored:
    """Per valid unit of the run: the matcher's and (audited units) the gold per-sample metric."""

    f: dict[UnitKey, float]
    y: dict[UnitKey, float]
    stratum: dict[UnitKey, str]


def score_units(run: SavedRun, audit: Audit, metric: Metric) -> Scored:
    """The matcher's metric of each valid unit (as saved) and the gold metric of the audited ones (the run's rules)."""
    valid = [k for k, row in run.units.items() if row_status(row) == "valid"]
    f = {k: float(run.units[k][metric]) for k in valid}
    audited = [k for k in valid if k in audit.gold]
    s = run.config.scoring
    golds = score_matrices([audit.gold[k] for k in audited], max_model_items=s.max_model_items,
                           min_score=s.min_score, compat=s.compat)
    y = {k: float(getattr(g, metric)) for k, g in zip(audited, golds)}
    for k in valid:
        if not run.units[k]["items"]:  # no grid: any judge scores it the same, so its gold is known
            y[k] = f[k]
    stratum = {k: CENSUS if not run.units[k]["items"] else str(run.units[k]["domain"]) if audit.by_domain else ""
               for k in valid}
    return Scored(f, y, stratum)


def _population(sc: Scored, keys: Sequence[UnitKey], uniform: bool = False) -> Population:
    y = np.array([sc.y.get(k, np.nan) for k in keys], dtype=float)
    strata = np.array([sc.stratum[k] if not uniform or sc.stratum[k] == CENSUS else "" for k in keys])
    return Population(np.array([sc.f[k] for k in keys], dtype=float), y, strata)


def _raw(run: SavedRun, values: np.ndarray) -> Interval:
    iv = run.config.scoring.bootstrap_settings().interval(values.tolist())
    return {"mean": iv.mean, "ci": [iv.low, iv.high]}


def _agreement(run: SavedRun, audit: Audit, keys: Sequence[UnitKey]) -> BinaryAgreement:
    """Pair level: every cell of the audited units, the matcher's decision against the gold one."""
    pairs = [(w, audit.gold[k]) for k in keys if k in audit.gold and (w := run.matrix(k)) is not None]
    w = np.concatenate([p[0].ravel() for p in pairs]) if pairs else np.zeros(0)
    g = np.concatenate([p[1].ravel() for p in pairs]) if pairs else np.zeros(0)
    return binary_agreement(w >= THRESHOLD, g >= THRESHOLD)


def estimate_run(run: SavedRun, audit: Audit, metric: Metric = "recall",
                 confidence: float = 0.95) -> tuple[EstimateResult, list[str]]:
    """Every model's (and domain's) raw, gold-only and corrected figures, and the paired model differences."""
    sc = score_units(one_row_per_unit(run, "estimate"), audit, metric)
    notes = list(audit.warnings)
    models: dict[str, ModelEstimate] = {}
    for model in _models(run, sc):
        keys = [k for k in sc.f if k[1] == model]
        est, why = estimate(_population(sc, keys), confidence, _raw(run, np.array([sc.f[k] for k in keys])))
        notes += [f"{model}: {w}" for w in why]
        models[model] = {"metric": metric, **est, "agreement": _agreement(run, audit, keys),
                         "by_domain": _by_domain(run, sc, keys, confidence)}
    return {"models": models, "differences": _differences(run, sc, confidence, notes)}, notes


def _models(run: SavedRun, sc: Scored) -> list[str]:
    present = {k[1] for k in sc.f}
    return [m for m in run.models if m in present] + sorted(present - set(run.models))


def _by_domain(run: SavedRun, sc: Scored, keys: Sequence[UnitKey], confidence: float) -> dict[str, Estimate]:
    groups: dict[str, list[UnitKey]] = defaultdict(list)
    for k in keys:
        groups[str(run.units[k]["domain"])].append(k)
    if len(groups) < 2:
        return {}
    return {d: estimate(_population(sc, ks, uniform=True), confidence,
                        _raw(run, np.array([sc.f[k] for k in ks])))[0] for d, ks in sorted(groups.items())}


def _differences(run: SavedRun, sc: Scored, confidence: float, notes: list[str]) -> dict[str, Estimate]:
    """A - B on the samples both models scored: the audited pairs are the samples audited under both."""
    out: dict[str, Estimate] = {}
    models = _models(run, sc)
    for ia, a in enumerate(models):
        for b in models[ia + 1:]:
            ids = sorted({k[0] for k in sc.f if k[1] == a} & {k[0] for k in sc.f if k[1] == b})
            pa, pb = _population(sc, [(i, a) for i in ids]), _population(sc, [(i, b) for i in ids])
            diff = Population(pa.f - pb.f, pa.y - pb.y, np.where(pa.strata == CENSUS, pb.strata, pa.strata))
            out[f"{a} - {b}"], why = estimate(diff, confidence, _raw(run, diff.f))
            notes += [f"{a} - {b}: {w}" for w in why]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Planning an audit from a pilot
# ---------------------------------------------------------------------------------------------------------------


class PlanRow(TypedDict):
    n: int
    n_pilot: int
    rho: float | None
    needed: int | None
    """Audited units the corrected interval needs for the half-width (None: no audit size reaches it)."""
    needed_gold_only: int | None
    """The same for the audited units alone (no matcher)."""


def plan(run: SavedRun, audit: Audit, half_width: float, metric: Metric = "recall",
         confidence: float = 0.95) -> dict[str, PlanRow]:
    """Per model, how many audited units reach an interval half-width of ``half_width``, judged from a pilot."""
    sc = score_units(run, audit, metric)
    out: dict[str, PlanRow] = {}
    for model in _models(run, sc):
        pop = _population(sc, [k for k in sc.f if k[1] == model], uniform=True)
        aud = ~np.isnan(pop.y) & (pop.strata != CENSUS)
        if aud.sum() < 2:
            raise LoadError(f"the pilot audits {int(aud.sum())} unit(s) of {model}: at least 2 are needed")
        y, fa, fn = pop.y[aud], pop.f[aud], pop.f[pop.strata != CENSUS]
        sd = float(np.std(y, ddof=1))
        out[model] = {"n": len(pop.f), "n_pilot": int(aud.sum()), "rho": correlation(y, fa)["pearson"],
                      "needed": audits_needed(y, fa, fn, half_width, confidence),
                      "needed_gold_only": int(np.ceil((_z(confidence) * sd / half_width) ** 2))}
    return out


# ---------------------------------------------------------------------------------------------------------------
# The estimate kept in the run directory, for the report
# ---------------------------------------------------------------------------------------------------------------

SAVED = "estimate.json"
"""The file in a run directory that holds the run's latest estimate (``SavedEstimate``)."""
SAVED_VERSION = 1


class Source(TypedDict):
    """A file an estimate was computed from: its path (absolute) and the sha256 of its bytes."""

    path: str
    sha256: str


class RunStamp(TypedDict):
    """The run an estimate was computed from: the sha256 of its results.jsonl and metrics.json."""

    results_sha256: str
    metrics_sha256: str


class SavedEstimate(RunStamp):
    """``RUN/estimate.json``: the result of ``estimate_run`` and what it was computed from."""

    version: int
    date: str
    metric: Metric
    confidence: float
    gold: Source
    """The labels file, or a gold run directory's results.jsonl."""
    audit: Source | None
    warnings: list[str]
    result: EstimateResult


@dataclass(frozen=True)
class OnFile:
    """A run's saved estimate, and why it no longer holds (None: it matches the run and its gold as they are)."""

    path: Path
    saved: SavedEstimate | None
    stale: str | None


def run_stamp(run_dir: str | Path) -> RunStamp:
    """Take it before reading the run: a change while the estimate is computed then makes it stale."""
    digests = []
    for name in (RESULTS, METRICS_JSON):
        path = Path(run_dir) / name
        if not path.is_file():
            raise OutputError(f"{path}: missing; is {run_dir} a run directory?")
        digests.append(file_sha256(path))
    return {"results_sha256": digests[0], "metrics_sha256": digests[1]}


def source(path: str | Path) -> Source:
    """A gold or audit file as recorded (a run directory: its results.jsonl)."""
    path = Path(path).resolve()
    file = path / RESULTS if path.is_dir() else path
    return {"path": str(file), "sha256": file_sha256(file)}


def save_estimate(run_dir: str | Path, stamp: RunStamp, result: EstimateResult, *, gold: str | Path,
                  audit: str | Path | None, metric: Metric, confidence: float, warnings: Sequence[str]) -> Path:
    """Write ``RUN/estimate.json`` (atomically; it replaces an earlier estimate)."""
    saved: SavedEstimate = {
        "version": SAVED_VERSION, "date": datetime.now(UTC).isoformat(timespec="seconds"), "metric": metric,
        "confidence": confidence, **stamp, "gold": source(gold), "audit": source(audit) if audit else None,
        "warnings": list(warnings), "result": result}
    out = Path(run_dir) / SAVED
    write_json(out, saved)
    return out


def saved_estimate(run_dir: str | Path) -> OnFile | None:
    """The run's saved estimate (None: it has none), checked against the run and the gold as they are now."""
    path = Path(run_dir) / SAVED
    if not path.exists():
        return None
    try:
        saved: SavedEstimate = read_json(path)
        ok = saved["version"] == SAVED_VERSION and saved["result"]["models"] is not None
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        return OnFile(path, None, f"{path}: not an estimate this version wrote")
    return OnFile(path, saved, _staleness(run_dir, saved))


def _staleness(run_dir: str | Path, saved: SavedEstimate) -> str | None:
    now = run_stamp(run_dir)
    if now["results_sha256"] != saved["results_sha256"] or now["metrics_sha256"] != saved["metrics_sha256"]:
        return f"{run_dir}: the run's results changed since the estimate of {saved['date']} (re-scored or resumed)"
    for kind, src in (("gold", saved["gold"]), ("audit", saved["audit"])):
        if src is not None and Path(src["path"]).is_file() and file_sha256(src["path"]) != src["sha256"]:
            return f"{src['path']}: the {kind} labels changed since the estimate of {saved['date']}"
    return None
