"""The heat kernel on S^2: accuracy against mpmath, heat equation, gradients, KL, validation."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pyro
import pytest
import torch
from hypothesis import given
from pyro.infer import TraceMeanField_ELBO
from torch.autograd import gradcheck
from torch.distributions import kl_divergence

from distributions import SphereHeatKernel, SphereUniform, reference
from distributions import _sphere_series as series
from distributions.constraints import sphere
from distributions.testing import sphere_heat_kernels, sphere_points

F64 = torch.float64
LOG_4PI = math.log(4 * math.pi)
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps

#: Times across both representations, the switch at 0.5 and its neighbours.
TIMES = [1e-6, 0.03, 0.1, 0.4999, 0.5001, 1.0, 30.0, 1e3]
#: Polar angles from the location: the location, tiny, generic, near and at the antipode.
ANGLES = [0.0, 1e-3, 0.7, 2.0, 3.1, math.pi - 1e-6, math.pi]
#: A location that is not a coordinate axis, and a unit tangent vector at it.
LOC = torch.tensor([2.0, -1.0, 2.0], dtype=F64) / 3.0
TANGENT = torch.tensor([1.0, 2.0, 0.0], dtype=F64) / math.sqrt(5.0)


def _points(angles, dtype=F64) -> torch.Tensor:
    """Points at the given polar angles from ``LOC``, shape ``(len(angles), 3)``."""
    theta = torch.tensor(angles, dtype=F64).unsqueeze(-1)
    return (torch.cos(theta) * LOC + torch.sin(theta) * TANGENT).to(dtype)


@pytest.fixture(scope="module")
def grid():
    """Float64 log_prob on TIMES x ANGLES and its mpmath reference at the exact float inputs."""
    values = _points(ANGLES)
    time = torch.tensor(TIMES, dtype=F64).unsqueeze(-1)
    log_p = SphereHeatKernel(LOC, time, validate_args=True).log_prob(values)
    angles = [reference.sphere_angle(v.tolist(), LOC.tolist()) for v in values]
    ref = torch.tensor(
        [[float(reference.sphere_log_density(a, t)) for a in angles] for t in TIMES], dtype=F64
    )
    return log_p, ref


def test_log_prob_float64_against_mpmath(grid):
    log_p, ref = grid
    error = (log_p - ref).abs() / ref.abs().clamp(min=1.0)
    assert error.max() <= 1e-12, error.max()
    assert error.max() <= 64 * EPS64  # measured: 4 unit roundoffs; a margin for other CPUs


def test_mpmath_references_agree():
    """The two exact representations (Legendre series, image integral) agree in mpmath."""
    for time, theta in ((0.03, 1.0), (0.03, 3.0), (0.3, 0.0), (0.3, math.pi)):
        a = reference.sphere_log_density(theta, time, "legendre")
        b = reference.sphere_log_density(theta, time, "images")
        assert abs(a - b) < mp.mpf(10) ** -20


def test_log_prob_float32_against_float64():
    """Within 24 float32 eps of max(1, |log p|) (measured 18 on 20000 points, where
    ``-theta^2/4t`` and ``-log(4 pi t)``, each rounded, cancel to ``log p ~ 0``)."""
    g = torch.Generator().manual_seed(0)
    n = 4000
    theta = torch.rand(n, generator=g, dtype=F64) * math.pi
    theta[:100] = math.pi
    log_t = torch.empty(n, dtype=F64).uniform_(math.log(1e-6), math.log(1e3), generator=g)
    theta32, time32 = theta.float(), log_t.exp().float()
    lp32 = series.sphere_log_density(theta32, time32)
    lp64 = series.sphere_log_density(theta32.double(), time32.double())
    error = (lp32.double() - lp64).abs() / lp64.abs().clamp(min=1.0)
    assert error.max() <= 24 * EPS32, error.max()


def test_images_and_legendre_agree_at_the_switch():
    theta = torch.linspace(0, math.pi, 50, dtype=F64)
    for time in (0.5, 0.8):  # below 0.5 the 9-term series is not converged
        t = torch.full_like(theta, time)
        images, legendre = series._log_images(theta, t), series._log_legendre(theta, t)
        assert torch.allclose(images, legendre, rtol=0, atol=40 * EPS64)


def test_a_shorter_image_rule_is_detected():
    """The accuracy test has power: 16 instead of 28 nodes misses by ~1e-11 at tiny t."""
    theta = torch.tensor([1e-3, 0.3], dtype=F64)
    time = torch.tensor([1e-8, 1e-6], dtype=F64)
    pairs = zip(theta.tolist(), time.tolist(), strict=True)
    exact = torch.tensor([float(reference.sphere_log_density(x, t)) for x, t in pairs])
    coarse = series._log_images(theta, time, nodes=16)
    assert ((coarse - exact.double()).abs() / exact.abs().double()).max() > 1e-12


@pytest.mark.parametrize("time", [1e-12, 1e-8, 1e-4, 0.5, 0.5000001, 1e3, 1e8, 1e30])
def test_finite_everywhere(time, dtype):
    """Values and gradients at the location, the antipode and next to each, for extreme times."""
    locs = torch.stack([torch.tensor([0.0, 0.0, 1.0], dtype=F64), LOC])
    perps = torch.stack([torch.tensor([1.0, 0.0, 0.0], dtype=F64), TANGENT])
    near = [0.0, math.pi, 1e-3, math.pi - 1e-3, 1.0]
    theta = torch.tensor(near, dtype=F64).view(1, -1, 1)
    value = torch.cos(theta) * locs[:, None] + torch.sin(theta) * perps[:, None]
    value = value.to(dtype).requires_grad_(True)
    loc = locs.to(dtype).unsqueeze(1).requires_grad_(True)
    t = torch.tensor(time, dtype=dtype, requires_grad=True)
    dist = SphereHeatKernel(loc, t, validate_args=True)
    lp = dist.log_prob(value)
    assert lp.shape == (2, len(near))
    grads = torch.autograd.grad(lp.sum(), (value, loc, t))
    kl = kl_divergence(dist, SphereUniform(dtype=dtype))
    (grad_kl,) = torch.autograd.grad(kl.sum(), t)
    assert all(bool(torch.isfinite(x).all()) for x in (lp, *grads, kl, grad_kl, dist.entropy()))
    assert (kl >= 0).all()


def test_density_at_the_location_and_antipode_has_the_limits():
    """Small t: p(0) ~ e^{t/3} / 4 pi t; large t: p -> 1/4pi everywhere."""
    zero = torch.zeros(1, dtype=F64)
    for t in (1e-8, 1e-6):
        assert series.sphere_log_density(zero, torch.tensor(t, dtype=F64)).item() == (
            pytest.approx(t / 3 - math.log(4 * math.pi * t), abs=1e-14 + t**2)
        )
    big = series.sphere_log_density(torch.tensor([0.0, math.pi], dtype=F64), torch.tensor(50.0))
    assert torch.allclose(big, torch.full_like(big, -LOG_4PI), rtol=0, atol=1e-40)


# --- gradients and the heat equation ---------------------------------------------------------

GRADCHECK = [(1e-4, 0.01), (0.02, 0.3), (0.02, 3.1), (0.3, 2.0), (0.5, 3.13), (0.7, 1.0), (4, 2.5)]


def test_gradcheck_log_prob():
    time = torch.tensor([t for t, _ in GRADCHECK], dtype=F64)
    value = _points([a for _, a in GRADCHECK])
    loc = LOC.expand(len(GRADCHECK), 3).clone()

    def log_prob(value, loc, time):
        return SphereHeatKernel(loc, time, validate_args=False).log_prob(value)

    inputs = tuple(x.clone().requires_grad_(True) for x in (value, loc, time))
    assert gradcheck(log_prob, inputs)


def _heat_equation_residual(theta: torch.Tensor, time: torch.Tensor, rate: float) -> torch.Tensor:
    r"""``(dp/dt - rate * Laplace p) / p`` with the radial Laplacian ``p'' + cot(theta) p'``."""
    theta = theta.clone().requires_grad_(True)
    time = time.clone().requires_grad_(True)
    log_p = series.sphere_log_density(theta, time)
    d_theta, d_t = torch.autograd.grad(log_p.sum(), (theta, time), create_graph=True)
    (d2_theta,) = torch.autograd.grad(d_theta.sum(), theta)
    laplace_over_p = d2_theta + d_theta**2 + d_theta / torch.tan(theta)
    return (d_t - rate * laplace_over_p).detach()


def test_heat_equation_holds_in_both_representations():
    theta = torch.tensor([0.2, 1.0, 2.0, 3.0] * 4, dtype=F64)
    time = torch.tensor([0.05] * 4 + [0.3] * 4 + [0.7] * 4 + [2.0] * 4, dtype=F64)
    residual = _heat_equation_residual(theta, time, 1.0)
    scale = 1.0 / time  # the size of the terms
    assert (residual.abs() / scale).max() < 1e-9


def test_heat_equation_fails_for_the_brownian_time_convention():
    theta = torch.tensor([0.2, 1.0, 2.0], dtype=F64)
    time = torch.tensor([0.05, 0.3, 0.7], dtype=F64)
    assert (_heat_equation_residual(theta, time, 0.5).abs() > 1e-2).all()


def test_time_derivative_against_mpmath():
    for theta, time in ((0.5, 0.01), (3.0, 0.2), (1.0, 0.6)):
        t = torch.tensor(time, dtype=F64, requires_grad=True)
        lp = series.sphere_log_density(torch.tensor(theta, dtype=F64), t)
        (grad,) = torch.autograd.grad(lp, t)
        with mp.workdps(30):
            expected = mp.diff(
                lambda s, theta=theta: reference.sphere_log_density(theta, s),
                mp.mpf(time),
                h=mp.mpf(1e-12),
            )
        assert grad.item() == pytest.approx(float(expected), rel=1e-10)


# --- normalisation and moments -----------------------------------------------------------------


@pytest.mark.parametrize("time", [1e-4, 0.05, 0.5, 2.0])
def test_normalised_with_legendre_moments(time):
    r""":math:`E P_l(\cos\theta) = e^{-l(l+1)t}` for l = 0..3 (l = 0: total mass 1)."""
    width = min(math.pi, 16 * math.sqrt(time))
    x, w = np.polynomial.legendre.leggauss(200)
    theta = torch.from_numpy(0.5 * width * (x + 1))
    weights = torch.from_numpy(0.5 * width * w)
    density = series.sphere_log_density(theta, torch.tensor(time, dtype=F64)).exp()
    mass = 2 * math.pi * weights * torch.sin(theta) * density
    c = torch.cos(theta)
    legendre = [torch.ones_like(c), c, (3 * c**2 - 1) / 2, (5 * c**3 - 3 * c) / 2]
    for degree, p_l in enumerate(legendre):
        expected = math.exp(-degree * (degree + 1) * time)
        assert (mass * p_l).sum().item() == pytest.approx(expected, abs=1e-13)


def test_mean_and_variance_formulas():
    loc = torch.tensor([[0.0, 0.6, 0.8]], dtype=F64)
    time = torch.tensor([[1e-9], [0.3], [40.0]], dtype=F64)
    d = SphereHeatKernel(loc, time.squeeze(-1))
    y = torch.exp(-2 * time)
    torch.testing.assert_close(d.mean, y * loc, rtol=1e-15, atol=0)
    e_cos2 = (1 + 2 * y**3) / 3
    second = e_cos2 * loc**2 + (1 - e_cos2) / 2 * (1 - loc**2)
    torch.testing.assert_close(d.variance, second - (y * loc) ** 2, rtol=1e-12, atol=1e-15)
    assert (d.variance >= 0).all()
    assert d.variance[0, 2].item() == pytest.approx(2e-9 * 0.36, rel=1e-6)  # no cancellation
    torch.testing.assert_close(d.mean_resultant_length, y.squeeze(-1), rtol=0, atol=0)
    assert torch.equal(d.mean_direction, d.loc) and torch.equal(d.mode, d.loc)


# --- KL to the uniform distribution, entropy -------------------------------------------------

KL_TIMES = [0.1, 0.3, 1.4999, 1.5, 6.0]


@pytest.fixture(scope="module")
def kl_reference():
    return torch.tensor([float(reference.sphere_kl_to_uniform(t)) for t in KL_TIMES], dtype=F64)


def test_kl_against_mpmath(kl_reference):
    time = torch.tensor(KL_TIMES, dtype=F64)
    kl = kl_divergence(SphereHeatKernel(LOC, time), SphereUniform(dtype=F64))
    relative = ((kl - kl_reference) / kl_reference).abs()
    assert relative.max() < 1e-13, relative  # measured: 24 unit roundoffs (5e-15)


def test_kl_expansion_agrees_with_quadrature():
    """The small-time expansion (t <= 1e-4) against the quadrature where both hold."""
    time = torch.tensor([1e-4, 2e-4, 5e-4, 1e-3], dtype=F64)
    quadrature, expansion = series._kl_quadrature(time), series._kl_expansion(time)
    assert ((quadrature - expansion).abs() <= 64 * EPS64 * quadrature + 0.1 * time**4).all()
    # without the curvature terms it is off by about t
    planar = -1.0 - torch.log(time)
    assert ((quadrature - planar) > 0.9 * time).all()


def test_kl_interpolant_matches_quadrature():
    time = torch.exp(torch.linspace(math.log(1e-4), math.log(1.5), 301, dtype=F64))
    quadrature = series._kl_quadrature(time)
    relative = ((series._kl_chebyshev(time) - quadrature) / quadrature).abs()
    assert relative.max() < 100 * EPS64, relative.max()


def test_kl_is_continuous_at_the_regime_switches():
    for switch in (series._KL_EXPANSION_TIME, series._KL_SERIES_TIME):
        time = torch.tensor([switch * (1 - 1e-15), switch, switch * (1 + 1e-15)], dtype=F64)
        kl = series.sphere_kl_to_uniform(time)
        assert ((kl - kl[1]).abs() <= 1e-13 * kl[1]).all(), kl


def test_gradcheck_kl_to_uniform():
    time = torch.tensor([3e-5, 1e-3, 0.1, 0.9, 2.0, 6.0], dtype=F64, requires_grad=True)
    assert gradcheck(series.sphere_kl_to_uniform, (time,))


def test_kl_matches_a_monte_carlo_estimate():
    """KL = E log(4 pi p(x)) over samples x, within 5 standard errors."""
    torch.manual_seed(3)
    for time in (0.05, 0.8):
        d = SphereHeatKernel(LOC, torch.tensor(time, dtype=F64))
        x = d.sample((20_000,))
        terms = d.log_prob(x) + LOG_4PI
        exact = kl_divergence(d, SphereUniform(dtype=F64)).item()
        assert abs(terms.mean().item() - exact) < 5 * terms.std().item() / math.sqrt(len(terms))


def test_kl_broadcasts_and_entropy_is_log_4pi_minus_kl():
    d = SphereHeatKernel(LOC.expand(4, 3), torch.tensor([[1e-3], [0.5], [5.0]], dtype=F64))
    kl = kl_divergence(d, SphereUniform(dtype=F64))
    assert kl.shape == (3, 4)
    assert kl_divergence(d, SphereUniform(dtype=F64).expand((2, 1, 1))).shape == (2, 3, 4)
    torch.testing.assert_close(d.entropy(), LOG_4PI - kl, rtol=0, atol=0)
    assert (kl[:-1] > kl[1:]).all()  # decreasing in time
    uniform = SphereUniform(dtype=F64).expand((3,))
    assert torch.equal(kl_divergence(uniform, SphereUniform(dtype=F64)), torch.zeros(3))


# --- validation, constraint, uniform ---------------------------------------------------------


def _named(info, name: str) -> bool:
    return name in str(info.value).split("constraint")[0]


@pytest.mark.parametrize(
    ("loc", "time", "name"),
    [
        (torch.tensor([0.0, 0.0, 2.0]), 1.0, "loc"),
        (torch.tensor([0.0, float("nan"), 1.0]), 1.0, "loc"),
        (torch.tensor([0.0, 0.0, 1.0]), -1.0, "time"),
        (torch.tensor([0.0, 0.0, 1.0]), 0.0, "time"),
        (torch.tensor([0.0, 0.0, 1.0]), float("inf"), "time"),
    ],
)
def test_invalid_parameters_raise_naming_the_argument(loc, time, name):
    with pytest.raises(ValueError) as info:
        SphereHeatKernel(loc, time, validate_args=True)
    assert _named(info, name), str(info.value)
    SphereHeatKernel(loc, time, validate_args=False)  # no check without validation


@pytest.mark.parametrize("validate_args", [True, False])
def test_wrong_shapes_raise_naming_the_argument(validate_args):
    with pytest.raises(ValueError, match=r"^loc must have shape \(\.\.\., 3\)"):
        SphereHeatKernel(torch.tensor([0.0, 1.0]), 1.0, validate_args=validate_args)
    with pytest.raises(ValueError, match=r"^loc"):
        SphereHeatKernel(torch.tensor(1.0), 1.0, validate_args=validate_args)
    with pytest.raises(ValueError, match=r"^time"):
        SphereHeatKernel(LOC.expand(3, 3), torch.ones(2, dtype=F64), validate_args=validate_args)


def test_sphere_constraint(dtype):
    eps = torch.finfo(dtype).eps
    good = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]], dtype=dtype)
    good = torch.cat([good, good[:1] * (1 + 8 * eps)])
    bad = torch.tensor([[1.001, 0, 0], [0, 0, 0], [float("nan"), 0, 1], [float("inf"), 0, 0]])
    assert sphere.check(good).all()
    assert not sphere.check(bad.to(dtype)).any()
    assert sphere.event_dim == 1
    assert sphere.check(good).shape == (3,)
    assert "sphere" in repr(sphere)


def test_uniform():
    torch.manual_seed(4)
    u = SphereUniform(dtype=F64, validate_args=True)
    assert u.batch_shape == () and u.event_shape == (3,)
    x = u.sample((100_000,))
    assert sphere.check(x).all()
    assert torch.equal(u.log_prob(x[:5]), torch.full((5,), -LOG_4PI, dtype=F64))
    assert u.entropy().item() == pytest.approx(LOG_4PI, rel=1e-15)
    # uniform on the sphere: each coordinate is uniform on [-1, 1] (Archimedes)
    for k in range(3):
        counts = torch.histc(x[:, k], bins=10, min=-1, max=1)
        chi2 = ((counts - 10_000) ** 2 / 10_000).sum().item()
        assert chi2 < 27.9  # chi^2 on 9 degrees of freedom: p = 0.001
    assert torch.equal(u.mean, torch.zeros(3, dtype=F64))
    assert u.mean_direction.isnan().all()


def test_brownian_time_is_half_the_heat_time():
    d = SphereHeatKernel.from_brownian_time(LOC, 0.6)
    assert d.time.item() == pytest.approx(0.3)


@given(sphere_heat_kernels(min_time=1e-6, max_time=1e3))
def test_random_kernels_have_finite_log_prob_and_gradients(dist):
    loc = dist.loc.detach().requires_grad_(True)
    time = dist.time.detach().requires_grad_(True)
    d = SphereHeatKernel(loc, time, validate_args=True)
    x = d.rsample((4,))
    assert sphere.check(x).all()
    lp = d.log_prob(x.detach())
    grads = torch.autograd.grad((lp.sum(), x.sum()), (loc, time))
    assert all(bool(torch.isfinite(g).all()) for g in (lp, *grads))


@given(sphere_points())
def test_sphere_points_are_unit_vectors(point):
    assert point.shape == (3,) and sphere.check(point)


def test_pyro_mean_field_elbo_uses_the_exact_kl():
    """A sphere latent in Pyro: TraceMeanField_ELBO with no data is the exact KL."""
    loc, time = LOC.clone(), torch.tensor(0.2, dtype=F64)

    def model():
        pyro.sample("z", SphereUniform(dtype=F64))

    def guide():
        pyro.sample("z", SphereHeatKernel(loc, time))

    pyro.clear_param_store()
    loss = TraceMeanField_ELBO().differentiable_loss(model, guide)
    exact = kl_divergence(SphereHeatKernel(loc, time), SphereUniform(dtype=F64))
    assert loss.item() == pytest.approx(exact.item(), rel=1e-14)


def test_cpu_and_where_paths_agree():
    """The CUDA path (both representations, torch.where) equals the CPU path, with gradients."""
    g = torch.Generator().manual_seed(1)
    theta = torch.rand(300, generator=g, dtype=F64) * math.pi
    time = torch.exp(torch.empty(300, dtype=F64).uniform_(math.log(1e-6), 2.0, generator=g))
    time[:20] = series.SWITCH_TIME
    results = []
    branches = (series.SWITCH_TIME, series._log_images, series._log_legendre)
    for masked in (True, False):
        th, t = theta.clone().requires_grad_(True), time.clone().requires_grad_(True)
        log_p = series._by_regime(th, t, *branches, masked=masked)
        results.append((log_p, *torch.autograd.grad(log_p.sum(), (th, t))))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
