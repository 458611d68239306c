"""Terminal output: the results table (like the reference script's) and run summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from rationalerm.training.trainer import TrainingCard
    from rationalerm.training.validation import BinaryFigures

SORT_KEYS = ("model", "precision", "recall", "f1", "ap", "oa")


def _oa(m: dict[str, Any]) -> float | None:
    return (m.get("oa") or {}).get("accuracy")


def results_table(metrics: dict[str, Any], sort_by: str = "recall", title: str | None = None) -> Table:
    """Model, Precision, Recall (= Rationale Consistency) with its interval, OA, F1, AP, Valid (of all rows), and
    Errors (no usable judgement) / Skipped (by rule, e.g. compat's > 10 items) / Failed (rows with judge calls
    that got no answer; the next run retries them) when there are any.

    OA (outcome accuracy) is "—" for a model without labels; the "Deceptive" column (right label, RC at or
    below the threshold) appears when some model has labels."""
    if sort_by not in SORT_KEYS:
        raise ValueError(f"--sort-by must be one of {', '.join(SORT_KEYS)}")
    models = metrics.get("models", {})
    errors = any(m.get("invalid", {}).get("count", 0) for m in models.values())
    skipped = any(m.get("excluded", 0) for m in models.values())
    failed = any(m.get("failed", {}).get("rows", 0) for m in models.values())
    labelled = any(_oa(m) is not None for m in models.values())
    threshold = (metrics.get("outcome") or {}).get("deceptive_threshold")
    caption = None
    if labelled:
        caption = (f"OA: outcome accuracy. Deceptive: right label with RC ≤ {threshold:g}, of the right labels"
                   if threshold is not None else None)
    table = Table(title=title, caption=caption)
    table.add_column("Model", style="bold")
    for name in ("Precision", "Recall (RC)", "RC 95% CI", "OA", "F1", "AP"):
        table.add_column(name, justify="right")
    if labelled:
        table.add_column("Deceptive", justify="right")
    table.add_column("Valid", justify="right")
    if errors:
        table.add_column("Errors", justify="right")
    if skipped:
        table.add_column("Skipped", justify="right")
    if failed:
        table.add_column("Failed", justify="right")
    items = list(models.items())
    if sort_by == "model":
        items.sort(key=lambda kv: kv[0].lower())
    elif sort_by == "oa":
        items.sort(key=lambda kv: -(_oa(kv[1]) or 0.0))
    else:
        items.sort(key=lambda kv: -(kv[1].get(sort_by) or 0.0))
    for name, m in items:
        cells = [name]
        oa = _oa(m)
        oa_cell = "—" if oa is None else f"{oa:.4f}"
        if m["n_samples"]:
            lo, hi = m["ci"]["recall"]
            cells += [f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{lo:.3f}–{hi:.3f}", oa_cell, f"{m['f1']:.4f}",
                      f"{m['ap']:.4f}"]
        else:  # no valid sample: no mean to show
            cells += ["—"] * 3 + [oa_cell] + ["—"] * 2
        if labelled:
            dec = (m.get("oa") or {}).get("deceptive") or {}
            cells.append("—" if oa is None else f"{dec.get('count', 0)} of {dec.get('correct_with_rc', 0)}")
        cells.append(f"{m['n_samples']}/{m.get('n_total', m['n_samples'])}")
        if errors:
            inv = m.get("invalid", {})
            cells.append(f"{inv.get('count', 0)} ({inv.get('rate', 0.0):.1%})")
        if skipped:
            cells.append(str(m.get("excluded", 0)))
        if failed:
            f = m.get("failed", {})
            cells.append(f"{f.get('rows', 0)} ({f.get('pairs', 0)} pairs)")
        table.add_row(*cells)
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


def _f(x: Any, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def compare_tables(res: dict[str, Any]) -> list[Table]:
    """Pair-level, per-sample and per-model agreement of run A against run B."""
    pairs = Table(title=f"Pair agreement (score >= {res['threshold']}; {res['units']} units) — A={res['a']}  B={res['b']}")
    for col in ("level", "n", "kappa", "agreement", "base rate A", "base rate B", "precision A|B", "recall A|B"):
        pairs.add_column(col, justify="right" if col != "level" else "left")
    for level in ("cells", "assigned"):
        p = res["pairs"][level]
        pairs.add_row(level, str(p["n"]), _f(p["kappa"]), _f(p["agreement"]), _f(p["base_rate_a"]),
                      _f(p["base_rate_b"]), _f(p["precision"]), _f(p["recall"]))
    samples = Table(title="Per-sample metric correlation")
    for col in ("metric", "n", "Pearson", "Spearman"):
        samples.add_column(col, justify="right" if col != "metric" else "left")
    for metric, c in res["per_sample"].items():
        samples.add_row(metric, str(c["n"]), _f(c["pearson"]), _f(c["spearman"]))
    mod = res["per_model_rc"]
    models = Table(title="Per-model RC (matcher swap)",
                   caption=(f"Kendall tau {_f(mod['kendall_tau'])}, R^2 {_f(mod['r2'])}, RMSE {_f(mod['rmse'], 4)}, "
                            f"fit B = {_f(mod['slope'])}·A + {_f(mod['intercept'])}"))
    for col in ("model", "RC (A)", "RC (B)"):
        models.add_column(col, justify="right" if col != "model" else "left")
    for name, v in mod["models"].items():
        models.add_row(name, _f(v["a"], 4), _f(v["b"], 4))
    return [pairs, samples, models]


def gold_table(res: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="Against human pair labels")
    for col in ("run", "labelled", "AUC", "kappa", "base rate", "gold rate", "precision", "recall", "assigned P", "assigned R"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for name, r in res.items():
        c, a = r["cells"], r["assigned"]
        table.add_row(name, str(r["labelled_pairs"]), _f(r["auc"]), _f(c["kappa"]), _f(c["base_rate_a"]),
                      _f(c["base_rate_b"]), _f(c["precision"]), _f(c["recall"]), _f(a["precision"]), _f(a["recall"]))
    return table


def calibrate_tables(res: dict[str, Any]) -> list[Table]:
    best = res["best"]
    grid = Table(title=(f"Embedding threshold vs {res['reference']} ({res['reference_matches']} matches in "
                        f"{res['labelled_pairs']} pairs): best {best['threshold']} (kappa {_f(best['kappa'])})"))
    cols = ["threshold", "kappa", "precision", "recall", "base rate"] + (["RC MAE"] if "rc_mae" in best else [])
    for col in cols:
        grid.add_column(col, justify="right")
    for r in res["thresholds"]:
        cells = [f"{r['threshold']:.3f}", _f(r["kappa"]), _f(r["precision"]), _f(r["recall"]), _f(r["base_rate_a"])]
        if "rc_mae" in r:
            cells.append(_f(r["rc_mae"], 4))
        grid.add_row(*cells, style="bold green" if r is best else None)
    pf = res["prefilter"]
    rule = pf["chosen"]
    which = f"top_k={rule['top_k']}" if rule["top_k"] is not None else f"min_cosine={rule['min_cosine']}"
    pre = Table(title=f"Prefilter recall of reference matches (chosen {which}: fewest pairs kept at recall >= {pf['target_recall']})")
    for col in ("rule", "recall", "kept fraction"):
        pre.add_column(col, justify="right")
    for r in pf["top_k"]:
        pre.add_row(f"top_k={r['top_k']}", _f(r["recall"]), _f(r["kept_fraction"]))
    for r in pf["min_cosine"]:
        pre.add_row(f"min_cosine={r['min_cosine']}", _f(r["recall"]), _f(r["kept_fraction"]))
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
    val, threshold = card["validation"], _f(card["threshold"])
    if not val:
        return [("(no validation split)", "—"), ("chosen threshold", threshold)]
    best, at = val["best"], val.get("at_threshold")
    rows = [("AUC", _f(val["auc"])), ("best F1 (at threshold)", f"{_fig(best, 'f1')} ({_fig(best, 'threshold')})"),
            ("chosen threshold", threshold),
            ("precision / recall / F1 at it",
             f"{_fig(at, 'precision')} / {_fig(at, 'recall')} / {_fig(at, 'f1')}"),
            ("kappa at the chosen threshold", _fig(at, "kappa")), ("default mapping", card["mapping"])]
    if "spearman" in val:
        rows += [("Spearman vs soft labels", _f(val["spearman"])), ("mean abs. error", _f(val["mae"]))]
    return rows


def _fig(figures: BinaryFigures | None, key: Literal["threshold", "precision", "recall", "f1", "kappa"]) -> str:
    return _f(figures[key] if figures else None)
