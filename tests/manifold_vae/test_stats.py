"""The exact trend test, the verdict rule over pairs and its false-positive bound."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from manifold_vae.stats import (
    ALPHA,
    false_positive_bound,
    jonckheere_null,
    jonckheere_test,
    mean_std,
    trend,
    verdict,
    votes_needed,
)

#: Failure rate of each seeded simulation's threshold (an upper binomial tail).
FAILURE_RATE = 1e-6


def _binomial_threshold(n: int, p: float, rate: float = FAILURE_RATE) -> int:
    """The smallest k with P(Bin(n, p) > k) <= rate."""
    tail = 1.0
    for k in range(n + 1):
        log_comb = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        tail -= math.exp(log_comb + k * math.log(p) + (n - k) * math.log1p(-p))
        if tail <= rate:
            return k
    return n


def _sweeps(rng: random.Random, count: int, slope: float, reps: int = 3) -> list[list[list[float]]]:
    """``count`` sweeps of 3 levels: ``slope * level`` plus standard normal noise."""
    return [
        [[slope * level + rng.gauss(0.0, 1.0) for _ in range(reps)] for level in range(3)]
        for _ in range(count)
    ]


@pytest.mark.parametrize("sizes", [(2, 1, 2), (3, 3), (1, 2, 3), (3, 3, 3)])
def test_null_distribution_matches_brute_force_enumeration(sizes):
    labels = [level for level, n in enumerate(sizes) for _ in range(n)]
    counts: dict[int, int] = {}
    for order in set(itertools.permutations(labels)):  # order[i]: level of the i-th smallest
        j = sum(order[a] < order[b] for a, b in itertools.combinations(range(len(order)), 2))
        counts[j] = counts.get(j, 0) + 1
    null = jonckheere_null(sizes)
    assert null == tuple(counts.get(j, 0) for j in range(max(counts) + 1))
    assert sum(null) == math.factorial(len(labels)) // math.prod(map(math.factorial, sizes))


def test_trend_test_exact_values():
    increasing = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    j, p_lower, p_higher = jonckheere_test(increasing)
    assert j == 27 and p_higher == pytest.approx(1 / 1680) and p_lower == 1.0
    j, p_lower, p_higher = jonckheere_test([g[::-1] for g in increasing[::-1]])
    assert j == 0 and p_lower == pytest.approx(1 / 1680)
    # two levels: the Mann-Whitney test, P(U = 9) = 1 / C(6, 3)
    assert jonckheere_test([[0.0, 0.1, 0.2], [1.0, 1.1, 1.2]])[2] == pytest.approx(1 / 20)
    # an empty level (all its members excluded) is dropped; one level left: nothing to test
    assert jonckheere_test([[1.0, 2.0], [], [3.0, 4.0]])[2] == pytest.approx(1 / 6)
    assert trend([[1.0], [], []]) == "no significant trend"
    assert math.isnan(jonckheere_test([[1.0], [], []]).statistic)


def test_a_tie_counts_one_half():
    test = jonckheere_test([[1.0, 2.0], [2.0, 3.0]])
    assert test.statistic == 3.5
    assert (test.p_lower, test.p_higher) == (pytest.approx(5 / 6), pytest.approx(1 / 6))


def test_trend_direction_and_invalid_arguments():
    assert trend([[3.0, 3.1, 2.9], [2.0, 2.1, 1.9], [1.0, 1.1, 0.9]]) == "lower"
    assert trend([[1.0, 1.1, 0.9], [2.0, 2.1, 1.9], [3.0, 3.1, 2.9]]) == "higher"
    assert trend([[1.0, 3.0, 2.0], [2.0, 1.0, 3.0], [3.0, 2.0, 1.0]]) == "no significant trend"
    with pytest.raises(ValueError, match="groups"):
        trend([[1.0, math.nan], [2.0]])
    with pytest.raises(ValueError, match="groups"):
        trend([[1.0, 2.0]])
    with pytest.raises(ValueError, match="alpha"):
        trend([[1.0], [2.0]], alpha=0.7)


def test_overall_rule():
    assert verdict(6, 0, 6) == "supported"
    assert verdict(3, 0, 6) == "supported"
    assert verdict(2, 0, 6) == "not supported"  # the old rule's "partly supported"
    assert verdict(3, 1, 6) == "not supported"
    assert verdict(0, 3, 6) == "contradicted"
    assert verdict(1, 0, 1) == "supported"
    with pytest.raises(ValueError, match="lower, higher"):
        verdict(4, 3, 6)


def test_votes_needed_is_half_rounded_up_and_at_least_one():
    assert [votes_needed(p) for p in range(8)] == [1, 1, 1, 2, 2, 3, 3, 4]
    with pytest.raises(ValueError, match="pairs"):
        votes_needed(-1)


def test_false_positive_bound():
    # P(Bin(6, 0.05) >= 3) = 1 - P(<= 2)
    below = sum(math.comb(6, k) * 0.05**k * 0.95 ** (6 - k) for k in range(3))
    assert false_positive_bound(6, 0.05) == pytest.approx(1 - below)
    assert false_positive_bound(6) < 0.005
    with pytest.raises(ValueError, match="alpha"):
        false_positive_bound(6, 0.0)


def test_each_pair_reads_an_effect_at_most_alpha_of_the_time_under_no_effect():
    rng = random.Random(0)
    n = 6000
    effects = [trend(g) for g in _sweeps(rng, n, slope=0.0)]
    limit = _binomial_threshold(n, ALPHA)
    assert effects.count("lower") <= limit
    assert effects.count("higher") <= limit


def test_rule_does_not_call_pure_noise_supported():
    rng = random.Random(1)
    claims, pairs = 2000, 6
    verdicts = []
    for _ in range(claims):
        effects = [trend(g) for g in _sweeps(rng, pairs, slope=0.0)]
        verdicts.append(verdict(effects.count("lower"), effects.count("higher"), pairs))
    limit = _binomial_threshold(claims, false_positive_bound(pairs))
    assert verdicts.count("supported") <= limit
    assert verdicts.count("contradicted") <= limit
    # the old rule (>= 1 pair lower, none higher: "partly supported") was met ~22% of the time;
    # a rate at the stated bound is far below it
    assert limit < 0.02 * claims


@pytest.mark.parametrize(("slope", "expected"), [(-2.0, "supported"), (2.0, "contradicted")])
def test_rule_calls_a_clear_effect(slope, expected):
    rng = random.Random(2)
    for _ in range(20):
        effects = [trend(g) for g in _sweeps(rng, 6, slope=slope)]
        assert verdict(effects.count("lower"), effects.count("higher"), 6) == expected


def test_mean_std():
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert std == pytest.approx(
        math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    )
    assert mean_std([0.5]) == (0.5, 0.0)
    # three equal values whose floating-point mean is not the value itself
    value = 0.1
    assert math.fsum([value] * 3) / 3 != value
    assert mean_std([value] * 3) == (value, 0.0)
    with pytest.raises(ValueError, match="values"):
        mean_std([])
