"""Command line: ``rationalerm run | score | compare | calibrate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from rationalerm.config import ConfigError, load_config
from rationalerm.load import LoadError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Rationale consistency of LLM judges and reward models, on local hardware (MetaJudge).")
# Piped output (logs, CI) gets a fixed width wide enough for the table instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

SortBy = Annotated[str, typer.Option("--sort-by", help="Table order: model, precision, recall, f1 or ap.")]


def _fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {msg}", markup=True, highlight=False)
    raise typer.Exit(2)


@app.command()
def run(
    inputs: Annotated[list[Path], typer.Argument(help="JSONL or Parquet files in the Qwen/RationaleRM format.")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML run config (default: embedded embedding judge on CPU).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (results.jsonl, metrics.json, run.json, cache.sqlite).")] = Path("runs/latest"),
    models: Annotated[Optional[list[str]], typer.Option("--models", "-m", help="Evaluated models (repeatable); default: every '<model>-checklist' key.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad record instead of skipping it.")] = False,
    cache: Annotated[Optional[Path], typer.Option("--cache", help="SQLite judge cache (default: OUT/cache.sqlite).")] = None,
    threshold: Annotated[Optional[float], typer.Option("--threshold", help="Embedding judge: cosine threshold.")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Mask scores below this before the assignment.")] = None,
    max_model_items: Annotated[Optional[int], typer.Option("--max-model-items", help="Precision denominator cap (paper: 5).")] = None,
    compat: Annotated[Optional[str], typer.Option("--compat", help="'metajudge': reproduce the public reference script.")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Judge every human x model item pair, match one-to-one, score, and write the run to OUT."""
    from rationalerm.pipeline import run as run_pipeline
    from rationalerm.report import rich_progress, results_table

    overrides = {"models": models, "strict": strict or None, "cache": str(cache) if cache else None,
                 "scoring.min_score": min_score, "scoring.max_model_items": max_model_items, "scoring.compat": compat}
    try:
        cfg = load_config(config, overrides)
        if threshold is not None:
            if cfg.judge.type != "embedding":
                raise ConfigError("--threshold applies to the embedding judge only")
            cfg.judge.threshold = threshold
        with rich_progress(err) as progress:
            outcome = run_pipeline(inputs, cfg, out, progress=progress, log=lambda m: err.print(m, highlight=False))
    except (ConfigError, LoadError, ValueError) as e:
        _fail(str(e))
        return
    m = outcome.metrics
    skipped = m["skipped"]["count"]
    console.print(results_table(m, sort_by, title=f"Rationale consistency — {', '.join(map(str, inputs))}"))
    console.print(f"judged {outcome.judged} pairs, {outcome.cached} from cache; skipped {skipped} bad record(s); "
                  f"wrote {out}/results.jsonl, metrics.json, run.json", highlight=False)


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by 'rationalerm run'.")],
    compat: Annotated[Optional[str], typer.Option("--compat", help="'metajudge' or 'none'.")] = None,
    max_model_items: Annotated[Optional[int], typer.Option("--max-model-items", help="Precision denominator cap.")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Mask scores below this before matching.")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Recompute every metric from the saved matrices (no judge call) and rewrite the run's files."""
    from rationalerm.rescore import rescore_run
    from rationalerm.report import results_table

    try:
        metrics = rescore_run(run_dir, compat=compat, max_model_items=max_model_items, min_score=min_score)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
        return
    console.print(results_table(metrics, sort_by, title=f"Rationale consistency — {run_dir} (re-scored)"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
