"""The streamed run (issue 17): byte for byte the outputs of the in-memory run it replaced, at any shard size,
after a kill in the middle of the shard pass too; the corpus figures kept per row equal those of all rows at once;
the bootstrap in blocks equals the bootstrap in one array."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationalerm._util.files import read_jsonl
from rationalerm.config import load_config
from rationalerm.pipeline import run
from rationalerm.runs.parts import PARTS
from rationalerm.scoring import stats as stats_module
from rationalerm.scoring.rows import score_rows
from rationalerm.scoring.stats import Bootstrap, bootstrap_mean
from rationalerm.scoring.summary import CorpusTally, summarize
from tests.helpers.batch_summary import batch_metrics
from tests.helpers.corpus import write_corpus
from tests.helpers.paths import ROOT
from tests.helpers.reference_run import reference_run

EXAMPLE = ROOT / "examples" / "rationales.jsonl"
OUTPUTS = ("results.jsonl", "metrics.json")


def _same(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated 5,000-sample file (6 x 6 items, two models) and its pre-streaming reference run."""
    tmp = tmp_path_factory.mktemp("stream")
    data = write_corpus(tmp / "g5k.jsonl", 5000)
    ref = tmp / "ref"
    reference_run([data], load_config(None), ref)
    return data, ref


def test_examples_stream_equals_in_memory_run(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    reference_run([EXAMPLE], load_config(None), ref)
    for shard in (1, 5, 1000):  # one sample a shard, shards across the file, one shard
        out = tmp_path / f"s{shard}"
        outcome = run(EXAMPLE, load_config(None, {"shard_size": shard}), out)
        _same(out, ref)
        assert not (out / PARTS).exists() and len(outcome.rows) == 28


def test_5k_stream_equals_in_memory_run(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    data, ref = corpus
    out = tmp_path / "fresh"  # its own cache: the judge stage runs again, streamed
    outcome = run(data, load_config(None, {"shard_size": 700}), out)
    _same(out, ref)
    meta = json.loads((out / "run.json").read_text())["process"]
    assert meta["samples"] == 5000 and outcome.judged == meta["judged"] > 0


def test_5k_prefilter_stream_equals_in_memory_run(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    data, ref_plain = corpus
    pf = {"prefilter.enabled": True, "prefilter.top_k": 2, "cache": str(ref_plain / "cache.sqlite")}
    ref = tmp_path / "ref"
    reference_run([data], load_config(None, pf), ref)
    out = tmp_path / "out"
    run(data, load_config(None, {**pf, "shard_size": 999}), out)
    _same(out, ref)
    assert json.loads((out / "metrics.json").read_text())["prefilter"]["unique_pairs_kept"] > 0


def test_killed_in_shard_pass_reuses_parts_and_writes_same_bytes(tmp_path: Path, corpus: tuple[Path, Path]) -> None:
    """kill -9 once parts exist: no results.jsonl, whole parts; the next run reuses them and writes the same bytes.
    A parts folder of another config is never reused."""
    data, ref = corpus
    cfg = tmp_path / "small-shards.yaml"
    cfg.write_text(f"shard_size: 50\ncache: {ref / 'cache.sqlite'}\n")  # judged already: the shard pass is all
    out = tmp_path / "out"
    args = [sys.executable, "-m", "rationalerm", "run", str(data), "--config", str(cfg), "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(list((out / PARTS).glob("*.jsonl"))) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (out / "results.jsonl").exists()
    parts = sorted((out / PARTS).glob("*.jsonl"))
    assert len(parts) >= 3 and all(p.read_bytes().endswith(b"\n") for p in parts)
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    _same(out, ref)
    assert json.loads((out / "run.json").read_text())["process"]["shards_reused"] >= 3
    assert not (out / PARTS).exists()

    stale = tmp_path / "stale"  # parts left by another config (another shard size): discarded, not reused
    (stale / PARTS).mkdir(parents=True)
    (stale / PARTS / "manifest.json").write_text('{"key": "other"}')
    (stale / PARTS / "000000.jsonl").write_text('{"bogus": 1}\n')
    run(data, load_config(cfg, {"shard_size": 1700}), stale)
    _same(stale, ref)
    assert json.loads((stale / "run.json").read_text())["process"]["shards_reused"] == 0


def test_tally_equals_summary_of_all_rows(corpus: tuple[Path, Path]) -> None:
    """Rows of every status (valid, error, failed, skipped by compat), labels of every kind, per domain: the tally
    fed a row at a time, and ``summarize`` (the tally fed the list), equal the old all-rows-at-once builder."""
    _, ref = corpus
    rows = read_jsonl(ref / "results.jsonl")[:3000]
    for k, row in enumerate(rows):
        if k % 7 == 3:
            row["matrix"] = None  # an unusable judge answer: error
        elif k % 11 == 5 and row["matrix"] and row["matrix"][0]:
            row["matrix"][0][0] = None  # a failed pair
            row["details"][0][0] = {"failed": "timeout", "error": "no answer"}
        if k % 13 == 0:
            row["domain"] = None
    cfg = load_config(None, {"outcome.deceptive_threshold": 0.4})
    for scoring in (cfg.scoring, cfg.scoring.model_copy(update={"compat": "metajudge"})):
        scores = score_rows(rows, scoring)
        want = json.dumps(batch_metrics(rows, scores, ["Qwen3-8B", "Llama-3.1-8B"], cfg, scoring))
        tally = CorpusTally(["Qwen3-8B", "Llama-3.1-8B"], scoring, cfg.outcome)
        for row in rows:
            tally.add(row)
        assert json.dumps(tally.metrics()) == want
        assert json.dumps(summarize(rows, ["Qwen3-8B", "Llama-3.1-8B"], scoring, cfg.outcome)) == want


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), n_boot=st.integers(0, 50), cells=st.integers(1, 400), seed=st.integers(0, 3))
def test_bootstrap_in_blocks_equals_one_array(n: int, n_boot: int, cells: int, seed: int) -> None:
    x = np.random.default_rng(seed + 100).random(n)
    old = stats_module._BOOT_CELLS
    stats_module._BOOT_CELLS = cells  # blocks of a few rows (or one row) instead of the default 2M cells
    try:
        got = bootstrap_mean(x.tolist(), n_boot=n_boot, seed=seed)
    finally:
        stats_module._BOOT_CELLS = old
    if n < 2 or n_boot == 0:
        assert got.low == got.high == got.mean
        return
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # the one-array computation
    alpha = (1 - 0.95) / 2
    lo, hi = np.quantile(x[idx].mean(axis=1), [alpha, 1 - alpha])
    assert (got.mean, got.low, got.high) == (float(x.mean()), float(lo), float(hi))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), n_boot=st.integers(0, 60), cells=st.integers(1, 2000), seed=st.integers(0, 3),
       columns=st.integers(1, 4))
def test_bootstrap_of_several_columns_equals_each_column_alone(n: int, n_boot: int, cells: int, seed: int,
                                                               columns: int) -> None:
    """The summary resamples a model's four metrics with one index draw (``Bootstrap.intervals``): every column's
    interval is, bit for bit, the one ``bootstrap_mean`` gives it alone (blocks of any size)."""
    rng = np.random.default_rng(seed + 7)
    xs = [rng.random(n) if k % 2 else rng.integers(0, 5, n) / 4 for k in range(columns)]
    old = stats_module._BOOT_CELLS
    stats_module._BOOT_CELLS = cells
    try:
        together = Bootstrap(n_boot, 0.95, seed).intervals(xs)
        alone = [bootstrap_mean(x, n_boot=n_boot, seed=seed) for x in xs]
    finally:
        stats_module._BOOT_CELLS = old
    assert [repr(iv) for iv in together] == [repr(iv) for iv in alone]  # repr: NaN equals NaN
