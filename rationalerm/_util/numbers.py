"""Numbers for people and for JSON, in one place: an undefined figure (None, or NaN from numpy/scipy) is JSON
``null`` and prints as an em dash, so a table never shows ``nan`` beside one that shows ``—``."""

from __future__ import annotations

import math

MISSING = "—"
"""How an undefined figure prints (terminal tables, the HTML report, the model card)."""


def none_if_nan(x: float | None) -> float | None:
    """``x`` as a plain float, or None when it is None or NaN (a statistic that is not defined)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def rounded(x: float | None, digits: int = 6) -> float | None:
    """``x`` rounded to ``digits`` places for compact JSON, None when undefined."""
    got = none_if_nan(x)
    return None if got is None else round(got, digits)


def fmt(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, or ``—`` when it is None or NaN."""
    got = none_if_nan(x)
    return MISSING if got is None else f"{got:.{digits}f}"
