"""Sampling on S^2: goodness of fit of the polar angle and azimuth, moments, the rejection bound,
the iteration cap, and the reparameterised gradients (pathwise in loc, implicit in time).

Goodness of fit uses Pyro's 1-D test with the exact ``chi2sf`` of ``test_gof.py`` (Pyro's own is
wrong for large statistics); with 20000 samples and 27 bins a correct sampler falls below
``1e-3`` with probability 1.8e-3 per test (see ``test_gof.py``). Moment tests use 5 standard
errors (failure probability 6e-7 each).
"""

from __future__ import annotations

import math

import pyro.distributions.testing.gof as gof
import pytest
import torch

from distributions import SphereHeatKernel
from distributions import _sphere_sampling as sampling
from distributions import _sphere_series as series
from distributions.constraints import sphere
from tests.distributions.test_gof import _chi2sf

F64 = torch.float64
TEST_FAILURE_RATE = 1e-3
LOC = torch.tensor([2.0, -1.0, 2.0], dtype=F64) / 3.0


@pytest.fixture(autouse=True)
def _exact_chi2sf(monkeypatch):
    monkeypatch.setattr(gof, "chi2sf", _chi2sf)


def _polar_density(theta: torch.Tensor, time: float) -> torch.Tensor:
    r"""Density :math:`2\pi\sin\theta\, p_t(\theta)` of the polar angle."""
    t = torch.tensor(time, dtype=theta.dtype)
    return 2 * math.pi * torch.sin(theta) * series.sphere_log_density(theta, t).exp()


def _frame(loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An orthonormal basis of the tangent plane at ``loc``."""
    a = torch.linalg.cross(loc, torch.tensor([1.0, 0.0, 0.0], dtype=loc.dtype), dim=-1)
    a = a / a.norm()
    return a, torch.linalg.cross(loc, a, dim=-1)


@pytest.mark.parametrize("time", [1e-6, 0.05, 0.5, 1.0, 1.2, 3.0])
def test_polar_angle_and_azimuth_fit_the_density(time):
    torch.manual_seed(0)
    d = SphereHeatKernel(LOC, torch.tensor(time, dtype=F64), validate_args=True)
    x = d.rsample((20_000,))
    assert sphere.check(x).all()
    theta = series.sphere_angle(x, LOC)
    assert gof.auto_goodness_of_fit(theta, _polar_density(theta, time)) > TEST_FAILURE_RATE
    a, b = _frame(LOC)
    azimuth = torch.atan2(x @ b, x @ a)
    uniform = torch.full_like(azimuth, 1 / (2 * math.pi))
    assert gof.auto_goodness_of_fit(azimuth, uniform) > TEST_FAILURE_RATE


@pytest.mark.parametrize("time", [0.01, 0.2])
def test_the_brownian_time_convention_fails(time):
    """The test has power: samples at time 2t (generator Laplace/2 read as Laplace) do not fit."""
    torch.manual_seed(0)
    x = SphereHeatKernel.from_brownian_time(LOC, torch.tensor(2 * time, dtype=F64)).sample()
    assert x.shape == (3,)
    wrong = SphereHeatKernel(LOC, torch.tensor(2 * time, dtype=F64)).sample((20_000,))
    theta = series.sphere_angle(wrong, LOC)
    assert gof.auto_goodness_of_fit(theta, _polar_density(theta, time)) < 1e-12


@pytest.mark.parametrize("time", [1e-3, 0.4, 2.0])
def test_sample_moments(time):
    r""":math:`E[x] = e^{-2t}\mu`, :math:`E P_2(\cos\theta) = e^{-6t}` and the variances, within 5
    standard errors."""
    torch.manual_seed(1)
    n = 40_000
    d = SphereHeatKernel(LOC, torch.tensor(time, dtype=F64))
    x = d.sample((n,))
    se = x.std(0) / math.sqrt(n)
    assert ((x.mean(0) - d.mean).abs() <= 5 * se).all()
    c = x @ LOC
    p2 = (3 * c**2 - 1) / 2
    assert abs(p2.mean().item() - math.exp(-6 * time)) <= 5 * p2.std().item() / math.sqrt(n)
    var_se = ((x - x.mean(0)) ** 2).std(0) / math.sqrt(n)
    assert ((x.var(0) - d.variance).abs() <= 5 * var_se + 1e-12).all()


def test_rejection_bound_holds():
    """The Rayleigh acceptance ratio never exceeds 1 (else the sampler would be biased)."""
    theta = torch.linspace(1e-9, math.pi, 4001, dtype=F64)
    for time in torch.logspace(-6, 0, 25, dtype=F64):
        t = time.expand_as(theta)
        log_p0 = series.sphere_log_density(torch.zeros(1, dtype=F64), time)
        ratio = sampling._log_acceptance(theta, t, log_p0, torch.ones_like(theta, dtype=bool))
        assert ratio.max() <= 1e-12, (time, ratio.max())
        uniform = sampling._log_acceptance(theta, t, log_p0, torch.zeros_like(theta, dtype=bool))
        assert uniform.max() <= 1e-12


def test_rejection_rounds_are_capped():
    with pytest.raises(RuntimeError, match="rejection rounds"):
        sampling.sample_polar_angle(torch.tensor([0.3, float("nan")], dtype=F64))
    with pytest.raises(RuntimeError, match="after 0 rejection rounds"):
        sampling.sample_polar_angle(torch.tensor([0.3], dtype=F64), max_rounds=0)


@pytest.mark.parametrize("time", [1e-30, 1e-8, 1e4])
def test_extreme_times_sample_on_the_sphere(time, dtype):
    d = SphereHeatKernel(LOC.to(dtype), torch.tensor(time, dtype=dtype))
    x = d.rsample((500,))
    assert x.dtype == dtype and sphere.check(x).all()
    assert torch.isfinite(d.log_prob(x)).all()


# --- reparameterised gradients ---------------------------------------------------------------

N_PATHS = 40_000


@pytest.mark.parametrize("time", [0.05, 0.5, 2.0])
def test_implicit_time_gradient_matches_the_exact_derivative(time):
    r"""Pathwise :math:`d/dt\, E[P_l(x\cdot\mu)] = -l(l+1) e^{-l(l+1)t}`, l = 1, 2, per path."""
    torch.manual_seed(2)
    t = torch.full((N_PATHS,), time, dtype=F64, requires_grad=True)
    x = SphereHeatKernel(LOC, t).rsample()
    c = x @ LOC
    for degree, p_l in ((1, c), (2, (3 * c**2 - 1) / 2)):
        (per_path,) = torch.autograd.grad(p_l.sum(), t, retain_graph=True)
        rate = degree * (degree + 1)
        expected = -rate * math.exp(-rate * time)
        se = per_path.std().item() / math.sqrt(N_PATHS)
        assert abs(per_path.mean().item() - expected) <= 5 * se, (degree, per_path.mean())
        if degree == 1:
            assert se < 0.05 * abs(expected)  # the check has power


def test_loc_gradient_matches_the_exact_derivative():
    r""":math:`E[a\cdot x] = e^{-2t} a\cdot\hat\mu`: its gradient in :math:`\mu` at a unit
    :math:`\mu` is :math:`e^{-2t}(a - (a\cdot\mu)\mu)`."""
    torch.manual_seed(3)
    time, a = 0.3, torch.tensor([0.5, 1.0, -2.0], dtype=F64)
    loc = LOC.expand(N_PATHS, 3).clone().requires_grad_(True)
    x = SphereHeatKernel(loc, torch.tensor(time, dtype=F64)).rsample()
    (per_path,) = torch.autograd.grad((x @ a).sum(), loc)
    expected = math.exp(-2 * time) * (a - (a @ LOC) * LOC)
    se = per_path.std(0) / math.sqrt(N_PATHS)
    assert ((per_path.mean(0) - expected).abs() <= 5 * se).all()


def test_implicit_derivative_is_minus_the_score():
    """d theta / dt at fixed quantile, by finite differences of the inverse CDF (quadrature)."""
    for time, u in ((0.02, 0.3), (0.4, 0.8), (1.5, 0.5)):

        def quantile(t: float, u: float = u) -> float:
            grid = torch.linspace(0, math.pi, 20001, dtype=F64)
            cdf = torch.cumulative_trapezoid(_polar_density(grid, t), grid)
            cdf = torch.cat([torch.zeros(1, dtype=F64), cdf])
            i = int(torch.searchsorted(cdf, torch.tensor(u, dtype=F64))) - 1
            step = (u - cdf[i]) / (cdf[i + 1] - cdf[i])
            return float(grid[i] + step * (grid[i + 1] - grid[i]))

        h = 1e-2 * time
        numeric = (quantile(time + h) - quantile(time - h)) / (2 * h)
        theta = torch.tensor(quantile(time), dtype=F64)
        slope = sampling.polar_angle_time_derivative(theta, torch.tensor(time, dtype=F64))
        assert slope.item() == pytest.approx(numeric, rel=1e-3)


def test_rsample_is_reparameterised(dtype):
    loc = LOC.to(dtype).expand(2, 3).clone().requires_grad_(True)
    time = torch.tensor([1e-6, 50.0], dtype=dtype, requires_grad=True)
    x = SphereHeatKernel(loc, time).rsample((100,))
    assert x.requires_grad
    grads = torch.autograd.grad(x.sum(), (loc, time))
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    with torch.no_grad():
        assert not SphereHeatKernel(loc, time).rsample().requires_grad
