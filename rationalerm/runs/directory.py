"""A run directory: what ``rationalerm run`` (or an import, or a re-score) writes, and the one reader of it.

A run directory holds ``results.jsonl`` (one row per sample and model), ``metrics.json`` (the corpus figures),
``run.json`` (``RunJson``: resolved config, judge fingerprint, versions) and ``cache.sqlite`` (``judges/cache.py``);
``estimate.json`` once ``rationalerm estimate`` has run on it (``analysis/estimate.py``, which reads it back).
``load_run`` reads the first three into a ``SavedRun``; the report, the export, compare, calibrate and
``rationalerm score`` all read runs through it. Training reads a teacher run's rows through ``iter_results``: a
record at a time, each with its ``path:line``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
from pydantic import ValidationError

from rationalerm._util.files import Record, iter_records, read_json, write_json, write_jsonl
from rationalerm._util.versions import versions
from rationalerm.config import OutcomeConfig, RunConfig, validate
from rationalerm.errors import OutputError, RationaleRMError
from rationalerm.judges.cache import fingerprint_id
from rationalerm.scoring.rows import ResultRow
from rationalerm.scoring.summary import add_outcome

RESULTS, METRICS, RUN_JSON = "results.jsonl", "metrics.json", "run.json"
UnitKey = tuple[str, str]  # (sample id, model)


class RunJson(TypedDict, total=False):
    """``run.json``: what produced the run. Runs written before a key existed lack it (``date``, ``process``)."""

    inputs: list[str]
    config: dict[str, Any]  # the resolved RunConfig as saved; ``SavedRun.config`` is it typed
    judge_fingerprint: dict[str, Any]
    fingerprint_id: str
    versions: dict[str, str]
    models: list[str]
    date: str
    process: dict[str, Any]  # this process's judge calls, cache hits, timings: not part of the result
    rescored_from: str  # a re-score written beside its run: the run it re-scored


def write_run(
    out: Path, *, inputs: Sequence[str | Path], config: dict[str, Any], rows: Sequence[ResultRow] | None,
    metrics: dict[str, Any], fingerprint: dict[str, Any], models: Sequence[str], process: dict[str, Any] | None = None,
) -> None:
    """Write a run's ``results.jsonl``, ``metrics.json`` and ``run.json``, each atomically.

    ``process`` (judge calls, cache hits, timings) describes this process, not the result: it goes to run.json
    only, so results.jsonl and metrics.json stay a function of the input and the config. ``rows`` None: the
    caller has written results.jsonl itself (a streamed run assembles it from its parts, ``parts.py``)."""
    if rows is not None:
        write_jsonl(out / RESULTS, rows)
    write_json(out / METRICS, metrics)
    meta = RunJson(inputs=[str(p) for p in inputs], config=config, judge_fingerprint=fingerprint,
                   fingerprint_id=fingerprint_id(fingerprint), versions=versions(), models=list(models),
                   date=datetime.now(UTC).isoformat(timespec="seconds"))
    if process is not None:
        meta["process"] = process
    write_json(out / RUN_JSON, meta)


def iter_results(run_dir: str | Path) -> Iterator[Record]:
    """The rows of a run's ``results.jsonl``, a record at a time (bounded memory), each with its ``path:line``."""
    return iter_records(Path(run_dir) / RESULTS)


@dataclass(frozen=True)
class SavedRun:
    """A run directory read back: its rows in file order, its figures, and what produced it."""

    path: Path
    name: str
    """Short display name, unique among the runs shown together (``load_runs``)."""
    rows: list[ResultRow]
    metrics: dict[str, Any]
    meta: RunJson
    config: RunConfig
    """run.json's config, typed (``saved_config``)."""

    @cached_property
    def units(self) -> dict[UnitKey, ResultRow]:
        """The rows by (sample id, model): compare and calibrate align runs (and gold labels) by them."""
        return {(str(r["id"]), str(r["model"])): r for r in self.rows}

    def matrix(self, key: UnitKey) -> np.ndarray | None:
        """The unit's score matrix; None when it has none (invalid) or is incomplete (failed pairs)."""
        row = self.units[key]
        m = row.get("matrix")
        if m is None or any(x is None for line in m for x in line):
            return None
        return np.asarray(m, dtype=float).reshape(len(row["human"]), -1)

    @property
    def models(self) -> list[str]:
        return list(self.metrics.get("models", {})) or list(self.meta.get("models", []))

    @property
    def label_field(self) -> str:
        return self.config.outcome.label_field

    @property
    def threshold(self) -> float:
        """The deceptive-alignment threshold the figures were computed with."""
        outcome = self.metrics.get("outcome") or {}
        return float(outcome.get("deceptive_threshold", self.config.outcome.deceptive_threshold))

    @property
    def date(self) -> str:
        """run.json's date, or (runs written before it was recorded) the time results.jsonl was written."""
        if self.meta.get("date"):
            return str(self.meta["date"])
        stamp = os.stat(self.path / RESULTS).st_mtime
        return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds") + " (file time)"

    def with_outcome(self, deceptive_threshold: float | None = None) -> SavedRun:
        """This run with OA in its figures: recomputed from the rows when metrics.json predates OA, or when
        another deceptive-alignment threshold is asked for (the report's and the export's option)."""
        models = self.metrics.get("models", {})
        if deceptive_threshold is None and "outcome" in self.metrics and all("oa" in m for m in models.values()):
            return self
        config = self.config
        if deceptive_threshold is not None:
            outcome = {**config.outcome.model_dump(), "deceptive_threshold": deceptive_threshold}
            config = config.model_copy(update={"outcome": validate(OutcomeConfig, outcome, "--deceptive-threshold")})
        metrics = add_outcome(copy.deepcopy(self.metrics), self.rows, config.scoring, config.outcome)
        return replace(self, metrics=metrics, config=config)


def saved_config(raw: object) -> RunConfig:
    """run.json's config typed. A section that does not validate (a run.json of another version, or written by
    hand) is read as its defaults, so the sections that do (the outcome settings, the scoring) still count."""
    if not isinstance(raw, dict):  # no config saved (a hand-made run.json): the defaults
        raw = {}
    try:
        return RunConfig.model_validate(raw)
    except ValidationError:
        pass
    kept = {}
    for key, value in raw.items():
        try:
            RunConfig.model_validate({key: value})
        except ValidationError:  # this section (or an unknown key): its defaults
            continue
        kept[key] = value
    return RunConfig.model_validate(kept)


def load_run(path: str | Path, name: str | None = None) -> SavedRun:
    """Read a run directory (results.jsonl, metrics.json and run.json: a run always writes the three)."""
    path = Path(path)
    for fname in (RESULTS, METRICS, RUN_JSON):
        if not (path / fname).exists():
            raise OutputError(f"{path / fname}: missing; is {path} a run directory?")
    meta: RunJson = read_json(path / RUN_JSON)
    rows = [record.decoded() for record in iter_results(path)]
    return SavedRun(path, name or path.name or str(path), rows, read_json(path / METRICS), meta,
                    saved_config(meta.get("config")))


def load_runs(paths: Sequence[str | Path]) -> list[SavedRun]:
    """Several runs, each named by its directory with enough parent folders to tell them apart."""
    dirs = [Path(p) for p in paths]
    return [load_run(p, n) for p, n in zip(dirs, _short_names(dirs))]


def _short_names(paths: list[Path]) -> list[str]:
    resolved = [p.resolve() for p in paths]
    for depth in range(1, 8):
        names = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def one_row_per_unit(run: SavedRun, command: str) -> SavedRun:
    """``run``, or an error naming the first (sample id, model) it holds twice: aligned by that key (``compare``,
    ``calibrate``, ``estimate``), the second row would silently replace the first."""
    if len(run.units) == len(run.rows):
        return run
    first: dict[UnitKey, int] = {}
    for line, row in enumerate(run.rows, 1):
        key = (str(row["id"]), str(row["model"]))
        if key in first:
            raise RationaleRMError(
                f"{run.path / RESULTS}:{line}: sample {key[0]!r} x model {key[1]!r} is also on line {first[key]} "
                f"({len(run.rows) - len(run.units)} repeated units in all); {command} needs one row per sample and "
                "model: give the samples unique ids (a run an older import-metajudge wrote: import it again)")
        first[key] = line
    return run
