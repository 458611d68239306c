"""The ground truth of one sample, as RL datasets carry it: the human checklist and the human label.

A malformed ground truth is a ``RewardDataError`` (a ``RationaleRMError`` and a ``ValueError``): a data bug to
fix in the dataset, not a policy error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rationalerm.errors import RewardDataError
from rationalerm.scoring.outcome import Label, Unparseable, normalize_label


@dataclass(frozen=True)
class Reference:
    """The human side of one sample: its checklist and its label (normalised)."""

    checklist: tuple[str, ...]
    label: Label


def _as_items(value: Any) -> tuple[str, ...] | None:
    if value is None or isinstance(value, (str, bytes, Mapping)):
        return None
    try:
        items = list(value)  # a list, a tuple, or a numpy array read from Parquet
    except TypeError:
        return None
    if not all(isinstance(x, str) for x in items):
        return None
    return tuple(x.strip() for x in items if x.strip())


def _pick(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _decoded(ground_truth: Any) -> Any:
    """A ground truth given as a JSON object string, decoded; anything else as it is."""
    if not (isinstance(ground_truth, str) and ground_truth.strip().startswith("{")):
        return ground_truth
    try:
        return json.loads(ground_truth)
    except json.JSONDecodeError as e:
        raise RewardDataError(f"ground_truth is not valid JSON ({e.msg}): {ground_truth[:200]!r}") from None


def _label(raw: Any, ground_truth: Any) -> Label:
    try:
        label = normalize_label(raw)
    except Unparseable:
        raise RewardDataError(f"human label {raw!r} is not response 1, response 2 or a tie") from None
    if label is None:
        raise RewardDataError(f"no human label ('label' in ground_truth or extra_info): {str(ground_truth)[:200]!r}")
    return label


def reference(ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> Reference:
    """The human checklist and label from verl's ``ground_truth`` (and ``extra_info``).

    ``ground_truth`` is ``{"checklist" | "human-checklist": [...], "label": ...}``, that object as a JSON string,
    or just the label with the checklist in ``extra_info`` (``checklist`` or ``human-checklist``).
    """
    gt = _decoded(ground_truth)
    extra = extra_info if isinstance(extra_info, Mapping) else {}
    if isinstance(gt, Mapping):
        items_raw, label_raw = _pick(gt, "human-checklist", "checklist"), _pick(gt, "label", "human-label")
    else:
        items_raw, label_raw = None, gt
    if items_raw is None:
        items_raw = _pick(extra, "human-checklist", "checklist")
    if label_raw is None:
        label_raw = _pick(extra, "label", "human-label")
    items = _as_items(items_raw)
    if not items:
        raise RewardDataError(f"no human checklist (a non-empty list of strings under 'checklist' or "
                              f"'human-checklist' in ground_truth or extra_info): {str(ground_truth)[:200]!r}")
    return Reference(items, _label(label_raw, ground_truth))


__all__ = ["Reference", "RewardDataError", "reference"]
