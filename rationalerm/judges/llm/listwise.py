"""The paper's listwise protocol: strict parsing, the output grammar, and the retrying judge.

An output is valid only if it has exactly one ``<RESULT_START>`` ... ``<RESULT_END>`` block holding exactly one line
``- Rx@Sy: score`` for every human item x = 1..n, with 0 <= y <= m (``S0`` = no match) and 0 <= score <= 1,
and the generation was not cut off. Anything else is invalid: it is retried ``max_retries`` times and then
recorded as invalid (``ListResult.valid = False``, no matrix), never turned into a score.

A request that got no answer at all (a server that kept failing after the backend's retries) is different: the
list is *failed* (``ListResult.failed``), not invalid; it is never cached and the next run asks again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rationalerm.judges.base import ListResult, ListSink, ListTask, Progress
from rationalerm.judges.llm.backend import Backend, Generation
from rationalerm.judges.llm.config import LLMJudgeConfig
from rationalerm.judges.llm.prompts import judge_fingerprint, listwise_messages, listwise_template
from rationalerm.judges.llm.reask import Final, ask_until_accepted

START, END = "<RESULT_START>", "<RESULT_END>"
HEADER = "Scores corresponding to claims:"
_PICK_HINT = re.compile(r"R\s*\d+\s*@\s*S", re.IGNORECASE)
_LINE = re.compile(r"-\s?R(\d+)@S(\d+):\s?(\d+(?:\.\d+)?)")
GRAMMAR_SCORES = ("0.00", "0.25", "0.50", "0.75", "1.00")


@dataclass
class ParsedList:
    matrix: list[list[float]] | None
    error: str | None = None
    picks: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.matrix is not None


def parse_listwise(text: str, n: int, m: int, finish_reason: str | None = None) -> ParsedList:
    """Parse one listwise output strictly into an n x m matrix (rows = human items), or say why not."""
    if finish_reason == "length":
        return ParsedList(None, "truncated: generation hit max_tokens (finish_reason=length)")
    start = text.find(START)
    if start < 0:
        return ParsedList(None, f"missing {START}")
    if text.count(START) > 1:  # a draft and a final block, or a quoted one: never scored from a guess
        return ParsedList(None, f"more than one {START} block")
    end = text.find(END, start + len(START))
    if end < 0:
        return ParsedList(None, f"missing {END} after {START}")
    body = text[start + len(START) : end]
    picks: list[tuple[int, int, float]] = []
    seen: set[int] = set()
    for raw_line in body.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        if not _PICK_HINT.search(line):
            continue  # a header such as "Scores corresponding to claims:"
        mt = _LINE.fullmatch(line)
        if mt is None:
            return ParsedList(None, f"malformed score line: {line[:120]!r}")
        r, s, v = int(mt.group(1)), int(mt.group(2)), float(mt.group(3))
        if not 1 <= r <= n:
            return ParsedList(None, f"R{r} out of range (the human list has {n} items)")
        if not 0 <= s <= m:
            return ParsedList(None, f"S{s} out of range in R{r}@S{s} (the model list has {m} items)")
        if not 0.0 <= v <= 1.0:
            return ParsedList(None, f"score {mt.group(3)} of R{r}@S{s} is outside [0, 1]")
        if r in seen:
            return ParsedList(None, f"duplicate line for R{r}")
        seen.add(r)
        picks.append((r, s, v))
    missing = [r for r in range(1, n + 1) if r not in seen]
    if missing:
        shown = ", ".join(f"R{r}" for r in missing[:8]) + (" ..." if len(missing) > 8 else "")
        return ParsedList(None, f"no score line for {shown}")
    matrix = [[0.0] * m for _ in range(n)]
    for r, s, v in picks:
        if s > 0:
            matrix[r - 1][s - 1] = v
    return ParsedList(matrix, None, picks)


def _esc(text: str) -> str:
    """Escape regex metacharacters only (``re.escape`` also escapes spaces, which xgrammar warns about)."""
    return "".join("\\" + ch if ch in ".^$*+?{}[]\\|()" else ch for ch in text)


def listwise_regex(n: int, m: int) -> str:
    """A regular expression for exactly the valid outputs of an n x m task (vLLM structured outputs).

    Human items in order, each picking S0 (score 0.00) or one of S1..Sm with one of the five levels.
    """
    score = "(" + "|".join(_esc(s) for s in GRAMMAR_SCORES) + ")"
    idx = "(" + "|".join(str(j) for j in range(m, 0, -1)) + ")"
    lines = "".join(rf"- R{i}@S(0: 0\.00|{idx}: {score})\n" for i in range(1, n + 1))
    return _esc(START) + r"\n" + _esc(HEADER) + r"\n" + lines + _esc(END)


class LLMListJudge:
    """Listwise judge over any backend; retries invalid outputs, then records them as invalid."""

    kind = "listwise"

    def __init__(self, cfg: LLMJudgeConfig, backend: Backend):
        self.cfg = cfg
        self.backend = backend
        self.use_grammar = bool(cfg.listwise.structured_outputs and backend.supports_grammar)

    def fingerprint(self) -> dict[str, Any]:
        c = self.cfg.listwise
        extra: dict[str, Any] = {"format_check": c.format_check} if c.format_check != "paper" else {}
        return judge_fingerprint(self.cfg, "listwise", retry_temperature=c.retry_temperature, max_tokens=c.max_tokens,
                                 max_retries=c.max_retries, grammar=self.use_grammar, **extra)

    def judge_lists(self, tasks: Sequence[ListTask], progress: Progress | None = None,
                    on_result: ListSink | None = None) -> list[ListResult]:
        """One result per task, in order; ``on_result`` gets each final result as soon as it is known."""
        results: list[ListResult | None] = [None] * len(tasks)

        def final(i: int, result: ListResult) -> None:
            results[i] = result
            if on_result is not None:
                on_result(i, result)
            if progress:
                progress(1)

        asked: list[int] = []
        for i, t in enumerate(tasks):
            if not t.human or not t.model:  # nothing to ask: an empty row set or an all-zero matrix
                final(i, ListResult(matrix=[[0.0] * len(t.model) for _ in t.human], valid=True, attempts=0))
            else:
                asked.append(i)
        self._ask([tasks[i] for i in asked], lambda k, result: final(asked[k], result))
        return _fill(results)

    def _ask(self, tasks: Sequence[ListTask], final: Callable[[int, ListResult], None]) -> None:
        """Ask each task, re-asking an output the format check rejects (``reask``)."""
        template = listwise_template(self.cfg)
        prompts = [listwise_messages(t.human, t.model, self.cfg.prompt_version, template) for t in tasks]
        regexes = [listwise_regex(len(t.human), len(t.model)) for t in tasks] if self.use_grammar else None

        def check(k: int, gen: Generation) -> tuple[ParsedList, bool]:
            t = tasks[k]
            parsed = (ParsedList(None, gen.error) if gen.error
                      else parse_listwise(gen.text, len(t.human), len(t.model), gen.finish_reason))
            return parsed, self._acceptable(gen, parsed)

        ask_until_accepted(self.backend, prompts, regexes, call=self.cfg, budget=self.cfg.listwise, check=check,
                           on_final=lambda k, f: final(k, self._final(f)))

    def _acceptable(self, gen: Generation, parsed: ParsedList) -> bool:
        """Whether to stop re-asking: a strictly valid answer, or under ``format_check: metajudge`` one the
        reference inference script accepts (its scores are then read by the reference's rules)."""
        if self.cfg.listwise.format_check == "metajudge":
            from rationalerm.scoring.metajudge import format_errors

            return not gen.error and not format_errors(gen.text)
        return parsed.valid

    @staticmethod
    def _final(f: Final[ParsedList]) -> ListResult:
        """A task's result from its final answer: failed (no answer at all: never cached, the next run asks
        again), else valid or invalid as the strict parser found it."""
        gen, parsed = f.gen, f.parsed
        if parsed is None:
            return ListResult(None, False, attempts=f.attempts, error=gen.error, failed=gen.fault,
                              detail={"finish_reason": None})
        detail: dict[str, Any] = {
            "finish_reason": gen.finish_reason,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
        }
        if parsed.valid:
            detail["picks"] = [list(p) for p in parsed.picks]
        return ListResult(
            matrix=parsed.matrix, valid=parsed.valid, raw=gen.text, attempts=f.attempts, error=parsed.error,
            detail=detail,
        )

    def close(self) -> None:
        self.backend.close()


def _fill(results: list[ListResult | None]) -> list[ListResult]:
    return [r if r is not None else ListResult(None, False, error="not judged") for r in results]
