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

Cross-fitting (cross-prediction-powered inference, Zrnic & Candes, PNAS 2024) lets one audit both fit a matcher
and correct it: the audit is split into K folds, matcher k is fitted without fold k, each audited unit is
rectified by the matcher that never saw it (``f_out_of_fold``) and every unaudited unit is scored by the mean of
the K matchers (``cross_ppi_mean``, lam = 1 as in ``ppi_py.crossppi_mean_ci``).
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


def cross_ppi_mean(y: np.ndarray, f_out_of_fold: np.ndarray, f_unaudited: np.ndarray, confidence: float = 0.95,
                   corpus: bool = False) -> PPIEstimate:
    """The cross-fitted estimate of mean(y): ``y`` and ``f_out_of_fold`` (n,) on the audited units, each by the
    matcher fitted without that unit's fold (folds of equal size, up to one unit); ``f_unaudited`` (M, K) the K
    matchers on the units nobody audited.

    ``corpus=False`` targets the population the units are drawn from, exactly as ``ppi_py.crossppi_mean_ci``
    (``mean(f_bar) + mean(y - f)``, se ``sqrt(Var(f_bar) / M + Var(y - f) / n)``). ``corpus=True`` targets the
    mean over these N = n + M units themselves (a run's corpus, the audit a uniform draw of it): the audited units
    count with their own gold values, the rest with the corrected imputation, and the sampling error is the
    rectifier's, with the finite-population factor: se ``sqrt((M / N) Var(y - f) / n)`` (the imputation over the
    corpus's own units is no draw). Both rest on the fits being stable (Zrnic & Candes: a matcher changes little
    when its training fold does), which the interval does not account for: the simulation in
    ``tests/analysis/test_ppi.py`` checks 95% coverage with fitted lines, and ``benchmarks/estimate_argkp.py
    --cross-fit`` the coverage over audits with fine-tuned cross-encoders. A census (M = 0) is the audited mean
    exactly for the corpus, and an error for a population."""
    y, fo, fu = (np.asarray(a, dtype=float) for a in (y, f_out_of_fold, f_unaudited))
    if fu.ndim != 2 or len(y) != len(fo) or len(y) < 2:
        raise ValueError("cross_ppi_mean: y and f_out_of_fold are (n,) with n >= 2, f_unaudited is (M, K)")
    n, m = len(y), fu.shape[0]
    if m == 0:
        if not corpus:
            raise ValueError("cross_ppi_mean: no unaudited unit: the population's mean needs some (corpus=True is "
                             "the audited mean)")
        return PPIEstimate(float(y.mean()), (float(y.mean()), float(y.mean())), 1.0, 0.0)
    f_bar, rect = fu.mean(axis=1), y - fo
    z = float(norm.ppf(0.5 + confidence / 2.0))
    if corpus:
        w = m / (n + m)
        mean = float((1.0 - w) * y.mean() + w * (f_bar.mean() + rect.mean()))
        se = float(np.sqrt(w * rect.var() / n))
    else:
        mean = float(f_bar.mean() + rect.mean())
        se = float(np.sqrt(f_bar.var() / m + rect.var() / n))
    return PPIEstimate(mean, (mean - z * se, mean + z * se), 1.0, se)
