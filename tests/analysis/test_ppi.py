"""The PPI++ estimator: equal to the reference implementation (ppi_py) on the same numbers, and valid by
simulation with known truth (coverage of the corrected interval, where the matcher's raw mean is biased)."""

from __future__ import annotations

import numpy as np
import pytest

from rationalerm.analysis.ppi import audits_needed, ppi_mean


def _corpus(rng: np.random.Generator, n_units: int, bias: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit gold metric y in [0, 1] and a matcher's f: shrunk toward 0 by ``bias`` plus noise."""
    y = rng.beta(2.0, 2.5, n_units)
    f = np.clip((1.0 - bias) * y + rng.normal(0.0, noise, n_units), 0.0, 1.0)
    return y, f


@pytest.mark.parametrize("seed", range(5))
def test_equals_ppi_py_on_the_same_numbers(seed: int) -> None:
    ppi_py = pytest.importorskip("ppi_py", reason="ppi-python (dev extra) is the reference implementation")
    rng = np.random.default_rng(seed)
    y_all, f = _corpus(rng, 3000, bias=0.3, noise=0.1)
    idx = rng.choice(len(f), 120 + 40 * seed, replace=False)
    est = ppi_mean(y_all[idx], f[idx], f, confidence=0.9)
    lo, hi = ppi_py.ppi_mean_ci(y_all[idx], f[idx], f, alpha=0.1)
    point = ppi_py.ppi_mean_pointestimate(y_all[idx], f[idx], f)
    assert est.mean == pytest.approx(float(np.squeeze(point)), abs=1e-12)
    assert est.ci == pytest.approx((float(np.squeeze(lo)), float(np.squeeze(hi))), abs=1e-12)
    for lam in (0.0, 1.0):  # the classical interval and plain PPI
        lo, hi = ppi_py.ppi_mean_ci(y_all[idx], f[idx], f, alpha=0.1, lam=lam)
        assert ppi_mean(y_all[idx], f[idx], f, 0.9, lam=lam).ci == pytest.approx(
            (float(np.squeeze(lo)), float(np.squeeze(hi))), abs=1e-12)


def test_coverage_by_simulation_with_a_biased_matcher() -> None:
    rng = np.random.default_rng(20261202)
    y_all, f = _corpus(rng, 5000, bias=0.35, noise=0.12)
    truth = float(y_all.mean())
    covered_ppi = covered_raw = 0
    audits = 1000
    for _ in range(audits):
        idx = rng.choice(len(f), 200, replace=False)
        est = ppi_mean(y_all[idx], f[idx], f, 0.95, fpc=True)
        covered_ppi += est.ci[0] <= truth <= est.ci[1]
        half = 1.96 * f.std() / np.sqrt(len(f))
        covered_raw += f.mean() - half <= truth <= f.mean() + half
    assert 0.93 * audits <= covered_ppi <= 0.97 * audits, covered_ppi
    assert covered_raw < 0.05 * audits  # the matcher's own mean is biased: its interval misses the truth


def test_a_good_matcher_narrows_the_interval_and_a_useless_one_costs_nothing() -> None:
    rng = np.random.default_rng(7)
    y_all, good = _corpus(rng, 5000, bias=0.1, noise=0.03)
    useless = rng.uniform(0.0, 1.0, len(y_all))
    idx = rng.choice(len(y_all), 200, replace=False)
    gold_only = ppi_mean(y_all[idx], good[idx], good, lam=0.0)
    corrected = ppi_mean(y_all[idx], good[idx], good)
    assert corrected.ci[1] - corrected.ci[0] < 0.5 * (gold_only.ci[1] - gold_only.ci[0])
    noisy = ppi_mean(y_all[idx], useless[idx], useless)
    assert noisy.lam < 0.2  # power tuning turns a matcher that carries no information down toward 0
    assert noisy.ci[1] - noisy.ci[0] <= 1.02 * (gold_only.ci[1] - gold_only.ci[0])


def test_planning_from_a_pilot_reaches_the_target_width() -> None:
    rng = np.random.default_rng(3)
    y_all, f = _corpus(rng, 20000, bias=0.2, noise=0.08)
    pilot = rng.choice(len(f), 100, replace=False)
    need = audits_needed(y_all[pilot], f[pilot], f, half_width=0.01)
    assert need is not None and need > 100
    idx = rng.choice(len(f), need, replace=False)
    est = ppi_mean(y_all[idx], f[idx], f)
    assert (est.ci[1] - est.ci[0]) / 2 == pytest.approx(0.01, rel=0.2)
    assert audits_needed(y_all[pilot], f[pilot], f[:50], half_width=1e-4) is None  # f's own term is too wide
