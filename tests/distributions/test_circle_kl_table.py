"""The tabulated KL of a circle heat kernel to the uniform distribution, against mpmath.

:func:`distributions._circle_kl.circle_kl_to_uniform_table` (what ``kl_divergence`` registers
for the heat kernels against the uniform distribution) is a piecewise-polynomial table in
``log t``; these tests bound its error against mpmath on every kind of panel, fail when one
coefficient is perturbed, and check its derivative and its extreme times.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from distributions import _circle_kl, reference
from distributions._circle_kl import KL_TABLE, circle_kl_to_uniform_table

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps

#: Times in the first and last panels, at panel edges and centres, at the old regime switch
#: 2.5, and beyond the table (19.1 on: h = 1).
TIMES = [0.0601, 0.0641, 0.1, 0.19, 0.35, 0.62, 1.0, 1.469, 2.0, 2.455, 2.51, 4.0, 7.0, 12.0]
TIMES += [18.0, 19.5, 30.0]
#: Measured: 10.4 eps (the exact evaluators fitted: 12.4 eps), see the table's docstring.
BOUND = 40 * EPS64


@pytest.fixture(scope="module")
def exact() -> torch.Tensor:
    return torch.tensor([float(reference.circle_kl_to_uniform(t)) for t in TIMES], dtype=F64)


def _relative_error(values: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return (values.double() - exact).abs() / exact


def test_table_against_mpmath(exact):
    time = torch.tensor(TIMES, dtype=F64)
    error = _relative_error(circle_kl_to_uniform_table(time), exact)
    worst = int(error.argmax())
    assert error.max() <= BOUND, f"{error.max() / EPS64:.1f} eps at t = {TIMES[worst]}"


def test_table_float32_against_mpmath(exact):
    time = torch.tensor(TIMES)
    error = _relative_error(circle_kl_to_uniform_table(time), exact)
    assert error.max() <= 8 * EPS32, f"{error.max() / EPS32:.1f} eps32"


@pytest.mark.parametrize("time", [0.1, 1.0, 7.0])
def test_a_perturbed_coefficient_is_caught(monkeypatch, exact, time):
    """One coefficient of the panel holding ``time`` off by 1e-12 relative: the bound fails."""
    table = _circle_kl._kl_table(F64, torch.device("cpu"))
    panel = int((math.log(time) - KL_TABLE.log_start) / KL_TABLE.width)
    coefficients = table.coefficients.clone()
    coefficients[panel, 0, 0] *= 1 + 1e-12
    perturbed = table._replace(coefficients=coefficients)
    monkeypatch.setattr(_circle_kl, "_kl_table", lambda dtype, device: perturbed)
    value = circle_kl_to_uniform_table(torch.tensor([time], dtype=F64))
    expected = exact[TIMES.index(time)]
    assert _relative_error(value, expected).item() > BOUND


def test_table_is_continuous_across_panels():
    """Both sides of every panel edge agree (the panels interpolate one analytic function)."""
    edges = KL_TABLE.log_start + KL_TABLE.width * torch.arange(1, KL_TABLE.segments, dtype=F64)
    step = 1e-12  # in log t, either side of the edge
    below = circle_kl_to_uniform_table(torch.exp(edges - step))
    above = circle_kl_to_uniform_table(torch.exp(edges + step))
    kl, slope = _circle_kl._kl_and_slope(torch.exp(edges))
    sensitivity = (torch.exp(edges) * slope / kl).abs()  # |d log KL / d log t|, up to 40
    moved = 2 * step * sensitivity  # what the function itself moves between the two times
    allowed = 20 * EPS64 * sensitivity.clamp(min=1.0)  # and the rounding of the times
    assert ((below - above).abs() / above - moved <= allowed).all()


def test_slope_and_second_derivative():
    time = torch.tensor([0.03, 0.07, 0.5, 2.0, 2.6, 9.0, 25.0], dtype=F64, requires_grad=True)
    assert gradcheck(circle_kl_to_uniform_table, (time,))
    assert gradgradcheck(circle_kl_to_uniform_table, (time,))
    # the derivative computed forward matches plain autograd through the same operations
    (slope,) = torch.autograd.grad(circle_kl_to_uniform_table(time).sum(), time)
    (plain,) = torch.autograd.grad(_circle_kl._kl_and_slope(time)[0].sum(), time)
    torch.testing.assert_close(slope, plain, rtol=1e-13, atol=0)


def test_functorch_transforms():
    time = torch.tensor([[0.03, 0.5], [2.0, 9.0]], dtype=F64)
    expected = circle_kl_to_uniform_table(time)
    assert torch.equal(torch.vmap(circle_kl_to_uniform_table)(time), expected)
    grads = torch.vmap(torch.func.grad(lambda t: circle_kl_to_uniform_table(t).sum()))(time)
    slope = _circle_kl._kl_and_slope(time)[1]
    torch.testing.assert_close(grads, slope, rtol=1e-14, atol=0)
    _, tangent = torch.func.jvp(circle_kl_to_uniform_table, (time,), (torch.ones_like(time),))
    torch.testing.assert_close(tangent, slope, rtol=1e-14, atol=0)


def test_extreme_and_invalid_times():
    time = torch.tensor([1e-300, 1e-8, 300.0, 1e4, math.inf, math.nan], dtype=F64)
    kl = circle_kl_to_uniform_table(time.requires_grad_())
    gaussian = [
        math.log(2 * math.pi) - 0.5 * math.log(4 * math.pi * math.e * t) for t in (1e-300, 1e-8)
    ]
    torch.testing.assert_close(kl[:2], torch.tensor(gaussian, dtype=F64), rtol=1e-15, atol=0)
    assert kl[2].item() == pytest.approx(math.exp(-600.0), rel=1e-14)
    assert kl[3].item() == 0.0 and kl[4].item() == 0.0
    assert math.isnan(kl[5].item())
    (grad,) = torch.autograd.grad(kl[:5].sum(), time)
    assert torch.isfinite(grad[:5]).all()
