"""Command line: ``rationalerm run | score | import-metajudge | report | export | compare | calibrate | audit |
import-label-studio | train | decompose``.

Every error the user can cause is a ``RationaleRMError``: whichever command raises it, ``Commands`` (the one
handler) prints it as one ``error:`` line and the command exits with code 2. Anything else is a bug and keeps its
traceback. ``run`` exits with code 3 when some judge calls failed (the run finished; running the same command
again retries exactly them), 0 when complete.
"""

from __future__ import annotations

import shlex
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from rationalerm._util.local_models import announcing
from rationalerm._version import __version__
from rationalerm.errors import ConfigError, OutputError, RationaleRMError
from rationalerm.training.recipe import Recipe

if TYPE_CHECKING:  # the rest loads in the command bodies: `--help`, `--version` and usage errors import no judge
    from rationalerm.analysis.estimate import EstimateResult, RunStamp
    from rationalerm.config import RunConfig
    from rationalerm.training.labels import LabelSet
    from rationalerm.training.trainer import TrainingCard

_RECIPE = Recipe()  # the defaults of `rationalerm train` (the measured recipe, benchmarks/RESULTS.md)

# Piped output (logs, CI) gets a fixed width wide enough for the table instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


class Commands(TyperGroup):
    """The app's commands, run through the one handler of user errors: a ``RationaleRMError`` raised anywhere in
    a command is printed as one ``error:`` line and exits with code 2 (module docstring)."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer types ``ctx`` with its private copy of click's Context
        try:
            with announcing(_show_load):
                return super().invoke(ctx)
        except RationaleRMError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", markup=True, highlight=False)  # a message's [...] is text
            raise typer.Exit(2) from None


def _show_load(message: str) -> AbstractContextManager[None]:
    """A model load on stderr, saying what loads (``_util.local_models.loading``)."""
    from rationalerm.reporting.terminal import load_status

    return load_status(err, message)


app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True,
                  help="Rationale consistency of LLM judges and reward models, on local hardware (MetaJudge).")


def _print_version(value: bool) -> None:
    if value:
        console.print(f"rationalerm {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _app_options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the package version and exit.")] = False,
) -> None:
    """Options of ``rationalerm`` itself, before the command."""


SortBy = Annotated[str, typer.Option("--sort-by", help="Table order: model, precision, recall, f1, ap or oa.")]


def _check_sort(sort_by: str) -> None:
    from rationalerm.reporting.terminal import SORT_KEYS

    if sort_by not in SORT_KEYS:
        raise ConfigError(f"--sort-by must be one of {', '.join(SORT_KEYS)}, not {sort_by!r}")


def _run_config(config: Path | None, overrides: dict[str, Any], threshold: float | None) -> RunConfig:
    """The file's config (or the default) with the command line's overrides; ``--threshold`` is the judge's, for
    the judges that have one."""
    from rationalerm.config import load_config

    cfg = load_config(config, overrides)
    if threshold is None:
        return cfg
    if cfg.judge.type not in ("embedding", "cross-encoder"):
        raise ConfigError("--threshold applies to the embedding and cross-encoder judges only")
    return load_config(config, {**overrides, "judge.threshold": threshold})


def _number_or(option: str, value: str, word: str, rule: str) -> float | str:
    """``value`` as a number, or ``word`` itself; anything else is a ``ConfigError`` saying ``option``'s rule."""
    if value == word:
        return word
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{option} {rule}, not {value!r}") from None


@app.command()
def run(
    inputs: Annotated[list[Path], typer.Argument(
        help="JSONL (plain, .gz, .bz2, .xz or .zst) or Parquet files in the Qwen/RationaleRM format; '-' reads "
        "standard input (saved as OUT/stdin.jsonl).")],
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML run config (default: embedded embedding judge on CPU).")] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o",
        help="Output directory (results.jsonl, metrics.json, run.json, cache.sqlite).")] = Path("runs/latest"),
    models: Annotated[list[str] | None, typer.Option(
        "--models", "-m", help="Evaluated models (repeatable); default: every '<model>-checklist' key.")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Stop at the first bad record instead of skipping it.")] = False,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="SQLite judge cache (default: OUT/cache.sqlite).")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="Embedding judge: cosine threshold; cross-encoder: probability threshold.")] = None,
    min_score: Annotated[float | None, typer.Option(
        "--min-score", help="Mask scores below this before the assignment.")] = None,
    max_model_items: Annotated[int | None, typer.Option(
        "--max-model-items", help="Cut each model list to its first k items before matching (paper: 5).")] = None,
    compat: Annotated[str | None, typer.Option(
        "--compat", help="'metajudge': reproduce the public reference script.")] = None,
    label_field: Annotated[str | None, typer.Option(
        "--label-field", help="Field of the human preference label (default 'label'); OA compares it with "
        "'<model>-label'.")] = None,
    deceptive_threshold: Annotated[float | None, typer.Option(
        "--deceptive-threshold", help="A right label with RC at or below this is a deceptive-alignment case (default "
        "0.25).")] = None,
    runner: Annotated[str | None, typer.Option(
        "--runner",
        help="Where the judge runs: 'local' (default) or 'ray' (needs the 'ray' extra of the package).")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Ray cluster to join ('auto' or HOST:PORT; implies --runner ray); default: a local Ray "
        "instance.")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Judge every human x model item pair, match one-to-one, score, and write the run to OUT."""
    _check_sort(sort_by)
    from rationalerm.pipeline import run as run_pipeline
    from rationalerm.reporting.terminal import results_table, rich_progress

    overrides = {"models": models, "strict": strict or None, "cache": str(cache) if cache else None,
                 "scoring.min_score": min_score, "scoring.max_model_items": max_model_items, "scoring.compat": compat,
                 "outcome.label_field": label_field, "outcome.deceptive_threshold": deceptive_threshold,
                 "runner.type": runner or ("ray" if ray_address else None), "runner.address": ray_address}
    cfg = _run_config(config, overrides, threshold)
    inputs = _with_stdin(inputs, out)
    with rich_progress(err) as progress:
        outcome = run_pipeline(inputs, cfg, out, progress=progress, log=lambda m: err.print(m, highlight=False))
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


def _with_stdin(inputs: list[Path], out: Path) -> list[Path]:
    """``-`` among the inputs is standard input, saved as ``OUT/stdin.jsonl``: a run reads its input more than once,
    and a bad record is then named by a line of a file the user can open."""
    from rationalerm._util.files import STDIN, spool_stdin

    if all(str(p) != STDIN for p in inputs):
        return inputs
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError("'-' reads the records from standard input, but none is piped in "
                          "(e.g. jq -c ... data.jsonl | rationalerm run - --out runs/mine)")
    saved = spool_stdin(out / "stdin.jsonl", sys.stdin.buffer)
    return [saved if str(p) == STDIN else p for p in inputs]


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by 'rationalerm run'.")],
    compat: Annotated[str | None, typer.Option("--compat", help="'metajudge' or 'none'.")] = None,
    max_model_items: Annotated[int | None, typer.Option(
        "--max-model-items", help="Cut each model list to its first k items before matching.")] = None,
    min_score: Annotated[float | None, typer.Option(
        "--min-score", help="Mask scores below this before matching.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Where to write the re-scored run (default: a new directory RUN-rescored beside it; give "
        "RUN itself to overwrite it).")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Recompute every metric from the saved judgements (no judge call) and write the re-scored run."""
    _check_sort(sort_by)
    from rationalerm.reporting.terminal import results_table
    from rationalerm.runs.rescore import rescore_run

    written, metrics = rescore_run(run_dir, out, compat=compat, max_model_items=max_model_items, min_score=min_score)
    console.print(results_table(metrics, sort_by, title=f"Rationale consistency — {run_dir} (re-scored)"))
    if written.resolve() == run_dir.resolve():
        console.print(f"overwrote {written}/results.jsonl, metrics.json, run.json with the re-scored run",
                      highlight=False)
    else:
        console.print(f"wrote {written}/results.jsonl, metrics.json, run.json ({run_dir} is unchanged)",
                      highlight=False)


@app.command("import-metajudge")
def import_metajudge(
    files: Annotated[list[Path], typer.Argument(
        help="Answer files of the reference pipeline (metajudge_infer.py output, JSONL).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Run directory to write (results.jsonl, metrics.json, run.json).")],
    model: Annotated[str | None, typer.Option(
        "--model",
        help="Evaluated model (default: found as the reference finds it, from the first row's metadata).")] = None,
    sort_by: SortBy = "recall",
) -> None:
    """Score the reference pipeline's answers exactly as its analysis script does (compat: metajudge)."""
    _check_sort(sort_by)
    from rationalerm.reporting.terminal import results_table
    from rationalerm.runs.import_metajudge import import_answers

    outcome = import_answers(files, out, model)
    for bad in outcome.skipped:
        err.print(f"skipped {bad}", highlight=False)
    title = f"Reference answers — {', '.join(map(str, files))} (compat: metajudge)"
    console.print(results_table(outcome.metrics, sort_by, title=title))
    for name, m in outcome.metrics["models"].items():
        console.print(f"{name}: {m['n_samples']} valid, {m['invalid']['count']} errors, {m['excluded']} skipped "
                      f"of {m['n_total']} rows", highlight=False)
    console.print(f"wrote {out}/results.jsonl, metrics.json, run.json; re-score under the paper's rules with: "
                  f"rationalerm score {out} --compat none", highlight=False)


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(
        help="One or more run directories (several: shown side by side and compared).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    title: Annotated[str | None, typer.Option("--title", help="Page title.")] = None,
    deceptive_threshold: Annotated[float | None, typer.Option(
        "--deceptive-threshold", help="Override the runs' RC threshold for deceptive-alignment cases.")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Compare: a cell with score >= this is a match.")] = 0.5,
) -> None:
    """One self-contained HTML page: results table, plots, deceptive-alignment cases, a per-sample browser."""
    from rationalerm.analysis.estimate import saved_estimate
    from rationalerm.reporting.html import write_report

    path = write_report(runs, out, title=title, deceptive_threshold=deceptive_threshold, compare_threshold=threshold)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
    for run_dir in runs:
        if (found := saved_estimate(run_dir)) is not None and found.stale is not None:
            err.print(f"warning: {found.path} not shown: {found.stale}; run `rationalerm estimate` again",
                      highlight=False)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by 'rationalerm run'.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or parquet.")] = "csv",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for samples.*, models.*, deceptive.* (default: the run directory).")] = None,
    plots: Annotated[Path | None, typer.Option(
        "--plots", help="Also write the report's plots here as PNG and SVG.")] = None,
    deceptive_threshold: Annotated[float | None, typer.Option(
        "--deceptive-threshold", help="Override the run's RC threshold for deceptive-alignment cases.")] = None,
) -> None:
    """Per-sample and per-model tables (CSV or Parquet), deceptive-alignment cases, and plots for papers."""
    from rationalerm.reporting.export import Format, export_run

    paths = export_run(run_dir, cast(Format, fmt), out, plots, deceptive_threshold)  # export_run checks the format
    for p in paths:
        console.print(f"wrote {p}", highlight=False)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="First run directory (e.g. the LLM judge).")],
    run_b: Annotated[Path | None, typer.Argument(help="Second run directory (e.g. the embedding judge).")] = None,
    gold: Annotated[Path | None, typer.Option(
        "--gold", help="Human pair labels, JSONL: {id, model, i, j, label} or {human, item, label}.")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="A cell with score >= this is a match.")] = 0.5,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full comparison as JSON here.")] = None,
) -> None:
    """Agreement of two runs over the same input (pairs, samples, model ranking), and/or of runs vs gold labels."""
    from rationalerm._util.files import write_json
    from rationalerm.analysis.compare import compare_runs, compare_with_gold
    from rationalerm.reporting.terminal import compare_tables, gold_table
    from rationalerm.runs.directory import load_run
    from rationalerm.runs.gold import load_gold

    if run_b is None and gold is None:
        raise ConfigError("give a second run, --gold FILE, or both")
    a = load_run(run_a)
    b = load_run(run_b) if run_b is not None else None
    labels = load_gold(gold) if gold is not None else None
    result: dict[str, Any] = {}
    if b is not None:
        runs = result["runs"] = compare_runs(a, b, threshold)
        for table in compare_tables(runs):
            console.print(table)
    if labels is not None:
        golds = result["gold"] = {str(r.path): compare_with_gold(r, labels, threshold) for r in (a, b) if r is not None}
        console.print(gold_table(golds))
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}", highlight=False)


@app.command()
def estimate(
    run_dir: Annotated[Path, typer.Argument(help="The run directory to correct.")],
    gold: Annotated[Path | None, typer.Option(
        "--gold", help="Audit labels (JSONL {id, model, i, j, label}) or a strong judge's run directory.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the estimates as JSON here.")] = None,
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999)] = 0.95,
    metric: Annotated[str, typer.Option("--metric", help="recall (RC), precision, f1 or ap.")] = "recall",
    audit: Annotated[Path | None, typer.Option(
        "--audit", help="The audit.jsonl the labels answer (its strata weight a stratified audit).")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="Say how many audited units reach --width.")] = False,
    pilot: Annotated[Path | None, typer.Option("--pilot", help="With --plan: the pilot audit's labels.")] = None,
    width: Annotated[float, typer.Option("--width", help="With --plan: the target interval half-width.")] = 0.02,
) -> None:
    """Correct a run's figures with audited units (PPI++): raw, gold-only and corrected, per model and domain; kept in
    RUN/estimate.json, which the HTML report shows beside the raw figures."""
    from rationalerm._util.files import write_json
    from rationalerm.analysis import estimate as est
    from rationalerm.reporting.terminal import estimate_tables, plan_table
    from rationalerm.runs.directory import load_run

    if metric not in est.METRICS:
        raise ConfigError(f"--metric must be one of {', '.join(est.METRICS)}, got {metric!r}")
    labels = pilot if plan else gold
    if labels is None:
        raise ConfigError("give --pilot GOLD with --plan" if plan else "give --gold GOLD (labels or a run directory)")
    stamp = est.run_stamp(run_dir)  # before reading: a run that changes meanwhile leaves the saved estimate stale
    run = load_run(run_dir)
    found = est.read_audit(run, labels, audit)
    if plan:
        rows = est.plan(run, found, width, metric, confidence)
        console.print(plan_table(rows, width))
        result: object = {"plan": rows, "half_width": width, "confidence": confidence}
        notes = found.warnings
    else:
        result, notes = est.estimate_run(run, found, metric, confidence)
        for table in estimate_tables(result):
            console.print(table)
        _save_estimate(run_dir, stamp, result, gold=labels, audit=audit, metric=metric, confidence=confidence,
                       warnings=notes)
    for note in notes:
        err.print(f"warning: {note}", highlight=False)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}", highlight=False)


def _save_estimate(run_dir: Path, stamp: RunStamp, result: EstimateResult, **how: Any) -> None:
    """The estimate kept in the run directory for the report; a run directory one cannot write to is a warning."""
    from rationalerm.analysis.estimate import save_estimate

    try:
        path = save_estimate(run_dir, stamp, result, **how)
    except OSError as e:
        err.print(f"warning: the estimate is not kept in {run_dir} ({e}); the report will not show it",
                  highlight=False)
    else:
        console.print(f"wrote {path} (the report shows it beside the raw figures)", highlight=False)


@app.command()
def calibrate(
    reference: Annotated[Path, typer.Argument(
        help="A run directory: its scores are the reference (its texts are used with --gold).")],
    gold: Annotated[Path | None, typer.Option(
        "--gold", help="Calibrate against human pair labels instead of the run's scores.")] = None,
    embedding_model: Annotated[str | None, typer.Option(
        "--embedding-model", help="sentence-transformers path or name (default: packaged all-MiniLM-L6-v2).")] = None,
    match_threshold: Annotated[float, typer.Option(
        "--match-threshold", help="A reference cell with score >= this is a match.")] = 0.5,
    target_recall: Annotated[float, typer.Option(
        "--target-recall", help="Smallest prefilter k keeping this share of reference matches.")] = 0.95,
    base_config: Annotated[Path | None, typer.Option(
        "--base-config", help="Config to start from (default: the embedded default); its "
                              "judge.canonical_references says how the texts are embedded.")] = None,
    write_config: Annotated[Path | None, typer.Option(
        "--write-config", help="Write the base config with the chosen values here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full grid as JSON here.")] = None,
) -> None:
    """Choose the embedding threshold and prefilter k that best agree with a reference run or gold labels."""
    from rationalerm._util.files import write_json
    from rationalerm.analysis.calibrate import calibrate as run_calibration
    from rationalerm.analysis.calibrate import write_calibrated_config
    from rationalerm.config import load_config
    from rationalerm.judges.embedding import Embedder
    from rationalerm.reporting.terminal import calibrate_tables
    from rationalerm.runs.directory import load_run
    from rationalerm.runs.gold import load_gold

    canonical = load_config(base_config).judge.canonical_references  # embed texts as the calibrated judge sees them
    run_ = load_run(reference)
    labels = load_gold(gold) if gold is not None else None
    result = run_calibration(run_, gold=labels, embedder=Embedder(embedding_model), match_threshold=match_threshold,
                             target_recall=target_recall, canonical_references=canonical)
    if embedding_model:
        result["embedding_model"] = embedding_model
    for table in calibrate_tables(result):
        console.print(table)
    if write_config is not None:
        write_calibrated_config(result, write_config, base_config)
        console.print(f"wrote {write_config}", highlight=False)
    if json_out is not None:
        write_json(json_out, result)


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by 'rationalerm run'.")],
    n: Annotated[int, typer.Option("--n", help="How many (sample, model) units to draw.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for audit.html, audit.jsonl and the rest.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random draw (same seed, same units).")] = 0,
    stratify: Annotated[str | None, typer.Option(
        "--stratify", help="Draw within each 'model' or 'domain' in proportion to its size.")] = None,
) -> None:
    """Draw units at random for people to label: an annotation page, the units, a labels template and Label
    Studio tasks. The page exports labels that compare --gold reads."""
    from rationalerm.analysis.audit import draw, with_context, write_audit
    from rationalerm.reporting.audit_page import write_audit_page
    from rationalerm.runs.directory import load_run

    units = with_context(draw(load_run(run_dir).rows, n, seed, stratify), run_dir)
    paths = [*write_audit(units, out), write_audit_page(units, out / "audit.html", f"rationalerm audit: {run_dir}")]
    every = f", all the run has; asked for {n}" if len(units) < n else ""
    console.print(f"drew {len(units)} unit(s) ({sum(len(u.human) * len(u.items) for u in units)} cells{every}) "
                  f"from {run_dir}; open {out / 'audit.html'} to label them", highlight=False)
    for p in paths:
        console.print(f"wrote {p}", highlight=False)


@app.command("import-label-studio")
def import_label_studio(
    audit_dir: Annotated[Path, typer.Argument(help="A directory written by 'rationalerm audit'.")],
    export_file: Annotated[Path, typer.Argument(help="Label Studio's JSON export of its labelstudio.tasks.json.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="The labels file to write (default: AUDIT_DIR/labels.jsonl).")] = None,
) -> None:
    """Label Studio's annotations of an audit -> the labels file compare --gold reads."""
    from rationalerm._util.files import write_jsonl
    from rationalerm.analysis.audit import fully_labelled, read_label_studio, read_units

    units = read_units(audit_dir / "audit.jsonl")
    cells = read_label_studio(export_file, units)
    path = out if out is not None else audit_dir / "labels.jsonl"
    write_jsonl(path, cells)
    full = fully_labelled(units, cells)
    console.print(f"wrote {path}: {len(cells)} cells, {len(full)} of {len(units)} unit(s) fully labelled",
                  highlight=False)


@app.command()
def train(
    labels: Annotated[list[Path], typer.Argument(
        help="Human pair labels (JSONL or Parquet: {human, item, label 0/1 or in [0, 1]}), audit labels ({id, model, "
        "i, j, label}, with --run) and/or run directories of any judge (distillation: every judged cell is a soft "
        "label).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for the trained CrossEncoder and its training.json.")],
    run: Annotated[Path | None, typer.Option(
        "--run", help="The run that audit labels ({id, model, i, j, label}, as `rationalerm audit` exports them) "
        "refer to: its results give the texts.")] = None,
    base: Annotated[str | None, typer.Option(
        "--base", help="Start from: a bare encoder folder, or a cross-encoder folder (one `rationalerm train` wrote, "
        "or any sentence-transformers CrossEncoder) to fine-tune (default: packaged all-MiniLM-L6-v2).")] = None,
    epochs: Annotated[float | None, typer.Option(
        "--epochs", help="Passes over the training pairs (fractions allowed; default: enough for 300 optimizer "
        "steps, at least 2 and at most 20 epochs).")] = None,
    lr: Annotated[float, typer.Option(
        "--lr", help="AdamW learning rate (linear warm-up, then linear decay).")] = _RECIPE.lr,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs per optimizer step.")] = _RECIPE.batch_size,
    max_length: Annotated[int, typer.Option(
        "--max-length", help="Tokens per (human, item) pair; longer pairs are truncated.")] = _RECIPE.max_length,
    pos_weight: Annotated[str, typer.Option(
        "--pos-weight", help="Weight of the positive term of the loss: 'auto' (negatives / positives) or a number (1 = "
        "none).")] = str(_RECIPE.pos_weight),
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction",
        help="Share of human items held out (with all their pairs) for validation and the threshold.",
    )] = _RECIPE.val_fraction,
    max_steps: Annotated[int | None, typer.Option(
        "--max-steps", help="Stop after this many optimizer steps (overrides --epochs).")] = None,
    precision: Annotated[str, typer.Option(
        "--precision",
        help="auto (bf16 autocast where the CPU/GPU has bf16 units), bf16 or fp32.")] = _RECIPE.precision,
    threshold: Annotated[str, typer.Option(
        "--threshold", help="The judge's default threshold on the calibrated probability, or 'best-f1' (the validation "
        "best-F1 one).")] = str(_RECIPE.threshold),
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of the split, the initialisation and the batches.")] = _RECIPE.seed,
    device: Annotated[str | None, typer.Option(
        "--device", help="cpu or cuda (default: cuda when available; pick a GPU with CUDA_VISIBLE_DEVICES).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="CPU threads for torch (default: torch's choice).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing model folder at --out.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Save the model even when it ranks held-out pairs no better than chance (the card says "
        "so).")] = False,
    canonical: Annotated[bool, typer.Option(
        "--canonical-references/--as-written",
        help="Fit on the texts as a judge with judge.canonical_references on (the default) sees them: 'Response A' "
        "and 'Response 1' written one way; --as-written for a judge with the rule off.")] = True,
) -> None:
    """Fit a cross-encoder matcher on human pair labels, audit labels or a judge's run (distillation)."""
    import os

    # Idle OpenMP threads sleep instead of spinning: 2.5-3x faster training on a CPU shared with other jobs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rationalerm.reporting.terminal import training_progress
    from rationalerm.training.labels import read_labels
    from rationalerm.training.trainer import train as fit

    pw = _number_or("--pos-weight", pos_weight, "auto", "must be 'auto' or a number")
    thr = _number_or("--threshold", threshold, "best-f1", "must be a number in [0, 1) or 'best-f1'")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError("--val-fraction must be in [0, 1)")
    try:  # torch and transformers write the model folder themselves: an --out they cannot write is an OSError
        label_set = read_labels(labels, run, canonical=canonical)
        recipe = Recipe(epochs="auto" if epochs is None else epochs, lr=lr, batch_size=batch_size,
                        max_length=max_length, pos_weight=pw, max_steps=max_steps, val_fraction=val_fraction,
                        seed=seed, precision=precision, threshold=thr)
        if threads:
            import torch

            torch.set_num_threads(threads)
        err.print(_labels_line(label_set, labels), highlight=False)
        with training_progress(err) as progress:
            result = fit(label_set, out, base=base, recipe=recipe, device=device, overwrite=overwrite,
                         force=force, progress=progress, log=lambda m: err.print(m, highlight=False))
    except RationaleRMError:
        raise
    except OSError as e:
        raise OutputError(str(e)) from e
    _print_trained(result.card, out)


def _labels_line(label_set: LabelSet, sources: list[Path]) -> str:
    """What ``train`` read: the pairs, the duplicates merged and the records skipped, on one line."""
    skipped = ", ".join(f"{v} {k}" for k, v in label_set.skipped.items())
    return (f"{len(label_set.pairs)} labelled pairs from {', '.join(map(str, sources))}"
            + (f" ({label_set.duplicates} duplicates merged)" if label_set.duplicates else "")
            + (f"; skipped: {skipped}" if label_set.skipped else ""))


def _print_trained(card: TrainingCard, out: Path) -> None:
    """``train``'s summary: the data and steps, the validation table, and how to use the model."""
    from rationalerm.reporting.terminal import training_table

    console.print(f"trained on {card['data']['train_pairs']} pairs, validated on {card['data']['val_pairs']} "
                  f"({card['split']['val_human_items']} held-out human items); {card['recipe']['steps']} steps in "
                  f"{card['timing']['train_s']:.0f}s on {card['device']}", highlight=False, soft_wrap=True)
    console.print(training_table(card))
    for warning in card["warnings"]:
        err.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    console.print(f"wrote {out} (CrossEncoder + training.json); use it with: "
                  f"judge: {{type: cross-encoder, model: {out}}}", highlight=False, soft_wrap=True)


@app.command()
def decompose(
    inputs: Annotated[list[Path], typer.Argument(help="JSONL or Parquet records with free-text rationales.")],
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="YAML config whose judge is 'type: llm' (the model and backend that decompose).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="JSONL to write: the same records with the checklists filled.")],
    field: Annotated[str, typer.Option(
        "--field", help="Rationale field of each model; '{model}' names the model.")] = "{model}-generated_text",
    max_items: Annotated[int, typer.Option(
        "--max-items", help="At most this many items per checklist, most important first.")] = 5,
    human: Annotated[str | None, typer.Option(
        "--human", help="Also decompose this free-text human rationale field into 'human-checklist'.")] = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="SQLite cache (default: OUT with suffix .cache.sqlite).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Generation budget per answer.")] = 1024,
    max_item_chars: Annotated[int, typer.Option(
        "--max-item-chars", help="Longest item the answer schema allows (characters).")] = 300,
    retries: Annotated[int, typer.Option("--retries", help="Re-asks of a rejected answer.")] = 2,
    no_grammar: Annotated[bool, typer.Option(
        "--no-grammar", help="Do not force the answer schema (parse strictly only).")] = False,
) -> None:
    """Decompose free-text rationales into ranked atomic checklist items with a local LLM ('{model}-checklist')."""
    from rationalerm.config import load_config, validate
    from rationalerm.decompose import DecomposeSettings, decompose_file
    from rationalerm.reporting.terminal import rich_progress

    cfg = load_config(config)
    options = {"max_items": max_items, "max_item_chars": max_item_chars, "max_tokens": max_tokens,
               "max_retries": retries, "structured": not no_grammar}
    settings = validate(DecomposeSettings, options, "rationalerm decompose options")
    with rich_progress(err) as progress:
        outcome = decompose_file(list(inputs), cfg, out, field=field, human=human, settings=settings, cache=cache,
                                 progress=progress)
    for bad in outcome.skipped[:10]:
        err.print(f"skipped {bad}", highlight=False)
    failed = outcome.targets - outcome.decomposed
    console.print(f"decomposed {outcome.decomposed} of {outcome.targets} rationales in {outcome.records} records "
                  f"({outcome.generated} asked, {outcome.cached} from cache); wrote {out}", highlight=False)
    if failed:
        reasons = "; ".join(f"{n} x {kind}" for kind, n in outcome.failures.most_common())
        console.print(f"{failed} without a checklist (reason in 'decompose-errors'): {reasons}", highlight=False)
    if outcome.faults:  # some requests got no answer: the same command retries exactly them
        err.print(f"[yellow]{outcome.faults} rationales got no answer; run the same command again to retry "
                  "them[/yellow]", markup=True, highlight=False)
        raise typer.Exit(3)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
