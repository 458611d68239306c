"""The ground truth of one sample, as RL datasets carry it: the human checklist and the human label.

One rule for every entry point, single call or batch: a malformed ground truth is the trainer's data bug, not a
policy failure, so it is a ``RewardDataError`` (a ``RationaleRMError`` and a ``ValueError``) naming the row (the
dataset's ``extra_info['index']`` when the trainer passes it, else the position in the call) and the field,
raised while the call's ground truths are read, before anything is judged. Batch arguments of different lengths
are one too. A key holding None (or a pandas NaN), as a Parquet file gives for rows that spell the columns
differently, counts as absent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rationalerm.errors import RewardDataError
from rationalerm.reward.parse import clean_text
from rationalerm.scoring.outcome import Label, Unparseable, normalize_label

_ITEMS_KEYS = ("human-checklist", "checklist")
_LABEL_KEYS = ("label", "human-label")


@dataclass(frozen=True)
class Reference:
    """The human side of one sample: its checklist and its label (normalised)."""

    checklist: tuple[str, ...]
    label: Label


class _Bad(Exception):
    """What is wrong with one ground truth; ``reference`` adds the row."""


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pick(obj: Any, name: str, keys: tuple[str, ...]) -> tuple[str, Any]:
    """``(field, value)`` of the first of ``keys`` that ``obj`` holds a value under (absent: ``("", None)``)."""
    if isinstance(obj, Mapping):
        for key in keys:
            if not _absent(obj.get(key)):
                return f"{name}[{key!r}]", obj[key]
    return "", None


def _items(field: str, value: Any, ground_truth: Any) -> tuple[str, ...]:
    if not field:
        raise _Bad(f"no human checklist (a non-empty list of strings under 'checklist' or 'human-checklist' in "
                   f"ground_truth or extra_info): {str(ground_truth)[:200]!r}")
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _Bad(f"{field} is a {type(value).__name__}, not a list of strings")
    items = list(value)  # a list, a tuple, or a numpy array read from Parquet
    for k, x in enumerate(items):
        if not isinstance(x, str):
            raise _Bad(f"{field} item {k} is {type(x).__name__}, not text")
    kept = tuple(clean_text(x).strip() for x in items if x.strip())
    if not kept:
        raise _Bad(f"no human checklist: {field} is empty")
    return kept


def _label(field: str, raw: Any, ground_truth: Any) -> Label:
    try:
        label = None if _absent(raw) else normalize_label(raw)
    except Unparseable:
        raise _Bad(f"human label {raw!r} in {field} is not response 1, response 2 or a tie") from None
    if label is None:
        raise _Bad(f"no human label ('label' in ground_truth or extra_info): {str(ground_truth)[:200]!r}")
    return label


def _decoded(ground_truth: Any) -> Any:
    """A ground truth given as a JSON object string, decoded; anything else as it is."""
    if not (isinstance(ground_truth, str) and ground_truth.strip().startswith("{")):
        return ground_truth
    try:
        return json.loads(ground_truth)
    except json.JSONDecodeError as e:
        raise _Bad(f"ground_truth is not valid JSON ({e.msg}): {ground_truth[:200]!r}") from None


def _read(ground_truth: Any, extra_info: Any) -> Reference:
    gt = _decoded(ground_truth)
    items_field, items = _pick(gt, "ground_truth", _ITEMS_KEYS)
    label_field, label = _pick(gt, "ground_truth", _LABEL_KEYS) if isinstance(gt, Mapping) else ("ground_truth", gt)
    if not items_field:
        items_field, items = _pick(extra_info, "extra_info", _ITEMS_KEYS)
    if _absent(label):
        label_field, label = _pick(extra_info, "extra_info", _LABEL_KEYS)
    return Reference(_items(items_field, items, ground_truth), _label(label_field, label, ground_truth))


def _row(extra_info: Any, position: int) -> str:
    index = extra_info.get("index") if isinstance(extra_info, Mapping) else None
    return f"row {position} (position in this call)" if _absent(index) else f"row {index} (extra_info['index'])"


def reference(ground_truth: Any, extra_info: Mapping[str, Any] | None = None, *, position: int = 0) -> Reference:
    """The human checklist and label from verl's ``ground_truth`` (and ``extra_info``).

    ``ground_truth`` is ``{"checklist" | "human-checklist": [...], "label": ...}``, that object as a JSON string,
    or just the label with the checklist in ``extra_info`` (``checklist`` or ``human-checklist``). A malformed one
    is a ``RewardDataError`` naming the row (``position``: the sample's place in the call) and the field.
    """
    try:
        return _read(ground_truth, extra_info)
    except _Bad as e:
        raise RewardDataError(f"{_row(extra_info, position)}: {e}") from None


def same_lengths(call: str, **arguments: Sequence[Any] | None) -> None:
    """A batch call's per-sample arguments (None: not given) all have one entry per sample, else a clear error."""
    sizes = {name: len(arg) for name, arg in arguments.items() if arg is not None}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in sizes.items())
        raise RewardDataError(f"{call}: arguments of different lengths ({listed}); give one entry per sample")


def references(ground_truths: Sequence[Any], extra_infos: Sequence[Any] | None = None) -> list[Reference]:
    """Every sample's reference, all read before anything is judged (the first bad one raises, naming its row)."""
    extras = list(extra_infos) if extra_infos is not None else [None] * len(ground_truths)
    return [reference(g, e, position=k) for k, (g, e) in enumerate(zip(ground_truths, extras, strict=True))]


__all__ = ["Reference", "RewardDataError", "reference", "references", "same_lengths"]
