"""Backend for any OpenAI-compatible chat server (e.g. ``vllm serve``).

Async client on a private event-loop thread, bounded concurrency (a semaphore), per-request timeouts,
and retries with exponential backoff on 429, 5xx, timeouts and connection errors (``Retry-After`` honoured).
With ``server.structured_outputs`` (a vLLM server) the pairwise answer is restricted to the five label
tokens (``allowed_token_ids``) and their logprobs are asked for by id (``logprob_token_ids``); listwise
outputs are forced into the result grammar (``structured_outputs: {regex: ...}``). The API key is read from
the environment variable the config names and is never logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rationalerm.config import LLMJudgeConfig
from rationalerm.judges.base import Progress
from rationalerm.judges.llm.backend import Generation, JudgeError, Messages, Split, single_token_ids

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


def retryable(exc: BaseException) -> bool:
    """Whether an OpenAI client error is worth retrying (rate limit, server error, timeout, connection)."""
    import openai

    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return False


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


class OpenAIBackend:
    def __init__(self, cfg: LLMJudgeConfig):
        import openai

        self.cfg = cfg
        self.server = cfg.server
        self.supports_grammar = bool(self.server.structured_outputs)
        self._loop = _LoopThread()
        api_key = os.environ.get(self.server.api_key_env) or "EMPTY"
        self._sem: asyncio.Semaphore | None = None

        async def init() -> Any:
            self._sem = asyncio.Semaphore(self.server.concurrency)
            return openai.AsyncOpenAI(
                base_url=self.server.base_url, api_key=api_key, timeout=self.server.timeout_s, max_retries=0
            )

        self.client = self._loop.submit(init()).result()
        del api_key
        self._label_ids: list[int] | None = None
        self._label_ids_known = False
        self.retries = 0
        """Retried requests so far (rate limits, server errors, timeouts)."""

    # -- plumbing ---------------------------------------------------------------------------------------------
    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        assert self._sem is not None
        attempt = 0
        while True:
            try:
                async with self._sem:
                    return await make()
            except Exception as exc:  # noqa: BLE001 - classified below
                if not retryable(exc) or attempt >= self.server.max_retries:
                    raise
                delay = _retry_after(exc)
                if delay is None:
                    delay = self.server.backoff_s * (2**attempt) * (1.0 + 0.25 * random.random())
                log.warning(
                    "request failed (%s), retry %d/%d in %.2fs",
                    type(exc).__name__, attempt + 1, self.server.max_retries, delay,
                )
                self.retries += 1
                attempt += 1
                await asyncio.sleep(delay)

    def _run_all(self, coros: list[Awaitable[T]], progress: Progress | None) -> list[T]:
        futures = [self._loop.submit(c) for c in coros]
        index = {f: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * len(futures)
        try:
            for f in concurrent.futures.as_completed(futures):
                out[index[f]] = f.result()
                if progress:
                    progress(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return out

    def _extra(self, c: LLMJudgeConfig) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.server.chat_template_kwargs:
            extra["chat_template_kwargs"] = {"enable_thinking": c.enable_thinking}
        return extra

    def label_token_ids(self, labels: Sequence[str]) -> list[int] | None:
        """Label token ids from a local tokenizer, else from the vLLM server's /tokenize; None if neither."""
        if self._label_ids_known:
            return self._label_ids
        ids: list[int] | None = None
        source = self.cfg.tokenizer or (self.cfg.model if Path(self.cfg.model).is_dir() else None)
        if source:
            from transformers import AutoTokenizer

            ids = single_token_ids(AutoTokenizer.from_pretrained(source), labels)
        elif self.server.structured_outputs:
            ids = self._server_token_ids(labels)
        self._label_ids, self._label_ids_known = ids, True
        return ids

    def _server_token_ids(self, labels: Sequence[str]) -> list[int] | None:
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

    # -- Backend ----------------------------------------------------------------------------------------------
    def label_logprobs(
        self,
        prompts: Sequence[Messages],
        labels: Sequence[str],
        progress: Progress | None = None,
        *,
        settings: LLMJudgeConfig | None = None,
        splits: Sequence[Split] | None = None,  # a tokenisation hint; the server tokenises
    ) -> list[list[float | None]]:
        c = settings or self.cfg
        ids = self.label_token_ids(labels) if self.server.structured_outputs else None
        extra = self._extra(c)
        if ids is not None:
            extra["allowed_token_ids"] = ids
            extra["logprob_token_ids"] = ids
        extra.update(self.server.extra_body)
        by_token = {label: k for k, label in enumerate(labels)}
        if ids is not None:
            by_token.update({f"token_id:{t}": k for k, t in enumerate(ids)})

        async def one(messages: Messages) -> list[float | None]:
            resp = await self._call(
                lambda: self.client.chat.completions.create(
                    model=self.cfg.model,
                    messages=messages,
                    max_tokens=1,
                    temperature=0.0,
                    seed=c.seed,
                    logprobs=True,
                    top_logprobs=20,
                    extra_body=extra,
                )
            )
            values: list[float | None] = [None] * len(labels)
            choice = resp.choices[0]
            content = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
            if content:
                for entry in content[0].top_logprobs or []:
                    k = by_token.get(entry.token)
                    if k is not None and values[k] is None:
                        values[k] = entry.logprob
                k = by_token.get(content[0].token)
                if k is not None and values[k] is None:
                    values[k] = content[0].logprob
            elif choice.message.content in by_token:  # a server without logprobs: the answer itself
                values[by_token[choice.message.content]] = 0.0
            return values

        return self._run_all([one(m) for m in prompts], progress)

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        regexes: Sequence[str] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
        settings: LLMJudgeConfig | None = None,
    ) -> list[Generation]:
        c = settings or self.cfg

        async def one(k: int) -> Generation:
            extra = self._extra(c)
            if regexes is not None:
                extra["structured_outputs"] = {"regex": regexes[k]}
            extra.update(self.server.extra_body)
            resp = await self._call(
                lambda: self.client.chat.completions.create(
                    model=self.cfg.model,
                    messages=prompts[k],
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                    extra_body=extra,
                )
            )
            choice = resp.choices[0]
            usage = resp.usage
            return Generation(
                choice.message.content or "",
                choice.finish_reason,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
            )

        return self._run_all([one(k) for k in range(len(prompts))], None)

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.submit(self.client.close()).result(timeout=10)
        except Exception:  # pragma: no cover - best effort
            log.debug("closing the OpenAI client failed", exc_info=True)
        self._loop.close()
