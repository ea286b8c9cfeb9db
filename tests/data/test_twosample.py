"""The drift tests' pure-numpy statistics against scipy's (scipy is a test dependency only)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ci_checks.data import twosample


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.2, 1.0])
@pytest.mark.parametrize("n", [50, 400, 3000])
def test_ks_matches_scipy(n, shift):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(shift, size=n + 17)
    d, p = twosample.ks_2samp(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, abs=0.02)


def test_ks_of_quantile_sketches_is_close_to_the_samples_own():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20_000), rng.normal(0.1, size=20_000)
    q = np.linspace(0, 1, 101)
    d, _ = twosample.ks_sketch(np.quantile(a, q), np.quantile(b, q), len(a), len(b))
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic, abs=0.01)


@pytest.mark.parametrize("df", [1, 2, 5, 30])
@pytest.mark.parametrize("x", [0.01, 1.0, 4.0, 25.0, 120.0])
def test_chi2_sf_matches_scipy(x, df):
    assert twosample.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-6, abs=1e-12)


def test_chi_square_of_two_count_tables_matches_scipy():
    base, head = {"a": 500, "b": 300, "c": 200}, {"a": 430, "b": 330, "c": 220, "d": 20}
    stat, p, df = twosample.chi2_counts(base, head)
    keys = sorted(set(base) | set(head))
    ref = stats.chi2_contingency([[base.get(k, 0) for k in keys], [head.get(k, 0) for k in keys]], correction=False)
    assert (stat, df) == (pytest.approx(ref.statistic), ref.dof)
    assert p == pytest.approx(ref.pvalue, rel=1e-6)


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    q = np.linspace(0, 1, 101)
    same = twosample.psi_numeric(np.quantile(rng.normal(size=5000), q), np.quantile(rng.normal(size=5000), q))
    moved = twosample.psi_numeric(np.quantile(rng.normal(size=5000), q), np.quantile(rng.normal(1, size=5000), q))
    assert same < 0.02 < 0.2 < moved
    assert twosample.psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_two_proportions_matches_a_z_test():
    p = twosample.two_proportions(10, 1000, 40, 1000)
    pooled = 50 / 2000
    z = (0.04 - 0.01) / np.sqrt(pooled * (1 - pooled) * 2 / 1000)
    assert p == pytest.approx(2 * stats.norm.sf(z))
