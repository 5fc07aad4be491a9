"""Goodness of fit of ``rsample`` against ``log_prob``, and circular moments of the samples.

``pyro.distributions.testing.gof`` returns a p-value that should be Uniform(0, 1) for a
correct sampler; every test asserts ``gof > TEST_FAILURE_RATE = 1e-3`` with a fixed seed.

False-failure rate. Pyro's binned chi^2 divides by the multinomial variance ``N p (1 - p)``
instead of Pearson's ``N p``, which inflates the statistic by ``k / (k - 1)`` for ``k`` bins
(``k = round(N ** 0.333)``), so a correct sampler falls below 1e-3 with probability
``P(chi2_{k-1} > (1 - 1/k) q_{0.999})``: 1.8e-3 per test for the circle (20000 samples,
27 bins) and 2.0e-3 for the torus (8000 groups, 20 bins); about 2% for the whole module.
Measured over seeds: circle, 200 seeds for each of 3 cases, 2.5-4% below 0.05, at most 0.5%
below 0.01, none below 1e-3; torus, 300 seeds for each of 3 cases, 6.7-10% below 0.05,
1.3-2% below 0.01, 2 of 900 below 1e-3.
If a change of random stream (e.g. a new torch) makes one test fail, try one other seed;
two failures mean a real discrepancy. The tests with a wrong sampler get gof < 1e-12.

Two problems of Pyro's module are worked around here:

* ``chi2sf`` is wrong for large statistics (its series stops after 100 terms: it returns
  0.99996 for chi^2 = 300 on 9 degrees of freedom, whose p-value is 3e-59), so a badly wrong
  sampler can *pass* with ``gof ~ 1``. An exact ``chi2sf`` is patched in for every test.
* The multivariate test (``auto_goodness_of_fit(..., dim=2)``, nearest-neighbour distances
  among the samples) is badly miscalibrated: 47-65% of seeds below 0.05 and 5-17% below
  1e-3, even for a standard normal in R^2 (mutual nearest neighbours duplicate distances).
  The torus uses :func:`_torus_gof` instead, whose values are exactly uniform; the circle
  uses Pyro's 1-D test (spacings of the sorted samples), which is fine.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pyro.distributions.testing.gof as gof
import pytest
import torch

from distributions import CircleHeatKernel, TorusHeatKernel
from distributions.angles import wrap_angle

F64 = torch.float64
TEST_FAILURE_RATE = 1e-3


def _chi2sf(x: float, dof: int) -> float:
    """Chi-squared survival function, the regularised upper incomplete gamma Q(dof/2, x/2)."""
    return torch.special.gammaincc(
        torch.tensor(dof / 2, dtype=F64), torch.tensor(x / 2, dtype=F64)
    ).item()


@pytest.fixture(autouse=True)
def _exact_chi2sf(monkeypatch):
    monkeypatch.setattr(gof, "chi2sf", _chi2sf)


def test_patched_chi2sf_is_exact():
    for dof in (6, 9, 20):
        for x in (0.5, 5.0, 30.0, 100.0, 300.0, 600.0, 1200.0):
            expected = float(mp.gammainc(mp.mpf(dof) / 2, mp.mpf(x) / 2, mp.inf, regularized=True))
            assert gof.chi2sf(x, dof) == pytest.approx(expected, rel=1e-10, abs=1e-300)
    # A histogram far from its expectation must get a tiny p-value (Pyro's statistic is 400 on
    # 9 degrees of freedom, p-value 1e-80, for which Pyro's own chi2sf returns 1 - 4e-14).
    counts = torch.tensor([160.0, 40.0] * 5)
    assert gof.multinomial_goodness_of_fit(torch.full((10,), 0.1), counts) < 1e-50


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def _wrong_sampler(loc: torch.Tensor, time: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The thesis's Eq. 7.10: ``wrap(mu + t eps)``, standard deviation t instead of sqrt(2t)."""
    return wrap_angle(loc + time * torch.randn(shape + loc.shape, dtype=loc.dtype))


# ---------------------------------------------------------------------------------------------
# Circle

CIRCLE_CASES = [
    (1.0, 1e-6),  # very concentrated
    (-2.0, 0.05),
    (3.0, 0.3),  # near the cut at pi: the samples wrap
    (3.0, 1.5),  # at the series switch
    (-0.5, 1.6),
    (-3.1, 5.0),
    (0.0, 100.0),  # numerically uniform
]


@pytest.mark.parametrize(("loc", "time"), CIRCLE_CASES)
def test_circle_rsample_fits_log_prob(loc, time):
    torch.manual_seed(0)
    d = CircleHeatKernel(_t(loc), _t(time), validate_args=True)
    samples = d.rsample((20_000,))
    probs = d.log_prob(samples).exp()
    assert gof.auto_goodness_of_fit(samples, probs) > TEST_FAILURE_RATE


def test_circle_rsample_fits_log_prob_float32():
    torch.manual_seed(0)
    d = CircleHeatKernel(torch.tensor(2.0), torch.tensor(0.2), validate_args=True)
    samples = d.rsample((20_000,))
    assert samples.dtype == torch.float32
    probs = d.log_prob(samples).exp()
    assert gof.auto_goodness_of_fit(samples.double(), probs.double()) > TEST_FAILURE_RATE


@pytest.mark.parametrize("time", [0.1, 0.3, 1.0])
def test_thesis_sampler_fails_goodness_of_fit(time):
    """Eq. 7.10's samples (variance t^2 instead of 2t) do not fit the heat kernel's log_prob."""
    torch.manual_seed(0)
    d = CircleHeatKernel(_t(0.5), _t(time))
    samples = _wrong_sampler(d.loc, d.time, (20_000,))
    probs = d.log_prob(samples).exp()
    assert gof.auto_goodness_of_fit(samples, probs) < 1e-12


# ---------------------------------------------------------------------------------------------
# Torus

#: Gauss-Legendre rule on the square [-1, 1]^2 (8 x 8 nodes).
_GX, _GW = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(8))
_SQUARE_NODES = torch.stack(torch.meshgrid(_GX, _GX, indexing="ij"), -1).reshape(-1, 2)
_SQUARE_WEIGHTS = (_GW[:, None] * _GW[None, :]).reshape(-1)


def _torus_gof(d: TorusHeatKernel, samples: torch.Tensor, references: int = 20) -> float:
    r"""Goodness of fit of samples on :math:`T^2` from exact nearest-neighbour probabilities.

    The samples are split into groups of ``1 + references``: one query ``a`` and its own
    ``n = references`` reference points. Let ``r`` be the sup-norm (box) distance on the torus
    from ``a`` to its nearest reference and ``m`` the probability of the box ``a + [-r, r]^2``
    under ``log_prob`` (8 x 8 Gauss-Legendre). The references are independent of ``a`` and of
    the other groups, so if ``log_prob`` is the density of the samples the values
    ``(1 - m)^n`` are independent and exactly Uniform(0, 1); Pyro's binned chi^2 test
    (``unif01_goodness_of_fit``) checks that.
    """
    groups = samples.reshape(-1, references + 1, 2)
    a, b = groups[:, 0], groups[:, 1:]
    gap = (a[:, None, :] - b).abs()
    gap = torch.minimum(gap, 2 * math.pi - gap)  # distance on the circle, per factor
    radius = gap.amax(-1).amin(-1)
    points = wrap_angle(a[:, None, :] + radius[:, None, None] * _SQUARE_NODES.to(a))
    mass = (d.log_prob(points).exp() * _SQUARE_WEIGHTS.to(a)).sum(-1) * radius**2
    uniform = torch.exp(references * torch.log1p(-mass))
    return gof.unif01_goodness_of_fit(uniform)


#: 8000 groups of 21 samples: 8000 uniform values, binned by Pyro into 20 bins.
TORUS_SAMPLES = 8000 * 21


TORUS_CASES = [
    ([0.5, 3.0], [0.2, 2.0]),  # mixed times, one factor wrapping at the cut
    ([0.5, -1.0], [0.01, 0.02]),
    ([-3.0, 1.0], [3.0, 30.0]),  # both in the Fourier regime
]


@pytest.mark.parametrize(("loc", "time"), TORUS_CASES)
def test_torus_rsample_fits_log_prob(loc, time):
    torch.manual_seed(0)
    d = TorusHeatKernel(_t(loc), _t(time), validate_args=True)
    samples = d.rsample((TORUS_SAMPLES,))
    assert _torus_gof(d, samples) > TEST_FAILURE_RATE


def test_torus_thesis_sampler_fails_goodness_of_fit():
    torch.manual_seed(0)
    d = TorusHeatKernel(_t([0.5, -1.0]), _t([0.3, 0.3]))
    samples = _wrong_sampler(d.loc, d.time, (TORUS_SAMPLES,))
    assert _torus_gof(d, samples) < 1e-12


def test_torus_gof_detects_swapped_factors():
    """Samples whose factors have each other's times do not fit (the marginals are wrong)."""
    torch.manual_seed(0)
    d = TorusHeatKernel(_t([0.5, -1.0]), _t([0.2, 0.6]))
    swapped = TorusHeatKernel(_t([0.5, -1.0]), _t([0.6, 0.2]))
    assert _torus_gof(d, swapped.rsample((TORUS_SAMPLES,))) < 1e-12


@pytest.mark.slow
def test_goodness_of_fit_is_calibrated():
    """Over 40 seeds the gof values of correct samplers look Uniform(0, 1).

    With 2000 samples (circle) or 2000 groups (torus), Pyro bins into 13 bins and its
    statistic is inflated by 13/12, so each value is below 0.05 with probability 0.079;
    more than 8 of 40 then has probability 3.5e-3. The Kolmogorov distance of 40 uniform
    draws exceeds 0.3 with probability ~1e-3.
    """
    circle = CircleHeatKernel(_t(3.0), _t(0.3))
    torus = TorusHeatKernel(_t([0.5, 3.0]), _t([0.2, 2.0]))
    for name in ("circle", "torus"):
        values = []
        for seed in range(40):
            torch.manual_seed(1000 + seed)
            if name == "circle":
                samples = circle.rsample((2_000,))
                values.append(gof.auto_goodness_of_fit(samples, circle.log_prob(samples).exp()))
            else:
                values.append(_torus_gof(torus, torus.rsample((2_000 * 21,))))
        values = torch.tensor(values, dtype=F64).sort().values
        assert (values < 0.05).sum() <= 8, (name, values[:10])
        upper = torch.arange(1, 41, dtype=F64) / 40
        distance = torch.maximum(upper - values, values - (upper - 1 / 40)).max()
        assert distance <= 0.3, (name, values)


# ---------------------------------------------------------------------------------------------
# Circular moments of the samples


@pytest.mark.parametrize("time", [1e-3, 0.3, 1.5, 4.0])
def test_mean_resultant_length_of_samples(time):
    r"""``E cos(theta - loc) = exp(-t)``, ``E sin(theta - loc) = 0``, within 5 standard errors.

    The standard errors use the exact variances ``Var cos = (1 + e^{-4t})/2 - e^{-2t}`` and
    ``Var sin = (1 - e^{-4t})/2``; 5 standard errors fail with probability 6e-7.
    """
    torch.manual_seed(1)
    n = 100_000
    loc = _t(-2.9)
    d = CircleHeatKernel(loc, _t(time))
    x = d.rsample((n,)) - loc
    se_cos = math.sqrt(((1 + math.exp(-4 * time)) / 2 - math.exp(-2 * time)) / n)
    se_sin = math.sqrt((1 - math.exp(-4 * time)) / 2 / n)
    assert abs(torch.cos(x).mean().item() - math.exp(-time)) <= 5 * se_cos
    assert abs(torch.sin(x).mean().item()) <= 5 * se_sin
    assert d.mean_resultant_length.item() == pytest.approx(math.exp(-time), rel=1e-15)
    # The thesis's sampler: E cos = exp(-t^2 / 2), many standard errors away (for t <= 1.5;
    # at t = 4 both moments are nearly 0).
    if time <= 1.5:
        wrong = _wrong_sampler(loc, d.time, (n,)) - loc
        assert abs(torch.cos(wrong).mean().item() - math.exp(-time)) > 20 * se_cos


@pytest.mark.parametrize("time", [1e-3, 0.3, 1.5])
def test_pathwise_gradient_of_the_moment(time):
    r"""Reparameterised gradients of :math:`E \cos\theta = \cos(\mu) e^{-t}`:
    ``d/dloc = -sin(loc) e^{-t}``, ``d/dt = -cos(loc) e^{-t}``, within 5 standard errors of
    the per-sample gradients (one parameter copy per sample)."""
    torch.manual_seed(2)
    n, mu = 100_000, 0.7
    loc = torch.full((n,), mu, dtype=F64, requires_grad=True)
    t = torch.full((n,), time, dtype=F64, requires_grad=True)
    samples = CircleHeatKernel(loc, t).rsample()
    d_loc, d_t = torch.autograd.grad(torch.cos(samples).sum(), (loc, t))
    for grads, expected in (
        (d_loc, -math.sin(mu) * math.exp(-time)),
        (d_t, -math.cos(mu) * math.exp(-time)),
    ):
        se = grads.std().item() / math.sqrt(n)
        assert abs(grads.mean().item() - expected) <= 5 * se
