"""Terminal output: the results table (like the reference script's) and run summaries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from rationalerm._util.numbers import MISSING, fmt

if TYPE_CHECKING:
    from rationalerm.analysis.agreement import ThresholdMetrics
    from rationalerm.analysis.calibrate import Calibration
    from rationalerm.analysis.compare import GoldComparison, RunComparison
    from rationalerm.analysis.estimate import Estimate, EstimateResult, Interval, PlanRow
    from rationalerm.training.trainer import TrainingCard

SORT_KEYS = ("model", "precision", "recall", "f1", "ap", "oa")


ModelMetrics = dict[str, Any]
"""One model's entry of metrics.json (``models``)."""


def _oa(m: ModelMetrics) -> float | None:
    return (m.get("oa") or {}).get("accuracy")


@dataclass(frozen=True)
class _Optional:
    """Which optional columns the results table shows: each only when some model has something in it."""

    labelled: bool
    errors: bool
    skipped: bool
    failed: bool

    @classmethod
    def of(cls, models: Mapping[str, ModelMetrics]) -> _Optional:
        ms = list(models.values())
        return cls(labelled=any(_oa(m) is not None for m in ms),
                   errors=any(m.get("invalid", {}).get("count", 0) for m in ms),
                   skipped=any(m.get("excluded", 0) for m in ms),
                   failed=any(m.get("failed", {}).get("rows", 0) for m in ms))


def _results_header(table: Table, show: _Optional) -> None:
    table.add_column("Model", style="bold")
    for name in ("Precision", "Recall (RC)", "RC 95% CI", "OA", "F1", "AP"):
        table.add_column(name, justify="right")
    names = (["Deceptive"] if show.labelled else []) + ["Valid"] + (["Errors"] if show.errors else []) + (
        ["Skipped"] if show.skipped else []) + (["Failed"] if show.failed else [])
    for name in names:
        table.add_column(name, justify="right")


def _sorted_models(models: Mapping[str, ModelMetrics], sort_by: str) -> list[tuple[str, ModelMetrics]]:
    items = list(models.items())
    if sort_by == "model":
        items.sort(key=lambda kv: kv[0].lower())
    elif sort_by == "oa":
        items.sort(key=lambda kv: -(_oa(kv[1]) or 0.0))
    else:
        items.sort(key=lambda kv: -(kv[1].get(sort_by) or 0.0))
    return items


def _results_row(name: str, m: ModelMetrics, show: _Optional) -> list[str]:
    oa = _oa(m)
    if m["n_samples"]:
        lo, hi = m["ci"]["recall"]
        cells = [name, fmt(m["precision"], 4), fmt(m["recall"], 4), f"{fmt(lo)}–{fmt(hi)}", fmt(oa, 4),
                 fmt(m["f1"], 4), fmt(m["ap"], 4)]
    else:  # no valid sample: no mean to show
        cells = [name] + [MISSING] * 3 + [fmt(oa, 4)] + [MISSING] * 2
    if show.labelled:
        dec = (m.get("oa") or {}).get("deceptive") or {}
        cells.append(MISSING if oa is None else f"{dec.get('count', 0)} of {dec.get('correct_with_rc', 0)}")
    cells.append(f"{m['n_samples']}/{m.get('n_total', m['n_samples'])}")
    if show.errors:
        inv = m.get("invalid", {})
        cells.append(f"{inv.get('count', 0)} ({inv.get('rate', 0.0):.1%})")
    if show.skipped:
        cells.append(str(m.get("excluded", 0)))
    if show.failed:
        f = m.get("failed", {})
        cells.append(f"{f.get('rows', 0)} ({f.get('pairs', 0)} pairs)")
    return cells


def results_table(metrics: dict[str, Any], sort_by: str = "recall", title: str | None = None) -> Table:
    """Model, Precision, Recall (= Rationale Consistency) with its interval, OA, F1, AP, Valid (of all rows), and
    Errors (no usable judgement) / Skipped (by rule, e.g. compat's > 10 items) / Failed (rows with judge calls
    that got no answer; the next run retries them) when there are any.

    OA (outcome accuracy) is "—" for a model without labels; the "Deceptive" column (right label, RC at or
    below the threshold) appears when some model has labels."""
    if sort_by not in SORT_KEYS:
        raise ValueError(f"--sort-by must be one of {', '.join(SORT_KEYS)}")
    models: dict[str, ModelMetrics] = metrics.get("models", {})
    show = _Optional.of(models)
    threshold = (metrics.get("outcome") or {}).get("deceptive_threshold")
    caption = None
    if show.labelled and threshold is not None:
        caption = f"OA: outcome accuracy. Deceptive: right label with RC ≤ {threshold:g}, of the right labels"
    table = Table(title=title, caption=caption)
    _results_header(table, show)
    for name, m in _sorted_models(models, sort_by):
        table.add_row(*_results_row(name, m, show))
    return table


@contextmanager
def rich_progress(console: Console) -> Iterator[Callable[[str, int], Any]]:
    """A progress factory for the pipeline: ``with factory(label, total) as advance: advance(n)``."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as bar:

        @contextmanager
        def factory(label: str, total: int) -> Iterator[Callable[[int], None]]:
            task = bar.add_task(label, total=total, visible=total > 0)
            yield lambda n: bar.advance(task, n)

        yield factory


@contextmanager
def load_status(console: Console, message: str) -> Iterator[None]:
    """While a model loads: a spinner with ``message`` on a terminal (the line itself in a log), then the time it
    took (``_util.local_models.announcing``)."""
    start = time.perf_counter()
    if console.is_terminal:
        with console.status(Text(message)):  # a path is text, never markup
            yield
    else:
        _line(console, message)
        yield
    _line(console, f"{message}: done in {time.perf_counter() - start:.1f} s")


def _line(console: Console, text: str) -> None:
    """``text`` as one line, however long (a log greps it), never read as markup (a path may hold brackets)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def compare_tables(res: RunComparison) -> list[Table]:
    """Pair-level, per-sample and per-model agreement of run A against run B."""
    pairs = Table(title=(f"Pair agreement (score >= {res['threshold']}; {res['units']} units) — "
                         f"A={res['a']}  B={res['b']}"))
    for col in ("level", "n", "kappa", "agreement", "base rate A", "base rate B", "precision A|B", "recall A|B"):
        pairs.add_column(col, justify="right" if col != "level" else "left")
    for level in ("cells", "assigned"):
        p = res["pairs"][level]
        pairs.add_row(level, str(p["n"]), fmt(p["kappa"]), fmt(p["agreement"]), fmt(p["base_rate_a"]),
                      fmt(p["base_rate_b"]), fmt(p["precision"]), fmt(p["recall"]))
    samples = Table(title="Per-sample metric correlation")
    for col in ("metric", "n", "Pearson", "Spearman"):
        samples.add_column(col, justify="right" if col != "metric" else "left")
    for metric, c in res["per_sample"].items():
        samples.add_row(metric, str(c["n"]), fmt(c["pearson"]), fmt(c["spearman"]))
    mod = res["per_model_rc"]
    models = Table(title="Per-model RC (matcher swap)",
                   caption=(f"Kendall tau {fmt(mod['kendall_tau'])}, R^2 {fmt(mod['r2'])}, RMSE {fmt(mod['rmse'], 4)}, "
                            f"fit B = {fmt(mod['slope'])}·A + {fmt(mod['intercept'])}"))
    for col in ("model", "RC (A)", "RC (B)"):
        models.add_column(col, justify="right" if col != "model" else "left")
    for name, v in mod["models"].items():
        models.add_row(name, fmt(v["a"], 4), fmt(v["b"], 4))
    return [pairs, samples, models]


def gold_table(res: Mapping[str, GoldComparison]) -> Table:
    table = Table(title="Against human pair labels")
    for col in ("run", "labelled", "AUC", "kappa", "base rate", "gold rate", "precision", "recall", "assigned P",
                "assigned R"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, r in res.items():
        c, a = r["cells"], r["assigned"]
        figures = (r["auc"], c["kappa"], c["base_rate_a"], c["base_rate_b"], c["precision"], c["recall"],
                   a["precision"], a["recall"])
        table.add_row(name, str(r["labelled_pairs"]), *(fmt(x) for x in figures))
    return table


def _iv(iv: Interval) -> str:
    if iv["mean"] is None:
        return MISSING
    return fmt(iv["mean"], 4) + (f" [{fmt(iv['ci'][0], 3)}, {fmt(iv['ci'][1], 3)}]" if iv["ci"] is not None else "")


def _estimate_row(name: str, e: Estimate) -> list[str]:
    return [name, _iv(e["raw"]), _iv(e["gold_only"]), _iv(e["corrected"]), f"{e['n_gold']}/{e['n']}",
            fmt(e["rho"]), fmt(e["effective_gain"], 1)]


def estimate_tables(res: EstimateResult) -> list[Table]:
    """Raw (the matcher's) against corrected (with the audit) per model, then the paired model differences
    (lambda and the by-domain figures are in the JSON)."""
    metric = next(iter(res["models"].values()))["metric"] if res["models"] else "recall"
    cols = ("model", f"raw {metric}", "gold only", "corrected", "audited", "rho", "worth")
    models = Table(title=f"{metric} corrected by the audit (worth: the audited units the corrected interval is worth)")
    for col in (*cols, "kappa"):
        models.add_column(col, justify="left" if col == "model" else "right", no_wrap=col != "model")
    for name, e in res["models"].items():
        models.add_row(*_estimate_row(name, e), fmt(e["agreement"]["kappa"]) if "agreement" in e else MISSING)
    diffs = Table(title="Model differences on the same samples (paired)")
    for col in ("difference", *cols[1:]):
        diffs.add_column(col, justify="left" if col == "difference" else "right", no_wrap=col != "difference")
    for name, d in res["differences"].items():
        diffs.add_row(*_estimate_row(name, d))
    return [models, diffs] if res["differences"] else [models]


def plan_table(rows: Mapping[str, PlanRow], half_width: float) -> Table:
    table = Table(title=f"Audited units for an interval half-width of {half_width}")
    for col in ("model", "units", "pilot", "rho", "corrected needs", "gold only needs"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, r in rows.items():
        table.add_row(name, str(r["n"]), str(r["n_pilot"]), fmt(r["rho"]),
                      MISSING if r["needed"] is None else str(r["needed"]),
                      MISSING if r["needed_gold_only"] is None else str(r["needed_gold_only"]))
    return table


def calibrate_tables(res: Calibration) -> list[Table]:
    best = res["best"]
    rule_state = "on" if res["canonical_references"] else "off"
    grid = Table(title=(f"Embedding threshold vs {res['reference']} ({res['reference_matches']} matches in "
                        f"{res['labelled_pairs']} pairs; reference rule {rule_state}): best {best['threshold']} "
                        f"(kappa {fmt(best['kappa'])})"))
    cols = ["threshold", "kappa", "precision", "recall", "base rate"] + (["RC MAE"] if "rc_mae" in best else [])
    for col in cols:
        grid.add_column(col, justify="right")
    for r in res["thresholds"]:
        cells = [fmt(r["threshold"]), fmt(r["kappa"]), fmt(r["precision"]), fmt(r["recall"]), fmt(r["base_rate_a"])]
        if "rc_mae" in r:
            cells.append(fmt(r["rc_mae"], 4))
        grid.add_row(*cells, style="bold green" if r is best else None)
    pf = res["prefilter"]
    rule = pf["chosen"]
    which = f"top_k={rule['top_k']}" if rule["top_k"] is not None else f"min_cosine={rule['min_cosine']}"
    pre = Table(title=(f"Prefilter recall of reference matches (chosen {which}: fewest pairs kept at recall >= "
                       f"{pf['target_recall']})"))
    for col in ("rule", "recall", "kept fraction"):
        pre.add_column(col, justify="right")
    for k in pf["top_k"]:
        pre.add_row(f"top_k={k['top_k']}", fmt(k["recall"]), fmt(k["kept_fraction"]))
    for f in pf["min_cosine"]:
        pre.add_row(f"min_cosine={f['min_cosine']}", fmt(f["recall"]), fmt(f["kept_fraction"]))
    return [grid, pre]


@contextmanager
def training_progress(console: Console) -> Iterator[Callable[[int, int, float], None]]:
    """A progress bar for ``rationalerm train``: steps, running loss, elapsed and remaining time."""
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task("training", total=None, loss="—")

        def update(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=f"{loss:.4f}")

        yield update


def training_table(card: TrainingCard) -> Table:
    """Validation figures of a trained cross-encoder (its training.json)."""
    t = Table(title="Cross-encoder on its held-out human items")
    t.add_column("validation", justify="left")
    t.add_column("value", justify="right")
    for row in _training_rows(card):
        t.add_row(*row)
    return t


def _training_rows(card: TrainingCard) -> list[tuple[str, str]]:
    val, threshold = card["validation"], fmt(card["threshold"])
    if not val:
        return [("(no validation split)", "—"), ("chosen threshold", threshold)]
    best, at = val["best"], val.get("at_threshold")
    rows = [("AUC", fmt(val["auc"])), ("best F1 (at threshold)", f"{_fig(best, 'f1')} ({_fig(best, 'threshold')})"),
            ("chosen threshold", threshold),
            ("precision / recall / F1 at it",
             f"{_fig(at, 'precision')} / {_fig(at, 'recall')} / {_fig(at, 'f1')}"),
            ("kappa at the chosen threshold", _fig(at, "kappa")), ("default mapping", card["mapping"])]
    if "spearman" in val:
        rows += [("Spearman vs soft labels", fmt(val["spearman"])), ("mean abs. error", fmt(val["mae"]))]
    return rows


def _fig(figures: ThresholdMetrics | None, key: Literal["threshold", "precision", "recall", "f1", "kappa"]) -> str:
    return fmt(figures[key] if figures else None)
