"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1 (stdlib only), for the reliability tests.

It answers the pairwise protocol like a well-behaved server: one token, with ``top_logprobs`` for the five
level labels, drawn from a distribution that is a pure function of the prompt (``intended_logprobs``), so a
test knows the intended score of every cell. Per request it may inject a fault instead:

- transient (a retry may succeed): ``500``, ``429`` (with ``Retry-After``), ``stall`` (sleeps past the
  client's timeout), ``reset`` (closes the connection without a reply), ``truncated`` (a 200 with half a
  JSON body), ``nochoices`` (a 200 with an empty ``choices`` list);
- answers that can never be a score: ``nologprobs`` (a 200 without logprobs), ``nolabels`` (top logprobs
  without any label token), ``onelabel`` (only one label token, at logprob -6), ``nan`` (NaN logprobs).

It answers the listwise protocol too (a request with ``max_tokens`` > 1): a valid ``<RESULT_START>`` block that is
a pure function of the prompt (``intended_listwise``; n and m are read from the prompt's ``R<i>:`` / ``S<j>:``
lines). The transient faults apply to it as to pairwise requests; ``garbage`` (a 200 whose text is no result
block) is its never-valid answer; the pairwise-only kinds answer it normally.

``rate`` is the chance of a fault per request (kinds drawn uniformly, seeded); ``permanent`` is the share of
prompts (by hash) that get the same fault (``permanent_kind``, e.g. ``nolabels`` or ``500``) on every attempt;
``delay_s`` slows every answer down. The settings may be changed between runs (e.g. faults off). Request loops
are bounded by the client; the server stops with ``close()``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LABELS = ("0", "1", "2", "3", "4")
LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
TRANSIENT = ("500", "429", "stall", "reset", "truncated", "nochoices")
NEVER_A_SCORE = ("nologprobs", "nolabels", "onelabel", "nan")
LISTWISE_INVALID = ("garbage",)
LIST_LEVELS = ("0.25", "0.50", "0.75", "1.00")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def intended_logprobs(messages: list[dict[str, str]]) -> list[float]:
    """The five label log-probabilities the server means for this prompt (a pure function of its text)."""
    d = _digest(json.dumps(messages, sort_keys=True))
    raw = [1.0 + d[k] for k in range(5)]
    total = sum(raw)
    return [math.log(x / total) for x in raw]


def intended_score(messages: list[dict[str, str]]) -> float:
    return sum(math.exp(lp) * level for lp, level in zip(intended_logprobs(messages), LEVELS))


def intended_listwise(messages: list[dict[str, str]]) -> str:
    """The listwise answer the server means for this prompt: per human item R_i one pick (S0 or an S_j, with a
    level), a pure function of the prompt's text."""
    text = messages[-1]["content"] if messages else ""
    n = max((int(x) for x in re.findall(r"(?m)^R(\d+): ", text)), default=0)
    m = max((int(x) for x in re.findall(r"(?m)^S(\d+): ", text)), default=0)
    d = _digest(json.dumps(messages, sort_keys=True))
    lines = []
    for i in range(1, n + 1):
        j = d[i % 32] % (m + 1)
        lines.append(f"- R{i}@S{j}: {LIST_LEVELS[d[(i + 7) % 32] % 4] if j else '0.00'}")
    return "<RESULT_START>\nScores corresponding to claims:\n" + "\n".join(lines) + "\n<RESULT_END>"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that went away (killed, timed out)
        pass


class FaultServer:
    def __init__(self, rate: float = 0.0, kinds: tuple[str, ...] = TRANSIENT + NEVER_A_SCORE,
                 permanent: float = 0.0, permanent_kind: str = "nolabels", stall_s: float = 3.0, seed: int = 0,
                 delay_s: float = 0.0):
        self.rate, self.kinds, self.permanent, self.permanent_kind = rate, kinds, permanent, permanent_kind
        self.stall_s, self.delay_s = stall_s, delay_s
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.asked: list[list[dict[str, str]]] = []
        """The messages of every request, in arrival order."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.handle(self, body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def is_permanent(self, messages: list[dict[str, str]]) -> bool:
        return self.permanent > 0 and _digest(json.dumps(messages, sort_keys=True))[31] < 256 * self.permanent

    def _fault(self, messages: list[dict[str, str]]) -> str | None:
        if self.is_permanent(messages):
            return self.permanent_kind
        with self.lock:
            self.requests += 1
            if self.rng.random() < self.rate:
                return self.rng.choice(self.kinds)
        return None

    def handle(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        messages = body.get("messages", [])
        with self.lock:
            self.asked.append(messages)
        fault = self._fault(messages)
        if self.delay_s:
            time.sleep(self.delay_s)
        if fault:
            with self.lock:
                self.injected[fault] += 1
        if fault == "500":
            return _send(h, 500, {"error": {"message": "injected"}})
        if fault == "429":
            return _send(h, 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.05"})
        if fault == "stall":
            time.sleep(self.stall_s)
            return _send(h, 503, {"error": {"message": "stalled"}})
        if fault == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            h.connection.close()
            h.close_connection = True
            return None
        if body.get("max_tokens", 1) != 1:  # listwise: one generated answer
            text = "I cannot follow the format." if fault == "garbage" else intended_listwise(messages)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                      "logprobs": None}
            return self._reply(h, body, fault, choice)
        lps = intended_logprobs(messages)
        top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in zip(LABELS, lps)]
        best = max(range(5), key=lps.__getitem__)
        logprobs: dict[str, Any] | None = {"content": [{"token": LABELS[best], "logprob": lps[best], "bytes": None,
                                                        "top_logprobs": top}]}
        if fault == "nologprobs":
            logprobs = None
        elif fault == "nolabels":
            other = [{"token": w, "logprob": -1.0 - k, "bytes": None} for k, w in enumerate(("The", "A", "Yes"))]
            logprobs = {"content": [{"token": "The", "logprob": -1.0, "bytes": None, "top_logprobs": other}]}
        elif fault == "onelabel":
            logprobs = {"content": [{"token": "3", "logprob": -6.0, "bytes": None,
                                     "top_logprobs": [{"token": "3", "logprob": -6.0, "bytes": None}]}]}
        elif fault == "nan":
            for entry in top:
                entry["logprob"] = float("nan")
        choice = {"index": 0, "message": {"role": "assistant", "content": LABELS[best]}, "finish_reason": "length",
                  "logprobs": logprobs}
        return self._reply(h, body, fault, choice)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, body: dict[str, Any], fault: str | None, choice: dict[str, Any]) -> None:
        resp = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                "choices": [] if fault == "nochoices" else [choice],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
        data = json.dumps(resp, allow_nan=True).encode()
        if fault == "truncated":
            data = data[: len(data) // 2]
        return _send_bytes(h, 200, data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(h: BaseHTTPRequestHandler, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
    _send_bytes(h, status, json.dumps(obj).encode(), headers)


def _send_bytes(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
    try:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to send to
        pass
