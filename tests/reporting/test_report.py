"""The HTML report and the exports, checked on the page's source (the browser tests are in test_report_browser.py)."""

from __future__ import annotations

import base64
import csv
import gzip
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from rationalerm._util.files import read_json, read_jsonl, write_json, write_jsonl
from rationalerm.config import RunConfig
from rationalerm.reporting.html import write_report
from rationalerm.scoring.rows import score_rows
from rationalerm.scoring.summary import summarize
from tests.helpers.report_fixtures import BIG_SAMPLES, cli, make_run


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of the data block."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._in_data = False
        self.data_block = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        self._in_data = tag == "script" and a.get("id") == "report-data"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block += data

    def attrs(self, name: str) -> list[str]:
        return [a[name] or "" for _, a in self.tags if name in a]

    def data(self) -> dict[str, Any]:
        enc = next(a for t, a in self.tags if a.get("id") == "report-data")["data-encoding"]
        raw = self.data_block
        return json.loads(gzip.decompress(base64.b64decode(raw)) if enc == "gzip+base64" else raw)


def table_cells(text: str) -> dict[tuple[str, str], dict[str, tuple[str, str]]]:
    """(run, model) -> {data-key: (data-value, shown text)} of the results table."""
    body = text[text.index('<table class="grid sortable" id="results-table">'):]
    body = body[:body.index("</table>")]
    out: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for tr in re.finditer(r'<tr data-run="([^"]*)" data-model="([^"]*)">(.*?)</tr>', body, re.S):
        cells = {}
        for td in re.finditer(r'<td[^>]*data-key="([^"]+)" data-value="([^"]*)"[^>]*>(.*?)</td>', tr.group(3), re.S):
            cells[td.group(1)] = (td.group(2), re.sub(r"<[^>]+>", "", td.group(3)).strip())
        out[(html.unescape(tr.group(1)), html.unescape(tr.group(2)))] = cells
    return out


def assert_self_contained(text: str) -> Page:
    page = Page(text)
    for value in page.attrs("src") + page.attrs("href") + page.attrs("xlink:href"):
        assert value.startswith(("#", "data:")), f"external reference {value!r}"
    assert not [t for t, a in page.tags if t == "script" and "src" in a]
    assert not [t for t, a in page.tags if t == "link" and a.get("rel") == "stylesheet"]
    assert "@import" not in text and "url(http" not in text
    return page


def assert_numbers_match(text: str, run: Path, run_name: str | None = None) -> None:
    metrics = read_json(run / "metrics.json")
    cells = table_cells(text)
    for model, m in metrics["models"].items():
        c = cells[(run_name or run.name, model)]
        for key in ("precision", "recall", "f1", "ap"):
            assert float(c[key][0]) == m[key], (model, key)  # the exact value, as in metrics.json
            assert c[key][1] == f"{m[key]:.4f}"
        lo, hi = (float(x) for x in c["rc_ci"][0].split(","))
        assert [lo, hi] == m["ci"]["recall"] and c["rc_ci"][1] == f"{lo:.3f}–{hi:.3f}"
        oa = m["oa"]["accuracy"]
        if oa is None:
            assert c["oa"] == ("None", "—")
        else:
            assert float(c["oa"][0]) == oa and c["oa"][1].startswith(f"{oa:.4f}")
            assert int(c["deceptive"][0]) == m["oa"]["deceptive"]["count"]
        assert int(c["valid"][0]) == m["n_samples"] and c["valid"][1] == f"{m['n_samples']}/{m['n_total']}"
        assert int(c["failed"][0]) == m["invalid"]["count"] and int(c["skipped"][0]) == m["excluded"]


def test_example_report(example_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "example.html"
    proc = cli("report", str(example_run), "--out", str(out))
    assert f"wrote {out}" in proc.stdout
    text = out.read_text(encoding="utf-8")
    assert "://" not in text  # not even a namespace URL or a comment: nothing that looks like a request
    page = assert_self_contained(text)
    assert_numbers_match(text, example_run)
    assert sum(1 for t, _ in page.tags if t == "svg") == 4  # OA vs RC, RC per model, distribution, domains
    data = page.data()
    assert len(data["groups"]["id"]) == 28 and len(data["runs"][0]["units"]["g"]) == 28
    rows = read_jsonl(example_run / "results.jsonl")
    # the per-sample numbers and matches in the page are the run's
    for u, row in enumerate(rows):
        g = data["runs"][0]["units"]["g"][u]
        assert data["groups"]["id"][g] == row["id"] and data["models"][data["groups"]["model"][g]] == row["model"]
        assert [data["texts"][t] for t in data["groups"]["human"][g]] == row["human"]
        assert [data["texts"][t] for t in data["groups"]["items"][g]] == row["items"]
        assert data["runs"][0]["units"]["r"][u] == pytest.approx(row["recall"], abs=1e-6)
        assert [p[:2] for p in data["runs"][0]["units"]["pairs"][u]] == [p[:2] for p in row["pairs"]]
    # provenance
    meta = read_json(example_run / "run.json")
    assert meta["fingerprint_id"] in text and "examples/rationales.jsonl" in text and meta["date"] in text
    # deterministic apart from the time it was written
    again = tmp_path / "again.html"
    write_report([example_run], again)
    strip = re.compile(r"Report written [^ ]+ by")
    assert strip.sub("", again.read_text(encoding="utf-8")) == strip.sub("", text)


def test_hostile_text_is_escaped(labelled_cli: tuple[Path, Any], tmp_path: Path) -> None:
    run, _ = labelled_cli
    hostile = make_run(tmp_path / "hostile", 40, models=("m<b>1</b>", "m\"2'"), hostile=True,
                       domains=("<i>chat</i>", "code & \"math\"", "cost $5 or $6"))
    out = tmp_path / "hostile.html"
    write_report([run, hostile], out)
    text = out.read_text(encoding="utf-8")
    page = assert_self_contained(text)
    assert sum(1 for t, _ in page.tags if t == "script") == 2  # the data block and the page's own script
    assert not [t for t, _ in page.tags if t in ("img", "b", "i")]
    assert "<script>alert" not in text and "onerror=alert" not in text.replace("\\u003c", "<").split("report-data")[0]
    assert "m&lt;b&gt;1&lt;/b&gt;" in text  # model names escaped in the table and the SVG text
    assert "&lt;i&gt;chat&lt;/i&gt;" in text  # domain names escaped inside the plots
    data = page.data()
    assert "Response 1 gives a ready-to-send message <script>alert(\"x\")</script> the user can copy." in data["texts"]
    assert "<img src=x onerror=alert(1)> \"Response 1\" is <b>better</b>" in data["texts"]
    assert_numbers_match(text, run)
    assert_numbers_match(text, hostile)
    cells = table_cells(text)
    assert {m for _, m in cells} == {"alpha", "beta", "gamma", "m<b>1</b>", "m\"2'"}


def test_report_of_20000_samples(big_run: Path, big_report: tuple[Path, float]) -> None:
    path, seconds = big_report
    text = path.read_text(encoding="utf-8")
    size_mb = path.stat().st_size / 1e6
    print(f"\n20,000 x 3 report: {size_mb:.1f} MB, written in {seconds:.1f} s")
    assert size_mb < 25
    page = assert_self_contained(text)
    assert_numbers_match(text, big_run)
    data = page.data()
    assert len(data["groups"]["id"]) == BIG_SAMPLES * 3
    assert sorted(set(data["runs"][0]["units"]["g"])) == list(range(BIG_SAMPLES * 3))
    metrics = read_json(big_run / "metrics.json")
    dec = sum(data["runs"][0]["units"]["dec"])
    assert dec == sum(m["oa"]["deceptive"]["count"] for m in metrics["models"].values())


def _perturbed_copy(src: Path, dst: Path) -> Path:
    """The same texts judged differently: every score squared, re-scored, metrics rebuilt."""
    shutil.copytree(src, dst)
    meta = read_json(dst / "run.json")
    cfg = RunConfig.model_validate(meta["config"])
    rows = []
    for r in read_jsonl(dst / "results.jsonl"):
        r["matrix"] = [[round(c * c, 6) for c in line] for line in r["matrix"]]
        rows.append(r)
    score_rows(rows, cfg.scoring)
    metrics = summarize(rows, meta["models"], cfg.scoring, cfg.outcome)
    meta["judge_fingerprint"] = {"judge": "squared"}
    write_jsonl(dst / "results.jsonl", rows)
    write_json(dst / "metrics.json", metrics)
    write_json(dst / "run.json", meta)
    return dst


def test_several_runs_side_by_side_with_compare(tmp_path: Path) -> None:
    from rationalerm.analysis.compare import compare_runs
    from rationalerm.runs.directory import load_run

    a = make_run(tmp_path / "a" / "llm", 150, seed=3)
    b = _perturbed_copy(a, tmp_path / "b" / "llm")  # same folder name: told apart by their parents
    out = tmp_path / "two.html"
    cli("report", str(a), str(b), "--out", str(out), "--threshold", "0.5")
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert_numbers_match(text, a, "a/llm")
    assert_numbers_match(text, b, "b/llm")
    expected = compare_runs(load_run(a), load_run(b), 0.5)
    section = text[text.index('<section id="compare">'):text.index('<section id="samples">')]
    for level in ("cells", "assigned"):
        assert f'data-value="{expected["pairs"][level]["kappa"]}"' in section
    assert f'data-value="{expected["per_model_rc"]["kendall_tau"]}"' in section
    assert f'data-value="{expected["per_model_rc"]["r2"]}"' in section
    assert "Base rate A" in section and "Base rate B" in section
    data = Page(text).data()
    assert len(data["runs"]) == 2 and len(data["groups"]["id"]) == 450  # shared texts: one group per sample x model


def test_report_errors(tmp_path: Path, example_run: Path) -> None:
    proc = cli("report", str(tmp_path / "nope"), "--out", str(tmp_path / "x.html"), check=False)
    assert proc.returncode == 2 and "missing" in proc.stderr
    proc = cli("report", str(example_run), str(example_run), "--out", str(tmp_path / "x.html"), check=False)
    assert proc.returncode == 2 and "twice" in proc.stderr


def test_old_run_without_outcome_keys(example_run: Path, tmp_path: Path) -> None:
    """A run written before OA existed: the report and the export compute OA from its rows."""
    old = tmp_path / "old"
    shutil.copytree(example_run, old)
    metrics = read_json(old / "metrics.json")
    for m in metrics["models"].values():
        m.pop("oa")
    metrics.pop("outcome")
    write_json(old / "metrics.json", metrics)
    meta = read_json(old / "run.json")
    meta["config"].pop("outcome")
    meta.pop("date")
    write_json(old / "run.json", meta)
    out = write_report([old], tmp_path / "old.html")
    text = out.read_text(encoding="utf-8")
    cells = table_cells(text)
    want = read_json(example_run / "metrics.json")
    for model, m in want["models"].items():
        assert float(cells[("old", model)]["oa"][0]) == m["oa"]["accuracy"]
    assert "(file time)" in text


def test_export_csv_parquet_and_plots(example_run: Path, tmp_path: Path) -> None:
    metrics = read_json(example_run / "metrics.json")
    rows = read_jsonl(example_run / "results.jsonl")
    out = tmp_path / "csv"
    proc = cli("export", str(example_run), "--format", "csv", "--out", str(out), "--plots", str(tmp_path / "plots"))
    assert "samples.csv" in proc.stdout
    with (out / "samples.csv").open(newline="") as f:
        samples = list(csv.DictReader(f))
    assert len(samples) == len(rows)
    for s, r in zip(samples, rows):
        assert (s["id"], s["model"]) == (r["id"], r["model"]) and float(s["recall"]) == r["recall"]
        assert float(s["ap"]) == r["ap"] and s["status"] == "valid"
    assert {s["outcome"] for s in samples} <= {"correct", "wrong"}
    with (out / "models.csv").open(newline="") as f:
        models = list(csv.DictReader(f))
    overall = {m["model"]: m for m in models if m["domain"] == ""}
    for name, m in metrics["models"].items():
        o = overall[name]
        assert float(o["recall"]) == m["recall"] and float(o["recall_lo"]) == m["ci"]["recall"][0]
        assert float(o["oa"]) == m["oa"]["accuracy"] and int(o["deceptive"]) == m["oa"]["deceptive"]["count"]
        for d, dm in m["by_domain"].items():
            row = next(x for x in models if x["model"] == name and x["domain"] == d)
            assert float(row["recall"]) == dm["recall"] and float(row["oa"]) == m["oa"]["by_domain"][d]["accuracy"]
    with (out / "deceptive.csv").open(newline="") as f:
        dec = list(csv.DictReader(f))
    assert len(dec) == sum(m["oa"]["deceptive"]["count"] for m in metrics["models"].values())
    assert all(float(d["rc"]) <= 0.25 and json.loads(d["human_items"]) for d in dec)
    assert sum(s["deceptive"] == "True" for s in samples) == len(dec)
    # parquet: the same tables, typed
    cli("export", str(example_run), "--format", "parquet", "--out", str(tmp_path / "pq"))
    t = pq.read_table(tmp_path / "pq" / "samples.parquet").to_pylist()
    assert [(x["id"], x["model"], x["recall"]) for x in t] == [(r["id"], r["model"], r["recall"]) for r in rows]
    assert pq.read_table(tmp_path / "pq" / "models.parquet").num_rows == len(models)
    d = pq.read_table(tmp_path / "pq" / "deceptive.parquet").to_pylist()
    assert len(d) == len(dec) and isinstance(d[0]["human_items"], list)
    # plots for papers: PNG and SVG of each figure
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == sorted(f"{n}.{e}" for n in ("oa_vs_rc", "rc_by_model", "rc_distribution", "rc_by_domain")
                           for e in ("png", "svg"))
    for p in (tmp_path / "plots").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    # default output folder: the run directory
    copy = tmp_path / "copy"
    shutil.copytree(example_run, copy)
    cli("export", str(copy))
    assert (copy / "samples.csv").exists() and (copy / "models.csv").exists()
    assert cli("export", str(copy), "--format", "xlsx", check=False).returncode == 2


def test_plots_without_labels_or_domains(tmp_path: Path) -> None:
    """A run with no labels and no domains: the report says so instead of drawing an empty figure."""
    run = make_run(tmp_path / "plain", 30, domains=("",))
    rows = read_jsonl(run / "results.jsonl")
    for r in rows:
        r["labels"], r["domain"] = {}, None
    cfg = RunConfig.model_validate(read_json(run / "run.json")["config"])
    write_jsonl(run / "results.jsonl", rows)
    write_json(run / "metrics.json", summarize(rows, ["judge-a", "judge-b", "judge-c"], cfg.scoring, cfg.outcome))
    text = write_report([run], tmp_path / "plain.html").read_text(encoding="utf-8")
    assert "no OA against RC plot" in text and 'id="plot-rc_by_domain"' not in text
    assert 'id="deceptive"' not in text
    cells = table_cells(text)
    assert all(c["oa"] == ("None", "—") for c in cells.values())


def test_listwise_rows_failed_outputs_and_long_answers(tmp_path: Path) -> None:
    """Listwise rows carry the judge's answer (cut at 4,000 characters in the page); failed outputs have no matrix."""
    run = make_run(tmp_path / "listwise", 12, models=("m",))
    rows = read_jsonl(run / "results.jsonl")
    for k, r in enumerate(rows):
        r.pop("details")
        r["judge_output"] = {"valid": k != 0, "attempts": 1 if k else 3, "error": None if k else "no RESULT block",
                             "raw": "<RESULT_START>\n- R1@S1: 1.0\n<RESULT_END>" + "x" * (5000 if k == 1 else 0)}
    rows[0].update(matrix=None, pairs=[], precision=0.0, recall=0.0, f1=0.0, ap=0.0, valid=False,
                   excluded="invalid judge output", status="error")
    cfg = RunConfig.model_validate(read_json(run / "run.json")["config"])
    write_jsonl(run / "results.jsonl", rows)
    write_json(run / "metrics.json", summarize(rows, ["m"], cfg.scoring, cfg.outcome))
    text = write_report([run], tmp_path / "l.html").read_text(encoding="utf-8")
    u = Page(text).data()["runs"][0]["units"]
    assert u["v"][0] == 0 and u["w"][0] is None and u["out"][0]["error"] == "no RESULT block"
    assert len(u["out"][1]["raw"]) == 4000 and u["out"][1]["cut"] == len(rows[1]["judge_output"]["raw"]) - 4000
    assert u["pd"][1] is None and u["v"][1] == 1
    assert table_cells(text)[("listwise", "m")]["failed"] == ("1", "1")
