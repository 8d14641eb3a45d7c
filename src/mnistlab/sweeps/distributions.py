"""The two distributions compare.py's tests need: Student's t (p-values and quantiles) and the binomial at 1/2
(McNemar's exact test). Written out here because scipy, the usual home of both, costs every training run 0.7 s:
torchmetrics imports scipy.signal at `import lightning` whenever scipy is installed."""

import math

EPSILON = 1e-15  # the continued fraction stops when a term changes its value by less than this
TINY = 1e-300  # Lentz's guard against dividing by zero


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, by its continued fraction (Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # where the fraction converges fast; else by symmetry
        return front * _beta_fraction(x, a, b) / a
    return 1.0 - front * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > TINY else TINY)
    value = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > TINY else TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > TINY else TINY
            value *= c * d
        if abs(c * d - 1.0) < EPSILON:
            break
    return value


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / (df + t * t), df / 2.0, 0.5)


def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q, for 1/2 <= q < 1, by bisection on the two-sided p-value."""
    if not 0.5 <= q < 1.0:
        raise ValueError(f"quantile {q} outside [0.5, 1)")
    target = 2.0 * (1.0 - q)
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > target:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        low, high = (middle, high) if t_two_sided_p(middle, df) > target else (low, middle)
    return (low + high) / 2.0


def binomial_half_two_sided_p(k: int, n: int) -> float:
    """The exact two-sided p-value of k successes in n trials at probability 1/2 (McNemar's exact test): twice the
    smaller tail, at most 1. Exact integer sums, so it holds for any n."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2 * tail / 2**n)
