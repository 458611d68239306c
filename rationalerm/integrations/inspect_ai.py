"""Rationale consistency as an Inspect AI scorer: ``rationale_consistency()``.

The model under evaluation writes a checklist of reasons (most important first) and a preference label, in the
format the RL reward reads (``reward.parse``: ``<checklist>`` / ``<label>`` blocks, or JSON); the sample's
``target`` is its ground truth as the reward reads it (``reward.reference``): ``{"checklist": [...human items...],
"label": 1}`` as JSON, or the label alone with the checklist in the sample's ``metadata``. The judge, the
matching (one-to-one, tie rule) and the metrics are the reward's (``RewardScorer``, built from a reward YAML), so
an evaluation and an RL run score alike; samples scored concurrently reach the judge as one batch.

Each ``Score`` has ``value={"rc", "precision", "ap"}`` (RC: the share of human items matched), the matched
(human item, model item, score) pairs and the label's correctness in ``metadata``. An output that cannot be read,
or an empty checklist, scores 0 (``reason="invalid_response_format"``); a judge that could not score a pair
leaves the sample unscored (``Score.unscored``, ``reason="grader_failed"``: no number, and no part of the
metrics). A malformed target is an error: a dataset bug.
"""

from __future__ import annotations

from typing import Any

try:
    from inspect_ai.scorer import Score, Scorer, Target, mean, scorer, stderr
    from inspect_ai.solver import TaskState
except ModuleNotFoundError:
    from rationalerm._util.optional import require

    require("inspect_ai", "inspect", "the Inspect AI scorer (rationalerm.integrations.inspect_ai)")
    raise

from rationalerm.reward.entry import get_scorer
from rationalerm.reward.reference import Reference, reference
from rationalerm.reward.scorer import RewardResult

KEYS = ("rc", "precision", "ap")


def _metadata(r: RewardResult, ref: Reference) -> dict[str, Any]:
    """What a reader of the log needs to see why: the matches, the checklist read, the label and the reward."""
    pairs = [{"human": ref.checklist[i], "model": r.checklist[j], "score": round(s, 6)} for i, j, s in r.pairs]
    return {"pairs": pairs, "checklist": list(r.checklist), "label": r.label, "human_label": ref.label,
            "correct": r.correct, "reward": r.score}


def to_score(r: RewardResult, ref: Reference) -> Score:
    """The Inspect ``Score`` of one output's ``RewardResult`` (rules: module docstring)."""
    meta = _metadata(r, ref)
    if r.judge_failed:
        return Score.unscored(reason="grader_failed", explanation=r.reason, metadata=meta)
    value = {"rc": r.recall, "precision": r.precision, "ap": r.ap}
    if not r.parsed or not r.checklist:  # the model's failure: it scores 0
        return Score(value=value, reason="invalid_response_format", explanation=r.reason or "empty checklist",
                     metadata=meta)
    if r.reason:  # parsed but not scored by rule
        return Score.unscored(reason="scoring_failed", explanation=r.reason, metadata=meta)
    explanation = f"{len(r.pairs)} of {len(ref.checklist)} human items matched by {len(r.checklist)} items"
    return Score(value=value, answer=None if r.label is None else str(r.label), explanation=explanation,
                 metadata=meta)


@scorer(metrics={key: [mean(), stderr()] for key in KEYS})
def rationale_consistency(config: str | None = None) -> Scorer:
    """Rationale consistency (RC), precision and AP of the model's checklist against the human one in the target.

    ``config``: a reward YAML (``judge:``, ``scoring:``, ``reward:``), as the RL reward takes; default the
    embedded embedding judge. The scorer is the process's one for that YAML (``reward.entry.get_scorer``): the
    judge loads once, and its pair memo is shared with every eval of the process.
    """
    rm = get_scorer(config)

    async def score(state: TaskState, target: Target) -> Score:
        ref = reference(target.text, state.metadata)
        try:
            (r,) = await rm.score_async([state.output.completion], [ref])
        except Exception as e:  # the judge itself broke (e.g. its server is gone): no judgement, no number
            return Score.unscored(reason="grader_failed", explanation=f"judge error: {type(e).__name__}: {e}")
        return to_score(r, ref)

    return score


__all__ = ["rationale_consistency", "to_score"]
