"""``rationalerm report RUN... --out report.html``: one self-contained HTML file (DESIGN.md step 7).

The page is rendered by Jinja2 (``templates/report.html.j2``, autoescaped) and needs no network: CSS,
JavaScript and the plots (inline SVG) are in the file. The per-sample data travels as one JSON document in a
``<script type="application/json">`` block (``<``, ``>`` and ``&`` escaped as ``\\u003c`` ... so no text can
close the block) and the page's script renders rows on demand with ``textContent`` only, never HTML.

Data layout (``build_data``): a string table ``texts`` (every human and model item once), ``groups`` (one per
sample x model x texts: id, domain, model, item indices, the raw labels) and per run columnar ``units`` (the
group, the four metrics, validity, outcome, matched pairs, the rounded matrix and the judge's details).
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import orjson
from jinja2 import Environment, PackageLoader, select_autoescape

from rationalerm._util.files import atomic_write_bytes
from rationalerm._util.numbers import fmt, rounded
from rationalerm._version import __version__
from rationalerm.errors import OutputError, RationaleRMError
from rationalerm.runs.directory import SavedRun, load_runs
from rationalerm.scoring.outcome import is_deceptive, row_outcome

if TYPE_CHECKING:
    from rationalerm.analysis.compare import RunComparison

COMPRESS_ABOVE = 4_000_000
"""Page data larger than this (bytes of JSON) is embedded gzip-compressed, in base64."""
RAW_LIMIT = 4000
"""Listwise answers longer than this many characters are cut in the page (the run keeps them whole)."""


def _compact_detail(d: Any) -> Any:
    """A judge's per-cell detail with its floats rounded to 4 places (level probabilities, cosines)."""
    if not isinstance(d, dict):
        return d
    out = {}
    for k, v in d.items():
        if isinstance(v, float):
            v = round(v, 4)
        elif isinstance(v, list) and v and all(isinstance(p, float) for p in v):
            v = np.round(np.asarray(v, dtype=float), 4)
        out[k] = v
    return out


def build_data(views: Sequence[SavedRun]) -> dict[str, Any]:
    """The page's JSON document (see the module docstring)."""
    texts: dict[str, int] = {}
    domains: dict[str | None, int] = {}
    models: dict[str, int] = {}

    def tid(s: str) -> int:
        got = texts.get(s)
        if got is None:
            got = texts[s] = len(texts)
        return got

    gkeys: dict[tuple[Any, ...], int] = {}
    groups: dict[str, list[Any]] = {"id": [], "dom": [], "model": [], "human": [], "items": [], "hl": [], "ml": []}
    runs = []
    for v in views:
        label_field = v.label_field
        threshold = v.threshold
        u: dict[str, list[Any]] = {k: [] for k in ("g", "p", "r", "f", "ap", "v", "x", "ok", "dec", "pairs", "w",
                                                   "pd", "out")}
        for row in v.rows:
            human = [tid(s) for s in row["human"]]
            items = [tid(s) for s in row["items"]]
            model = models.setdefault(str(row["model"]), len(models))
            key = (str(row["id"]), model, tuple(human), tuple(items))
            g = gkeys.get(key)
            o = row_outcome(row, label_field)
            if g is None:
                g = gkeys[key] = len(groups["id"])
                groups["id"].append(str(row["id"]))
                groups["dom"].append(domains.setdefault(row.get("domain"), len(domains)))
                groups["model"].append(model)
                groups["human"].append(human)
                groups["items"].append(items)
                groups["hl"].append(o.human_raw)
                groups["ml"].append(o.model_raw)
            has_matrix = row.get("matrix") is not None
            u["g"].append(g)
            for k, name in (("p", "precision"), ("r", "recall"), ("f", "f1"), ("ap", "ap")):
                u[k].append(row.get(name))
            u["v"].append(0 if not has_matrix else 1 if row.get("valid", True) else 2)
            u["x"].append(row.get("excluded"))
            u["ok"].append({"correct": 1, "wrong": 0}.get(o.status))
            u["dec"].append(1 if is_deceptive(row, o, threshold) else 0)
            pairs: list[list[Any]] = [[int(i), int(j), rounded(s, 4)] for i, j, s in row.get("pairs") or []]
            u["pairs"].append(pairs)
            # The matrix in hundredths, row-major (the page knows the item counts): small and fast to write.
            u["w"].append(np.rint(np.asarray(row["matrix"], dtype=float) * 100).astype(np.uint8).ravel()
                          if has_matrix and len(items) else None)
            details = row.get("details")
            u["pd"].append([_compact_detail(details[i][j]) for i, j, _ in pairs] if details else None)
            out = row.get("judge_output")
            shown: dict[str, Any] | None = None
            if out is not None:
                raw = out.get("raw") or ""
                shown = {"valid": out.get("valid"), "attempts": out.get("attempts"), "error": out.get("error"),
                         "raw": raw[:RAW_LIMIT], "cut": max(0, len(raw) - RAW_LIMIT)}
            u["out"].append(shown)
        for k in ("p", "r", "f", "ap"):  # NaN-free by construction; rounded as one array
            u[k] = np.round(np.asarray(u[k], dtype=float), 6)  # type: ignore[assignment]
        runs.append({"name": v.name, "models": v.models, "threshold": threshold, "label_field": label_field,
                     "units": u})
    return {"texts": list(texts), "domains": [d for d in domains], "models": list(models), "groups": groups,
            "runs": runs}


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def embed_data(obj: Any, compress_above: int = COMPRESS_ABOVE) -> tuple[str, str, str]:
    """(script type, encoding, text) of the page's data block: plain JSON, or gzip + base64 when larger than
    ``compress_above`` bytes (the page inflates it with the browser's DecompressionStream)."""
    raw = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    if len(raw) <= compress_above:
        return "application/json", "json", _json_for_script(obj)
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    return "application/octet-stream", "gzip+base64", base64.b64encode(packed).decode("ascii")


def _table_rows(views: Sequence[SavedRun]) -> list[dict[str, Any]]:
    rows = []
    for k, v in enumerate(views):
        for name, m in v.metrics.get("models", {}).items():
            oa = m.get("oa") or {}
            dec = oa.get("deceptive") or {}
            has = bool(m.get("n_samples"))
            rows.append({
                "run": v.name, "run_index": k, "model": name,
                "precision": m.get("precision") if has else None, "recall": m.get("recall") if has else None,
                "rc_ci": m["ci"]["recall"] if has else None,
                "f1": m.get("f1") if has else None, "ap": m.get("ap") if has else None,
                "oa": oa.get("accuracy"), "oa_ci": oa.get("ci"), "oa_n": oa.get("n", 0),
                "oa_missing": oa.get("missing", 0), "oa_unparseable": oa.get("unparseable", 0),
                "oa_examples": oa.get("unparseable_examples", []),
                "deceptive": dec.get("count") if oa.get("accuracy") is not None else None,
                "correct_with_rc": dec.get("correct_with_rc"),
                "valid": m.get("n_samples", 0), "total": m.get("n_total", m.get("n_samples", 0)),
                "failed": (m.get("invalid") or {}).get("count", 0), "skipped": m.get("excluded", 0),
            })
    return rows


class FailedComparison(TypedDict):
    """Two runs that share no scored unit: the page says why instead of figures."""

    a: str
    b: str
    error: str


def _compare(views: Sequence[SavedRun], threshold: float) -> list[RunComparison | FailedComparison]:
    """``compare_runs`` for every pair of runs that share scored units with the same texts."""
    from rationalerm.analysis.compare import compare_runs

    out: list[RunComparison | FailedComparison] = []
    for a in range(len(views)):
        for b in range(a + 1, len(views)):
            try:
                res = compare_runs(views[a], views[b], threshold)
            except RationaleRMError as e:
                out.append({"a": views[a].name, "b": views[b].name, "error": str(e)})
                continue
            res["a"], res["b"] = views[a].name, views[b].name
            out.append(res)
    return out


METRIC_NAMES = {"recall": "RC", "precision": "Precision", "f1": "F1", "ap": "AP"}


def _estimates(views: Sequence[SavedRun]) -> list[dict[str, Any]]:
    """Per run with a saved estimate (``rationalerm estimate``, analysis/estimate.py): its raw and corrected
    figures per model, or (``stale``) why they are not shown: the run or its gold changed since."""
    from rationalerm.analysis.estimate import saved_estimate

    out: list[dict[str, Any]] = []
    for v in views:
        found = saved_estimate(v.path)
        if found is None:
            continue
        entry: dict[str, Any] = {"run": v.name, "path": str(found.path), "stale": found.stale}
        if found.saved is not None and found.stale is None:
            saved = found.saved
            entry.update(metric=METRIC_NAMES.get(saved["metric"], saved["metric"]), confidence=saved["confidence"],
                         gold=saved["gold"]["path"], date=saved["date"], rows=[
                             {"model": model, "raw": e["raw"], "corrected": e["corrected"], "n": e["n"],
                              "n_gold": e["n_gold"], "rho": e["rho"], "gain": e["effective_gain"]}
                             for model, e in saved["result"]["models"].items()])
        out.append(entry)
    return out


def _provenance(v: SavedRun) -> dict[str, Any]:
    m = v.metrics
    skipped = m.get("skipped") or {}
    return {
        "name": v.name, "path": str(v.path), "inputs": v.meta.get("inputs", []), "date": v.date,
        "fingerprint": json.dumps(v.meta.get("judge_fingerprint"), indent=2, sort_keys=True),
        "fingerprint_id": v.meta.get("fingerprint_id"),
        "config": json.dumps(v.meta.get("config"), indent=2),
        "versions": v.meta.get("versions") or {}, "models": v.models,
        "skipped_count": skipped.get("count", 0), "skipped_records": (skipped.get("records") or [])[:20],
        "judge": v.meta.get("process") or m.get("judge"), "prefilter": m.get("prefilter"), "scoring": m.get("scoring"),
        "outcome": m.get("outcome"),
    }


def render(views: Sequence[SavedRun], *, title: str | None = None, compare_threshold: float = 0.5,
           compress_above: int = COMPRESS_ABOVE) -> str:
    """The whole page as a string."""
    from rationalerm.reporting.plots import colour_key, inline_svgs

    env = Environment(loader=PackageLoader("rationalerm.reporting", "templates"),
                      autoescape=select_autoescape(["j2", "html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    template = env.get_template("report.html.j2")
    table = _table_rows(views)
    data = build_data(views)
    n_groups = len(data["groups"]["id"])
    data_type, data_encoding, data_text = embed_data(data, compress_above)
    del data
    return template.render(
        title=title or "rationalerm report — " + ", ".join(v.name for v in views),
        generated=datetime.now(UTC).isoformat(timespec="seconds"), version=__version__,
        views=views, table=table, estimates=_estimates(views), plots=inline_svgs(views), colour_key=colour_key(views),
        compare=_compare(views, compare_threshold),
        compare_threshold=compare_threshold, provenance=[_provenance(v) for v in views],
        thresholds=sorted({v.threshold for v in views}), labelled=any(r["oa"] is not None for r in table),
        n_groups=n_groups, data_json=data_text, data_type=data_type, data_encoding=data_encoding,
    )


def write_report(run_dirs: Sequence[str | Path], out: str | Path, *, title: str | None = None,
                 deceptive_threshold: float | None = None, compare_threshold: float = 0.5,
                 compress_above: int = COMPRESS_ABOVE) -> Path:
    if len({Path(p).resolve() for p in run_dirs}) != len(run_dirs):
        raise OutputError("a run directory is given twice")
    views = [run.with_outcome(deceptive_threshold) for run in load_runs(run_dirs)]
    page = render(views, title=title, compare_threshold=compare_threshold, compress_above=compress_above)
    out = Path(out)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out


__all__ = ["build_data", "render", "write_report"]
