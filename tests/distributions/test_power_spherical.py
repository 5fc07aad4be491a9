"""The Power Spherical distribution on S^d: its exact reparameterised sampler (the contract
shared with the von Mises-Fisher family is in ``test_hyperspherical.py``)."""

from __future__ import annotations

import pytest
import torch

from distributions import PowerSpherical
from tests.distributions.hyperspherical_checks import (
    F64,
    assert_mean_within,
    north,
)


@pytest.mark.parametrize("d", [3, 5, 10])
@pytest.mark.parametrize("kappa", [0.5, 50.0])
def test_pathwise_gradient_of_the_mean(d, kappa):
    r""":math:`dE[\mu\cdot x]/d\kappa = d/(\kappa + d)^2` within 5 standard errors."""
    torch.manual_seed(3)
    n = 20_000
    k = torch.full((n,), kappa, dtype=F64, requires_grad=True)
    x = PowerSpherical(north(d), k).rsample()
    (dk,) = torch.autograd.grad((x @ north(d)).sum(), k)
    expected = d / (kappa + d) ** 2
    assert_mean_within(dk, expected)
