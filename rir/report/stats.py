"""Statistics over seeds: Student's t quantile and the 95 % confidence interval of a mean.

scipy is not a dependency, so the t distribution is computed here: its CDF from the regularized incomplete
beta function (continued fraction, Lentz's method; Numerical Recipes 6.4), its quantile by bisection. The
tests check the quantile against published table values (12.706 for 1 degree of freedom, 1.960 in the limit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONFIDENCE = 0.95  # the interval the report shows and the verdict rule uses


def _beta_cf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for num in (even, odd):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The continued fraction converges fast only for x < (a+1)/(a+b+2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, for 0 < p < 1 and df > 0 (bisection to 1e-12)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float | int | None]:
    """n, mean, sample std (ddof 1), min, max and the two-sided t interval of the mean.

    With n = 1 there is no spread to estimate: std, half_width and the interval are None.
    """
    xs = [float(v) for v in values]
    n = len(xs)
    out: dict[str, float | int | None] = {
        "n": n, "mean": None, "std": None, "min": None, "max": None,
        "ci_low": None, "ci_high": None, "half_width": None,
    }
    if n == 0:
        return out
    mean = sum(xs) / n
    out.update(mean=mean, min=min(xs), max=max(xs))
    if n >= 2:
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
        half = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
        out.update(std=std, half_width=half, ci_low=mean - half, ci_high=mean + half)
    return out
