"""The circle heat kernel's series, its symmetries, the heat equation and integral identities.

Quadrature here is independent of the package: numpy's Gauss-Legendre rule on composite panels
over a window around the location, ``loc +- min(pi, 14 sqrt(2t))`` (the mass outside is below
``erfc(14 / sqrt 2) ~ 1e-44``; for ``t > 0.025`` the window is one full turn, on which the
integrand is periodic).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from distributions import CircleHeatKernel, TorusHeatKernel
from distributions._series import _log_fourier, _log_winding
from distributions.angles import wrap_angle
from distributions.testing import angles, locs, times, torus_heat_kernels

F64 = torch.float64
EPS64 = torch.finfo(F64).eps


def _t(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def _window_rule(time: float, panels: int = 64, nodes: int = 16) -> tuple[torch.Tensor, ...]:
    """Composite Gauss-Legendre offsets and weights on ``[-w, w]``, ``w = min(pi, 14 sigma)``."""
    half = min(math.pi, 14.0 * math.sqrt(2.0 * time))
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    edges = np.linspace(-half, half, panels + 1)
    mid, rad = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
    x = (mid[:, None] + rad[:, None] * gx).reshape(-1)
    w = (rad[:, None] * gw).reshape(-1)
    return torch.from_numpy(x), torch.from_numpy(w)


# ---------------------------------------------------------------------------------------------
# The two series


def _winding_bound(time: torch.Tensor) -> torch.Tensor:
    """Truncation bound of the winding sum (windings ``|k| > 2``), from its docstring."""
    r = torch.exp(-6 * math.pi**2 / time)
    return 2 * r / (1 - r)


def _fourier_bound(time: torch.Tensor) -> torch.Tensor:
    """Truncation bound of the Fourier part (modes ``m > 5``), absolute in ``2 pi p``."""
    return 2 * torch.exp(-36 * time) / (1 - torch.exp(-13 * time))


def test_series_agree_where_both_converge():
    """Both truncation bounds are below 1e-13 for t in [0.86, 1.93]: the series agree there.

    (Below ~0.86 five Fourier modes are not enough, above ~1.93 two windings are not: see the
    next test. The switch at 1.5 sits in the middle.)
    """
    time = torch.linspace(0.9, 1.9, 51, dtype=F64)
    assert (_winding_bound(time) < 1e-13).all() and (_fourier_bound(time) < 1e-13).all()
    theta = torch.linspace(-math.pi, math.pi, 721, dtype=F64)
    time, theta = time[:, None], theta[None, :]
    winding, fourier = _log_winding(theta, time), _log_fourier(theta, time)
    err = (winding - fourier).abs() / winding.abs().clamp(min=1)
    # Measured: ~1e-15.
    assert err.max() <= 1e-13, f"{err.max():.2e}"


def test_series_disagree_by_at_most_the_truncation_bounds():
    """Over t in [0.5, 8] the discrepancy is within the documented bounds, and close to them."""
    time = torch.linspace(0.5, 8.0, 76, dtype=F64)[:, None]
    theta = torch.linspace(-math.pi, math.pi, 361, dtype=F64)[None, :]
    winding, fourier = _log_winding(theta, time), _log_fourier(theta, time)
    # log(1 + d/(1+f)) <= d/(1+f) with 1 + f = 2 pi p from the winding sum (exact below 1.9).
    density = torch.exp(torch.minimum(winding, fourier)) * (2 * math.pi)
    bound = _winding_bound(time) + _fourier_bound(time) / density + 1e-14
    gap = (winding - fourier).abs()
    assert (gap <= bound).all()
    # The bounds are not vacuous: at t = 0.5 and t = 8 the gap is within a factor 10 of them.
    for row in (0, -1):
        assert gap[row].max() >= 0.1 * (bound[row].max() - 1e-14)


# ---------------------------------------------------------------------------------------------
# Periodicity and symmetry


def _log_prob_and_slope(loc: float, time: float, value: torch.Tensor) -> tuple[torch.Tensor, ...]:
    value = value.clone().requires_grad_()
    lp = CircleHeatKernel(_t(loc), _t(time), validate_args=False).log_prob(value)
    (slope,) = torch.autograd.grad(lp.sum(), value)
    return lp.detach(), slope


def _allowed(lp: torch.Tensor, slope: torch.Tensor, magnitude: float) -> torch.Tensor:
    """1e-13 of ``max(1, |log p|)`` plus the rounding of angles of size ``magnitude``.

    Shifting ``loc`` by ``2 pi k`` changes the float64 rounding of ``value - loc`` by up to
    ~``4 eps magnitude``, which the log density amplifies by its slope.
    """
    return 1e-13 * lp.abs().clamp(min=1) + slope.abs() * 4 * EPS64 * magnitude


@given(loc=locs(), offset=angles(), time=times(), turns=st.integers(-3, 3))
def test_periodic_in_loc(loc, offset, time, turns):
    value = wrap_angle(_t(loc + offset))
    lp, slope = _log_prob_and_slope(loc, time, value)
    shifted, _ = _log_prob_and_slope(loc + 2 * math.pi * turns, time, value)
    magnitude = abs(loc) + 2 * math.pi * abs(turns) + math.pi
    assert (shifted - lp).abs() <= _allowed(lp, slope, magnitude)


@given(loc=locs(), offset=angles(), time=times(), turns=st.integers(-3, 3))
def test_periodic_in_value(loc, offset, time, turns):
    """Without validation a value outside [-pi, pi) is the same point of the circle."""
    value = wrap_angle(_t(loc + offset))
    lp, slope = _log_prob_and_slope(loc, time, value)
    shifted, _ = _log_prob_and_slope(loc, time, value + 2 * math.pi * turns)
    magnitude = abs(loc) + 2 * math.pi * abs(turns) + math.pi
    assert (shifted - lp).abs() <= _allowed(lp, slope, magnitude)


def test_symmetric_about_the_location_exactly_at_zero():
    """With loc = 0 the angle reaches the series unrounded: p(x) = p(-x) bit for bit."""
    x = torch.linspace(0, math.pi, 1001, dtype=F64)[1:-1]
    x = torch.cat([x, torch.tensor([1e-300, 1e-12, math.pi - 1e-12], dtype=F64)])
    for time in (1e-8, 1e-3, 0.3, 1.5, 1.5000001, 4.0, 1e4):
        d = CircleHeatKernel(_t(0.0), _t(time))
        assert torch.equal(d.log_prob(x), d.log_prob(-x))


@given(loc=locs(), offset=angles(), time=times())
def test_symmetric_about_the_location(loc, offset, time):
    plus, slope = _log_prob_and_slope(loc, time, wrap_angle(_t(loc + offset)))
    minus, _ = _log_prob_and_slope(loc, time, wrap_angle(_t(loc - offset)))
    assert (plus - minus).abs() <= _allowed(plus, slope, abs(loc) + math.pi)


def test_density_is_maximal_at_the_location_and_decreases_to_the_antipode():
    x = torch.linspace(0, math.pi, 2001, dtype=F64)
    for time in (1e-6, 0.1, 1.0, 1.5, 2.0, 5.0):
        lp = CircleHeatKernel(_t(0.0), _t(time)).log_prob(-x)
        assert (lp[1:] < lp[:-1]).all()


# ---------------------------------------------------------------------------------------------
# The heat equation


def _log_derivatives(value, loc, time):
    """``d log p / dt``, ``d log p / dtheta`` and ``d^2 log p / dtheta^2`` by autograd."""
    time = time.clone().requires_grad_()
    value = value.clone().requires_grad_()
    lp = CircleHeatKernel(loc, time, validate_args=False).log_prob(value)
    dt, dv = torch.autograd.grad(lp.sum(), (time, value), create_graph=True)
    (dvv,) = torch.autograd.grad(dv.sum(), value)
    return dt.detach(), dv.detach(), dvv


@given(offset=angles(), loc=locs(), time=times())
def test_heat_equation_exact_derivatives(offset, loc, time):
    r"""``dp/dt = d^2p/dtheta^2``, i.e. ``d_t log p = d_theta^2 log p + (d_theta log p)^2``.

    Exact derivatives (autograd) over the whole range ``[1e-8, 1e4]``; the residual is
    measured within 4 eps of the sum of the terms' magnitudes. A kernel with the Brownian
    convention (variance ``t`` instead of ``2t``) leaves a residual of the size of the terms.
    """
    value = wrap_angle(_t(loc + offset))
    dt, dv, dvv = _log_derivatives(value, _t(loc), _t(time))
    terms = dt.abs() + dvv.abs() + dv**2
    assert torch.isfinite(terms)
    assert (dt - dvv - dv**2).abs() <= 1e-13 * terms


def test_heat_equation_fails_for_the_brownian_time_convention():
    """The same check rejects the kernel at the wrong time (variance t, i.e. time t / 2)."""
    value = torch.linspace(-3.0, 3.0, 13, dtype=F64)
    time = _t(0.3)
    dt, dv, dvv = _log_derivatives(value, _t(0.0), time / 2)
    # d/dt at half the time is half as fast: (1/2) d_s log p(s = t/2) vs the Laplacian.
    residual = 0.5 * dt - dvv - dv**2
    assert (residual.abs() > 0.1 * (dt.abs() + dvv.abs() + dv**2)).any()


def test_from_brownian_time_halves_the_time():
    """Brownian time s (generator Delta/2) is heat-equation time s/2, for each heat kernel."""
    circle = CircleHeatKernel.from_brownian_time(_t(0.5), 0.6, validate_args=True)
    assert type(circle) is CircleHeatKernel and circle.time.item() == pytest.approx(0.3)
    loc = torch.tensor([0.5, -1.0], dtype=F64)
    torus = TorusHeatKernel.from_brownian_time(loc, torch.tensor([0.6, 2.0], dtype=F64))
    assert type(torus) is TorusHeatKernel
    assert torus.time.tolist() == pytest.approx([0.3, 1.0]) and torch.equal(torus.loc, loc)
    assert torch.equal(
        circle.log_prob(_t(1.0)), CircleHeatKernel(_t(0.5), _t(0.3)).log_prob(_t(1.0))
    )


def _density(theta, loc, time):
    return CircleHeatKernel(loc, time, validate_args=False).log_prob(wrap_angle(loc + theta)).exp()


@given(offset=st.floats(-3.1, 3.1), loc=locs(), time=times(1e-2, 5.0))
def test_heat_equation_finite_differences(offset, loc, time):
    r"""Fourth-order central differences of ``p``: ``|p_t - p_thetatheta|`` small relative to
    ``|p_t| + |p_thetatheta| + p_theta^2 / p``.

    Steps scale with the kernel's width and slope: ``k = 0.01 min(sigma, 1) / (1 + |x|/sigma)``
    in angle and ``h = 1e-3 t / (1 + x^2 / 4t)`` in time, so that ``log p`` moves by at most
    ~0.01 per step. Measured residual: 7e-8 at most (rounding); asserted 1e-6. The time range
    stops at 5: beyond ~10, ``p - 1/2pi ~ e^-t / pi`` is too close to rounding level of ``p``
    for differences of ``p`` (the exact-derivative test covers all times).
    """
    theta, loc, time = _t(offset), _t(loc), _t(time)
    sigma = torch.sqrt(2 * time)
    k = 0.01 * sigma.clamp(max=1.0) / (1 + theta.abs() / sigma)
    h = 1e-3 * time / (1 + theta**2 / (4 * time))

    def f(j):
        return _density(theta + j * k, loc, time)

    def g(j):
        return _density(theta, loc, time + j * h)

    p0 = f(0)
    p_vv = (-f(2) + 16 * f(1) - 30 * p0 + 16 * f(-1) - f(-2)) / (12 * k**2)
    p_v = (-f(2) + 8 * f(1) - 8 * f(-1) + f(-2)) / (12 * k)
    p_t = (-g(2) + 8 * g(1) - 8 * g(-1) + g(-2)) / (12 * h)
    terms = p_t.abs() + p_vv.abs() + p_v**2 / p0
    assert (p_t - p_vv).abs() <= 1e-6 * terms


# ---------------------------------------------------------------------------------------------
# Quadrature identities


def _integrate(fn, loc: float, time: float, **rule) -> torch.Tensor:
    """``int fn(wrap(loc + x), x) dx`` over the window around ``loc``."""
    x, w = _window_rule(time, **rule)
    return (w * fn(wrap_angle(_t(loc) + x), x)).sum(-1)


@given(loc=locs(), time=times(1e-4, 1e4))
def test_normalised_on_the_circle(loc, time):
    d = CircleHeatKernel(_t(loc), _t(time), validate_args=True)
    total = _integrate(lambda v, x: d.log_prob(v).exp(), loc, time)
    # Measured: within 1e-15.
    assert abs(total.item() - 1) <= 1e-13


@given(dist=torus_heat_kernels(n=2, min_time=1e-4, max_time=1e4))
def test_normalised_on_the_torus(dist):
    """Product Gauss-Legendre grid on T^2 (16 panels x 12 nodes per axis)."""
    rules = [_window_rule(t, panels=16, nodes=12) for t in dist.time.tolist()]
    (x1, w1), (x2, w2) = rules
    grid = torch.stack(torch.meshgrid(x1, x2, indexing="ij"), dim=-1).reshape(-1, 2)
    weights = (w1[:, None] * w2[None, :]).reshape(-1)
    values = wrap_angle(dist.loc + grid)
    total = (weights * dist.log_prob(values).exp()).sum()
    assert abs(total.item() - 1) <= 1e-13


def test_torus_density_is_product_of_circle_densities():
    loc = torch.tensor([[0.3, -2.0, 3.0]], dtype=F64)
    time = torch.tensor([[1e-3, 1.5, 40.0]], dtype=F64)
    value = wrap_angle(loc + torch.tensor([[0.01, 2.5, -1.0]], dtype=F64))
    lp = TorusHeatKernel(loc, time).log_prob(value)
    parts = [CircleHeatKernel(loc[0, i], time[0, i]).log_prob(value[0, i]) for i in range(3)]
    assert lp.item() == pytest.approx(sum(p.item() for p in parts), rel=1e-15)


@given(loc=locs(), time=times(1e-4, 3.0))
def test_trigonometric_moments(loc, time):
    """``E exp(i m (theta - loc)) = exp(-m^2 t)`` for m = 1..4 (absolute error <= 1e-14)."""
    d = CircleHeatKernel(_t(loc), _t(time))
    m = torch.arange(1, 5, dtype=F64)[:, None]
    cos = _integrate(lambda v, x: d.log_prob(v).exp() * torch.cos(m * x), loc, time)
    sin = _integrate(lambda v, x: d.log_prob(v).exp() * torch.sin(m * x), loc, time)
    expected = torch.exp(-(m[:, 0] ** 2) * time)
    assert torch.allclose(cos, expected, rtol=0, atol=1e-14)
    assert torch.allclose(sin, torch.zeros_like(sin), rtol=0, atol=1e-14)
    assert d.mean_resultant_length.item() == pytest.approx(math.exp(-time), rel=1e-15)


def _fisher_information(time: float) -> float:
    r""":math:`\int (\partial_\theta p)^2 / p = E (\partial_\theta \log p)^2` by quadrature."""
    loc = 0.4
    x, w = _window_rule(time, panels=128)
    value = wrap_angle(_t(loc) + x).requires_grad_()
    lp = CircleHeatKernel(_t(loc), _t(time), validate_args=False).log_prob(value)
    (score,) = torch.autograd.grad(lp.sum(), value)
    return (w * lp.detach().exp() * score**2).sum().item()


#: Times in each regime of the KL: Gaussian (<= 0.06), trapezoid, series (>= 2.5).
DE_BRUIJN_TIMES = [1e-4, 0.01, 0.059, 0.061, 0.1, 0.19, 0.7, 1.5, 2.49, 2.51, 4.0, 8.0, 15.0]


@pytest.mark.parametrize("time", DE_BRUIJN_TIMES)
def test_de_bruijn_identity(time):
    r"""``dH/dt = int (dp/dtheta)^2 / p``: autograd of the entropy against quadrature.

    Tests the derivative of every entropy regime (Gaussian closed form, trapezoid rule,
    series), which ``kl_divergence`` passes to gradient-based training. For large t both
    sides are ``~2 exp(-2t)``; the comparison is relative.
    """
    t = _t(time).requires_grad_()
    (dh_dt,) = torch.autograd.grad(CircleHeatKernel(_t(0.0), t).entropy(), t)
    fisher = _fisher_information(time)
    assert dh_dt.item() == pytest.approx(fisher, rel=1e-10)


@pytest.mark.parametrize("time", [1e-8, 1e-4, 0.01, 0.059, 0.061, 0.08])
def test_kl_derivative_in_the_gaussian_regime(time):
    """``dKL/dt = -1/(2t)`` while the wrapping is negligible (its relative effect on the
    derivative is ~exp(-pi^2 / 4t), 4e-14 at t = 0.08), on both sides of the switch at 0.06."""
    from torch.distributions import kl_divergence

    from distributions import CircleUniform

    t = _t(time).requires_grad_()
    kl = kl_divergence(CircleHeatKernel(_t(1.0), t), CircleUniform())
    (dkl_dt,) = torch.autograd.grad(kl, t)
    assert dkl_dt.item() == pytest.approx(-0.5 / time, rel=1e-11)
