"""Every registered distribution on CUDA agrees with the CPU (skipped where there is no GPU).

The CPU and CUDA paths differ (chunking and series skipping on the CPU, blended branches on
CUDA), so this compares them on the registry's examples and on large random batches over the
whole time range, in both dtypes, and checks that ``rsample`` and its gradients stay on the
device and finite.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Distribution, kl_divergence
from torch.nn.functional import normalize

import distributions as D

from .registry import EXAMPLES, Example

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

DTYPES = [torch.float32, torch.float64]
# Relative to max(1, |log p|): transcendental functions on the GPU differ from the CPU's by a
# few ulps, amplified by at most a few operations.
TOLERANCE = {torch.float32: 64 * 2.0**-23, torch.float64: 1e-11}

_DEVICE_EXAMPLES = [e for e in EXAMPLES if e.differentiable]


def _on_cuda(dist: Distribution) -> Distribution:
    """The same distribution with its tensor parameters on the GPU."""
    params = {name: getattr(dist, name).cuda() for name in dist.arg_constraints}
    return type(dist)(**params, validate_args=True)


def _assert_close(cpu: torch.Tensor, cuda: torch.Tensor, dtype: torch.dtype) -> None:
    assert cuda.is_cuda and cuda.dtype == cpu.dtype
    cuda = cuda.cpu()
    assert torch.isfinite(cuda).all()
    err = ((cuda - cpu).abs() / cpu.abs().clamp(min=1.0)).max().item()
    assert err <= TOLERANCE[dtype], f"largest relative difference {err:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("example", _DEVICE_EXAMPLES, ids=lambda e: e.name)
def test_log_prob_matches_the_cpu(example: Example, dtype: torch.dtype):
    cpu = example.make(dtype)
    cuda = _on_cuda(cpu)
    torch.manual_seed(0)
    value = cpu.sample((16,))
    _assert_close(cpu.log_prob(value), cuda.log_prob(value.cuda()), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("example", _DEVICE_EXAMPLES, ids=lambda e: e.name)
def test_rsample_and_gradients_stay_on_the_device(example: Example, dtype: torch.dtype):
    cpu = example.make(dtype)
    params = {n: getattr(cpu, n).cuda().requires_grad_() for n in cpu.arg_constraints}
    dist = type(cpu)(**params, validate_args=True)
    sample = dist.rsample((32,))
    assert sample.is_cuda and torch.isfinite(sample).all()
    assert dist.support.check(sample).all()
    (sample.sum() + dist.log_prob(sample.detach()).sum()).backward()
    for name, param in params.items():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def _times(n: int, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    return torch.exp(math.log(1e-8) + (math.log(1e4) - math.log(1e-8)) * u).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_circle_and_torus_batches_match_the_cpu(dtype: torch.dtype):
    n = 300_000
    gen = torch.Generator().manual_seed(2)
    loc = ((2 * torch.rand(n, 2, generator=gen, dtype=torch.float64) - 1) * math.pi).to(dtype)
    value = D.angles.wrap_angle(
        ((2 * torch.rand(n, 2, generator=gen, dtype=torch.float64) - 1) * math.pi).to(dtype)
    )
    time = _times(n, dtype)
    circle = D.CircleHeatKernel(loc[:, 0], time, validate_args=False)
    circle_cuda = D.CircleHeatKernel(loc[:, 0].cuda(), time.cuda(), validate_args=False)
    _assert_close(circle.log_prob(value[:, 0]), circle_cuda.log_prob(value[:, 0].cuda()), dtype)
    torus = D.TorusHeatKernel(loc, time[:, None], validate_args=False)
    torus_cuda = D.TorusHeatKernel(loc.cuda(), time[:, None].cuda(), validate_args=False)
    _assert_close(torus.log_prob(value), torus_cuda.log_prob(value.cuda()), dtype)
    uniform = D.CircleUniform(dtype=dtype)
    _assert_close(kl_divergence(circle, uniform), kl_divergence(circle_cuda, uniform), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_sphere_batches_match_the_cpu(dtype: torch.dtype):
    n = 100_000
    gen = torch.Generator().manual_seed(3)
    loc = normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1).to(dtype)
    value = normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1).to(dtype)
    time = _times(n, dtype)
    cpu = D.SphereHeatKernel(loc, time, validate_args=False)
    cuda = D.SphereHeatKernel(loc.cuda(), time.cuda(), validate_args=False)
    _assert_close(cpu.log_prob(value), cuda.log_prob(value.cuda()), dtype)
    uniform = D.SphereUniform(dtype=dtype)
    _assert_close(kl_divergence(cpu, uniform), kl_divergence(cuda, uniform), dtype)
