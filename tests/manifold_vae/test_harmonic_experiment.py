"""The harmonic experiment's sweeps, trend test, verdict rule and collapse flag.

The run itself is in test_reproduce.py.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
from torch import Tensor, nn

from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Euclidean
from manifold_vae.reproduce.common import Member
from manifold_vae.reproduce.harmonic import (
    ALPHA,
    BETAS,
    COLLAPSE_SHARE,
    INPUT_NOISES,
    TIMES,
    _false_positive_bound,
    _jonckheere_null,
    _knob_cells,
    _overall,
    _reconstruction,
    _settings,
    _trend,
    _trend_test,
)
from manifold_vae.vae import VAE

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


def test_sweeps_share_the_base_setting_and_cover_every_knob_value():
    settings = _settings()
    assert len(settings) == len({tuple(sorted(s.items(), key=str)) for s in settings})
    for knob, values in (("beta", BETAS), ("time", TIMES), ("input_noise", INPUT_NOISES)):
        cells = _knob_cells(knob)
        assert [v for v, _ in cells] == list(values)
        assert all(cell in settings for _, cell in cells)


@pytest.mark.parametrize("sizes", [(2, 1, 2), (3, 3), (1, 2, 3), (3, 3, 3)])
def test_null_distribution_matches_brute_force_enumeration(sizes):
    labels = [level for level, n in enumerate(sizes) for _ in range(n)]
    counts: dict[int, int] = {}
    for order in set(itertools.permutations(labels)):  # order[i]: level of the i-th smallest
        j = sum(order[a] < order[b] for a, b in itertools.combinations(range(len(order)), 2))
        counts[j] = counts.get(j, 0) + 1
    null = _jonckheere_null(sizes)
    assert null == tuple(counts.get(j, 0) for j in range(max(counts) + 1))
    assert sum(null) == math.factorial(len(labels)) // math.prod(map(math.factorial, sizes))


def test_trend_test_exact_values():
    increasing = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    j, p_lower, p_higher = _trend_test(increasing)
    assert j == 27 and p_higher == pytest.approx(1 / 1680) and p_lower == 1.0
    j, p_lower, p_higher = _trend_test([g[::-1] for g in increasing[::-1]])
    assert j == 0 and p_lower == pytest.approx(1 / 1680)
    # two levels: the Mann-Whitney test, P(U = 9) = 1 / C(6, 3)
    assert _trend_test([[0.0, 0.1, 0.2], [1.0, 1.1, 1.2]])[2] == pytest.approx(1 / 20)
    # an empty level (all its members excluded) is dropped; one level left: nothing to test
    assert _trend_test([[1.0, 2.0], [], [3.0, 4.0]])[2] == pytest.approx(1 / 6)
    assert _trend([[1.0], [], []]) == "no significant trend"


def test_trend_direction_and_invalid_arguments():
    assert _trend([[3.0, 3.1, 2.9], [2.0, 2.1, 1.9], [1.0, 1.1, 0.9]]) == "lower"
    assert _trend([[1.0, 1.1, 0.9], [2.0, 2.1, 1.9], [3.0, 3.1, 2.9]]) == "higher"
    assert _trend([[1.0, 3.0, 2.0], [2.0, 1.0, 3.0], [3.0, 2.0, 1.0]]) == "no significant trend"
    with pytest.raises(ValueError, match="groups"):
        _trend([[1.0, math.nan], [2.0]])
    with pytest.raises(ValueError, match="groups"):
        _trend([[1.0, 2.0]])
    with pytest.raises(ValueError, match="alpha"):
        _trend([[1.0], [2.0]], alpha=0.7)


def test_overall_rule():
    assert _overall(6, 0, 6) == "supported"
    assert _overall(3, 0, 6) == "supported"
    assert _overall(2, 0, 6) == "not supported"  # the old rule's "partly supported"
    assert _overall(3, 1, 6) == "not supported"
    assert _overall(0, 3, 6) == "contradicted"
    assert _overall(1, 0, 1) == "supported"
    with pytest.raises(ValueError, match="lower, higher"):
        _overall(4, 3, 6)


def test_false_positive_bound():
    # P(Bin(6, 0.05) >= 3) = 1 - P(<= 2)
    below = sum(math.comb(6, k) * 0.05**k * 0.95 ** (6 - k) for k in range(3))
    assert _false_positive_bound(6, 0.05) == pytest.approx(1 - below)
    assert _false_positive_bound(6) < 0.005


def test_each_pair_reads_an_effect_at_most_alpha_of_the_time_under_no_effect():
    rng = random.Random(0)
    n = 6000
    effects = [_trend(g) for g in _sweeps(rng, n, slope=0.0)]
    limit = _binomial_threshold(n, ALPHA)
    assert effects.count("lower") <= limit
    assert effects.count("higher") <= limit


def test_rule_does_not_call_pure_noise_supported():
    rng = random.Random(1)
    claims, pairs = 2000, 6
    verdicts = []
    for _ in range(claims):
        effects = [_trend(g) for g in _sweeps(rng, pairs, slope=0.0)]
        verdicts.append(_overall(effects.count("lower"), effects.count("higher"), pairs))
    limit = _binomial_threshold(claims, _false_positive_bound(pairs))
    assert verdicts.count("supported") <= limit
    assert verdicts.count("contradicted") <= limit
    # the old rule (>= 1 pair lower, none higher: "partly supported") was met ~22% of the time;
    # a rate at the stated bound is far below it
    assert limit < 0.02 * claims


@pytest.mark.parametrize(("slope", "verdict"), [(-2.0, "supported"), (2.0, "contradicted")])
def test_rule_calls_a_clear_effect(slope, verdict):
    rng = random.Random(2)
    for _ in range(20):
        effects = [_trend(g) for g in _sweeps(rng, 6, slope=slope)]
        assert _overall(effects.count("lower"), effects.count("higher"), 6) == verdict


class _Constant(nn.Module):
    """A decoder that ignores the latent: always ``value``."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.value = nn.Parameter(value.clone())

    def forward(self, points: Tensor) -> Tensor:
        return self.value.expand(points.shape[0], *self.value.shape) + 0.0 * points[:, :1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_decoder_that_ignores_the_latent_is_collapsed(dtype):
    data = torch.rand(64, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    mean = VAE(Euclidean(2), (5,), Gaussian(0.1), decoder=_Constant(data.mean(0))).to(dtype)
    far = VAE(Euclidean(2), (5,), Gaussian(0.1), decoder=_Constant(data.mean(0) + 1)).to(dtype)
    for vae, share in ((mean, 0.0), (far, None)):
        member = Member({}, 0, vae, data, seed=3)
        out = _reconstruction(member, data)
        assert out["collapsed"] and math.isfinite(out["kl"]) and out["kl"] >= 0
        if share is not None:
            assert out["reconstruction_share"] == pytest.approx(share, abs=1e-5)
        else:
            assert out["reconstruction_share"] < COLLAPSE_SHARE - 1
