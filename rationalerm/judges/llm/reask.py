"""The one generate-parse-re-ask loop, shared by the listwise judge and ``rationalerm decompose``.

Every prompt is asked once; each answer is checked as it arrives (``check`` parses it and says whether to accept
it); the rejected ones are asked again, up to ``max_retries`` times, at ``max(temperature, retry_temperature)``
(a greedy re-ask would repeat the answer) and seed ``seed + attempt``. A prompt's final answer goes to
``on_final`` once: the first accepted one, the last rejected one, or a request that got no answer at all
(``Generation.fault``: a server that kept failing), which is final at once and never re-asked here, because the
caller leaves it uncached and the next run asks again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from rationalerm.judges.llm.backend import Backend, Generation
from rationalerm.judges.llm.settings import CallSettings
from rationalerm.judges.llm.tokenize import Messages

P = TypeVar("P")


class ReaskSettings(Protocol):
    """The loop's budget: ``judge.listwise`` (``ListwiseConfig``) or ``DecomposeSettings``."""

    max_tokens: int
    max_retries: int
    retry_temperature: float


@dataclass(frozen=True)
class Final(Generic[P]):
    """A prompt's final answer and what ``check`` made of it (None for a request that got no answer)."""

    gen: Generation
    parsed: P | None
    attempts: int


Check = Callable[[int, Generation], tuple[P, bool]]
"""(prompt index, answer) -> (the parsed answer, whether to accept it)."""


def ask_until_accepted(backend: Backend, prompts: Sequence[Messages], regexes: Sequence[str] | None, *,
                       call: CallSettings, budget: ReaskSettings, check: Check[P],
                       on_final: Callable[[int, Final[P]], None]) -> None:
    """Ask ``prompts`` (each forced into its regex where ``regexes`` is given) until each answer is accepted or
    the re-asks are spent; ``on_final(i, final)`` gets each prompt's final answer once, as soon as it is known."""
    loop = _Loop(backend, prompts, regexes, call, budget, check, on_final)
    pending = list(range(len(prompts)))
    for attempt in range(budget.max_retries + 1):
        if not pending:
            return
        pending = loop.ask(pending, attempt)


@dataclass(frozen=True)
class _Loop(Generic[P]):
    backend: Backend
    prompts: Sequence[Messages]
    regexes: Sequence[str] | None
    call: CallSettings
    budget: ReaskSettings
    check: Check[P]
    on_final: Callable[[int, Final[P]], None]

    def temperature(self, attempt: int) -> float:
        return self.call.temperature if attempt == 0 else max(self.call.temperature, self.budget.retry_temperature)

    def ask(self, asked: list[int], attempt: int) -> list[int]:
        """Ask the ``asked`` prompts once; the ones to ask again, in prompt order (never the order of arrival)."""
        last = attempt == self.budget.max_retries
        rejected: list[int] = []

        def arrived(k: int, gen: Generation) -> None:
            i = asked[k]
            if gen.fault:  # no answer at all: final, not rejected (the caller never caches it)
                self.on_final(i, Final(gen, None, attempt + 1))
                return
            parsed, accepted = self.check(i, gen)
            if accepted or last:
                self.on_final(i, Final(gen, parsed, attempt + 1))
            else:
                rejected.append(i)

        self.backend.generate(
            [self.prompts[i] for i in asked],
            regexes=[self.regexes[i] for i in asked] if self.regexes is not None else None,
            max_tokens=self.budget.max_tokens, temperature=self.temperature(attempt),
            seed=self.call.seed + attempt, settings=self.call, on_answer=arrived,
        )
        return sorted(rejected)
