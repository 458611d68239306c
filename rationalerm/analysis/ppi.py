"""Prediction-powered inference (PPI++, Angelopoulos et al., arXiv 2311.01453) for the mean of a per-unit metric.

The matcher's metric ``f`` is known on all N units of a run; people's (or a strong judge's) metric ``y`` on a
uniform random audited subset of n of them. The estimate

    theta = lam * mean_N(f) + mean_n(y - lam * f),   lam = Cov_n(y, f) / ((1 + n/N) Var_{N+n}(f)), clipped to [0, 1]

is unbiased whatever the matcher's bias, and its CLT interval is
``theta +- z * sqrt(lam^2 Var_N(f) / N + fpc * Var_n(y - lam f) / n)``. Moments follow the reference
implementation ``ppi_py.ppi_mean_ci`` exactly (covariance and standard deviations with ddof 0, the pooled
variance of f with ddof 1), so the two agree to rounding (a dev-only test checks it). ``fpc`` (finite population
correction, ``1 - n/N``) applies when the target is the corpus itself and the audit is a large share of it:
sampling n of N units without replacement leaves less to estimate. lam = 0 is the audited units alone, lam = 1
plain PPI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


@dataclass(frozen=True)
class PPIEstimate:
    mean: float
    ci: tuple[float, float]
    lam: float
    se: float


def ppi_lambda(y: np.ndarray, f_audited: np.ndarray, f_all: np.ndarray) -> float:
    """The power-tuning weight that minimises the estimate's variance, clipped to [0, 1] (0 if f is constant)."""
    n, big_n = len(y), len(f_all)
    cov = float(np.mean((y - y.mean()) * (f_audited - f_audited.mean())))
    var = float(np.var(np.concatenate([f_audited, f_all]), ddof=1))
    if var <= 0.0:
        return 0.0
    return float(np.clip(cov / ((1.0 + n / big_n) * var), 0.0, 1.0))


def ppi_mean(y: np.ndarray, f_audited: np.ndarray, f_all: np.ndarray, confidence: float = 0.95,
             lam: float | None = None, fpc: bool = False) -> PPIEstimate:
    """The PPI++ estimate of mean(y) over the population f_all stands for, with its CLT interval."""
    y, fa, fn = (np.asarray(a, dtype=float) for a in (y, f_audited, f_all))
    n, big_n = len(y), len(fn)
    lam = ppi_lambda(y, fa, fn) if lam is None else lam
    mean = float(lam * fn.mean() + np.mean(y - lam * fa))
    shrink = max(0.0, 1.0 - n / big_n) if fpc else 1.0
    se = float(np.sqrt((lam * fn).var() / big_n + shrink * (y - lam * fa).var() / n))
    z = float(norm.ppf(0.5 + confidence / 2.0))
    return PPIEstimate(mean, (mean - z * se, mean + z * se), lam, se)


def audits_needed(y: np.ndarray, f_audited: np.ndarray, f_all: np.ndarray, half_width: float,
                  confidence: float = 0.95) -> int | None:
    """How many audited units bring the interval's half-width to ``half_width``, judged from a pilot audit
    (its lam and variances); None when no audit size can (the matcher's own term already exceeds it)."""
    y, fa, fn = (np.asarray(a, dtype=float) for a in (y, f_audited, f_all))
    lam = ppi_lambda(y, fa, fn)
    z = float(norm.ppf(0.5 + confidence / 2.0))
    room = (half_width / z) ** 2 - (lam * fn).var() / len(fn)
    if room <= 0.0:
        return None
    return int(np.ceil((y - lam * fa).var() / room))
