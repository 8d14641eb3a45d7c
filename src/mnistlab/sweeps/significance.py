"""Is the difference between two configurations real? The difference in a metric with its 95% confidence
interval and p-value, by the test the runs allow (compare.py A B):

- paired t-test over runs that pair up (the same seed and fold on both sides): the spread of the differences;
- Welch's t-test otherwise (two groups of at least two runs each);
- McNemar's exact test for two single runs: the test images one classifies right and the other wrong.

Then a sentence: which is better, or that the data cannot tell."""

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from mnistlab.sweeps.distributions import binomial_half_two_sided_p, t_quantile, t_two_sided_p

LEVEL = 0.95  # of the confidence intervals; a difference is called real when p < 1 - LEVEL


@dataclass
class Difference:
    estimate: float  # A minus B
    low: float  # the confidence interval's bounds
    high: float
    p: float  # two-sided
    test: str  # in words, with what it was computed over


def paired(a: Sequence[float], b: Sequence[float]) -> Difference:
    """Paired t-test of a[i] - b[i]; the interval from the t distribution with n - 1 degrees of freedom."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired test needs at least two pairs")
    differences = [x - y for x, y in zip(a, b)]
    mean = math.fsum(differences) / len(differences)
    if all(d == differences[0] for d in differences):  # no spread: t is undefined, yet the data speak plainly
        return Difference(mean, mean, mean, 1.0 if mean == 0 else 0.0, f"{len(a)} pairs, all differences equal")
    spread = statistics.stdev(differences) / math.sqrt(len(differences))  # the mean's standard error
    return t_difference(mean, spread, len(differences) - 1, f"paired t-test over {len(a)} pairs")


def welch(a: Sequence[float], b: Sequence[float]) -> Difference:
    """Welch's t-test (unequal variances); the interval from the t distribution with Welch-Satterthwaite's degrees
    of freedom."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least two values on each side")
    mean = math.fsum(a) / len(a) - math.fsum(b) / len(b)
    if len(set(a)) == 1 and len(set(b)) == 1:  # no spread on either side
        return Difference(mean, mean, mean, 1.0 if mean == 0 else 0.0, f"{len(a)} and {len(b)} runs without spread")
    share_a, share_b = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (share_a + share_b) ** 2 / (share_a**2 / (len(a) - 1) + share_b**2 / (len(b) - 1))  # Welch-Satterthwaite
    return t_difference(mean, math.sqrt(share_a + share_b), df, f"Welch's t-test, {len(a)} against {len(b)} runs")


def t_difference(mean: float, spread: float, df: float, test: str) -> Difference:
    """The t-test of mean / spread with df degrees of freedom, and its interval."""
    half_width = t_quantile(0.5 + LEVEL / 2, df) * spread
    return Difference(mean, mean - half_width, mean + half_width, t_two_sided_p(mean / spread, df), test)


def mcnemar(only_a: int, only_b: int, n: int) -> Difference:
    """Two classifiers on the same n images: only_a are right by A alone, only_b by B alone. The p-value is
    McNemar's exact test (the binomial test of only_a out of only_a + only_b at 1/2); the interval is the Wald
    interval of the difference of two paired proportions (Agresti, Categorical Data Analysis)."""
    if not 0 <= only_a + only_b <= n or min(only_a, only_b) < 0 or n < 1:
        raise ValueError(f"{only_a} and {only_b} disagreements among {n} images")
    estimate = (only_a - only_b) / n
    spread = math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    z = statistics.NormalDist().inv_cdf(0.5 + LEVEL / 2)
    p = binomial_half_two_sided_p(only_a, only_a + only_b)
    test = f"McNemar's exact test on {n} test images: {only_a} right by A only, {only_b} by B only"
    return Difference(estimate, estimate - z * spread, estimate + z * spread, p, test)


def numbers(difference: Difference, a: str = "A", b: str = "B") -> str:
    """'A − B = +0.0100, 95% CI +0.0050 to +0.0150, p = 0.0012 (the test)'."""
    return (
        f"{a} − {b} = {difference.estimate:+.4f}, {round(100 * LEVEL)}% CI {difference.low:+.4f} to "
        f"{difference.high:+.4f}, p = {difference.p:.2g} ({difference.test})"
    )


def verdict(difference: Difference, a: str = "A", b: str = "B", metric: str = "test/acc") -> str:
    """One sentence: which is better, or that the data cannot tell."""
    percent, alpha = round(100 * LEVEL), 1 - LEVEL
    if difference.p < alpha and difference.estimate != 0:
        better, worse = (a, b) if difference.estimate > 0 else (b, a)
        low, high = (difference.low, difference.high) if better == a else (-difference.high, -difference.low)
        return (
            f"{better} is better than {worse} on {metric}, by {abs(difference.estimate):.4f} "
            f"({percent}% CI {low:.4f} to {high:.4f}; p = {difference.p:.2g} < {alpha:.2g})."
        )
    return (
        f"The data cannot tell {a} and {b} apart on {metric}: p = {difference.p:.2g} ≥ {alpha:.2g}, and the "
        f"{percent}% CI of {a} − {b} ({difference.low:+.4f} to {difference.high:+.4f}) includes 0."
    )
