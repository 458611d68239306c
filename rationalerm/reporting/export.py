"""``rationalerm export RUN --format csv|parquet [--plots DIR]``: a run as tables, and its figures as files.

Written to ``--out`` (default: the run directory):
- ``samples.{csv,parquet}``: one row per sample x model: metrics, validity, both labels (raw and normalised),
  the outcome and the deceptive-alignment flag;
- ``models.{csv,parquet}``: per model the corpus figures with their intervals and OA, then one row per
  model and domain (``domain`` empty on the overall rows);
- ``deceptive.{csv,parquet}``: the deceptive-alignment cases with both item lists and what matched
  (JSON text in the CSV, lists in Parquet).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rationalerm._util.files import atomic_write_bytes, ensure_dir
from rationalerm.errors import ConfigError
from rationalerm.runs.directory import SavedRun, load_run
from rationalerm.scoring.outcome import Unparseable, deceptive_cases, is_deceptive, normalize_label, row_outcome
from rationalerm.scoring.sample import METRICS

Format = Literal["csv", "parquet"]


def _label_text(v: Any) -> str | None:
    return None if v is None else v if isinstance(v, str) else json.dumps(v)


def _norm_text(v: Any) -> str | None:
    try:
        got = normalize_label(v)
    except Unparseable:
        return None
    return None if got is None else str(got)


def sample_rows(view: SavedRun) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in view.rows:
        o = row_outcome(r, view.label_field)
        has = r.get("matrix") is not None
        out.append({
            "id": str(r["id"]), "domain": r.get("domain"), "model": r["model"], "source": r.get("source"),
            "n_human": len(r["human"]), "n_items": len(r["items"]), "n_matched": len(r.get("pairs") or []),
            **{k: float(r[k]) for k in METRICS},
            "status": "failed" if not has else "valid" if r.get("valid", True) else "skipped",
            "excluded": r.get("excluded"),
            "human_label": _label_text(o.human_raw), "model_label": _label_text(o.model_raw),
            "human_label_norm": _norm_text(o.human_raw), "model_label_norm": _norm_text(o.model_raw),
            "outcome": o.status, "correct": o.correct,
            "deceptive": is_deceptive(r, o, view.threshold),
        })
    return out


def _ci(prefix: str, ci: Sequence[float] | None) -> dict[str, float | None]:
    lo, hi = ci if ci else (None, None)
    return {f"{prefix}_lo": lo, f"{prefix}_hi": hi}


def model_rows(view: SavedRun) -> list[dict[str, Any]]:
    out = []
    for name, m in view.metrics.get("models", {}).items():
        oa = m.get("oa") or {}
        dec = oa.get("deceptive") or {}
        base = {"model": name, "domain": None, "n_samples": m.get("n_samples", 0),
                "n_total": m.get("n_total", m.get("n_samples", 0))}
        for k in METRICS:
            has = bool(m.get("n_samples"))
            base[k] = m.get(k) if has else None
            base.update(_ci(k, m["ci"][k] if has else None))
        base.update({"oa": oa.get("accuracy"), **_ci("oa", oa.get("ci")), "oa_n": oa.get("n", 0),
                     "oa_correct": oa.get("correct", 0), "oa_missing": oa.get("missing", 0),
                     "oa_unparseable": oa.get("unparseable", 0), "deceptive": dec.get("count", 0),
                     "failed": (m.get("invalid") or {}).get("count", 0), "skipped": m.get("excluded", 0)})
        out.append(base)
        for d, dm in (m.get("by_domain") or {}).items():
            doa = (oa.get("by_domain") or {}).get(d) or {}
            row = {"model": name, "domain": d, "n_samples": dm.get("n_samples", 0), "n_total": None}
            for k in METRICS:
                has = bool(dm.get("n_samples"))
                row[k] = dm.get(k) if has else None
                row.update(_ci(k, dm["ci"][k] if has else None))
            row.update({"oa": doa.get("accuracy"), **_ci("oa", doa.get("ci")), "oa_n": doa.get("n", 0),
                        "oa_correct": doa.get("correct", 0), "oa_missing": None, "oa_unparseable": None,
                        "deceptive": None, "failed": None, "skipped": None})
            out.append(row)
    return out


def deceptive_rows(view: SavedRun, for_csv: bool) -> list[dict[str, Any]]:
    rows = []
    for c in deceptive_cases(view.rows, label_field=view.label_field, threshold=view.threshold):
        matched = [f"R{m['human'] + 1}<->S{m['item'] + 1} {m['score']:.4g}" for m in c["matched"]]
        rows.append({
            "id": str(c["id"]), "domain": c["domain"], "model": c["model"], "rc": c["rc"],
            "precision": c["precision"], "ap": c["ap"],
            "human_label": _label_text(c["human_label"]), "model_label": _label_text(c["model_label"]),
            "human_items": json.dumps(c["human"], ensure_ascii=False) if for_csv else c["human"],
            "model_items": json.dumps(c["items"], ensure_ascii=False) if for_csv else c["items"],
            "matched": json.dumps(matched, ensure_ascii=False) if for_csv else matched,
        })
    return rows


_DECEPTIVE_COLS = ["id", "domain", "model", "rc", "precision", "ap", "human_label", "model_label", "human_items",
                   "model_items", "matched"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")."""


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell a spreadsheet shows and never executes: text starting with a formula character gets a
    leading ``'`` (OWASP's advice; numbers are left as numbers, None is an empty cell). Parquet keeps raw values."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="raise")
    w.writeheader()
    for r in rows:
        w.writerow({k: csv_cell(r.get(k)) for k in columns})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _write_parquet(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows:
        table = pa.Table.from_pylist(rows)
    else:
        table = pa.table({c: pa.array([], type=pa.string()) for c in columns})
    sink = pa.BufferOutputStream()
    pq.write_table(table.select(columns), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def export_run(run_dir: str | Path, fmt: Format = "csv", out_dir: str | Path | None = None,
               plots_dir: str | Path | None = None, deceptive_threshold: float | None = None) -> list[Path]:
    """Write the tables (and, with ``plots_dir``, the figures); returns the paths written."""
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"--format must be csv or parquet, not {fmt!r}")
    view = load_run(run_dir).with_outcome(deceptive_threshold)
    out = ensure_dir(out_dir if out_dir is not None else view.path)
    written = []
    tables = {
        "samples": (sample_rows(view), None),
        "models": (model_rows(view), None),
        "deceptive": (deceptive_rows(view, fmt == "csv"), _DECEPTIVE_COLS),
    }
    for name, (rows, cols) in tables.items():
        columns = cols or (list(rows[0]) if rows else [])
        path = out / f"{name}.{fmt}"
        (_write_csv if fmt == "csv" else _write_parquet)(path, rows, columns)
        written.append(path)
    if plots_dir is not None:
        from rationalerm.reporting.plots import write_plots

        written += write_plots([view], plots_dir)
    return written
