"""`compat: metajudge`: the public reference script's rules, exactly (DESIGN.md "The public reference script").

The reference (QwenLM/RationaleRM ``metajudge_analysis.py``) scores the judge's answer *text*, not a
matrix: the first ``<RESULT_START>..<RESULT_END>`` block, every ``- Rx@Sy: v`` match in it, best pick
per human item, precision over min(m, 5) with picks past S5 dropped, samples with 0 or more than 10
model items skipped, and AP over the kept model items in *index* order. These functions reproduce it,
including its quirks (R0 picks and zero-score picks are kept; duplicate lines count), so numbers from
rationalerm and from the reference pipeline can be compared one for one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rationalerm.scoring.assign import as_matrix, best_pick
from rationalerm.scoring.sample import SampleScore, f1_of

BLOCK = re.compile(r"<RESULT_START>(.*?)<RESULT_END>", re.DOTALL)
LINE = re.compile(r"- R(\d+)@S(\d+): (\d+(?:\.\d+)?)")
TOP = 5
"""Precision's denominator is min(m, TOP); picks past S{TOP} are dropped."""
MAX_ITEMS = 10
"""A sample whose model list is longer is skipped."""

Pick = tuple[int, int, float]
"""``(R, S, score)``, 1-based as in the answer; S = 0 means no match."""


@dataclass(frozen=True)
class ReferenceParse:
    picks: list[Pick] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None


def parse_answer(text: str) -> ReferenceParse:
    """Rule 1: the first block, every line match in it; no block, no line or a score outside [0, 1] is an error."""
    block = BLOCK.search(text)
    if block is None:
        return ReferenceParse([], ["RESULT_START and RESULT_END tags not found"])
    found = LINE.findall(block.group(1))
    if not found:
        return ReferenceParse([], ["No score lines matching the expected format found"])
    picks: list[Pick] = []
    errors: list[str] = []
    for r, s, v in found:
        score = float(v)
        if not 0 <= score <= 1:
            errors.append(f"Score {score} for R{int(r)}@S{int(s)} is not in range 0-1")
        picks.append((int(r), int(s), score))
    return ReferenceParse(picks, errors)


def format_errors(text: str) -> list[str]:
    """What makes the reference *inference* script re-ask: rule 1, plus R lines not numbered 1, 2, 3, .."""
    parsed = parse_answer(text)
    errors = list(parsed.errors)
    rs = [r for r, _, _ in parsed.picks]
    if any(b != a + 1 for a, b in zip(rs, rs[1:])):
        errors.append("R numbers not consecutive")
    if rs and rs[0] != 1:
        errors.append(f"R numbers do not start from 1, starts from R{rs[0]}")
    return errors


def picks_from_matrix(w: np.ndarray, min_score: float = 0.0) -> list[Pick]:
    """A pairwise judge's matrix as picks: each human item's best model item (``assign.best_pick``); a human item
    without one is S0."""
    best = {i: (j, v) for i, j, v in best_pick(w, min_score)}
    return [(i + 1, best[i][0] + 1, best[i][1]) if i in best else (i + 1, 0, 0.0) for i in range(w.shape[0])]


def score_picks(picks: Sequence[Pick], n: int, m: int, error: str | None = None, min_score: float = 0.0) -> SampleScore:
    """Rules 2-7 on parsed picks (``error`` = the parse's rule-1 error, checked first)."""
    if error is not None:
        return SampleScore.failed("error", error)
    if m == 0 or m > MAX_ITEMS:
        return SampleScore.failed("skipped", "no model items" if m == 0 else f"more than {MAX_ITEMS} model items")
    if not picks:
        return SampleScore.failed("error", "no score lines")
    if len(picks) != n:
        return SampleScore.failed("error", f"{len(picks)} score lines for {n} human items")
    top = min(m, TOP)
    kept = [(r, s, v if v >= min_score else 0.0) for r, s, v in picks if s != 0 and r <= n and s <= top]
    by_r: dict[int, float] = {}
    by_s: dict[int, float] = {}
    for r, s, v in kept:
        by_r[r] = max(by_r.get(r, v), v)
        by_s[s] = max(by_s.get(s, v), v)
    recall = sum(by_r.values()) / n if n else 0.0
    precision = sum(by_s.values()) / top
    ap = 0.0
    running = 0.0
    for q, s in enumerate(sorted(by_s), start=1):
        running += by_s[s]
        ap += running / q
    ap = ap / n if n else 0.0
    pairs = [(r - 1, s - 1, v) for r, s, v in kept if r >= 1]
    return SampleScore(precision, recall, f1_of(precision, recall), ap, pairs)


def score_answer(text: str, n: int, m: int, min_score: float = 0.0) -> tuple[SampleScore, list[Pick]]:
    """The reference's verdict on one answer text and the picks it read: parse (rule 1), then rules 2-7."""
    parsed = parse_answer(text)
    return score_picks(parsed.picks, n, m, parsed.error, min_score), parsed.picks


def score_matrix(w: np.ndarray, min_score: float = 0.0) -> SampleScore:
    """Compat scoring of a pairwise judge's matrix: best picks, then rules 3-7."""
    n, m = w.shape
    if n == 0:
        return SampleScore.failed("error", "empty human checklist")
    return score_picks(picks_from_matrix(w, min_score), n, m)


def score_matrices(matrices: Sequence[object], max_model_items: int | None, min_score: float) -> list[SampleScore]:
    """``score_matrix`` of each; ``max_model_items`` does not apply (the reference has its own limits, ``TOP`` and
    ``MAX_ITEMS``)."""
    return [score_matrix(as_matrix(x), min_score) for x in matrices]
