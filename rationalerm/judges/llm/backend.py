"""The LLM backend base class (one per engine: vLLM, an OpenAI-compatible server, transformers) and what its
calls take and return. Its config base and registry are in ``settings``, the tokenisation it uses in ``tokenize``.

Modelled on inspect_ai's ``ModelAPI``: the base class writes once what every backend shares and each backend
implements only what differs.

- ``label_logprobs`` / ``generate`` are the two calls the judges make. The base resolves the per-call
  settings (the calling judge's config, so judges with different settings share one engine), applies the
  context rule, and hands the backend's hooks (``_label_logprobs``, ``_generate``) only the prompts that fit.
- Context rule (the same for every backend that knows its context length, ``context_length()``): a pairwise
  prompt that leaves no room for the one answer token gets a per-prompt error (``LabelLogprobs.error``, fault
  ``prompt too long``: the pairwise judge makes it a *failed* pair), and a listwise prompt that leaves no room to
  generate is an invalid ``Generation`` with an error (recorded invalid, never scored); a listwise generation
  budget is cut to the room left. A backend without a local tokenizer (the OpenAI client) leaves the limit to
  its server.
- Per-prompt failures never abort a batch: a prompt the engine could not answer (after the retries, for a
  server) comes back with ``error`` and ``fault`` set (``LabelLogprobs`` / ``Generation``), and the judge records
  it as failed (DESIGN.md step 4). Answers are handed to ``on_answer`` as they arrive (a streaming hook calls
  ``batch.answer(k, ...)``; the base delivers whatever the hook did not), so the caller can cache them at once.
- Label token ids are found one way, ``label_token_ids``: the backend's local tokenizer (``label_tokenizer()``),
  else the backend's remote lookup (``remote_label_ids()``, e.g. a vLLM server's ``/tokenize``), else None.
- Transient failures (rate limits, server errors, timeouts) are retried with exponential backoff in one loop,
  ``call_with_retries``, for backends that talk to a server; ``should_retry`` / ``retry_after`` say which
  errors are transient.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rationalerm.judges.base import Progress
from rationalerm.judges.llm.settings import CallSettings
from rationalerm.judges.llm.tokenize import Messages, Split, Tokenizer, encode_chats, single_token_ids

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Generation:
    """One generated answer (listwise)."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    """Set when the request itself failed or could not be made (e.g. prompt longer than the context)."""
    fault: str | None = None
    """Set (a short reason kind) when the request failed with no answer at all (a server that kept failing):
    the list is then *failed* (retried by the next run), not invalid."""


@dataclass(frozen=True)
class LabelLogprobs:
    """One pairwise prompt's answer: the next-token log-probability (or logit) of each label, None where unknown."""

    values: list[float | None]
    error: str | None = None
    """Set when the prompt could not be scored (e.g. longer than the context); ``values`` are then all None."""
    fault: str | None = None
    """With ``error``: a short reason kind (``prompt too long``, ``timeout``, ``server error``, ...), counted."""
    unreported_mass: float | None = None
    """An upper bound on the total probability of the labels missing from ``values`` when the backend can bound
    it (an OpenAI server's full top-k list); None = unknown (then every label must be reported)."""


AnswerSink = Callable[[int, Any], None]
"""Called with (prompt index, answer) as each prompt's answer arrives."""


@dataclass(frozen=True)
class LabelBatch:
    """What ``Backend._label_logprobs`` gets: prompts that fit, with their token ids where the backend tokenises."""

    prompts: Sequence[Messages]
    labels: tuple[str, ...]
    settings: CallSettings
    splits: Sequence[Split] | None = None
    token_ids: Sequence[list[int]] | None = None
    on_answer: AnswerSink | None = None

    def answer(self, k: int, values: list[float | None] | LabelLogprobs) -> None:
        """Hand prompt ``k``'s answer over as soon as it is known (optional; the base delivers the rest)."""
        if self.on_answer is not None:
            self.on_answer(k, values)


@dataclass(frozen=True)
class GenerateBatch:
    """What ``Backend._generate`` gets: prompts that fit, each with its generation budget (cut to the room left)."""

    prompts: Sequence[Messages]
    regexes: Sequence[str] | None
    max_tokens: Sequence[int]
    temperature: float
    seed: int
    settings: CallSettings
    token_ids: Sequence[list[int]] | None = None
    on_answer: AnswerSink | None = None

    def answer(self, k: int, gen: Generation) -> None:
        """Hand prompt ``k``'s answer over as soon as it is known (optional; the base delivers the rest)."""
        if self.on_answer is not None:
            self.on_answer(k, gen)


class _Delivery:
    """Maps a hook's batch indices to the caller's prompt indices and hands each answer over once."""

    def __init__(self, out: list[Any], on_answer: AnswerSink | None, convert: Callable[[Any], Any]) -> None:
        self.out, self.on_answer, self.convert = out, on_answer, convert
        self.fit: list[int] = []

    def put(self, i: int, answer: Any) -> None:
        if self.out[i] is not None:
            return
        self.out[i] = answer = self.convert(answer)
        if self.on_answer is not None:
            self.on_answer(i, answer)

    def from_batch(self, k: int, answer: Any) -> None:
        self.put(self.fit[k], answer)


def _as_label_logprobs(x: list[float | None] | LabelLogprobs) -> LabelLogprobs:
    return x if isinstance(x, LabelLogprobs) else LabelLogprobs(list(x))


class Backend(ABC):
    """An LLM engine the pairwise and listwise judges run on; see the module docstring for what it owns."""

    supports_grammar: bool = False
    """Whether ``generate`` can force outputs into a regular expression (the listwise result grammar)."""
    tokenizer: Tokenizer = None
    """The backend's local Hugging Face tokenizer, if it has one (prompts are then tokenised here)."""
    context_setting: str = ""
    """The config key that sets the context length, named in the too-long-prompt error."""
    max_retries: int = 0
    backoff_s: float = 0.0

    def __init__(self, cfg: CallSettings) -> None:
        self.cfg = cfg
        self.retries = 0
        """Retried calls so far (rate limits, server errors, timeouts)."""
        self._label_ids: dict[tuple[str, ...], list[int] | None] = {}

    # -- per-call settings and what the base decides -------------------------------------------------------------
    def settings(self, settings: CallSettings | None = None) -> CallSettings:
        """The calling judge's config (seed, enable_thinking, batch_size apply per call), else the backend's own."""
        return settings or self.cfg

    def encode(self, prompts: Sequence[Messages], settings: CallSettings | None = None,
               splits: Sequence[Split] | None = None) -> list[list[int]] | None:
        """Token ids of the rendered chat prompts, or None for a backend without a local tokenizer."""
        if self.tokenizer is None:
            return None
        return encode_chats(self.tokenizer, prompts, self.settings(settings).enable_thinking, splits)

    def label_token_ids(self, labels: Sequence[str]) -> list[int] | None:
        """Each label's token id (each must be one token): local tokenizer, else remote lookup, else None."""
        key = tuple(labels)
        if key not in self._label_ids:
            tokenizer = self.label_tokenizer()
            self._label_ids[key] = (
                single_token_ids(tokenizer, labels) if tokenizer is not None else self.remote_label_ids(labels)
            )
        return self._label_ids[key]

    def _too_long(self, n_tokens: int, room_needed: int) -> str | None:
        limit = self.context_length()
        if limit is None or n_tokens + room_needed <= limit:
            return None
        hint = f"; raise {self.context_setting}" if self.context_setting else ""
        return f"prompt of {n_tokens} tokens leaves no room to answer in the model's context of {limit} tokens{hint}"

    # -- the two calls the judges make -------------------------------------------------------------------------
    def label_logprobs(
        self,
        prompts: Sequence[Messages],
        labels: Sequence[str],
        progress: Progress | None = None,
        *,
        settings: CallSettings | None = None,
        splits: Sequence[Split] | None = None,
        on_answer: Callable[[int, LabelLogprobs], None] | None = None,
    ) -> list[LabelLogprobs]:
        """For each prompt, the next-token log-probability (or logit) of each label, in prompt order.

        ``splits`` is an optional tokenisation hint (see ``encode_chats``). A prompt too long for the context
        gets an error instead of values (and counts as done for ``progress``). ``on_answer(i, answer)`` gets
        every prompt's answer once, as soon as it is known.
        """
        if not prompts:
            return []
        c = self.settings(settings)
        ids = self.encode(prompts, c, splits)
        out: list[LabelLogprobs | None] = [None] * len(prompts)
        sink = _Delivery(out, on_answer, _as_label_logprobs)
        for i, x in enumerate(ids or ()):
            error = self._too_long(len(x), 1)
            if error:
                sink.put(i, LabelLogprobs([None] * len(labels), error, fault="prompt too long"))
        sink.fit = fit = [i for i, r in enumerate(out) if r is None]
        if progress and len(fit) < len(prompts):
            progress(len(prompts) - len(fit))
        if fit:
            batch = LabelBatch(
                [prompts[i] for i in fit], tuple(labels), c,
                [splits[i] for i in fit] if splits is not None else None,
                [ids[i] for i in fit] if ids is not None else None,
                on_answer=sink.from_batch,
            )
            for k, values in enumerate(self._label_logprobs(batch, progress)):
                sink.from_batch(k, values)
        return [r for r in out if r is not None]

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        regexes: Sequence[str] | None,
        max_tokens: int,
        temperature: float,
        seed: int,
        settings: CallSettings | None = None,
        on_answer: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        """Free (or regex-constrained) generation, one answer per prompt, in prompt order.

        A prompt too long to generate anything is an invalid ``Generation`` with an error; the others get
        ``max_tokens`` or the room the context leaves, whichever is smaller. ``on_answer(i, generation)`` gets
        every prompt's answer once, as soon as it is known.
        """
        if not prompts:
            return []
        c = self.settings(settings)
        ids = self.encode(prompts, c)
        limit = self.context_length() if ids is not None else None
        out: list[Generation | None] = [None] * len(prompts)
        sink = _Delivery(out, on_answer, lambda g: g)
        budget: dict[int, int] = {}
        for i in range(len(prompts)):
            n = len(ids[i]) if ids is not None else 0
            error = self._too_long(n, 1) if ids is not None else None
            if error:
                sink.put(i, Generation("", None, n, 0, error=error))
            else:
                budget[i] = min(max_tokens, limit - n) if limit is not None else max_tokens
        sink.fit = fit = list(budget)
        if fit:
            batch = GenerateBatch(
                [prompts[i] for i in fit], [regexes[i] for i in fit] if regexes is not None else None,
                [budget[i] for i in fit], temperature, seed, c,
                [ids[i] for i in fit] if ids is not None else None,
                on_answer=sink.from_batch,
            )
            for k, gen in enumerate(self._generate(batch)):
                sink.from_batch(k, gen)
        return [g for g in out if g is not None]

    # -- hooks -------------------------------------------------------------------------------------------------
    @abstractmethod
    def _label_logprobs(
        self, batch: LabelBatch, progress: Progress | None
    ) -> Sequence[list[float | None] | LabelLogprobs]:
        """Label log-probabilities of each prompt of ``batch`` in order (a ``LabelLogprobs`` with ``error`` and
        ``fault`` for a prompt that could not be answered); report finished prompts to ``progress``. A hook may
        hand answers over early with ``batch.answer(k, ...)``."""

    @abstractmethod
    def _generate(self, batch: GenerateBatch) -> list[Generation]:
        """One answer per prompt of ``batch``, in order (``fault`` set where the request failed); a hook may hand
        answers over early with ``batch.answer(k, gen)``."""

    def context_length(self) -> int | None:
        """Tokens of context (prompt + answer) the model accepts; None = unknown here (the server decides)."""
        return None

    def label_tokenizer(self) -> Tokenizer:
        """The tokenizer that finds label token ids; default: the backend's own."""
        return self.tokenizer

    def remote_label_ids(self, labels: Sequence[str]) -> list[int] | None:
        """Label token ids from the engine itself when there is no local tokenizer; default: unknown."""
        return None

    def should_retry(self, exc: BaseException) -> bool:
        """Whether a failed call is transient (worth retrying); default: never."""
        return False

    def retry_after(self, exc: BaseException) -> float | None:
        """Seconds the failed call asks to wait before retrying (e.g. ``Retry-After``); None = exponential backoff."""
        return None

    def close(self) -> None:
        """Release the engine; default: nothing to release."""
        return None

    # -- the retry loop, written once ----------------------------------------------------------------------------
    async def call_with_retries(self, make: Callable[[], Awaitable[T]]) -> T:
        """Await ``make()``; retry a transient failure up to ``max_retries`` times with jittered exponential backoff."""
        attempt = 0
        while True:
            try:
                return await make()
            except Exception as exc:  # noqa: BLE001 - classified by should_retry
                if not self.should_retry(exc) or attempt >= self.max_retries:
                    raise
                delay = self.retry_after(exc)
                if delay is None:
                    delay = self.backoff_s * (2**attempt) * (1.0 + 0.25 * random.random())
                log.info("request failed (%s), retry %d/%d in %.2fs",
                         type(exc).__name__, attempt + 1, self.max_retries, delay)
                self.retries += 1
                attempt += 1
                await asyncio.sleep(delay)

