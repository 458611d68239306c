"""Human-labelled data sets used to measure matcher quality (see benchmarks/quality.py)."""

from rationalerm.datasets.argkp import (
    ArgKP,
    ArgKPError,
    MatchTask,
    PairRecord,
    load_argkp,
)

__all__ = ["ArgKP", "ArgKPError", "MatchTask", "PairRecord", "load_argkp"]
