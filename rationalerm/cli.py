"""Command line: ``rationalerm run | score | import-metajudge | report | export | compare | calibrate``.

Every error the user can cause is a ``RationaleRMError``: it is printed as one ``error:`` line and the
command exits with code 2. Anything else is a bug and keeps its traceback. ``run`` exits with code 3 when some
judge calls failed (the run finished; running the same command again retries exactly them), 0 when complete.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from rationalerm.config import load_config
from rationalerm.errors import ConfigError, RationaleRMError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Rationale consistency of LLM judges and reward models, on local hardware (MetaJudge).")
# Piped output (logs, CI) gets a fixed width wide enough for the table instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

SortBy = Annotated[str, typer.Option("--sort-by", help="Table order: model, precision, recall, f1, ap or oa.")]


def _fail(msg: str) -> None:
    err.print(f"[red]error:[/red] {msg}", markup=True, highlight=False)
    raise typer.Exit(2)


def _check_sort(sort_by: str) -> None:
    from rationalerm.report import SORT_KEYS

    if sort_by not in SORT_KEYS:
        _fail(f"--sort-by must be one of {', '.join(SORT_KEYS)}, not {sort_by!r}")


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
    max_model_items: Annotated[Optional[int], typer.Option("--max-model-items", help="Cut each model list to its first k items before matching (paper: 5).")] = None,
    compat: Annotated[Optional[str], typer.Option("--compat", help="'metajudge': reproduce the public reference script.")] = None,
    label_field: Annotated[Optional[str], typer.Option("--label-field", help="Field of the human preference label (default 'label'); OA compares it with '<model>-label'.")] = None,
    deceptive_threshold: Annotated[Optional[float], typer.Option("--deceptive-threshold", help="A right label with RC at or below this is a deceptive-alignment case (default 0.25).")] = None,
    runner: Annotated[Optional[str], typer.Option("--runner", help="Where the judge runs: 'local' (default) or 'ray' (needs the 'ray' extra of the package).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join ('auto' or HOST:PORT; implies --runner ray); default: a local Ray instance.")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Judge every human x model item pair, match one-to-one, score, and write the run to OUT."""
    _check_sort(sort_by)
    from rationalerm.pipeline import run as run_pipeline
    from rationalerm.report import rich_progress, results_table

    overrides = {"models": models, "strict": strict or None, "cache": str(cache) if cache else None,
                 "scoring.min_score": min_score, "scoring.max_model_items": max_model_items, "scoring.compat": compat,
                 "outcome.label_field": label_field, "outcome.deceptive_threshold": deceptive_threshold,
                 "runner.type": runner or ("ray" if ray_address else None), "runner.address": ray_address}
    try:
        cfg = load_config(config, overrides)
        if threshold is not None:
            if cfg.judge.type != "embedding":
                raise ConfigError("--threshold applies to the embedding judge only")
            cfg = load_config(config, {**overrides, "judge.threshold": threshold})
        with rich_progress(err) as progress:
            outcome = run_pipeline(inputs, cfg, out, progress=progress, log=lambda m: err.print(m, highlight=False))
    except RationaleRMError as e:
        _fail(str(e))
        return
    m = outcome.metrics
    skipped = m["skipped"]["count"]
    console.print(results_table(m, sort_by, title=f"Rationale consistency — {', '.join(map(str, inputs))}"))
    console.print(f"judged {outcome.judged} pairs, {outcome.cached} from cache; skipped {skipped} bad record(s); "
                  f"wrote {out}/results.jsonl, metrics.json, run.json", highlight=False)
    console.print(f"report: rationalerm report {shlex.quote(str(out))} --out {shlex.quote(str(out / 'report.html'))}",
                  highlight=False, soft_wrap=True)
    failed = outcome.failure_message()
    if failed:  # an incomplete run: exit 3 (0 = complete, 2 = an error the user can fix)
        err.print(f"[yellow]{failed}[/yellow]", markup=True, highlight=False)
        raise typer.Exit(3)


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by 'rationalerm run'.")],
    compat: Annotated[Optional[str], typer.Option("--compat", help="'metajudge' or 'none'.")] = None,
    max_model_items: Annotated[Optional[int], typer.Option("--max-model-items", help="Cut each model list to its first k items before matching.")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Mask scores below this before matching.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write the re-scored run (default: a new directory RUN-rescored beside it; give RUN itself to overwrite it).")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Recompute every metric from the saved judgements (no judge call) and write the re-scored run."""
    _check_sort(sort_by)
    from rationalerm.saved_runs import rescore_run
    from rationalerm.report import results_table

    try:
        written, metrics = rescore_run(run_dir, out, compat=compat, max_model_items=max_model_items,
                                       min_score=min_score)
    except RationaleRMError as e:
        _fail(str(e))
        return
    console.print(results_table(metrics, sort_by, title=f"Rationale consistency — {run_dir} (re-scored)"))
    if written.resolve() == run_dir.resolve():
        console.print(f"overwrote {written}/results.jsonl, metrics.json, run.json with the re-scored run",
                      highlight=False)
    else:
        console.print(f"wrote {written}/results.jsonl, metrics.json, run.json ({run_dir} is unchanged)",
                      highlight=False)


@app.command("import-metajudge")
def import_metajudge(
    files: Annotated[list[Path], typer.Argument(help="Answer files of the reference pipeline (metajudge_infer.py output, JSONL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write (results.jsonl, metrics.json, run.json).")],
    model: Annotated[Optional[str], typer.Option("--model", help="Evaluated model (default: found as the reference finds it, from the first row's metadata).")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Score the reference pipeline's answers exactly as its analysis script does (compat: metajudge)."""
    _check_sort(sort_by)
    from rationalerm.import_metajudge import import_answers
    from rationalerm.report import results_table

    try:
        outcome = import_answers(files, out, model)
    except RationaleRMError as e:
        _fail(str(e))
        return
    for bad in outcome.skipped:
        err.print(f"skipped {bad}", highlight=False)
    console.print(results_table(outcome.metrics, sort_by, title=f"Reference answers — {', '.join(map(str, files))} (compat: metajudge)"))
    for name, m in outcome.metrics["models"].items():
        console.print(f"{name}: {m['n_samples']} valid, {m['invalid']['count']} errors, {m['excluded']} skipped "
                      f"of {m['n_total']} rows", highlight=False)
    console.print(f"wrote {out}/results.jsonl, metrics.json, run.json; re-score under the paper's rules with: "
                  f"rationalerm score {out} --compat none", highlight=False)


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="One or more run directories (several: shown side by side and compared).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    title: Annotated[Optional[str], typer.Option("--title", help="Page title.")] = None,
    deceptive_threshold: Annotated[Optional[float], typer.Option("--deceptive-threshold", help="Override the runs' RC threshold for deceptive-alignment cases.")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Compare: a cell with score >= this is a match.")] = 0.5,
) -> None:
    """One self-contained HTML page: results table, plots, deceptive-alignment cases, a per-sample browser."""
    from rationalerm.html_report import write_report

    try:
        path = write_report(runs, out, title=title, deceptive_threshold=deceptive_threshold, compare_threshold=threshold)
    except RationaleRMError as e:
        _fail(str(e))
        return
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by 'rationalerm run'.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for samples.*, models.*, deceptive.* (default: the run directory).")] = None,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Also write the report's plots here as PNG and SVG.")] = None,
    deceptive_threshold: Annotated[Optional[float], typer.Option("--deceptive-threshold", help="Override the run's RC threshold for deceptive-alignment cases.")] = None,
) -> None:
    """Per-sample and per-model tables (CSV or Parquet), deceptive-alignment cases, and plots for papers."""
    from rationalerm.export import export_run

    try:
        paths = export_run(run_dir, fmt, out, plots, deceptive_threshold)  # type: ignore[arg-type]
    except RationaleRMError as e:
        _fail(str(e))
        return
    for p in paths:
        console.print(f"wrote {p}", highlight=False)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="First run directory (e.g. the LLM judge).")],
    run_b: Annotated[Optional[Path], typer.Argument(help="Second run directory (e.g. the embedding judge).")] = None,
    gold: Annotated[Optional[Path], typer.Option("--gold", help="Human pair labels, JSONL: {id, model, i, j, label} or {human, item, label}.")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="A cell with score >= this is a match.")] = 0.5,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full comparison as JSON here.")] = None,
) -> None:
    """Agreement of two runs over the same input (pairs, samples, model ranking), and/or of runs vs gold labels."""
    from rationalerm.compare import compare_runs, compare_with_gold
    from rationalerm.files import write_json
    from rationalerm.report import compare_tables, gold_table
    from rationalerm.saved_runs import load_gold, load_run

    if run_b is None and gold is None:
        _fail("give a second run, --gold FILE, or both")
    try:
        a = load_run(run_a)
        b = load_run(run_b) if run_b is not None else None
        labels = load_gold(gold) if gold is not None else None
        result: dict[str, object] = {}
        if b is not None:
            result["runs"] = compare_runs(a, b, threshold)
            for table in compare_tables(result["runs"]):  # type: ignore[arg-type]
                console.print(table)
        if labels is not None:
            result["gold"] = {str(r.path): compare_with_gold(r, labels, threshold) for r in (a, b) if r is not None}
            console.print(gold_table(result["gold"]))  # type: ignore[arg-type]
        if json_out is not None:
            write_json(json_out, result)
            console.print(f"wrote {json_out}", highlight=False)
    except RationaleRMError as e:
        _fail(str(e))


@app.command()
def calibrate(
    reference: Annotated[Path, typer.Argument(help="A run directory: its scores are the reference (its texts are used with --gold).")],
    gold: Annotated[Optional[Path], typer.Option("--gold", help="Calibrate against human pair labels instead of the run's scores.")] = None,
    embedding_model: Annotated[Optional[str], typer.Option("--embedding-model", help="sentence-transformers path or name (default: packaged all-MiniLM-L6-v2).")] = None,
    match_threshold: Annotated[float, typer.Option("--match-threshold", help="A reference cell with score >= this is a match.")] = 0.5,
    target_recall: Annotated[float, typer.Option("--target-recall", help="Smallest prefilter k keeping this share of reference matches.")] = 0.95,
    base_config: Annotated[Optional[Path], typer.Option("--base-config", help="Config to start from (default: the embedded default).")] = None,
    write_config: Annotated[Optional[Path], typer.Option("--write-config", help="Write the base config with the chosen values here.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full grid as JSON here.")] = None,
) -> None:
    """Choose the embedding threshold and prefilter k that best agree with a reference run or gold labels."""
    from rationalerm.calibrate import calibrate as run_calibration
    from rationalerm.calibrate import write_calibrated_config
    from rationalerm.files import write_json
    from rationalerm.judges.embedding import Embedder
    from rationalerm.report import calibrate_tables
    from rationalerm.saved_runs import load_gold, load_run

    try:
        run_ = load_run(reference)
        labels = load_gold(gold) if gold is not None else None
        result = run_calibration(run_, gold=labels, embedder=Embedder(embedding_model),
                                 match_threshold=match_threshold, target_recall=target_recall)
        if embedding_model:
            result["embedding_model"] = embedding_model
        for table in calibrate_tables(result):
            console.print(table)
        if write_config is not None:
            write_calibrated_config(result, write_config, base_config)
            console.print(f"wrote {write_config}", highlight=False)
        if json_out is not None:
            write_json(json_out, result)
    except RationaleRMError as e:
        _fail(str(e))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
