"""The statistics of compare.py A B against published worked examples, each expected value computed here from
its textbook formula or quoted from the published output, not from mnistlab's."""

import math
import statistics
import subprocess
import sys

import pytest

from mnistlab.sweeps.distributions import binomial_half_two_sided_p, t_quantile, t_two_sided_p
from mnistlab.sweeps.significance import mcnemar, numbers, paired, verdict, welch

# Student's sleep data (Cushny and Peebles 1905; R's `sleep` data set): extra hours of sleep of ten patients
# under two drugs. R's t.test(extra ~ group, data = sleep, paired = TRUE) prints t = -4.0621, df = 9,
# p-value = 0.002833, 95 percent CI -2.4598858 -0.7001142; without paired = TRUE (Welch): t = -1.8608,
# df = 17.776, p-value = 0.07939, 95 percent CI -3.3654832 0.2054832.
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
T_975_DF9 = 2.262157  # Student's t table: the 97.5% point with 9 degrees of freedom

# Agresti, An Introduction to Categorical Data Analysis (2nd ed., section 10.1): 1600 people's approval of the
# prime minister in two surveys: 794 approve both times, 150 only the first, 86 only the second, 570 neither.
# Difference of the proportions 0.0400, standard error 0.0095, 95% CI (0.021, 0.059).
BOTH, FIRST_ONLY, SECOND_ONLY, NEITHER = 794, 150, 86, 570


def test_paired_t_test_on_students_sleep_data():
    result = paired(DRUG_1, DRUG_2)
    differences = [a - b for a, b in zip(DRUG_1, DRUG_2)]
    mean, spread = statistics.fmean(differences), statistics.stdev(differences) / math.sqrt(len(differences))
    assert mean / spread == pytest.approx(-4.0621, abs=1e-4)  # R's t
    assert result.estimate == pytest.approx(mean) == pytest.approx(-1.58)
    assert result.low == pytest.approx(mean - T_975_DF9 * spread, abs=1e-6)
    assert result.high == pytest.approx(mean + T_975_DF9 * spread, abs=1e-6)
    assert (result.low, result.high) == pytest.approx((-2.4598858, -0.7001142), abs=1e-6)  # R's
    assert result.p == pytest.approx(0.002833, abs=1e-6)  # R's


def test_welch_t_test_on_students_sleep_data():
    result = welch(DRUG_1, DRUG_2)
    var_1, var_2 = (statistics.variance(x) / len(x) for x in (DRUG_1, DRUG_2))
    t = (statistics.fmean(DRUG_1) - statistics.fmean(DRUG_2)) / math.sqrt(var_1 + var_2)
    df = (var_1 + var_2) ** 2 / (var_1**2 / 9 + var_2**2 / 9)  # Welch-Satterthwaite
    assert (t, df) == pytest.approx((-1.8608, 17.776), abs=1e-3)  # R's
    assert result.estimate == pytest.approx(-1.58)
    assert (result.low, result.high) == pytest.approx((-3.3654832, 0.2054832), abs=1e-6)  # R's
    assert result.p == pytest.approx(0.07939, abs=1e-5)  # R's


def exact_mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar: twice the smaller binomial tail of b + c fair coin tosses, at most 1."""
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def test_mcnemar_on_agrestis_approval_ratings():
    n = BOTH + FIRST_ONLY + SECOND_ONLY + NEITHER
    result = mcnemar(FIRST_ONLY, SECOND_ONLY, n)
    assert result.estimate == pytest.approx((BOTH + FIRST_ONLY) / n - (BOTH + SECOND_ONLY) / n) == 0.04
    assert (result.low, result.high) == pytest.approx((0.021, 0.059), abs=5e-4)  # Agresti's
    spread = math.sqrt((FIRST_ONLY + SECOND_ONLY) - (FIRST_ONLY - SECOND_ONLY) ** 2 / n) / n
    assert spread == pytest.approx(0.0095, abs=5e-5)  # Agresti's standard error
    assert result.p == pytest.approx(exact_mcnemar_p(FIRST_ONLY, SECOND_ONLY), rel=1e-9)
    assert result.p < 1e-4  # Agresti: z = -4.17, "strong evidence"


@pytest.mark.parametrize("b, c", [(0, 0), (1, 0), (3, 5), (12, 2), (40, 41)])
def test_mcnemar_exact_p_on_small_tables(b, c):
    assert mcnemar(b, c, 10_000).p == pytest.approx(exact_mcnemar_p(b, c), rel=1e-9)


def test_the_sentence_names_the_better_side_or_says_the_data_cannot_tell():
    better = paired(DRUG_2, DRUG_1)
    assert verdict(better, "cnn", "mlp", "hours") == (
        "cnn is better than mlp on hours, by 1.5800 (95% CI 0.7001 to 2.4599; p = 0.0028 < 0.05)."
    )
    assert verdict(paired(DRUG_1, DRUG_2), "mlp", "cnn", "hours").startswith("cnn is better than mlp on hours, by")
    unsure = welch(DRUG_1, DRUG_2)
    assert verdict(unsure) == (
        "The data cannot tell A and B apart on test/acc: p = 0.079 ≥ 0.05, and the 95% CI of A − B "
        "(-3.3655 to +0.2055) includes 0."
    )
    assert numbers(unsure).startswith("A − B = -1.5800, 95% CI -3.3655 to +0.2055, p = 0.079 (Welch's t-test")


def test_runs_without_spread():
    same = paired([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert (same.estimate, same.p) == (0.0, 1.0) and "cannot tell" in verdict(same)
    with pytest.raises(ValueError):
        paired([0.9], [0.8])
    with pytest.raises(ValueError):
        welch([0.9, 0.8], [0.8])


@pytest.mark.parametrize("df", [1, 2, 3.5, 4, 9, 17.776, 30, 120, 1000])
def test_t_distribution_against_scipy(df):
    stats = pytest.importorskip("scipy.stats")  # installed with the dev extras (mlflow's), not by mnistlab
    for t in (0.0, 0.01, 0.5, 1.0, 2.262, 4.06, 10.0, 50.0):
        assert t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-9, abs=1e-300)
    for q in (0.5, 0.9, 0.975, 0.995, 0.9999):
        assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (3, 8), (40, 81), (74, 84), (10, 84), (2000, 4100)])
def test_binomial_against_scipy(k, n):
    stats = pytest.importorskip("scipy.stats")
    assert binomial_half_two_sided_p(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-9, abs=1e-300)


def test_compare_needs_no_scipy():
    """Training imports what mnistlab depends on, and torchmetrics imports scipy.signal whenever it is there
    (0.7 s of every run's start): so mnistlab does without it."""
    code = (
        "import sys; sys.modules['scipy'] = None\n"  # an import of scipy now fails
        "from mnistlab.sweeps.significance import paired, welch, mcnemar\n"
        "print(paired([1, 2, 4], [0, 2, 1]).p, welch([1, 2, 4], [0, 2, 1]).p, mcnemar(3, 9, 100).p)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3
