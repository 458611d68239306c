"""End to end through the real CLI: run, re-score, cache hits, and resume after kill -9 / Ctrl-C."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.runs import cached_pairs, run_cli

EXAMPLE = ROOT / "examples" / "rationales.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "140"}


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(args, ENV, ROOT, check=check, timeout=600)


def test_run_example_then_rescore(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = cli("run", str(EXAMPLE), "--config", "configs/default.yaml", "--out", str(out), "--sort-by", "model")
    for col in ("Model", "Precision", "Recall", "F1", "AP", "Valid", "Qwen3-8B", "Llama-3.1-8B"):
        assert col in proc.stdout
    assert proc.stdout.index("Llama-3.1-8B") < proc.stdout.index("Qwen3-8B")  # sorted by model name
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 28 and metrics["skipped"]["count"] == 0
    qwen, llama = metrics["models"]["Qwen3-8B"], metrics["models"]["Llama-3.1-8B"]
    assert qwen["n_samples"] == 14 and set(qwen["ci"]) == {"precision", "recall", "f1", "ap"}
    assert qwen["recall"] > llama["recall"]  # the paraphrasing model is more consistent with the humans
    assert set(qwen["by_domain"]) == {"chat", "code", "math", "safety", "reasoning"}
    row = rows[0]
    assert {"id", "domain", "model", "matrix", "pairs", "precision", "recall", "f1", "ap"} <= set(row)
    run_meta = json.loads((out / "run.json").read_text())
    assert run_meta["judge_fingerprint"]["judge"] == "embedding" and "numpy" in run_meta["versions"]
    assert "loading embedding judge model all-MiniLM-L6-v2 from " in proc.stderr  # says what loads, then its time
    assert re.search(r"all-MiniLM-L6-v2 from .*: done in \d+\.\d s", proc.stderr)

    again = cli("run", str(EXAMPLE), "--out", str(out))
    assert "judged 0 pairs" in again.stdout

    before = {name: (out / name).read_bytes() for name in ("results.jsonl", "metrics.json", "run.json")}
    said = cli("score", str(out), "--compat", "metajudge")
    rescored = tmp_path / "run-rescored"  # by default a new directory beside the run; the run is untouched
    assert f"wrote {rescored}" in said.stdout and f"{out} is unchanged" in said.stdout
    assert all((out / name).read_bytes() == data for name, data in before.items())
    compat = json.loads((rescored / "metrics.json").read_text())
    assert compat["scoring"]["compat"] == "metajudge"
    assert compat["models"]["Qwen3-8B"]["recall"] >= qwen["recall"] - 1e-9  # best pick >= one-to-one
    said = cli("score", str(rescored), "--compat", "none", "--out", str(rescored))
    assert f"overwrote {rescored}" in said.stdout
    assert json.loads((rescored / "metrics.json").read_text())["models"] == metrics["models"]


def test_bad_input_is_reported_and_strict_stops(tmp_path: Path) -> None:
    data = tmp_path / "mixed.jsonl"
    data.write_text(EXAMPLE.read_text().splitlines()[0] + "\n{oops\n", encoding="utf-8")
    proc = cli("run", str(data), "--out", str(tmp_path / "o"))
    assert f"{data}:2: invalid JSON" in proc.stderr.replace("\n", "")
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["skipped"]["count"] == 1
    strict = cli("run", str(data), "--out", str(tmp_path / "s"), "--strict", check=False)
    assert strict.returncode == 2 and ":2: invalid JSON" in strict.stderr
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("judge:\n  type: embeding\n")
    proc = cli("run", str(data), "--config", str(bad_cfg), check=False)
    assert proc.returncode == 2 and "bad.yaml" in proc.stderr


def _big_corpus(path: Path, n: int) -> None:
    base = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    with path.open("w") as f:
        for k in range(n):
            rec = dict(base[k % len(base)])
            rec["id"] = f"s{k}"
            for key in ("human-checklist", "Qwen3-8B-checklist", "Llama-3.1-8B-checklist"):
                rec[key] = [f"{t} (case {k})" for t in rec[key]]
            f.write(json.dumps(rec) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 30-sample corpus, a one-pair-per-commit config, and its uninterrupted reference run."""
    tmp = tmp_path_factory.mktemp("resume")
    data = tmp / "big.jsonl"
    _big_corpus(data, 30)
    cfg = tmp / "small-chunks.yaml"
    cfg.write_text("chunk_size: 1\n")
    ref = tmp / "ref"
    cli("run", str(data), "--config", str(cfg), "--out", str(ref))
    return data, cfg, ref


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_identical_output(
    tmp_path: Path, sig: signal.Signals, corpus: tuple[Path, Path, Path]
) -> None:
    data, cfg, ref = corpus
    out = tmp_path / "resumed"
    proc = subprocess.Popen([sys.executable, "-m", "rationalerm", "run", str(data), "--config", str(cfg),
                             "--out", str(out)], env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while cached_pairs(out / "cache.sqlite") < 10 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "run finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not (out / "results.jsonl").exists()  # nothing half-written
    done = cached_pairs(out / "cache.sqlite")
    total = cached_pairs(ref / "cache.sqlite")
    assert 0 < done < total

    resumed = cli("run", str(data), "--config", str(cfg), "--out", str(out))
    assert f"judged {total - done} pairs, {done} from cache" in resumed.stdout
    for name in ("results.jsonl", "metrics.json"):  # a function of input and config: byte for byte
        assert (out / name).read_bytes() == (ref / name).read_bytes()
    ids = [(r["id"], r["model"]) for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())]
    assert len(ids) == len(set(ids)) == 60


def kill_repeatedly(args: list[str], db: Path, ref: Path, kills: int, seed: int, timeout_s: float = 900) -> int:
    """Start the run, wait until the cache gains a commit, kill -9 at a random moment soon after; repeat.

    Returns how many kills landed while the run was still working (a run that finishes first is not killed).
    A kill can land after the last commit, while the outputs are being written: an output that exists then
    must be whole (written atomically), never a prefix."""
    rng = random.Random(seed)
    landed = 0
    deadline = time.time() + timeout_s
    while landed < kills and time.time() < deadline:
        before = cached_pairs(db)
        proc = subprocess.Popen([sys.executable, "-m", "rationalerm", *args], env=ENV, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while cached_pairs(db) <= before and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        if proc.poll() is not None:
            break  # finished before a kill could land
        time.sleep(rng.uniform(0.0, 0.03))
        proc.kill()
        proc.wait(timeout=60)
        if proc.returncode == -signal.SIGKILL:
            landed += 1
            for name in ("results.jsonl", "metrics.json"):  # killed mid-run: nothing half-written
                written = db.parent / name
                assert not written.exists() or written.read_bytes() == (ref / name).read_bytes(), name
    return landed


def kill_resume_and_compare(tmp_path: Path, run_args: list[str], ref: Path, kills: int, seed: int) -> None:
    """Kill runs after commits until ``kills`` kills have landed (a run that finishes first is completed and
    checked, and the count goes on in a fresh directory); every finished run must equal ``ref`` byte for byte."""
    landed, k = 0, 0
    while landed < kills:
        out = tmp_path / f"out{k}"
        args = [*run_args, "--out", str(out)]
        got = kill_repeatedly(args, out / "cache.sqlite", ref, kills=kills - landed, seed=seed + k)
        assert got > 0 or k == 0, "the run finishes before any kill can land"
        landed, k = landed + got, k + 1
        cli(*args)
        for name in ("results.jsonl", "metrics.json"):
            assert (out / name).read_bytes() == (ref / name).read_bytes(), (name, out)


def test_ten_kills_after_commits_then_byte_identical_outputs(
    tmp_path: Path, corpus: tuple[Path, Path, Path]
) -> None:
    """Embedding judge: at least 10 kill -9s, each after a cache commit, at random moments; every finished run's
    results.jsonl and metrics.json equal an uninterrupted run's byte for byte."""
    data, cfg, ref = corpus
    kill_resume_and_compare(tmp_path, ["run", str(data), "--config", str(cfg)], ref, kills=10, seed=1)


def test_llm_judge_killed_after_commits_resumes_to_identical_outputs(tmp_path: Path, tiny_qwen: Path) -> None:
    """The tiny Qwen on the real vLLM engine, batches of 8 pairs: kills after commits, then the same bytes."""
    cfg = tmp_path / "llm.yaml"
    cfg.write_text(
        f"judge:\n  type: llm\n  model: {tiny_qwen}\n  batch_size: 8\n"
        "  backend:\n    type: vllm\n    dtype: float32\n    engine_args: {max_model_len: 4096, enforce_eager: true}\n"
    )
    ref = tmp_path / "ref"
    cli("run", str(EXAMPLE), "--config", str(cfg), "--out", str(ref))
    kill_resume_and_compare(tmp_path, ["run", str(EXAMPLE), "--config", str(cfg)], ref, kills=3, seed=2)
