"""Terminal output: the results table (like the reference script's) and run summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

SORT_KEYS = ("model", "precision", "recall", "f1", "ap")


def results_table(metrics: dict[str, Any], sort_by: str = "recall", title: str | None = None) -> Table:
    """Model, Precision, Recall (= Rationale Consistency) with its interval, F1, AP, Valid; metrics sort descending."""
    if sort_by not in SORT_KEYS:
        raise ValueError(f"--sort-by must be one of {', '.join(SORT_KEYS)}")
    models = metrics.get("models", {})
    listwise = any(m.get("invalid", {}).get("count", 0) for m in models.values())
    table = Table(title=title)
    table.add_column("Model", style="bold")
    for name in ("Precision", "Recall (RC)", "RC 95% CI", "F1", "AP"):
        table.add_column(name, justify="right")
    table.add_column("Valid", justify="right")
    if listwise:
        table.add_column("Invalid", justify="right")
    items = list(models.items())
    if sort_by == "model":
        items.sort(key=lambda kv: kv[0].lower())
    else:
        items.sort(key=lambda kv: -(kv[1].get(sort_by) or 0.0))
    for name, m in items:
        cells = [name]
        lo, hi = m["ci"]["recall"]
        cells += [f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{lo:.3f}–{hi:.3f}", f"{m['f1']:.4f}", f"{m['ap']:.4f}"]
        cells.append(f"{m['n_samples']}/{m.get('n_total', m['n_samples'])}")
        if listwise:
            inv = m.get("invalid", {})
            cells.append(f"{inv.get('count', 0)} ({inv.get('rate', 0.0):.1%})")
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
