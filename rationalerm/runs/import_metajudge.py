"""Bring answer files of the public reference pipeline (``metajudge_infer.py`` output) into a run directory.

Each row of such a file holds ``metadata`` (the input record: ``human-checklist``, ``{model}-checklist``, ...)
and ``samples[0].generated_text`` (the judge's listwise answer, optional ``finish_reason``). The import
writes a normal run (results.jsonl in input order, metrics.json, run.json) scored with
``compat: metajudge``, so its numbers equal the reference analysis script's; ``rationalerm score DIR
--compat none`` then re-scores the same answers under the paper's rules (strict parse, one-to-one).

Ids: a row's own ``id`` (or its metadata's), else its position in its file (the reference's order), so the same
sample in the answer files of two models gets the same id; a (sample, model) that still repeats gets ``#2``,
``#3``.. in reading order. Never a content hash: reference rows often share identical metadata, and a hash would
fold many answers into one unit for ``compare``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rationalerm._util.files import ensure_dir, iter_records
from rationalerm.config import RunConfig, ScoringConfig
from rationalerm.errors import LoadError
from rationalerm.inputs.load import CHECKLIST_SUFFIX, HUMAN_KEY, Skipped, _parse
from rationalerm.judges.llm.listwise import parse_listwise
from rationalerm.runs.directory import write_run
from rationalerm.scoring.rows import JudgeOutput, ResultRow, score_rows
from rationalerm.scoring.summary import summarize

FINGERPRINT = {"judge": "imported", "format": "metajudge_infer"}


@dataclass
class ImportOutcome:
    out_dir: Path
    rows: list[ResultRow]
    metrics: dict[str, Any]
    skipped: list[Skipped]


def reference_model(metadata: Any) -> str | None:
    """The model as the reference finds it: the first ``*-checklist`` key other than ``human-checklist``."""
    if not isinstance(metadata, dict):
        return None
    for key in metadata:
        if key.endswith(CHECKLIST_SUFFIX) and key != HUMAN_KEY:
            return key.replace(CHECKLIST_SUFFIX, "")
    return None


def _find_key(metadata: dict[str, Any], model: str) -> str | None:
    want = f"{model}{CHECKLIST_SUFFIX}".lower()
    return next((k for k in metadata if k.lower() == want), None)


def _as_items(value: Any) -> list[str]:
    return [x if isinstance(x, str) else orjson.dumps(x).decode() for x in value] if isinstance(value, list) else []


def answer_row(rec: dict[str, Any], model: str, source: str, position: int) -> ResultRow:
    """One results.jsonl row (before scoring) for one reference answer row, the ``position``-th of its file."""
    meta = rec.get("metadata")
    metadata: dict[str, Any] = meta if isinstance(meta, dict) else {}
    samples = rec.get("samples")
    first = samples[0] if isinstance(samples, list) and samples and isinstance(samples[0], dict) else None
    text = first.get("generated_text") if first is not None else None
    finish = first.get("finish_reason") if first is not None else None
    key = _find_key(metadata, model)
    human, items = _as_items(metadata.get(HUMAN_KEY)), _as_items(metadata.get(key) if key else None)
    problem = None
    if first is None:
        problem = "no samples in the row"
    elif not isinstance(text, str):
        problem = "samples[0] has no generated_text string"
    elif key is None or HUMAN_KEY not in metadata:
        problem = f"metadata lacks {HUMAN_KEY!r}" if key else f"metadata lacks '{model}{CHECKLIST_SUFFIX}'"
    try:
        sample = _parse(metadata, None, {}, [])
        domain, labels = sample.domain, sample.labels
    except ValueError:  # not a loadable input record
        domain, labels = metadata.get("domain"), {}
    output: JudgeOutput = {"raw": text if problem is None else None, "finish_reason": finish}
    matrix = None
    if problem is None and isinstance(text, str):
        strict = parse_listwise(text, len(human), len(items), finish)  # the paper's parser, for --compat none
        matrix = strict.matrix
        output["valid"], output["error"] = strict.valid, strict.error
    else:
        output["valid"], output["error"] = False, problem
    return {
        "id": str(rec.get("id", metadata.get("id", position))), "domain": None if domain is None else str(domain),
        "model": model, "source": source, "human": human, "items": items, "matrix": matrix,
        "labels": {k: v for k, v in labels.items() if k.lower() in ("label", model.lower())},
        "judge_output": output,
    }


def _answer_rows(path: Path, model: str | None) -> tuple[str, list[ResultRow], list[Skipped]]:
    """One answer file: its model (``model``, or the reference's guess from the first row), its rows and the lines
    skipped."""
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    records = list(iter_records(path))
    name = model
    if name is None:
        first = next((r.value for r in records if r.error is None), None)
        name = reference_model(first.get("metadata") if isinstance(first, dict) else None)
    if name is None:
        raise LoadError(f"{path}:1: no '<model>-checklist' key in the first row's metadata; name the model "
                        "with --model")
    rows: list[ResultRow] = []
    skipped: list[Skipped] = []
    for r in records:
        err = r.error
        if err is None and not isinstance(r.value, dict):
            err = f"row must be a JSON object, got {type(r.value).__name__}"
        if err is not None:
            skipped.append(Skipped(str(path), r.line, err))
            continue
        rows.append(answer_row(r.value, name, r.where, r.line))
    return name, rows, skipped


def _number_repeats(rows: list[ResultRow]) -> None:
    """One unit per row: a (sample id, model) seen before gets ``#2``, ``#3``.. (reading order)."""
    seen: Counter[tuple[str, str]] = Counter()
    for row in rows:
        key = (row["id"], row["model"])
        seen[key] += 1
        if seen[key] > 1:
            row["id"] = f"{row['id']}#{seen[key]}"


def import_answers(files: Sequence[str | Path], out_dir: str | Path, model: str | None = None) -> ImportOutcome:
    """Read reference answer files and write a run directory scored with ``compat: metajudge``."""
    out = Path(out_dir)
    rows: list[ResultRow] = []
    skipped: list[Skipped] = []
    models: list[str] = []
    for f in files:
        name, file_rows, file_skipped = _answer_rows(Path(f), model)
        if name not in models:
            models.append(name)
        rows += file_rows
        skipped += file_skipped
    _number_repeats(rows)
    cfg = RunConfig(scoring=ScoringConfig(compat="metajudge"))
    score_rows(rows, cfg.scoring)
    metrics = summarize(rows, models, cfg.scoring, cfg.outcome)
    metrics["skipped"] = {"count": len(skipped), "records": [str(s) for s in skipped]}
    write_run(ensure_dir(out), inputs=files, config=cfg.model_dump(mode="json"), rows=rows, metrics=metrics,
              fingerprint=FINGERPRINT, models=models)
    return ImportOutcome(out, rows, metrics, skipped)
