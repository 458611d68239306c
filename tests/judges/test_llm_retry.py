"""The OpenAI backend's retries, backoff, concurrency bound and key handling, against a real local HTTP server.

The server (stdlib ``http.server`` on 127.0.0.1) answers like an OpenAI-compatible chat endpoint and can be
scripted to fail first with 429 / 500 / 400, or to return a truncated listwise answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("openai")

from rationalerm.judges.base import ListTask  # noqa: E402
from rationalerm.judges.llm import LLMJudgeConfig, make_llm_judge  # noqa: E402

SECRET = "sk-test-not-a-real-key-1234567890"
LEVEL_LOGPROBS = {"0": -3.0, "1": -2.5, "2": -1.2, "3": -0.6, "4": -2.0}
VALID_LIST = "<RESULT_START>\nScores corresponding to claims:\n- R1@S2: 0.75\n- R2@S0: 0.00\n<RESULT_END>"


class ScriptedServer:
    """An OpenAI-compatible chat endpoint; ``script`` is consumed one status or answer per request."""

    def __init__(self) -> None:
        self.script: list = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay_s = 0.0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with outer.lock:
                    outer.requests.append(body)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                    step = outer.script.pop(0) if outer.script else "ok"
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.delay_s)
                    if isinstance(step, int):
                        error = {"message": f"scripted {step}", "type": "x", "code": step}
                        payload = json.dumps({"error": error}).encode()
                        self.send_response(step)
                        if step == 429:
                            self.send_header("retry-after", "0")
                        self.send_header("content-type", "application/json")
                        self.send_header("content-length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    payload = json.dumps(outer.answer(body, step)).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def answer(body: dict, step) -> dict:
        if body.get("max_tokens") == 1:  # pairwise: one label with top logprobs
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in LEVEL_LOGPROBS.items()]
            top += [{"token": " the", "logprob": -0.1, "bytes": None}]  # not a label: ignored
            message = {"role": "assistant", "content": "3"}
            logprobs = {"content": [{"token": "3", "logprob": -0.6, "bytes": None, "top_logprobs": top}]}
            finish = "length"
        else:
            text, finish = (VALID_LIST, "stop") if step == "ok" else step
            message, logprobs = {"role": "assistant", "content": text}, None
        return {
            "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": logprobs}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        }

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def _judge(url: str, **kw):
    server = {"base_url": url, "backoff_s": 0.01, "max_retries": 3, "api_key_env": "RATIONALERM_TEST_KEY",
              "structured_outputs": False, "concurrency": 2}
    server.update(kw.pop("server", {}))
    listwise = {k: kw.pop(k) for k in ("max_tokens", "max_retries") if k in kw}
    return make_llm_judge(LLMJudgeConfig(model="judge", backend={"type": "openai", **server}, listwise=listwise, **kw))


def _expected_score() -> float:
    import math

    w = {k: math.exp(v) for k, v in LEVEL_LOGPROBS.items()}
    return sum(w[k] * int(k) / 4 for k in w) / sum(w.values())


def test_retries_on_429_and_500_then_succeeds(server, monkeypatch, caplog):
    monkeypatch.setenv("RATIONALERM_TEST_KEY", SECRET)
    server.script = [429, 500, 503]
    judge = _judge(server.url)
    try:
        with caplog.at_level(logging.DEBUG):
            (score,) = judge.score_pairs([("human", "model")])
        assert score.score == pytest.approx(_expected_score(), abs=1e-6)
        assert len(server.requests) == 4 and judge.backend.retries == 3
        assert all(h.get("authorization") == f"Bearer {SECRET}" for h in server.headers)
        assert SECRET not in caplog.text  # the key is never logged
        assert "retry" in caplog.text
        sent = server.requests[-1]
        assert sent["max_tokens"] == 1 and sent["temperature"] == 0.0 and sent["logprobs"] is True
        assert sent["chat_template_kwargs"] == {"enable_thinking": False}
        assert "allowed_token_ids" not in sent  # structured_outputs off: plain OpenAI request
    finally:
        judge.close()


def test_gives_up_after_max_retries_with_a_failed_pair_naming_the_server(server):
    server.script = [500] * 10
    judge = _judge(server.url, server={"max_retries": 2})
    try:
        (score,) = judge.score_pairs([("human", "model")])  # never an exception out of the run
        assert score.score is None and score.failed == "server error"
        assert server.url in score.detail["error"] and "500" in score.detail["error"]
        assert "3 attempts" in score.detail["error"]
        assert len(server.requests) == 3
    finally:
        judge.close()


def test_client_errors_are_not_retried(server):
    server.script = [400]
    judge = _judge(server.url)
    try:
        (score,) = judge.score_pairs([("human", "model")])
        assert score.failed == "HTTP 400" and "1 attempt)" in score.detail["error"]
        assert len(server.requests) == 1
    finally:
        judge.close()


def test_a_server_that_refuses_the_client_stops_the_run(server):
    from rationalerm import JudgeError

    server.script = [401]
    judge = _judge(server.url)
    try:
        with pytest.raises(JudgeError, match=r"refused the request \(HTTP 401.*api_key_env"):
            judge.score_pairs([("human", "model")])
        assert len(server.requests) == 1
    finally:
        judge.close()


def test_connection_errors_are_retried_with_backoff_then_the_server_is_taken_as_down():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = _judge(f"http://127.0.0.1:{port}/v1", server={"max_retries": 3, "backoff_s": 0.05})
    try:
        t0 = time.monotonic()
        (score,) = judge.score_pairs([("human", "model")])
        assert score.failed == "connection error" and f"127.0.0.1:{port}" in score.detail["error"]
        assert judge.backend.retries == 3
        assert time.monotonic() - t0 >= 0.05 * (1 + 2 + 4)  # exponential backoff
    finally:
        judge.close()
    # a dead server: after breaker_after attempts failed in a row, the rest are failed without being sent
    judge = _judge(f"http://127.0.0.1:{port}/v1", server={"max_retries": 1, "backoff_s": 0.0, "breaker_after": 3,
                                                          "concurrency": 1})
    try:
        t0 = time.monotonic()
        scores = judge.score_pairs([(f"h{i}", "m") for i in range(50)])
        assert [s.failed for s in scores] == ["not sent"] * 50 and time.monotonic() - t0 < 5
        assert "failed 3 attempts in a row (last: APIConnectionError" in scores[-1].detail["error"]
    finally:
        judge.close()


def test_concurrency_is_bounded(server):
    server.delay_s = 0.05
    judge = _judge(server.url, server={"concurrency": 2})
    try:
        seen: list[int] = []
        scores = judge.score_pairs([(f"h{i}", f"m{i}") for i in range(10)], progress=seen.append)
        assert len(scores) == 10 and sum(seen) == 10
        assert server.max_in_flight == 2
    finally:
        judge.close()


def test_pairs_of_one_human_item_are_sent_together(server):
    """The server's prefix cache sees each human item's pairs side by side; scores come back in pair order."""
    judge = _judge(server.url, server={"concurrency": 1})
    try:
        pairs = [(f"human {i % 3}", f"model {i}") for i in range(9)]  # interleaved human items
        scores = judge.score_pairs(pairs)
        assert len(scores) == 9 and all(s.score is not None for s in scores)
        humans = [json.loads(r["messages"][-1]["content"].split("\n")[1]) for r in server.requests]
        assert humans == sorted(humans) == [f"human {i // 3}" for i in range(9)]
    finally:
        judge.close()


def test_listwise_format_retries_over_http(server):
    # first a truncated answer, then a malformed one, then a valid one
    server.script = [(VALID_LIST[:40], "length"), ("- R1@S2: 0.75", "stop"), "ok"]
    judge = _judge(server.url, protocol="listwise", max_retries=2, max_tokens=64)
    try:
        (r,) = judge.judge_lists([ListTask(("h1", "h2"), ("m1", "m2"))])
        assert r.valid and r.attempts == 3 and r.matrix == [[0.0, 0.75], [0.0, 0.0]]
        temps = [req["temperature"] for req in server.requests]
        assert temps[0] == 0.0 and temps[1] > 0  # re-asks sample (a greedy re-ask repeats itself)
        assert [req["seed"] for req in server.requests] == [0, 1, 2]
        assert "structured_outputs" not in server.requests[0]
    finally:
        judge.close()


def test_listwise_sends_the_grammar_to_a_vllm_server(server):
    judge = _judge(server.url, protocol="listwise", server={"structured_outputs": True})
    try:
        (r,) = judge.judge_lists([ListTask(("h1", "h2"), ("m1", "m2"))])
        assert r.valid
        assert server.requests[0]["structured_outputs"]["regex"].startswith("<RESULT_START>")
    finally:
        judge.close()
