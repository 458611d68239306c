"""What the code wrote before the package layout change (issue 21) it still writes, and still reuses.

``tests/data/pre_layout/`` was written by main at 3c7122b (``make.sh`` beside it says how): the run and the
re-scores of ``examples/`` and of a generated 5,000-sample corpus, that run's judge cache, and the resumable
parts of a run stopped before assembling. Today's code must write the same bytes, answer every pair from the
old cache (zero judge calls), and reuse the old parts.

Those were written before the response-reference rule (issue 22, ``judge.canonical_references``, on by
default), so every run here sets it off (``configs/default.yaml`` plus ``canonical_references: false``, written
by the ``off`` fixture): with it off the judge fingerprint and the parts' key are exactly the old ones, and the
same bytes are checked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import orjson
import pytest
import yaml

from rationalerm import load_config, run
from tests.helpers.corpus import write_corpus
from tests.helpers.paths import ROOT
from tests.helpers.runs import run_cli

OLD = ROOT / "tests" / "data" / "pre_layout"
DEFAULT = ROOT / "configs" / "default.yaml"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(out: Path, old: Path) -> None:
    assert (out / "metrics.json").read_bytes() == (old / "metrics.json").read_bytes()
    if (old / "results.jsonl").exists():
        assert (out / "results.jsonl").read_bytes() == (old / "results.jsonl").read_bytes()
    else:
        assert _sha(out / "results.jsonl") == (old / "results.jsonl.sha256").read_text().strip()


def _process(out: Path) -> dict[str, int]:
    return orjson.loads((out / "run.json").read_bytes())["process"]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def off(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``configs/default.yaml`` with the response-reference rule off: the judge of the code that wrote the data."""
    cfg = yaml.safe_load(DEFAULT.read_text())
    cfg["judge"]["canonical_references"] = False
    path = tmp_path_factory.mktemp("config") / "default-rule-off.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_examples_run_and_rescores_are_byte_identical_and_the_old_cache_answers_every_pair(
        tmp_path: Path, env: dict[str, str], off: Path) -> None:
    cache = tmp_path / "old-cache.sqlite"
    shutil.copy(OLD / "ex" / "cache.sqlite", cache)
    out = tmp_path / "ex"
    run_cli(("run", "examples/rationales.jsonl", "--config", str(off), "--cache", str(cache), "--out", str(out)),
            env, ROOT)
    _same(out, OLD / "ex")
    process = _process(out)
    assert process["judged"] == 0 and process["cache_hits"] == 283  # every pair from the cache written before
    for name, extra in [("ex-rescored", ()), ("ex-compat", ("--compat", "metajudge")),
                        ("ex-cut", ("--max-model-items", "3", "--min-score", "0.2"))]:
        run_cli(("score", str(out), *extra, "--out", str(tmp_path / name)), env, ROOT)
        _same(tmp_path / name, OLD / name)


def test_a_generated_5000_sample_corpus_run_and_rescore_are_byte_identical(
        tmp_path: Path, env: dict[str, str], off: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus5k.jsonl", 5000)
    out = tmp_path / "c5k"
    run_cli(("run", corpus.name, "--config", str(off), "--out", str(out)), env, tmp_path)  # as make.sh ran it
    _same(out, OLD / "c5k")
    run_cli(("score", str(out), "--out", str(tmp_path / "c5k-rescored")), env, ROOT)
    _same(tmp_path / "c5k-rescored", OLD / "c5k-rescored")


def test_resumable_parts_written_before_are_reused(tmp_path: Path, off: Path) -> None:
    # The parts' manifest names the input by its resolved path, size and mtime: recreate exactly that input.
    base = Path("/tmp/rationalerm-pre-layout")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    try:
        corpus = base / "corpus.jsonl"
        lines = write_corpus(tmp_path / "c.jsonl", 1000).read_bytes().splitlines(keepends=True)
        corpus.write_bytes(b"".join(lines[:1000]))
        stamp = 1796083200 * 10**9  # 2026-12-01 00:00:00 UTC, as make.sh touched it
        os.utime(corpus, ns=(stamp, stamp))
        out = base / "out"
        out.mkdir()
        shutil.copytree(OLD / "parts" / "results.parts", out / "results.parts")
        run(corpus, load_config(off, {"shard_size": 250}), out)
        assert _process(out)["shards_reused"] == 3
        _same(out, OLD / "parts")
    finally:
        shutil.rmtree(base, ignore_errors=True)
