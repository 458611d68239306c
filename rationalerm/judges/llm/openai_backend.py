"""Backend for any OpenAI-compatible chat server (e.g. ``vllm serve``).

Async client on a private event-loop thread, bounded concurrency (a semaphore), per-request timeouts,
and retries with exponential backoff on 429, 5xx, timeouts and connection errors (``Retry-After`` honoured;
the loop is ``Backend.call_with_retries``). With ``structured_outputs`` (a vLLM server) the pairwise answer is
restricted to the five label tokens (``allowed_token_ids``) and their logprobs are asked for by id
(``logprob_token_ids``); listwise outputs are forced into the result grammar (``structured_outputs: {regex: ...}``).
The API key is read from the environment variable the config names and is never logged. The server applies
its own context limit (this client does not tokenise).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field

from rationalerm.errors import JudgeError
from rationalerm.judges.base import Progress
from rationalerm.judges.llm.backend import BACKENDS, Backend, BackendConfig, GenerateBatch, Generation
from rationalerm.judges.llm.backend import LabelBatch, Messages

if TYPE_CHECKING:
    from rationalerm.judges.llm.config import LLMJudgeConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


class OpenAIBackendConfig(BackendConfig):
    """``backend: {type: openai}``: any OpenAI-compatible chat server; ``judge.model`` is the served model name."""

    type: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (never logged)")
    concurrency: int = Field(32, ge=1, description="requests in flight")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, description="retries of a request on 429 / 5xx / timeouts / connection errors")
    backoff_s: float = Field(0.5, ge=0)
    structured_outputs: bool = Field(
        True,
        description="the server is vLLM: send structured_outputs (listwise grammar) and allowed_token_ids / "
        "logprob_token_ids (pairwise labels)",
    )
    chat_template_kwargs: bool = Field(True, description="send chat_template_kwargs {enable_thinking: ...}")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra request fields, sent as is")


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


@BACKENDS.register("openai", config=OpenAIBackendConfig)
class OpenAIBackend(Backend):
    def __init__(self, cfg: LLMJudgeConfig):
        import openai

        super().__init__(cfg)
        self.server: OpenAIBackendConfig = cfg.backend  # type: ignore[assignment]
        self.supports_grammar = bool(self.server.structured_outputs)
        self.max_retries, self.backoff_s = self.server.max_retries, self.server.backoff_s
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
                return await make()

        return await self.call_with_retries(bounded)

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

    # -- Backend hooks -----------------------------------------------------------------------------------------
    def label_tokenizer(self) -> Any:
        """A local tokenizer when the config names one or the model is a local folder (prompts are not tokenised)."""
        source = self.cfg.tokenizer or (self.cfg.model if Path(self.cfg.model).is_dir() else None)
        if not source:
            return None
        from transformers import AutoTokenizer

        from rationalerm.local_models import loading

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

    def _label_logprobs(self, batch: LabelBatch, progress: Progress | None) -> list[list[float | None]]:
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

        return self._run_all([one(m) for m in batch.prompts], progress)

    def _generate(self, batch: GenerateBatch) -> list[Generation]:
        async def one(k: int) -> Generation:
            extra = self._extra(batch.settings)
            if batch.regexes is not None:
                extra["structured_outputs"] = {"regex": batch.regexes[k]}
            extra.update(self.server.extra_body)
            resp = await self._call(
                lambda: self.client.chat.completions.create(
                    model=self.cfg.model,
                    messages=batch.prompts[k],
                    max_tokens=batch.max_tokens[k],
                    temperature=batch.temperature,
                    seed=batch.seed,
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

        return self._run_all([one(k) for k in range(len(batch.prompts))], None)

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.submit(self.client.close()).result(timeout=10)
        except Exception:  # pragma: no cover - best effort
            log.debug("closing the OpenAI client failed", exc_info=True)
        self._loop.close()
