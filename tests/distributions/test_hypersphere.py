"""The uniform distribution and the heat kernel on S^d: the d = 2 case equals SphereHeatKernel,
d >= 3 against mpmath, exact sampling with implicit time gradients, exact KL."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from distributions import HypersphereHeatKernel, HypersphereUniform, SphereHeatKernel
from distributions._gegenbauer import series_plan
from distributions.hypersphere import min_time
from tests.distributions import spherical_reference as ref
from tests.distributions.hyperspherical_checks import (
    F64,
    TEST_FAILURE_RATE,
    assert_mean_within,
    exact_chi2sf,  # noqa: F401 (autouse fixture)
    north,
    radial_gof,
    total_mass,
)
from tests.distributions.test_hyperspherical import points as _points

HEAT_DIMS = [3, 9, 64]


def _times(d: int) -> list[float]:
    t = min_time(d)
    return [t, 1.3 * t, 2 * t, 5 * t, 30.0, 1e4]


@pytest.mark.parametrize("d", [1, 2, 3, 9, 64])
def test_uniform(d, dtype):
    u = HypersphereUniform(d, dtype=dtype, validate_args=True)
    volume = 2 * math.pi ** ((d + 1) / 2) / math.gamma((d + 1) / 2)
    rel = 1e-12 if dtype == F64 else 1e-6
    assert u.entropy().item() == pytest.approx(math.log(volume), rel=rel)
    x = u.rsample((1000,))
    assert x.dtype == dtype and x.shape == (1000, d + 1)
    expected = torch.full((1000,), -math.log(volume), dtype=dtype)
    torch.testing.assert_close(u.log_prob(x), expected, rtol=rel, atol=0)
    assert kl_divergence(u, u.expand((2,))).shape == (2,)
    with pytest.raises(ValueError, match="d must be"):
        HypersphereUniform(0)
    with pytest.raises(ValueError):
        u.log_prob(torch.ones(d + 1, dtype=dtype))


def test_uniform_volumes_of_the_circle_and_the_sphere():
    assert HypersphereUniform(1).log_volume == pytest.approx(math.log(2 * math.pi), rel=1e-15)
    assert HypersphereUniform(2).log_volume == pytest.approx(math.log(4 * math.pi), rel=1e-15)


def test_d2_equals_sphere_heat_kernel(dtype):
    """On S^2 the values are SphereHeatKernel's, to float64 rounding, on a grid of times."""
    torch.manual_seed(0)
    loc = torch.nn.functional.normalize(torch.tensor([0.3, -0.4, 0.8], dtype=F64), dim=0)
    times = torch.tensor([1e-8, 1e-4, 0.01, 0.3, 0.5, 0.7, 2.0, 30.0, 1e4], dtype=F64)
    x = torch.nn.functional.normalize(torch.randn(50, 1, 3, dtype=F64), dim=-1)
    x = torch.cat([x, loc.expand(1, 1, 3), -loc.expand(1, 1, 3)]).to(dtype)
    ours = HypersphereHeatKernel(loc.to(dtype), times.to(dtype), validate_args=True)
    theirs = SphereHeatKernel(loc.to(dtype), times.to(dtype), validate_args=True)
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x), rtol=0, atol=0)
    torch.testing.assert_close(ours.entropy(), theirs.entropy(), rtol=0, atol=0)
    torch.testing.assert_close(ours.mean, theirs.mean, rtol=1e-15, atol=0)
    kl = kl_divergence(ours, HypersphereUniform(2, dtype=dtype))
    torch.testing.assert_close(kl, theirs.entropy().neg() + math.log(4 * math.pi))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_log_prob_against_mpmath(dtype):
    """Worst errors (measured): float64 3.3e-16, float32 5.8e-8 (relative to max(1, |log p|))."""
    tol = 1e-13 if dtype == F64 else 2e-6
    for d in HEAT_DIMS:
        mu, x = _points(d, dtype)
        chordal = ((x.double() - mu.double()) ** 2).sum(-1).tolist()
        for time in _times(d):
            p = HypersphereHeatKernel(mu, torch.tensor(time, dtype=dtype), validate_args=True)
            t = float(p.time)
            for got, c in zip(p.log_prob(x).tolist(), chordal, strict=True):
                exact = float(ref.heat_log_prob(c, t, d))
                assert abs(got - exact) <= tol * max(1.0, abs(exact)), (d, time, c)


@pytest.mark.slow
def test_kl_against_mpmath():
    """float64 against mpmath (worst relative error measured: 6e-14), float32 against float64 at
    the same (float32) times (float32 against mpmath, measured: 3.6e-8)."""
    for d in HEAT_DIMS:
        for time in (min_time(d), 2 * min_time(d), 4 * min_time(d)):
            t32 = torch.tensor(time, dtype=torch.float32)
            kl32 = kl_divergence(
                HypersphereHeatKernel(north(d, t32.dtype), t32), HypersphereUniform(d)
            )
            p = HypersphereHeatKernel(north(d), t32.double())
            kl = kl_divergence(p, HypersphereUniform(d, dtype=F64))
            exact = float(ref.heat_kl(float(p.time), d))
            assert abs(kl.item() - exact) <= 1e-12 * exact, (d, time, kl.item(), exact)
            assert abs(kl32.item() - kl.item()) <= 3e-7 * kl.item()
            assert kl32.item() >= 0


@pytest.mark.parametrize("d", [2, 3, 9, 64])
def test_times_below_the_supported_range_are_rejected(d):
    low = min_time(d)
    if d == 2:
        assert low == 0.0
        HypersphereHeatKernel(north(2), torch.tensor(1e-8, dtype=F64), validate_args=True)
        return
    with pytest.raises(ValueError, match="time"):
        HypersphereHeatKernel(north(d), torch.tensor(0.99 * low, dtype=F64), validate_args=True)
    HypersphereHeatKernel(north(d), torch.tensor(low, dtype=F64), validate_args=True)
    assert low == series_plan(d)[0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("d", [2, 3, 9, 64])
def test_finite_at_extreme_times(d, dtype):
    times = torch.tensor([max(min_time(d), 1e-8), 1.0, 1e4], dtype=dtype, requires_grad=True)
    loc = north(d, dtype).expand(3, d + 1).clone().requires_grad_(True)
    p = HypersphereHeatKernel(loc, times, validate_args=True)
    x = p.rsample((4,))
    kl = kl_divergence(p, HypersphereUniform(d, dtype=dtype))
    grads = torch.autograd.grad(p.log_prob(x).sum() + kl.sum() + x.sum(), (times, loc))
    for t in (x, p.log_prob(x), kl, p.entropy(), *grads):
        assert torch.isfinite(t).all()
    assert (kl >= 0).all()


@pytest.mark.parametrize(("d", "time"), [(3, 0.6), (3, 2.0), (9, 0.31), (64, 0.08)])
def test_normalised(d, time):
    p = HypersphereHeatKernel(north(d), torch.tensor(time, dtype=F64))
    assert total_mass(p, d) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("d", "time"), [(2, 0.05), (3, 0.6), (9, 0.4), (64, 0.075)])
def test_rsample_fits_log_prob(d, time):
    torch.manual_seed(0)
    p = HypersphereHeatKernel(north(d), torch.tensor(time, dtype=F64), validate_args=True)
    assert radial_gof(p, p.rsample((20_000,))) > TEST_FAILURE_RATE


@pytest.mark.parametrize(("d", "time"), [(2, 0.1), (3, 0.7), (9, 0.35), (64, 0.08)])
def test_implicit_time_gradient_of_the_mean(d, time):
    r""":math:`dE[\mu\cdot x]/dt = -d\,e^{-dt}` within 5 standard errors."""
    torch.manual_seed(3)
    n = 20_000
    t = torch.full((n,), time, dtype=F64, requires_grad=True)
    x = HypersphereHeatKernel(north(d), t).rsample()
    (dt,) = torch.autograd.grad((x @ north(d)).sum(), t)
    expected = -d * math.exp(-d * time)
    assert_mean_within(dt, expected)
    w = (x @ north(d)).detach()
    assert_mean_within(w, math.exp(-d * time))


def test_gradcheck():
    d = 5
    loc = torch.nn.functional.normalize(torch.arange(1.0, d + 2, dtype=F64), dim=0)
    loc = loc.requires_grad_(True)
    x = torch.nn.functional.normalize(torch.randn(6, d + 1, dtype=F64), dim=-1)
    t = torch.tensor(0.6, dtype=F64, requires_grad=True)
    uniform = HypersphereUniform(d, dtype=F64)

    def f(loc, t):
        p = HypersphereHeatKernel(loc, t, validate_args=False)
        return p.log_prob(x), kl_divergence(p, uniform)

    assert torch.autograd.gradcheck(f, (loc, t))


def test_validation_and_shapes():
    with pytest.raises(ValueError, match="loc"):
        HypersphereHeatKernel(torch.tensor([1.0, 0.0]), 1.0)
    p = HypersphereHeatKernel(north(4), torch.tensor([1.0, 2.0], dtype=F64))
    assert p.batch_shape == (2,) and p.event_shape == (5,)
    assert p.rsample((3,)).shape == (3, 2, 5)
    assert p.expand((4, 2)).log_prob(north(4)).shape == (4, 2)
    with pytest.raises(ValueError, match="different dimension"):
        kl_divergence(p, HypersphereUniform(3, dtype=F64))


@pytest.mark.parametrize("d", HEAT_DIMS)
def test_kernel_decreases_away_from_the_location(d):
    """The rejection sampler accepts with p(w)/p(1): valid since p decreases in the angle."""
    theta = torch.linspace(0.0, math.pi, 2001, dtype=F64)
    y = 1.0 - torch.cos(theta)
    x = torch.zeros((theta.numel(), d + 1), dtype=F64)
    x[:, 0] = torch.sin(theta)
    x[:, -1] = 1.0 - y
    for time in (min_time(d), 2 * min_time(d)):
        lp = HypersphereHeatKernel(north(d), torch.tensor(time, dtype=F64)).log_prob(x)
        assert (lp.diff() <= 1e-15).all()
