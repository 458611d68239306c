"""``results.jsonl`` rows: their keys (``ResultRow``), and scoring them from their saved judgements.

Scoring only needs saved judgements, so ``rationalerm score`` re-scores a run without a judge: ``score_rows``
scores rows from their matrices (or, under a compat mode that reads answers, their answer texts), and
``summary.summarize`` turns the scored rows into ``metrics.json``.
"""

# No ``from __future__ import annotations`` here: TypedDict tells required from NotRequired keys when the class
# is created, which string annotations defeat on Python 3.11 (``ResultRow.__required_keys__`` would hold them all).
from collections import Counter
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

from rationalerm.scoring.metrics import Rules, rules
from rationalerm.scoring.sample import SampleScore, Status
from rationalerm.scoring.settings import ScoringConfig


class JudgeOutput(TypedDict, total=False):
    """A listwise judge's answer to one grid (or an answer imported from the reference pipeline)."""

    valid: bool
    attempts: int
    error: str | None
    raw: str | None
    failed: str
    """The failure kind of a request that got no answer (then there is no matrix; the next run retries it)."""
    finish_reason: str | None


class ResultRow(TypedDict):
    """One line of ``results.jsonl``: one sample x model. The keys up to ``labels`` and one of ``details``
    (pairwise judges) or ``judge_output`` (listwise) are written when the grid is judged; ``score_rows`` adds
    the rest."""

    id: str
    domain: str | None
    model: str
    source: str
    human: list[str]
    items: list[str]
    matrix: Sequence[Sequence[float | None]] | None
    """Rows: human items, columns: model items, 6 decimals; None = no usable judge answer, a None cell = a
    failed pair."""
    labels: dict[str, Any]
    details: NotRequired[list[list[Any]]]
    """Per cell, what the pairwise judge said (None where it was not asked)."""
    judge_output: NotRequired[JudgeOutput]
    picks: NotRequired[list[list[float]]]
    """``[R, S, score]`` read from the answer text by a compat mode that reads it (``compat: metajudge``)."""
    pairs: NotRequired[list[list[float]]]
    """The matches ``[i, j, score]`` (0-based, score to 6 decimals)."""
    precision: NotRequired[float]
    recall: NotRequired[float]
    f1: NotRequired[float]
    ap: NotRequired[float]
    valid: NotRequired[bool]
    excluded: NotRequired[str | None]
    status: NotRequired[Status]


def score_rows(rows: Sequence[ResultRow], scoring: ScoringConfig) -> list[SampleScore]:
    """(Re)compute every row's pairs, metrics and status in place from its saved judgement (no judge call).

    Paper mode scores the row's matrix (None = the judge gave no usable answer: an error). Under
    ``compat: metajudge`` a listwise answer is re-read from its text by the reference's rules (it may be
    valid there and invalid for the strict paper parser, or the reverse); a pairwise matrix gives best picks.
    In both modes a row with a failed judge call (a None cell, or a failed listwise request) is ``failed``: a
    None cell is never read as a number.
    """
    mode = rules(scoring.compat)
    scores: dict[int, SampleScore] = {}
    todo: list[int] = []
    for k, row in enumerate(rows):
        score = _score_without_matrix(row, mode, scoring.min_score)
        if score is None:
            todo.append(k)
        else:
            scores[k] = score
    done = mode.matrices([rows[k]["matrix"] for k in todo], scoring.max_model_items, scoring.min_score)
    scores.update(zip(todo, done))
    out = [scores[k] for k in range(len(rows))]
    for row, s in zip(rows, out):
        _write_score(row, s)
    return out


def _score_without_matrix(row: ResultRow, mode: Rules, min_score: float) -> SampleScore | None:
    """The row's score when it does not come from its matrix (failed judge calls, an answer the mode reads itself,
    no matrix); None: score the matrix."""
    failed = failed_cells(row)
    if failed:
        return SampleScore.failed("failed", _failure_text(row, failed))
    answer = _answer_text(row)
    if mode.answer is not None and answer is not None:
        score, picks = mode.answer(answer, len(row["human"]), len(row["items"]), min_score)
        row["picks"] = [list(p) for p in picks]
        return score
    if row.get("matrix") is None:
        return SampleScore.failed("error", _judge_error(row))
    return None


def _write_score(row: ResultRow, s: SampleScore) -> None:
    row["pairs"] = [[i, j, round(v, 6)] for i, j, v in s.pairs]
    row["precision"], row["recall"], row["f1"], row["ap"] = s.precision, s.recall, s.f1, s.ap
    row["valid"] = s.valid
    row["excluded"] = s.excluded
    row["status"] = s.status


def row_status(row: ResultRow) -> Status:
    """A scored row's status; a row saved before statuses existed: no matrix = error, otherwise not valid =
    skipped."""
    status = row.get("status")
    if status is not None:
        return status
    if row.get("valid", True):
        return "valid"
    return "error" if row.get("matrix") is None else "skipped"


def _answer_text(row: ResultRow) -> str | None:
    """The listwise judge's (or an imported reference run's) answer text, if the row has one."""
    out = row.get("judge_output")
    raw = out.get("raw") if isinstance(out, dict) else None
    return raw if isinstance(raw, str) else None


def failed_cells(row: ResultRow) -> Counter[str]:
    """The row's (human item, model item) cells the judge could not score, by reason kind (empty: none).

    A pairwise row marks them as None cells (the reason in ``details``); a failed listwise request fails every
    cell of its grid."""
    out = row.get("judge_output")
    if isinstance(out, dict) and out.get("failed"):
        return Counter({str(out["failed"]): max(1, len(row.get("human") or ()) * len(row.get("items") or ()))})
    matrix = row.get("matrix")
    if not isinstance(matrix, list) or not any(None in cells for cells in matrix if isinstance(cells, list)):
        return Counter()  # the common case, decided by a C-level scan of each row of cells
    details = row.get("details") if isinstance(row.get("details"), list) else None
    kinds: Counter[str] = Counter()
    for i, cells in enumerate(matrix):
        for j, x in enumerate(cells if isinstance(cells, list) else ()):
            if x is None:
                d = details[i][j] if details and i < len(details) and j < len(details[i]) else None
                kinds[str(d.get("failed") or "failed") if isinstance(d, dict) else "failed"] += 1
    return kinds


def _failure_text(row: ResultRow, failed: Counter[str]) -> str:
    reasons = ", ".join(f"{kind} {n}" for kind, n in sorted(failed.items(), key=lambda kv: (-kv[1], kv[0])))
    out = row.get("judge_output")
    if isinstance(out, dict) and out.get("failed"):
        return f"judge request failed ({out['failed']}): {out.get('error')}; the next run retries it"
    n = sum(failed.values())
    return f"{n} pair{'s' if n != 1 else ''} failed ({reasons}); the next run retries them"


def _judge_error(row: ResultRow) -> str:
    out = row.get("judge_output")
    err = out.get("error") if isinstance(out, dict) else None
    return str(err) if err else "invalid judge output"
