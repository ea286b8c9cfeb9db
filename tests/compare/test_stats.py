"""The pure-Python Student t distribution, Welch's t-test and the bootstrap against known values."""

from __future__ import annotations

import math

import pytest

from ci_checks.compare.stats import betainc, bootstrap, t_cdf, t_ppf, welch

# R's `sleep` data: t.test(extra ~ group, data = sleep) prints t = -1.8608, df = 17.776, p-value = 0.07939,
# 95 percent confidence interval -3.3654832 0.2054832.
GROUP1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
GROUP2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_matches_r_on_the_sleep_data() -> None:
    r = welch(GROUP2, GROUP1, level=0.95)  # head = group 1, base = group 2, as R's group 1 - group 2
    assert r.t == pytest.approx(-1.8608, abs=1e-4)
    assert r.df == pytest.approx(17.776, abs=1e-3)
    assert 2 * r.p_less == pytest.approx(0.07939, abs=1e-5)
    assert r.p_less + r.p_greater == pytest.approx(1.0)
    assert r.ci == pytest.approx((-3.3654832, 0.2054832), abs=1e-6)


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.3, 0.0, 0.7, 4.0])
def test_t_cdf_matches_the_closed_forms(t: float) -> None:
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    assert t_cdf(t, 1e7) == pytest.approx(0.5 * math.erfc(-t / math.sqrt(2)), abs=1e-6)  # the normal limit


@pytest.mark.parametrize(
    ("q", "df", "expected"),
    [
        pytest.param(0.975, 10, 2.228138852, id="t10"),
        pytest.param(0.95, 8, 1.859548038, id="t8"),
        pytest.param(0.995, 3, 5.840909309, id="t3"),
    ],
)
def test_t_ppf_inverts_the_cdf(q: float, df: float, expected: float) -> None:
    x = t_ppf(q, df)
    assert t_cdf(x, df) == pytest.approx(q, abs=1e-10)
    assert x == pytest.approx(expected, abs=2e-4)


def test_betainc_edges_and_symmetry() -> None:
    assert betainc(2, 3, 0) == 0 and betainc(2, 3, 1) == 1
    assert betainc(2.5, 1.5, 0.3) == pytest.approx(1 - betainc(1.5, 2.5, 0.7), abs=1e-13)
    assert betainc(1, 1, 0.42) == pytest.approx(0.42)  # uniform


def test_constant_samples_are_exact() -> None:
    r = welch([1.0, 1.0], [2.0, 2.0, 2.0])
    assert (r.p_greater, r.p_less, r.ci) == (0.0, 1.0, (1.0, 1.0))


def test_bootstrap_is_seeded_and_brackets_the_difference() -> None:
    a = bootstrap(GROUP2, GROUP1, seed=7)
    assert a == bootstrap(GROUP2, GROUP1, seed=7)
    assert a.ci[0] < a.delta < a.ci[1] and a.delta == pytest.approx(-1.58)
    with pytest.raises(ValueError):
        bootstrap([1.0], [1.0, 2.0])
