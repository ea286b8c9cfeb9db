"""Two-sample tests and the population stability index, in numpy alone (scipy is only a test dependency).

The kit compares compact sketches of each side (101 quantiles of a sample, category counts), never whole columns,
so a snapshot saved on main months ago is as good a baseline as the base revision's data read today.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

EPS = 1e-4  # the share a bin empty on one side is given in PSI: a vanished category costs ~0.9 PSI, not infinity


def kolmogorov_q(lam: float) -> float:
    """P(K > lam) of the Kolmogorov distribution, the asymptotic null distribution of sqrt(n) * D."""
    if lam <= 0:
        return 1.0
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


def ks_p_value(d: float, n1: int, n2: int) -> float:
    """Two-sided p-value of the two-sample KS statistic d (the asymptotic form with Stephens' small-n correction)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    en = math.sqrt(n1 * n2 / (n1 + n2))
    return kolmogorov_q((en + 0.12 + 0.11 / en) * d)


def ks_2samp(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The KS statistic and p-value of two samples (the exact D; the asymptotic p-value)."""
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    grid = np.concatenate([x, y])
    d = float(np.max(np.abs(np.searchsorted(x, grid, "right") / len(x) - np.searchsorted(y, grid, "right") / len(y))))
    return d, ks_p_value(d, len(x), len(y))


def sketch_cdf(quantiles: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The CDF that evenly spaced quantiles (min, ..., max) describe, at the points `at` (linear between them)."""
    q = np.asarray(quantiles, dtype=float)
    probs = np.linspace(0.0, 1.0, len(q))
    out = np.interp(at, q, probs, left=0.0, right=1.0)
    # Ties (a value held by many rows): the CDF at that value counts all of them, as a sample's CDF would.
    upper = (np.searchsorted(q, at, "right") - 1) / (len(q) - 1)
    tied = np.searchsorted(q, at, "right") - np.searchsorted(q, at, "left") > 1
    return np.where(tied, np.clip(upper, 0.0, 1.0), out)


def ks_sketch(base_q: Sequence[float], head_q: Sequence[float], n1: int, n2: int) -> tuple[float, float]:
    """The KS statistic between two quantile sketches and its p-value for n1 and n2 sampled values."""
    b, h = np.asarray(base_q, dtype=float), np.asarray(head_q, dtype=float)
    grid = np.unique(np.concatenate([b, h]))
    d = float(np.max(np.abs(sketch_cdf(b, grid) - sketch_cdf(h, grid)))) if len(grid) else 0.0
    return d, ks_p_value(d, n1, n2)


def psi_numeric(base_q: Sequence[float], head_q: Sequence[float], bins: int = 10) -> float:
    """PSI of the head against the base over the base's deciles (the usual 10 bins, fewer where values tie)."""
    b, h = np.asarray(base_q, dtype=float), np.asarray(head_q, dtype=float)
    step = (len(b) - 1) // bins
    inner = np.unique(b[step : len(b) - 1 : step]) if step > 0 else np.unique(b[1:-1])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    return psi(_shares(b, edges), _shares(h, edges))


def _shares(q: np.ndarray, edges: np.ndarray) -> np.ndarray:
    cdf = np.concatenate([[0.0], sketch_cdf(q, edges[1:-1]), [1.0]])
    return np.clip(np.diff(cdf), 0.0, 1.0)


def psi(base: Sequence[float] | np.ndarray, head: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins (0: same; above 0.2: a real shift)."""
    p = np.maximum(np.asarray(base, dtype=float), EPS)
    q = np.maximum(np.asarray(head, dtype=float), EPS)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with df degrees of freedom."""
    if df <= 0:
        return 1.0
    return _gamma_q(df / 2.0, x / 2.0)


def chi2_counts(base: Mapping[str, float], head: Mapping[str, float]) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of two count tables (categories: their union): statistic, p-value, df."""
    keys = sorted(set(base) | set(head))
    table = np.array([[float(base.get(k, 0)) for k in keys], [float(head.get(k, 0)) for k in keys]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    df = table.shape[1] - 1
    return stat, chi2_sf(stat, df), df


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value that two rates k1/n1 and k2/n2 are the same (pooled z-test)."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = abs(k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(z / math.sqrt(2.0))
