"""The one number formatter (rationalerm/_util/numbers.py): undefined figures are None in JSON and '—' in text."""

from __future__ import annotations

import math

import numpy as np

from rationalerm._util.numbers import MISSING, fmt, none_if_nan, rounded


def test_fmt_prints_decimals_or_a_dash() -> None:
    assert fmt(0.5) == "0.500" and fmt(0.25, 4) == "0.2500" and fmt(1) == "1.000" and fmt(-0.0625, 2) == "-0.06"
    assert fmt(np.float64(0.125), 2) == f"{0.125:.2f}" and fmt(np.float32(0.5)) == "0.500"
    assert fmt(None) == fmt(math.nan) == fmt(np.float64("nan"), 4) == MISSING == "—"


def test_none_if_nan_and_rounded() -> None:
    assert none_if_nan(None) is None and none_if_nan(math.nan) is None
    got = none_if_nan(np.float64(0.3))
    assert got == 0.3 and type(got) is float
    assert rounded(0.123456789) == 0.123457 and rounded(0.123456789, 4) == 0.1235
    assert rounded(None) is None and rounded(math.nan, 2) is None and rounded(3) == 3.0
