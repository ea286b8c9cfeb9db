"""Two-sample tests for repeated measurements (Welch's t-test, a seeded bootstrap), the corrections for testing
many metrics at once (Holm, Benjamini-Hochberg) and a test for one diverged seed, in pure Python.

The Student t distribution comes from the regularized incomplete beta function (a Lentz continued
fraction, as in Numerical Recipes), so comparing seeds needs neither scipy nor numpy (importing scipy.stats
alone takes longer than comparing 500 metrics); the tests check every function against scipy.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 1e-15
_TINY = 1e-300


def mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def variance(xs: Sequence[float]) -> float:
    """The unbiased sample variance (n - 1 in the denominator)."""
    m = mean(xs)
    return math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast only below the mean of the beta distribution; use symmetry above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom (df may be fractional, as in Welch's test)."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t (q in (0, 1))."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    # Start from the Cornish-Fisher expansion around the normal quantile: Newton then needs two or three steps
    # (each a t_cdf); a step that leaves the bracket found so far bisects instead.
    z = statistics.NormalDist().inv_cdf(q)
    x = z + (z**3 + z) / (4.0 * df) + (5.0 * z**5 + 16.0 * z**3 + 3.0 * z) / (96.0 * df * df)
    log_c = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    lo, hi = 0.0, math.inf
    for _ in range(200):
        err = t_cdf(x, df) - q
        if abs(err) < 1e-15:
            return x
        if err < 0:
            lo = x
        else:
            hi = x
        pdf = math.exp(log_c - (df + 1.0) / 2.0 * math.log1p(x * x / df))
        step = x - err / pdf if pdf > 0 else math.nan
        if not lo < step < hi:
            step = (lo + hi) / 2.0 if math.isfinite(hi) else 2.0 * max(x, 1.0)
        if abs(step - x) < 1e-13 * max(1.0, abs(x)):
            return step
        x = step
    return x


@dataclass(frozen=True)
class TestResult:
    """A two-sample comparison of head against base: the difference of means and its uncertainty."""

    delta: float  # mean(head) - mean(base)
    p_less: float  # one-sided p-value for "head mean < base mean"
    p_greater: float  # one-sided p-value for "head mean > base mean"
    ci: tuple[float, float]  # interval of delta at the requested level
    t: float | None = None
    df: float | None = None


def welch(base: Sequence[float], head: Sequence[float], *, level: float = 0.90) -> TestResult:
    """Welch's unequal-variance t-test of head against base; each side needs at least 2 samples."""
    if len(base) < 2 or len(head) < 2:
        raise ValueError("Welch's t-test needs at least 2 samples per side")
    delta = mean(head) - mean(base)
    vb, vh = variance(base) / len(base), variance(head) / len(head)
    se2 = vb + vh
    if se2 == 0.0:
        # Both sides are constant: the difference is exact, there is no noise to test against.
        p_less = 0.0 if delta < 0 else 1.0
        p_greater = 0.0 if delta > 0 else 1.0
        return TestResult(delta, p_less, p_greater, (delta, delta), None, None)
    se = math.sqrt(se2)
    t = delta / se
    denom = (vb * vb / (len(base) - 1) if vb else 0.0) + (vh * vh / (len(head) - 1) if vh else 0.0)
    df = se2 * se2 / denom
    half = t_ppf(0.5 + level / 2.0, df) * se
    return TestResult(delta, t_cdf(t, df), t_cdf(-t, df), (delta - half, delta + half), t, df)


def bootstrap(
    base: Sequence[float], head: Sequence[float], *, level: float = 0.90, resamples: int = 2000, seed: int = 0
) -> TestResult:
    """A percentile bootstrap interval of mean(head) - mean(base), resampling each side independently."""
    if len(base) < 2 or len(head) < 2:
        raise ValueError("the bootstrap needs at least 2 samples per side")
    rng = random.Random(seed)
    nb, nh = len(base), len(head)
    # Draw every resample in one call per side, then slice: several times faster than a call per resample.
    hs, bs = rng.choices(head, k=nh * resamples), rng.choices(base, k=nb * resamples)
    diffs = sorted(sum(hs[i * nh : (i + 1) * nh]) / nh - sum(bs[i * nb : (i + 1) * nb]) / nb for i in range(resamples))
    tail = (1.0 - level) / 2.0
    lo = diffs[min(resamples - 1, max(0, int(math.floor(tail * resamples))))]
    hi = diffs[min(resamples - 1, max(0, int(math.ceil((1.0 - tail) * resamples)) - 1))]
    # The achieved one-sided significance: the share of resampled differences on the other side of zero.
    p_less = (sum(d >= 0.0 for d in diffs) + 1) / (resamples + 1)
    p_greater = (sum(d <= 0.0 for d in diffs) + 1) / (resamples + 1)
    return TestResult(mean(head) - mean(base), p_less, p_greater, (lo, hi))


# ---------------------------------------------------------------- many metrics at once


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: rejecting those <= alpha keeps the family-wise error at alpha.

    Valid under any dependence between the tests (metrics of one run are correlated).
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    m, running = len(p_values), 0.0
    adjusted = [1.0] * m
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values: rejecting those <= q keeps the false discovery rate at q.

    When nothing changed at all, any rejection is a false one, so the chance of one is at most q as well.
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i], reverse=True)
    m, running = len(p_values), 1.0
    adjusted = [1.0] * m
    for k, i in enumerate(order):
        running = min(running, m * p_values[i] / (m - k))
        adjusted[i] = min(1.0, running)
    return adjusted


# ---------------------------------------------------------------- one diverged seed


@dataclass(frozen=True)
class Outlier:
    """The sample of one side farthest from the others, and how unlikely that is for seed noise."""

    index: int
    value: float
    center: float  # the mean of the side's other samples
    scale: float  # the seed-to-seed standard deviation, from every other sample of both sides
    p_value: float  # Bonferroni over the side's samples


def outlier(side: Sequence[float], other: Sequence[float]) -> Outlier | None:
    """The most extreme sample of side, judged against the rest (leave-one-out); None below 3 samples.

    Under normal seed noise, (x - mean(others)) / (s * sqrt(1 + 1/(n - 1))) follows Student's t, where s pools the
    spread of the side's other samples and of the other side's, each around its own mean.
    """
    n = len(side)
    if n < 3:
        return None
    other_ss, other_df = 0.0, 0
    if len(other) >= 2:
        m = mean(other)
        other_ss, other_df = math.fsum((y - m) ** 2 for y in other), len(other) - 1
    df = n - 2 + other_df
    inflate = math.sqrt(1.0 + 1.0 / (n - 1))
    best: tuple[float, int, float, float] | None = None  # t, index, center, scale
    for i, x in enumerate(side):
        rest = [v for j, v in enumerate(side) if j != i]
        center = mean(rest)
        scale = math.sqrt((math.fsum((v - center) ** 2 for v in rest) + other_ss) / df)
        gap = abs(x - center)
        if scale == 0.0:
            t = math.inf if gap > 1e-12 * max(1.0, abs(center)) else 0.0
        else:
            t = gap / (scale * inflate)
        if best is None or t > best[0]:
            best = (t, i, center, scale)
    assert best is not None
    t, i, center, scale = best
    p = 2.0 * t_cdf(-t, df) if t > 0 else 1.0  # the same df for every candidate: the largest t has the least p
    return Outlier(i, side[i], center, scale, min(1.0, n * p))
