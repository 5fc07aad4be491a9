"""Numerical contract: dtypes, finiteness at extreme times, gradients, rsample paths, pickling."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.autograd import gradcheck
from torch.distributions import kl_divergence

import distributions as D
from distributions._series import SWITCH_TIME, _log_density_masked, circle_log_density_where
from distributions.angles import wrap_angle
from distributions.testing import circle_heat_kernels, torus_heat_kernels
from tests.distributions.registry import EXAMPLES

DTYPES = [torch.float32, torch.float64]
#: Times spanning both series, the switch point (1.5) and its float32 neighbourhood.
EXTREME_TIMES = [1e-8, 1e-6, 1e-3, 0.5, SWITCH_TIME, 1.5000001, 2.5, 100.0, 1e4]
LOCS = [0.7, -3.0, 3.1, -math.pi]

examples = pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)


def _finite(*tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


# --- dtypes -------------------------------------------------------------------------------------


@examples
def test_dtype_follows_parameters(example, dtype):
    dist = example.make(dtype)
    x = dist.rsample((3,))
    assert x.dtype == dtype
    assert dist.sample().dtype == dtype
    assert dist.log_prob(x).dtype == dtype
    assert dist.entropy().dtype == dtype


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.differentiable], ids=lambda e: e.name)
def test_float32_agrees_with_float64(example):
    single, double = example.make(torch.float32), example.make(torch.float64)
    x = single.sample((50,))
    lp32, lp64 = single.log_prob(x), double.log_prob(example.to_support(x.double()))
    assert torch.all((lp32.double() - lp64).abs() <= 1e-4 * lp64.abs().clamp(min=1.0))
    h32, h64 = single.entropy(), double.entropy()
    assert torch.all((h32.double() - h64).abs() <= 1e-5 * h64.abs().clamp(min=1.0))


# --- no nan or inf at extreme times, in values and gradients ---------------------------------


def _values_around(loc: torch.Tensor) -> torch.Tensor:
    """The location, its antipode from both sides, and points next to each, wrapped."""
    offsets = torch.tensor(
        [0.0, math.pi, -math.pi, 1e-3, -1e-3, math.pi - 1e-3, 1.0], dtype=loc.dtype
    )
    return wrap_angle(loc + offsets)


@pytest.mark.parametrize("time", EXTREME_TIMES)
def test_circle_finite_everywhere(time, dtype):
    loc = torch.tensor(LOCS, dtype=dtype).unsqueeze(-1).requires_grad_(True)
    t = torch.tensor(time, dtype=dtype, requires_grad=True)
    value = torch.stack([_values_around(m) for m in loc.detach()]).requires_grad_(True)
    dist = D.CircleHeatKernel(loc, t, validate_args=True)
    lp = dist.log_prob(value)
    grads = torch.autograd.grad(lp.sum(), (value, loc, t))
    assert _finite(lp, *grads), (lp, grads)
    entropy = dist.entropy()
    kl = kl_divergence(dist, D.CircleUniform(dtype=dtype))
    (grad_h,) = torch.autograd.grad(entropy.sum(), t)
    (grad_kl,) = torch.autograd.grad(kl.sum(), t)
    assert _finite(entropy, kl, grad_h, grad_kl)
    assert (kl >= 0).all()
    assert grad_kl < 0 or time >= 100  # the KL decreases in time (to below float32 at t >= 100)


@pytest.mark.parametrize("time", EXTREME_TIMES)
def test_torus_finite_everywhere(time, dtype):
    loc = torch.tensor([[0.7, -math.pi], [3.1, 0.0]], dtype=dtype, requires_grad=True)
    t = torch.tensor([time, 0.3], dtype=dtype, requires_grad=True)
    value = wrap_angle(loc.detach() + torch.tensor([[math.pi, 0.0], [0.0, -math.pi]], dtype=dtype))
    value.requires_grad_(True)
    dist = D.TorusHeatKernel(loc, t, validate_args=True)
    lp = dist.log_prob(value)
    grads = torch.autograd.grad(lp.sum(), (value, loc, t))
    kl = kl_divergence(dist, D.TorusUniform(2, dtype=dtype))
    (grad_kl,) = torch.autograd.grad(kl.sum(), t)
    (grad_h,) = torch.autograd.grad(dist.entropy().sum(), t)
    assert _finite(lp, *grads, kl, grad_kl, grad_h)


@given(
    dist=st.sampled_from(DTYPES).flatmap(
        lambda dtype: st.one_of(circle_heat_kernels(dtype), torus_heat_kernels(dtype=dtype))
    )
)
def test_random_kernels_have_finite_gradients(dist):
    loc = dist.loc.detach().requires_grad_(True)
    time = dist.time.detach().requires_grad_(True)
    dist = type(dist)(loc, time, validate_args=True)
    x = dist.rsample((8,))
    value = x.detach().requires_grad_(True)
    lp = dist.log_prob(value)
    grads = torch.autograd.grad((lp.sum(), x.sum()), (value, loc, time), allow_unused=True)
    assert _finite(lp, *grads)


# --- gradcheck in float64 -----------------------------------------------------------------------

#: (time, value offset from loc): both series, on either side of the switch, near the antipode.
GRADCHECK_POINTS = [
    (1e-4, 0.01),
    (0.02, -0.3),
    (0.02, 3.1),
    (0.3, 2.0),
    (0.3, -3.1),
    (1.0, 3.0),
    (1.45, -1.0),
    (1.55, 1.0),
    (3.0, 3.1),
    (20.0, -2.0),
]


def test_gradcheck_circle_log_prob():
    time = torch.tensor([t for t, _ in GRADCHECK_POINTS], dtype=torch.float64)
    loc = torch.linspace(-3.0, 3.0, len(GRADCHECK_POINTS), dtype=torch.float64)
    value = wrap_angle(loc + torch.tensor([d for _, d in GRADCHECK_POINTS], dtype=torch.float64))

    def log_prob(value, loc, time):
        return D.CircleHeatKernel(loc, time, validate_args=False).log_prob(value)

    inputs = tuple(x.clone().requires_grad_(True) for x in (value, loc, time))
    assert gradcheck(log_prob, inputs)


def test_gradcheck_torus_log_prob():
    loc = torch.tensor([[0.5, -2.0], [3.0, 1.0], [-3.1, 0.0]], dtype=torch.float64)
    time = torch.tensor([[0.05, 2.0], [0.7, 10.0], [1.2, 0.01]], dtype=torch.float64)
    value = wrap_angle(loc + torch.tensor([[0.1, 3.0], [-1.0, 2.0], [2.5, -0.05]]).double())

    def log_prob(value, loc, time):
        return D.TorusHeatKernel(loc, time, validate_args=False).log_prob(value)

    inputs = tuple(x.clone().requires_grad_(True) for x in (value, loc, time))
    assert gradcheck(log_prob, inputs)


@pytest.mark.parametrize("times", [[0.01, 0.03, 0.05], [0.1, 0.5, 2.0], [3.0, 5.0, 8.0]], ids=str)
def test_gradcheck_kl_to_uniform(times):
    time = torch.tensor(times, dtype=torch.float64, requires_grad=True)

    def kl(time):
        return kl_divergence(D.CircleHeatKernel(0.0, time), D.CircleUniform(dtype=torch.float64))

    assert gradcheck(kl, (time,))


def test_gradcheck_torus_kl_to_uniform():
    time = torch.tensor([[0.03, 0.5, 5.0]], dtype=torch.float64, requires_grad=True)

    def kl(time):
        p = D.TorusHeatKernel(torch.zeros(3, dtype=torch.float64), time)
        return kl_divergence(p, D.TorusUniform(3, dtype=torch.float64))

    assert gradcheck(kl, (time,))


# --- pathwise gradients of rsample --------------------------------------------------------------

N_PATHS = 200_000


@pytest.mark.parametrize("time", [0.05, 0.5, 2.0])
def test_rsample_time_gradient_matches_mean_resultant_length(time):
    # d/dt E cos(theta - loc) = d/dt exp(-t) = -exp(-t); one per-path gradient per sample
    torch.manual_seed(1)
    loc = torch.tensor(2.5, dtype=torch.float64)
    t = torch.full((N_PATHS,), time, dtype=torch.float64, requires_grad=True)
    x = D.CircleHeatKernel(loc, t).rsample()
    (per_path,) = torch.autograd.grad(torch.cos(x - loc).sum(), t)
    estimate = per_path.mean()
    standard_error = per_path.std() / math.sqrt(N_PATHS)
    assert standard_error < 0.01  # the check has power: the thesis sampler (std t) is off by > 0.05
    assert abs(estimate - (-math.exp(-time))) < 5 * standard_error


@pytest.mark.parametrize("time", [0.1, 1.0])
def test_rsample_loc_gradient_matches_analytic_moment(time):
    # d/dloc E sin(theta) = E cos(theta) = cos(loc) exp(-t); the pathwise derivative is cos(x)
    torch.manual_seed(2)
    loc = torch.full((N_PATHS,), 0.9, dtype=torch.float64, requires_grad=True)
    x = D.CircleHeatKernel(loc, torch.tensor(time, dtype=torch.float64)).rsample()
    (per_path,) = torch.autograd.grad(torch.sin(x).sum(), loc)
    torch.testing.assert_close(per_path, torch.cos(x.detach()), rtol=1e-12, atol=1e-12)
    estimate = per_path.mean()
    standard_error = per_path.std() / math.sqrt(N_PATHS)
    assert abs(estimate - math.cos(0.9) * math.exp(-time)) < 5 * standard_error


def test_torus_rsample_time_gradient():
    torch.manual_seed(3)
    times = torch.tensor([0.2, 1.0], dtype=torch.float64)
    t = times.expand(N_PATHS // 2, 2).clone().requires_grad_(True)
    loc = torch.tensor([-1.0, 3.0], dtype=torch.float64)
    x = D.TorusHeatKernel(loc, t).rsample()
    (per_path,) = torch.autograd.grad(torch.cos(x - loc).sum(), t)
    estimate = per_path.mean(0)
    standard_error = per_path.std(0) / math.sqrt(per_path.shape[0])
    assert torch.all((estimate + torch.exp(-times)).abs() < 5 * standard_error)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rsample_is_reparameterised(dtype):
    loc = torch.tensor([0.3, -3.0], dtype=dtype, requires_grad=True)
    time = torch.tensor([1e-6, 50.0], dtype=dtype, requires_grad=True)
    x = D.CircleHeatKernel(loc, time).rsample((100,))
    assert x.requires_grad
    grad_loc, grad_time = torch.autograd.grad(x.sum(), (loc, time))
    assert torch.equal(grad_loc, torch.full_like(grad_loc, 100.0))
    assert _finite(grad_time)


# --- pickling -----------------------------------------------------------------------------------


@examples
@pytest.mark.parametrize("copier", ["pickle", "deepcopy"])
def test_pickle_round_trip(example, dtype, copier):
    dist = example.make(dtype)
    if copier == "pickle":
        clone = pickle.loads(pickle.dumps(dist))
    else:
        clone = copy.deepcopy(dist)
    assert type(clone) is type(dist)
    assert clone.batch_shape == dist.batch_shape
    assert clone.event_shape == dist.event_shape
    assert clone._validate_args == dist._validate_args
    assert repr(clone) == repr(dist)
    x = dist.sample((5,))
    assert torch.equal(clone.log_prob(x), dist.log_prob(x))
    assert torch.equal(clone.entropy(), dist.entropy())
    torch.manual_seed(4)
    a = dist.sample((3,))
    torch.manual_seed(4)
    assert torch.equal(clone.sample((3,)), a)


# --- the CPU path and the torch.where path of the series agree ------------------------------


def _random_inputs(dtype, n=4000):
    g = torch.Generator().manual_seed(5)
    theta = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi
    log_t = torch.empty(n, dtype=torch.float64).uniform_(math.log(1e-8), math.log(1e4), generator=g)
    time = log_t.exp()
    time[:200] = torch.empty(200, dtype=torch.float64).uniform_(1.4, 1.6, generator=g)
    time[200:210] = SWITCH_TIME
    theta[210:230] = -math.pi
    return theta.to(dtype), time.to(dtype)


def test_series_paths_agree_exactly(dtype):
    theta, time = _random_inputs(dtype)
    assert (time > SWITCH_TIME).any() and (time <= SWITCH_TIME).any()
    masked = _log_density_masked(theta, time)
    where = circle_log_density_where(theta, time)
    assert torch.equal(masked, where)
    assert _finite(masked)


def test_series_paths_have_equal_gradients(dtype):
    theta, time = _random_inputs(dtype)
    grads = []
    for path in (_log_density_masked, circle_log_density_where):
        th, t = theta.clone().requires_grad_(True), time.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(path(th, t).sum(), (th, t)))
    (g_theta_m, g_time_m), (g_theta_w, g_time_w) = grads
    assert torch.equal(g_theta_m, g_theta_w)
    assert torch.equal(g_time_m, g_time_w)
    assert _finite(g_theta_m, g_time_m)


def test_series_paths_broadcast_alike():
    theta = torch.linspace(-math.pi, 3.0, 7, dtype=torch.float64).unsqueeze(-1)
    time = torch.tensor([1e-3, 0.5, SWITCH_TIME, 2.0, 1e3], dtype=torch.float64)
    masked = _log_density_masked(theta, time)
    assert masked.shape == (7, 5)
    assert torch.equal(masked, circle_log_density_where(theta, time))
