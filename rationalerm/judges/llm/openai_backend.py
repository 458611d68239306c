"""Backend for any OpenAI-compatible chat server (e.g. ``vllm serve``).

Async client on a private event-loop thread, bounded concurrency (a semaphore), per-request timeouts,
and retries with exponential backoff on 429, 5xx, timeouts, connection errors and malformed bodies (a body
that is not JSON, fails the API schema, or has no ``choices``) (``Retry-After`` honoured; the loop is
``Backend.call_with_retries``).

A request that still fails after ``max_retries`` (or is rejected, e.g. HTTP 400) never raises out of the run:
its prompt comes back with an error naming the server and the last error, and the judge records a *failed*
pair (or list). An answer without logprobs is failed too (never the argmax of the answer text). Only a server
that refuses the client itself (401, 403, 404: wrong key, URL or model) stops the run with a ``JudgeError``.
After ``breaker_after`` attempts in a row failed (timeouts, connection errors, 5xx, malformed bodies; rate
limits aside) with no answer from the server between them, the server is taken as down: the rest of the run's
prompts are failed without being sent (``not sent``), so a dead server ends the run in seconds, not hours; the
next run retries them.

With ``structured_outputs`` (a vLLM server) the pairwise answer is
restricted to the five label tokens (``allowed_token_ids``) and their logprobs are asked for by id
(``logprob_token_ids``); listwise outputs are forced into the result grammar (``structured_outputs: {regex: ...}``).
The API key is read from the environment variable the config names and is never logged. The server applies
its own context limit (this client does not tokenise).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field

from rationalerm._util.optional import require
from rationalerm.errors import JudgeError
from rationalerm.judges.base import Progress
from rationalerm.judges.llm.backend import Backend, GenerateBatch, Generation, LabelBatch, LabelLogprobs
from rationalerm.judges.llm.settings import BACKENDS, ENGINE_EXTRAS, BackendConfig, CallSettings, backend_section
from rationalerm.judges.llm.tokenize import Messages, Tokenizer, prefix_order

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
"""The server refuses the client itself (key, URL, model name): no request can succeed, the run stops."""
MAX_RETRY_AFTER_S = 60.0
TOP_LOGPROBS = 20


class _MalformedResponse(Exception):
    """A 200 whose body is not a usable chat completion (e.g. an empty ``choices`` list): transient, retried.
    Private: ``_answer`` turns it into the prompt's failure; it never leaves this module."""


class _NotSent(Exception):
    """The server failed too many requests in a row: the remaining prompts are failed without being sent.
    Private: ``_answer`` turns it into the prompt's failure; it never leaves this module."""


class OpenAIBackendConfig(BackendConfig):
    """``backend: {type: openai}``: any OpenAI-compatible chat server; ``judge.model`` is the served model name."""

    type: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (never logged)")
    concurrency: int = Field(32, ge=1, description="requests in flight")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, description="retries of a request on 429 / 5xx / timeouts / connection errors "
                             "/ malformed bodies; after them the pair is failed (retried by the next run)")
    backoff_s: float = Field(0.5, ge=0)
    breaker_after: int | None = Field(
        None, ge=1,
        description="attempts failing in a row (timeouts, connection errors, 5xx, malformed bodies; not 429) that "
        "mark the server down: the run's other prompts are then failed without being sent (default: "
        "max(32, 4 x concurrency))",
    )
    structured_outputs: bool = Field(
        True,
        description="the server is vLLM: send structured_outputs (listwise grammar) and allowed_token_ids / "
        "logprob_token_ids (pairwise labels)",
    )
    chat_template_kwargs: bool = Field(True, description="send chat_template_kwargs {enable_thinking: ...}")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra request fields, sent as is")


def retryable(exc: BaseException) -> bool:
    """Whether an OpenAI client error is worth retrying (rate limit, server error, timeout, connection, a
    malformed body)."""
    import openai

    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, _MalformedResponse))


def fault_kind(exc: BaseException) -> str:
    """A short, countable name of a failed request's last error."""
    import openai

    if isinstance(exc, _NotSent):
        return "not sent"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection error"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return "rate limited"
        return "server error" if exc.status_code >= 500 else f"HTTP {exc.status_code}"
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, _MalformedResponse)):
        return "malformed response"
    return type(exc).__name__


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after")
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value is not None else None
    except ValueError:
        return None


def _unreported_mass(values: Sequence[float | None], top: Sequence[float]) -> float | None:
    """An upper bound on the total probability of the labels missing from ``values`` (0 when none is missing):
    each is at most the smallest entry of a full top-k list, and together at most what the list leaves of 1.
    None when it cannot be bounded (then the answer needs every label)."""
    missing = sum(v is None for v in values)
    if not missing:
        return 0.0
    finite = [lp for lp in top if lp is not None and math.isfinite(lp) and lp <= 0.0]
    if not finite or len(finite) < len(top):
        return None
    bounds = [max(0.0, 1.0 - sum(math.exp(lp) for lp in finite))]
    if len(finite) >= TOP_LOGPROBS:  # a full top-k list: a missing label is below its last entry
        bounds.append(missing * math.exp(min(finite)))
    return min(bounds)


class _LoopThread:
    """An asyncio loop running in a daemon thread, so sync callers (and callers inside a loop) can use it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rationalerm-openai", daemon=True)
        self.thread.start()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@BACKENDS.register("openai", config=OpenAIBackendConfig)
class OpenAIBackend(Backend):
    def __init__(self, cfg: CallSettings):
        openai = require("openai", ENGINE_EXTRAS, "judge backend 'openai'")

        super().__init__(cfg)
        self.server = backend_section(cfg, OpenAIBackendConfig)
        self.supports_grammar = bool(self.server.structured_outputs)
        self.max_retries, self.backoff_s = self.server.max_retries, self.server.backoff_s
        self.breaker_after = self.server.breaker_after or max(32, 4 * self.server.concurrency)
        self._streak = 0
        """Attempts failed in a row (transient failures, rate limits aside) since the server last answered."""
        self._down: str | None = None
        """Set once ``breaker_after`` attempts failed in a row: why the server is taken as down."""
        self._loop = _LoopThread()
        api_key = os.environ.get(self.server.api_key_env) or "EMPTY"
        self._sem: asyncio.Semaphore | None = None

        async def init() -> Any:
            self._sem = asyncio.Semaphore(self.server.concurrency)
            return openai.AsyncOpenAI(
                base_url=self.server.base_url, api_key=api_key, timeout=self.server.timeout_s, max_retries=0
            )

        self.client = self._loop.submit(init()).result()

    # -- plumbing ---------------------------------------------------------------------------------------------
    def should_retry(self, exc: BaseException) -> bool:
        return retryable(exc)

    def retry_after(self, exc: BaseException) -> float | None:
        return _retry_after(exc)

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """One request, at most ``concurrency`` in flight, retried while transient."""

        async def bounded() -> T:
            assert self._sem is not None
            async with self._sem:
                if self._down is not None:
                    raise _NotSent(self._down)
                try:
                    resp = await make()
                except Exception as exc:
                    self._note_failure(exc)
                    raise
                self._streak = 0
                return resp

        return await self.call_with_retries(bounded)

    def _note_failure(self, exc: BaseException) -> None:
        """Count an attempt that failed for the breaker: transient failures other than rate limits (the server
        is down or broken); any answer from the server (a success, or e.g. HTTP 400) resets the count."""
        import openai

        if isinstance(exc, openai.RateLimitError):  # up, asking to slow down: neither up nor down for the count
            return
        if not self.should_retry(exc):  # the server answered (e.g. HTTP 400 for this prompt): it is up
            self._streak = 0
            return
        self._streak += 1
        if self._down is None and self._streak >= self.breaker_after:
            self._down = (f"not sent: the server at {self.server.base_url} failed {self._streak} attempts in a row "
                          f"(last: {_describe(exc)})")
            log.warning("%s; failing the remaining prompts without sending them", self._down)

    async def _answer(self, make: Callable[[], Awaitable[T]]) -> T | tuple[str, str]:
        """``_call``, but a request that still fails is ``(fault kind, message naming the server)``, not an
        exception; only a server that refuses the client (``FATAL_STATUS``) raises ``JudgeError``."""
        url = self.server.base_url
        try:
            return await self._call(make)
        except Exception as exc:  # noqa: BLE001 - every failure of one request is that prompt's, except fatal ones
            import openai

            if isinstance(exc, _NotSent):
                return "not sent", str(exc)
            if isinstance(exc, openai.APIStatusError) and exc.status_code in FATAL_STATUS:
                raise JudgeError(f"the server at {url} refused the request (HTTP {exc.status_code}: "
                                 f"{_describe(exc)}); check backend.base_url, backend.api_key_env and judge.model "
                                 f"({self.cfg.model!r})") from exc
            tries = self.max_retries + 1 if self.should_retry(exc) else 1
            return fault_kind(exc), f"{url}: {_describe(exc)} ({tries} attempt{'s' if tries > 1 else ''})"

    async def _create(self, **kw: Any) -> Any:
        """One chat completion whose body has at least one choice (else ``_MalformedResponse``, retried)."""
        resp = await self.client.chat.completions.create(**kw)
        choices = getattr(resp, "choices", None)
        if not choices or getattr(choices[0], "message", None) is None:
            raise _MalformedResponse("the answer has no choices" if not choices else "the choice has no message")
        return resp

    def _run_all(self, coros: list[Awaitable[T]], progress: Progress | None,
                 on_answer: Callable[[int, T], None] | None = None) -> list[T]:
        """Run the requests concurrently; each result goes to ``on_answer`` (in this thread) as it arrives."""
        futures = [self._loop.submit(c) for c in coros]
        index = {f: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(futures)
        try:
            for f in concurrent.futures.as_completed(futures):
                out[index[f]] = f.result()
                if on_answer is not None:
                    on_answer(index[f], out[index[f]])
                if progress:
                    progress(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return out

    def _extra(self, c: CallSettings) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.server.chat_template_kwargs:
            extra["chat_template_kwargs"] = {"enable_thinking": c.enable_thinking}
        return extra

    # -- Backend hooks -----------------------------------------------------------------------------------------
    def label_tokenizer(self) -> Tokenizer:
        """A local tokenizer when the config names one or the model is a local folder (prompts are not tokenised)."""
        source = self.cfg.tokenizer or (self.cfg.model if Path(self.cfg.model).is_dir() else None)
        if not source:
            return None
        from transformers import AutoTokenizer

        from rationalerm._util.local_models import loading

        with loading(source, "openai backend (local tokenizer for the label ids)"):
            return AutoTokenizer.from_pretrained(source)

    def remote_label_ids(self, labels: Sequence[str]) -> list[int] | None:
        """The label ids from a vLLM server's ``/tokenize``; None for another server (labels read as strings)."""
        if not self.server.structured_outputs:
            return None
        root = self.server.base_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root

        async def tokenize(label: str) -> list[int]:
            resp = await self._call(
                lambda: self.client.post(
                    f"{root}/tokenize",
                    cast_to=dict,
                    body={"model": self.cfg.model, "prompt": label, "add_special_tokens": False},
                )
            )
            return list(resp.get("tokens", []))

        try:
            toks = self._run_all([tokenize(label) for label in labels], None)
        except Exception as exc:  # noqa: BLE001 - not a vLLM server: fall back to token strings
            log.info("server has no usable /tokenize (%s); reading labels from top logprobs", type(exc).__name__)
            return None
        if any(len(t) != 1 for t in toks):
            raise JudgeError("a pairwise label is not a single token in the server's tokenizer")
        return [t[0] for t in toks]

    def _label_logprobs(self, batch: LabelBatch, progress: Progress | None) -> list[LabelLogprobs]:
        c, labels = batch.settings, batch.labels
        ids = self.label_token_ids(labels) if self.server.structured_outputs else None
        extra = self._extra(c)
        if ids is not None:
            extra["allowed_token_ids"] = ids
            extra["logprob_token_ids"] = ids
        extra.update(self.server.extra_body)
        by_token = {label: k for k, label in enumerate(labels)}
        if ids is not None:
            by_token.update({f"token_id:{t}": k for k, t in enumerate(ids)})

        url = self.server.base_url

        async def one(messages: Messages) -> LabelLogprobs:
            resp = await self._answer(
                lambda: self._create(
                    model=self.cfg.model,
                    messages=messages,
                    max_tokens=1,
                    temperature=0.0,
                    seed=c.seed,
                    logprobs=True,
                    top_logprobs=TOP_LOGPROBS,
                    extra_body=extra,
                )
            )
            if isinstance(resp, tuple):
                return LabelLogprobs([None] * len(labels), resp[1], fault=resp[0])
            choice = resp.choices[0]
            content = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
            if not content:  # never the answer text's argmax: that is not the probability-weighted score
                return LabelLogprobs([None] * len(labels), f"{url}: the answer (text {choice.message.content!r}) has "
                                     "no logprobs; the server must return logprobs", fault="no logprobs")
            values: list[float | None] = [None] * len(labels)
            top = content[0].top_logprobs or []
            for entry in top:
                k = by_token.get(entry.token)
                if k is not None and values[k] is None:
                    values[k] = entry.logprob
            k = by_token.get(content[0].token)
            if k is not None and values[k] is None:
                values[k] = content[0].logprob
            return LabelLogprobs(values, unreported_mass=_unreported_mass(values, [e.logprob for e in top]))

        # pairs of one human item go out side by side, so the server's prefix cache finds their shared prefix
        order = prefix_order(batch.prompts)
        answers = self._run_all([one(batch.prompts[i]) for i in order], progress,
                                lambda k, answer: batch.answer(order[k], answer))
        out: list[LabelLogprobs] = [answers[0]] * len(answers)
        for k, answer in zip(order, answers):
            out[k] = answer
        return out

    def _generate(self, batch: GenerateBatch) -> list[Generation]:
        async def one(k: int) -> Generation:
            extra = self._extra(batch.settings)
            if batch.regexes is not None:
                extra["structured_outputs"] = {"regex": batch.regexes[k]}
            extra.update(self.server.extra_body)
            resp = await self._answer(
                lambda: self._create(
                    model=self.cfg.model,
                    messages=batch.prompts[k],
                    max_tokens=batch.max_tokens[k],
                    temperature=batch.temperature,
                    seed=batch.seed,
                    extra_body=extra,
                )
            )
            if isinstance(resp, tuple):
                return Generation("", None, error=resp[1], fault=resp[0])
            choice = resp.choices[0]
            usage = resp.usage
            return Generation(
                choice.message.content or "",
                choice.finish_reason,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
            )

        return self._run_all([one(k) for k in range(len(batch.prompts))], None, batch.answer)

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.submit(self.client.close()).result(timeout=10)
        except Exception:  # pragma: no cover - best effort
            log.debug("closing the OpenAI client failed", exc_info=True)
        self._loop.close()
