"""Per-sample metrics of score matrices (DESIGN.md "What it computes"): the paper's rules, or a compat mode's.

A scoring mode is an entry of ``COMPAT`` (its name is ``scoring.compat``): how it scores matrices, and, for a mode
that reads a listwise judge's answer text itself, how it scores that text (``rows.score_rows`` uses it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rationalerm.scoring import metajudge
from rationalerm.scoring.assign import as_matrix, assign_stack, group_by_shape, mask_below
from rationalerm.scoring.sample import SampleScore, f1_of
from rationalerm.scoring.settings import Compat

MatrixScorer = Callable[[Sequence[object], int | None, float], list[SampleScore]]
"""``(matrices, max_model_items, min_score) -> scores``."""
AnswerScorer = Callable[[str, int, int, float], tuple[SampleScore, list[metajudge.Pick]]]
"""``(answer text, n human items, m model items, min_score) -> (score, the picks read from the text)``."""


@dataclass(frozen=True)
class Rules:
    """One scoring mode."""

    matrices: MatrixScorer
    answer: AnswerScorer | None = None
    """Scores a row's answer text instead of its matrix (None: the mode only scores matrices)."""


def paper_scores(matrices: Sequence[object], max_model_items: int | None, min_score: float) -> list[SampleScore]:
    """The paper's rules: one-to-one assignment with the tie rule; equal shapes are matched as one array (fast)."""
    arrays = [_array(x) for x in matrices]
    out: dict[int, SampleScore] = {}
    for (n, m), idx in group_by_shape([a.shape for a in arrays]).items():
        if n == 0:
            out.update((k, SampleScore.failed("error", "empty human checklist")) for k in idx)
            continue
        stack = np.stack([arrays[k] for k in idx]) if m else np.zeros((len(idx), n, 0))
        if stack.size and (not np.all(np.isfinite(stack)) or stack.min() < 0.0 or stack.max() > 1.0):
            raise ValueError("score matrix entries must be finite and in [0, 1]")
        if max_model_items is not None:
            stack = stack[:, :, :max_model_items]  # items past the k-th can never be matched
        for k, s in zip(idx, _score_stack(mask_below(stack, min_score))):
            out[k] = s
    return [out[k] for k in range(len(arrays))]


COMPAT: dict[Compat, Rules] = {
    None: Rules(paper_scores),
    "metajudge": Rules(metajudge.score_matrices, metajudge.score_answer),
}


def rules(compat: Compat) -> Rules:
    try:
        return COMPAT[compat]
    except KeyError:
        raise ValueError(f"unknown compat mode {compat!r}") from None


def score_sample(
    matrix: object,
    *,
    max_model_items: int | None = None,
    min_score: float = 0.0,
    compat: Compat = None,
) -> SampleScore:
    """Precision, recall (Rationale Consistency), F1 and AP of one sample's score matrix.

    Rows are human items, columns model items in the model's order of importance.
    """
    return score_matrices([matrix], max_model_items=max_model_items, min_score=min_score, compat=compat)[0]


def score_matrices(
    matrices: Sequence[object],
    *,
    max_model_items: int | None = None,
    min_score: float = 0.0,
    compat: Compat = None,
) -> list[SampleScore]:
    """:func:`score_sample` of many matrices."""
    return rules(compat).matrices(matrices, max_model_items, min_score)


def _array(matrix: object) -> np.ndarray:
    w = np.asarray(matrix, dtype=float)
    return w if w.ndim == 2 and w.size else as_matrix(matrix)


def _score_stack(w: np.ndarray) -> list[SampleScore]:
    """Paper metrics of same-shape matrices (B, n, m), n > 0."""
    b, n, m = w.shape
    cols = assign_stack(w)
    bi, ii = np.nonzero(cols >= 0)
    jj = cols[bi, ii]
    by_col = np.zeros((b, m))
    matched = np.zeros((b, m), dtype=bool)
    by_col[bi, jj] = w[bi, ii, jj]
    matched[bi, jj] = True
    total = by_col.sum(axis=1)
    recall = total / n
    precision = total / m if m else np.zeros(b)
    ap = ((np.cumsum(by_col, axis=1) / np.arange(1, m + 1)) * matched).sum(axis=1) / n
    # Every sample's matches (i, j, score) as one flat list in sample order (np.nonzero walks samples, then human
    # items), cut per sample: no Python loop over a sample's items.
    matches = list(zip(ii.tolist(), jj.tolist(), w[bi, ii, jj].tolist()))
    ends = np.cumsum(np.bincount(bi, minlength=b)).tolist()
    starts = [0, *ends[:-1]]
    return [SampleScore(p, r, f1_of(p, r), a, matches[lo:hi])
            for p, r, a, lo, hi in zip(precision.tolist(), recall.tolist(), ap.tolist(), starts, ends)]
