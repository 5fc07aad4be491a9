"""Exact KL divergences: registration, broadcasting, quadrature references, and the thesis's
Monte Carlo estimator (Eq. 7.9)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import kl_divergence

from distributions import CircleHeatKernel, CircleUniform, TorusHeatKernel, TorusUniform
from distributions.angles import wrap_angle
from distributions.testing import circle_heat_kernels, locs, times, torus_heat_kernels

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def _circle_rule(panels: int = 128, nodes: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Gauss-Legendre rule on [-pi, pi] (numpy's nodes, uniform panels)."""
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    edges = np.linspace(-math.pi, math.pi, panels + 1)
    mid, rad = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
    x = (mid[:, None] + rad[:, None] * gx).reshape(-1)
    w = (rad[:, None] * gw).reshape(-1)
    return torch.from_numpy(x), torch.from_numpy(w)


def _kl_by_quadrature(p: CircleHeatKernel, q: CircleHeatKernel, **rule) -> float:
    r""":math:`\int p (\log p - \log q)` over the circle, in the angle from ``p.loc``."""
    x, w = _circle_rule(**rule)
    value = wrap_angle(p.loc + x)
    log_p, log_q = p.log_prob(value), q.log_prob(value)
    return (w * log_p.exp() * (log_p - log_q)).sum().item()


def _integral(fn, time: float) -> float:
    """``int fn(theta) dtheta`` around loc = 0: Gauss-Legendre (128 panels x 20 nodes) on a
    window of +-14 sigma, or on the whole circle when that is shorter."""
    half = min(math.pi, 14 * math.sqrt(2 * time))
    gx, gw = np.polynomial.legendre.leggauss(20)
    edges = np.linspace(-half, half, 129)
    mid, rad = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
    x = torch.from_numpy((mid[:, None] + rad[:, None] * gx).reshape(-1))
    w = torch.from_numpy((rad[:, None] * gw).reshape(-1))
    return (w * fn(x)).sum().item()


# ---------------------------------------------------------------------------------------------
# Registration and shapes


def test_registered_pairs_return_the_joint_batch_shape():
    p = CircleHeatKernel(_t([[0.1], [1.0], [-2.0], [3.0]]), _t([0.01, 1.0, 50.0]))
    q = CircleHeatKernel(_t([0.5, -0.5, 2.0]), _t(0.3))
    assert kl_divergence(p, q).shape == (4, 3)
    assert kl_divergence(p, CircleUniform()).shape == (4, 3)
    assert kl_divergence(p, CircleUniform((2, 1, 1))).shape == (2, 4, 3)
    assert kl_divergence(CircleUniform((3,)), CircleUniform((2, 1))).shape == (2, 3)

    tp = TorusHeatKernel(_t([[0.1, 0.2], [1.0, -1.0]]), _t([1e-3, 2.0]))
    tq = TorusHeatKernel(_t([[[0.0, 3.0]], [[1.0, 1.0]], [[-3.0, 0.5]]]), _t(0.5))
    assert kl_divergence(tp, tq).shape == (3, 2)
    assert kl_divergence(tp, TorusUniform(2)).shape == (2,)
    assert kl_divergence(tp, TorusUniform(2, (5, 1))).shape == (5, 2)
    assert kl_divergence(TorusUniform(3, (2,)), TorusUniform(3)).shape == (2,)


def test_uniform_against_uniform_is_zero():
    assert torch.equal(kl_divergence(CircleUniform((3,)), CircleUniform()), torch.zeros(3))
    assert torch.equal(kl_divergence(TorusUniform(2, (4,)), TorusUniform(2)), torch.zeros(4))


def test_batched_kl_equals_elementwise_kl():
    loc1, time1 = _t([[0.1], [1.0], [-2.0]]), _t([[1e-3], [0.7], [20.0]])
    loc2, time2 = _t([0.5, -3.0]), _t([0.3, 2.0])
    batched = kl_divergence(CircleHeatKernel(loc1, time1), CircleHeatKernel(loc2, time2))
    for i in range(3):
        for j in range(2):
            single = kl_divergence(
                CircleHeatKernel(loc1[i, 0], time1[i, 0]), CircleHeatKernel(loc2[j], time2[j])
            )
            assert batched[i, j].item() == pytest.approx(single.item(), rel=1e-14)
    to_uniform = kl_divergence(CircleHeatKernel(loc1, time1), CircleUniform((2, 1, 1)))
    for i in range(3):
        single = kl_divergence(CircleHeatKernel(loc1[i, 0], time1[i, 0]), CircleUniform())
        assert torch.allclose(to_uniform[:, i, 0], single.expand(2), rtol=1e-14, atol=0)


def test_kl_follows_the_dtype(dtype):
    p = CircleHeatKernel(torch.tensor(0.3, dtype=dtype), torch.tensor(0.2, dtype=dtype))
    q = CircleHeatKernel(torch.tensor(2.0, dtype=dtype), torch.tensor(1.7, dtype=dtype))
    assert kl_divergence(p, q).dtype == dtype
    assert kl_divergence(p, CircleUniform(dtype=dtype)).dtype == dtype
    # float32 agrees with float64 to float32 accuracy.
    p64 = CircleHeatKernel(_t(0.3), _t(0.2))
    q64 = CircleHeatKernel(_t(2.0), _t(1.7))
    assert kl_divergence(p, q).item() == pytest.approx(kl_divergence(p64, q64).item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Values


@given(
    p=circle_heat_kernels(min_time=0.05, max_time=5.0),
    q=circle_heat_kernels(min_time=0.05, max_time=5.0),
)
def test_kl_against_quadrature(p, q):
    """Uniform composite Gauss-Legendre (128 panels x 20 nodes) for moderate times, where it
    resolves every feature of the integrand (widths >= 0.05 / pi)."""
    expected = _kl_by_quadrature(p, q)
    assert kl_divergence(p, q).item() == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_quadrature_reference_is_converged():
    p, q = CircleHeatKernel(_t(0.0), _t(0.05)), CircleHeatKernel(_t(3.0), _t(0.05))
    coarse = _kl_by_quadrature(p, q, panels=128, nodes=20)
    fine = _kl_by_quadrature(p, q, panels=256, nodes=24)
    assert coarse == pytest.approx(fine, rel=1e-13)


def _gaussian_kl_terms(loc1, time1, loc2, time2):
    """The terms of the KL between the unwrapped normals N(loc, 2t) (they sum to the KL)."""
    return [
        0.5 * torch.log(time2),
        -0.5 * torch.log(time1),
        time1 / (2 * time2),
        (loc2 - loc1) ** 2 / (4 * time2),
        torch.tensor(-0.5, dtype=F64),
    ]


@given(
    time1=times(1e-8, 1e-3),
    time2=times(1e-8, 1e-3),
    loc=locs(3.0),
    offset=st.floats(-2.5, 2.5),
)
def test_kl_is_the_gaussian_kl_at_small_times(time1, time2, loc, offset):
    """For t <= 1e-3 and offsets up to 2.5 the wrapping changes the KL by < exp(-100):
    the value and its gradient are the closed-form KL of two normals (relative to the size
    of the closed form's terms, which cancel when ``time1 = time2``). Measured: value within
    ~1e-15 of the terms."""
    params = [_t(x).requires_grad_() for x in (loc, time1, loc + offset, time2)]
    kl = kl_divergence(CircleHeatKernel(params[0], params[1]), CircleHeatKernel(*params[2:]))
    terms = _gaussian_kl_terms(*params)
    expected = sum(terms)
    scale = sum(term.abs() for term in terms).item()
    assert abs(kl.item() - expected.item()) <= 1e-13 * max(1.0, scale)
    grads = torch.autograd.grad(kl, params)
    expected_grads = torch.autograd.grad(expected, params, retain_graph=True)
    scales = [torch.zeros((), dtype=F64) for _ in params]
    for term in terms[:-1]:
        parts = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        scales = [s + (g.abs() if g is not None else 0) for s, g in zip(scales, parts, strict=True)]
    # Rounding slack. Locations: angles carry ~1e-15 rounding, times the curvature
    # 1 / (2 time2). Times: the derivative of the quadrature sums terms of size ~KL / t
    # that cancel (e.g. d/dt1 of E_p1[-log p2], with -log p2 ~ KL), so rounding leaves
    # ~eps KL / t (measured 2.8e-3 on 1e7 at t1 = 3e-7, t2 = 4e-8, offset 2).
    size = max(1.0, kl.item())
    loc_slack = 1e-15 / time2 + 1e-15 * size / math.sqrt(min(time1, time2))
    slacks = [loc_slack, 1e-15 * size / time1, loc_slack, 1e-15 * size / time2]
    for g, e, sc, slack in zip(grads, expected_grads, scales, slacks, strict=True):
        assert abs(g.item() - e.item()) <= 1e-10 * max(1.0, sc.item()) + slack


def test_kl_gradient_against_finite_differences():
    """Moderate parameters: autograd through the graded quadrature vs central differences."""
    for case in [
        (0.0, 0.3, 1.0, 0.5),
        (1.0, 0.05, 1.0 + math.pi - 0.01, 0.05),
        (0.0, 1.0, 0.5, 3.0),
    ]:
        params = [_t(x).requires_grad_() for x in case]
        kl = kl_divergence(CircleHeatKernel(*params[:2]), CircleHeatKernel(*params[2:]))
        grads = torch.autograd.grad(kl, params)
        for i, g in enumerate(grads):
            h = 1e-6
            shifted = [
                [x.detach() + (s * h if j == i else 0.0) for j, x in enumerate(params)]
                for s in (1, -1)
            ]
            up, down = (
                kl_divergence(CircleHeatKernel(*a[:2]), CircleHeatKernel(*a[2:])) for a in shifted
            )
            fd = ((up - down) / (2 * h)).item()
            assert g.item() == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_entropy_is_log_2pi_minus_kl_and_matches_quadrature():
    time = _t([1e-4, 0.03, 0.06, 0.2, 1.0, 2.5, 7.0])
    p = CircleHeatKernel(_t(0.0).expand(7), time)
    kl = kl_divergence(p, CircleUniform())
    assert torch.allclose(p.entropy(), LOG_2PI - kl, rtol=0, atol=1e-15)
    # Independent: H = -int p log p by Gauss-Legendre quadrature.
    for i, t in enumerate(time.tolist()):
        d = CircleHeatKernel(_t(0.0), _t(t))
        entropy = _integral(lambda x, d=d: -d.log_prob(x).exp() * d.log_prob(x), t)
        assert p.entropy()[i].item() == pytest.approx(entropy, rel=1e-13, abs=1e-14)


# ---------------------------------------------------------------------------------------------
# Non-negativity and zero


@given(p=circle_heat_kernels(), q=circle_heat_kernels())
def test_kl_is_never_negative(p, q):
    kl = kl_divergence(p, q)
    assert torch.isfinite(kl)
    assert kl.item() >= -1e-15
    assert kl_divergence(p, CircleUniform()).item() >= 0


@given(p=circle_heat_kernels())
def test_kl_to_itself_is_zero(p):
    q = CircleHeatKernel(p.loc.clone(), p.time.clone())
    assert abs(kl_divergence(p, q).item()) <= 1e-15


@given(p=torus_heat_kernels(n=3), q=torus_heat_kernels(n=3))
def test_torus_kl_is_nonnegative_and_the_sum_of_factor_kls(p, q):
    kl = kl_divergence(p, q)
    factors = [
        kl_divergence(CircleHeatKernel(p.loc[i], p.time[i]), CircleHeatKernel(q.loc[i], q.time[i]))
        for i in range(3)
    ]
    assert kl.item() >= -1e-15
    assert kl.item() == pytest.approx(sum(f.item() for f in factors), rel=1e-14, abs=1e-15)
    to_uniform = kl_divergence(p, TorusUniform(3))
    parts = [
        kl_divergence(CircleHeatKernel(p.loc[i], p.time[i]), CircleUniform()) for i in range(3)
    ]
    assert to_uniform.item() == pytest.approx(sum(f.item() for f in parts), rel=1e-14, abs=0)
    assert p.entropy().item() == pytest.approx(3 * LOG_2PI - to_uniform.item(), abs=1e-13)


def test_torus_kl_with_mismatched_dimension_raises():
    p = TorusHeatKernel(_t([0.1, 0.2]), _t(0.5))
    q = TorusHeatKernel(_t([0.1, 0.2, 0.3]), _t(0.5))
    with pytest.raises(ValueError, match="dimension"):
        kl_divergence(p, q)
    with pytest.raises(ValueError, match="dimension"):
        kl_divergence(p, TorusUniform(3))
    with pytest.raises(ValueError, match="dimension"):
        kl_divergence(TorusUniform(2), TorusUniform(1))


# ---------------------------------------------------------------------------------------------
# Monte Carlo estimators (the thesis's Eq. 7.9)


@pytest.mark.parametrize("time", [0.02, 0.3, 2.0])
def test_thesis_eq_7_9_estimator_is_biased(time):
    r"""Eq. 7.9 averages ``p(theta) log(p(theta) / u)`` over samples of ``p``: it converges to
    :math:`\int p^2 \log(2\pi p)`, not to the KL. The plain Monte Carlo average of
    ``log p - log u`` converges to the exact KL.

    With 2e5 samples (fixed seed) both averages lie within 5 standard errors of their limits
    (false-failure probability ~1e-6 each); Eq. 7.9's limit is more than 50 standard errors
    away from the KL.
    """
    torch.manual_seed(7)
    p = CircleHeatKernel(_t(0.0), _t(time))
    exact = kl_divergence(p, CircleUniform()).item()
    samples = p.sample((200_000,))
    log_ratio = p.log_prob(samples) + LOG_2PI
    eq_7_9 = log_ratio.exp() / (2 * math.pi) * log_ratio  # p(theta) log(p / u)

    def within(values, target, k):
        se = values.std().item() / math.sqrt(len(values))
        return abs(values.mean().item() - target) <= k * se, se

    ok, se_plain = within(log_ratio, exact, 5)
    assert ok, (log_ratio.mean().item(), exact, se_plain)
    limit_7_9 = _integral(lambda x: (2 * p.log_prob(x)).exp() * (p.log_prob(x) + LOG_2PI), time)
    ok, se_7_9 = within(eq_7_9, limit_7_9, 5)
    assert ok, (eq_7_9.mean().item(), limit_7_9, se_7_9)
    assert abs(limit_7_9 - exact) > 50 * se_7_9


def test_single_sample_mc_kl_can_be_negative_exact_kl_is_not():
    """A one-sample estimate ``log p(theta) - log q(theta)`` is negative with substantial
    probability (wherever ``p < q``); the exact KL is positive for the same parameters."""
    torch.manual_seed(3)
    cases = [
        (CircleHeatKernel(_t(0.0), _t(1.0)), CircleUniform()),
        (CircleHeatKernel(_t(0.0), _t(3.0)), CircleUniform()),
        (CircleHeatKernel(_t(0.0), _t(0.5)), CircleHeatKernel(_t(0.4), _t(0.6))),
        (CircleHeatKernel(_t(1.0), _t(2.0)), CircleHeatKernel(_t(1.0), _t(2.1))),
    ]
    for p, q in cases:
        samples = p.sample((10_000,))
        single = p.log_prob(samples) - q.log_prob(samples)
        assert (single < 0).float().mean() > 0.2
        assert kl_divergence(p, q).item() > 0
    # Torus: the same with a product of such factors.
    p = TorusHeatKernel(_t([0.0, 1.0]), _t([1.0, 2.0]))
    samples = p.sample((10_000,))
    single = p.log_prob(samples) - TorusUniform(2).log_prob(samples)
    assert (single < 0).float().mean() > 0.2
    assert kl_divergence(p, TorusUniform(2)).item() > 0
