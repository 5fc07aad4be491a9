"""The approximate heat kernel: labelled as approximate, its errors as documented, validation."""

from __future__ import annotations

import math

import pytest
import torch

from distributions import CircleHeatKernel, SphereHeatKernel
from manifold_vae.manifolds import Circle, Euclidean, Product, Sphere
from manifold_vae.manifolds.approximate import ApproximateHeatKernel, approximate_heat_kernel

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NORTH = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
EAST = torch.tensor([1.0, 0.0], dtype=torch.float64)


def test_it_says_it_is_approximate():
    kernel = approximate_heat_kernel(Sphere(), NORTH, 0.3, steps=8)
    assert isinstance(kernel, ApproximateHeatKernel)
    assert "Approximate" in repr(kernel) and "not exact" in repr(kernel)
    assert not isinstance(Sphere().heat_kernel(NORTH, 0.3).base, ApproximateHeatKernel)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"steps": 2.0}, "steps must be a positive integer"),
        ({"time": 0.0}, "time must be positive"),
        ({"time": float("nan")}, "time must be positive"),
        ({"point": torch.zeros(2)}, r"point must have shape \(\.\.\., 3\)"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    args = {"point": NORTH, "time": 0.5, "steps": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        approximate_heat_kernel(Sphere(), args["point"], args["time"], steps=args["steps"])


def test_shapes_support_and_gradients():
    time = torch.tensor([0.1, 0.5], dtype=torch.float64, requires_grad=True)
    kernel = approximate_heat_kernel(Sphere(), NORTH, time, steps=8)
    assert kernel.batch_shape == (2,) and kernel.event_shape == (3,)
    torch.manual_seed(0)
    x = kernel.rsample(torch.Size([100]))
    assert x.shape == (100, 2, 3) and Sphere().point_support().check(x).all()
    assert torch.isfinite(kernel.log_prob(x)).all() and kernel.log_prob(x).shape == (100, 2)
    (grad,) = torch.autograd.grad(x[..., 2].mean(), time)
    assert torch.isfinite(grad).all() and (grad < 0).all()  # more time, farther from the pole
    assert kernel.expand(torch.Size([4, 2])).sample().shape == (4, 2, 3)


@pytest.mark.parametrize("time", [0.1, 1.0])
def test_the_walk_on_the_circle_is_exact_in_law(time):
    """Geodesic steps on S^1 add up exactly: E cos(theta) = exp(-t) for any number of steps."""
    torch.manual_seed(1)
    x = approximate_heat_kernel(Circle(), EAST, time, steps=4).sample(torch.Size([100000]))
    se = math.sqrt((0.5 * (1 + math.exp(-4 * time)) - math.exp(-2 * time)) / 100000)
    assert abs(x[:, 0].mean().item() - math.exp(-time)) < 5 * se


def test_the_walk_on_the_sphere_has_the_documented_step_bias():
    """E<x, x0> = exp(-2t): 4 steps at t = 1 are biased by about -0.027, 64 steps by -0.001."""
    expected = math.exp(-2.0)
    se = math.sqrt(((1 + 2 * math.exp(-6.0)) / 3 - math.exp(-4.0)) / 100000)
    biases = {}
    for steps in (4, 64):
        torch.manual_seed(2)
        x = approximate_heat_kernel(Sphere(), NORTH, 1.0, steps=steps).sample((100000,))
        biases[steps] = x[:, 2].mean().item() - expected
    assert -0.035 < biases[4] < -0.02 and abs(biases[4]) > 10 * se
    assert abs(biases[64]) < 0.001 + 5 * se


def test_the_walk_on_a_product_diffuses_every_factor():
    m = Product(Circle(), Euclidean(1))
    torch.manual_seed(3)
    x = approximate_heat_kernel(m, torch.tensor([1.0, 0.0, 0.5]).double(), 0.4, steps=4)
    y = x.sample(torch.Size([50000]))
    assert abs(y[:, 2].var().item() / 0.8 - 1) < 5 * math.sqrt(2 / 50000)  # variance 2t
    assert abs(y[:, 0].mean().item() - math.exp(-0.4)) < 0.01


@pytest.mark.parametrize(
    ("time", "near", "anywhere"),
    [(0.01, 1e-12, 0.4), (0.1, 1e-12, 0.5), (0.5, 1e-4, 0.5), (1.0, 1e-2, 0.5)],
)
def test_varadhan_on_the_circle_has_the_documented_error(time, near, anywhere):
    """Relative error: tiny within pi/2 of the location at small t; up to 1/2 at the antipode
    (where the omitted image of the point contributes as much as the point itself)."""
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)[:-1]
    approx = approximate_heat_kernel(Circle(), EAST, time).log_prob(
        Circle().to_point(theta[:, None])
    )
    exact = CircleHeatKernel(torch.tensor(0.0).double(), torch.tensor(time).double())
    error = (approx.exp() / exact.log_prob(theta).exp() - 1).abs()
    assert error[theta <= math.pi / 2].max() < near
    assert 0.3 < error.max() < anywhere + 0.01


@pytest.mark.parametrize(
    ("time", "within_half", "within_quarter_turn"),
    [(0.01, 0.024, 0.21), (0.1, 0.053, 0.23), (0.5, 0.17, 0.34), (1.0, 0.31, 0.46)],
)
def test_varadhan_on_the_sphere_has_the_documented_error(time, within_half, within_quarter_turn):
    """The table of docs/manifolds.md: the missing van Vleck factor, against the exact kernel."""
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)[:-1]
    points = torch.stack([torch.sin(theta), torch.zeros_like(theta), torch.cos(theta)], -1)
    approx = approximate_heat_kernel(Sphere(), NORTH, time).log_prob(points)
    exact = SphereHeatKernel(NORTH, torch.tensor(time, dtype=torch.float64)).log_prob(points)
    error = ((approx - exact).exp() - 1).abs()
    assert error[theta <= 0.5].max().item() == pytest.approx(within_half, rel=0.05)
    assert error[theta <= math.pi / 2].max().item() == pytest.approx(within_quarter_turn, rel=0.05)
    assert (approx < exact).all()  # too small everywhere: no van Vleck factor
