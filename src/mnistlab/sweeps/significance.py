"""Is the difference between two configurations real? The difference in a metric with its 95% confidence
interval and p-value, by the test the runs allow (compare.py A B):

- paired t-test over runs that pair up (the same seed and fold on both sides): the spread of the differences;
- Welch's t-test otherwise (two groups of at least two runs each);
- McNemar's exact test for two single runs: the test images one classifies right and the other wrong.

Then a sentence: which is better, or that the data cannot tell."""

import math
from dataclasses import dataclass
from typing import Sequence

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
    from scipy import stats

    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired test needs at least two pairs")
    differences = [x - y for x, y in zip(a, b)]
    mean = math.fsum(differences) / len(differences)
    if all(d == differences[0] for d in differences):  # no spread: t is undefined, yet the data speak plainly
        return Difference(mean, mean, mean, 1.0 if mean == 0 else 0.0, f"{len(a)} pairs, all differences equal")
    result = stats.ttest_rel(a, b)
    interval = result.confidence_interval(LEVEL)
    return Difference(
        mean, float(interval.low), float(interval.high), float(result.pvalue), f"paired t-test over {len(a)} pairs"
    )


def welch(a: Sequence[float], b: Sequence[float]) -> Difference:
    """Welch's t-test (unequal variances); the interval from the t distribution with Welch-Satterthwaite's degrees
    of freedom."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least two values on each side")
    mean = math.fsum(a) / len(a) - math.fsum(b) / len(b)
    if len(set(a)) == 1 and len(set(b)) == 1:  # no spread on either side
        return Difference(mean, mean, mean, 1.0 if mean == 0 else 0.0, f"{len(a)} and {len(b)} runs without spread")
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(LEVEL)
    return Difference(
        mean,
        float(interval.low),
        float(interval.high),
        float(result.pvalue),
        f"Welch's t-test, {len(a)} against {len(b)} runs",
    )


def mcnemar(only_a: int, only_b: int, n: int) -> Difference:
    """Two classifiers on the same n images: only_a are right by A alone, only_b by B alone. The p-value is
    McNemar's exact test (the binomial test of only_a out of only_a + only_b at 1/2); the interval is the Wald
    interval of the difference of two paired proportions (Agresti, Categorical Data Analysis)."""
    from scipy import stats

    if not 0 <= only_a + only_b <= n or min(only_a, only_b) < 0 or n < 1:
        raise ValueError(f"{only_a} and {only_b} disagreements among {n} images")
    estimate = (only_a - only_b) / n
    spread = math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    z = stats.norm.ppf(0.5 + LEVEL / 2)
    discordant = only_a + only_b
    p = stats.binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
    test = f"McNemar's exact test on {n} test images: {only_a} right by A only, {only_b} by B only"
    return Difference(estimate, estimate - float(z) * spread, estimate + float(z) * spread, float(p), test)


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
