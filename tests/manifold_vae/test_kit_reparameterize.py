"""The conformance kit's ``reparameterize`` check (issue 18): agreement with ``rsample`` within
a stated rounding tolerance, the largest difference printed; a correct implementation that
wraps with ``torch.remainder`` passes, a wrong one fails naming the difference."""

from __future__ import annotations

import math

import pytest
import torch

from distributions.angles import wrap_angle
from manifold_vae.manifolds import Circle
from manifold_vae.testing import REPARAMETERIZE_TOL, manifold_checks


class RemainderCircle(Circle):
    """A user's circle whose exact reparameterisation wraps with ``torch.remainder``."""

    def reparameterize(self, posterior, noise):
        z = posterior.loc + torch.sqrt(2.0 * posterior.time) * noise
        return torch.remainder(z + math.pi, 2 * math.pi) - math.pi


class WrongTimeCircle(Circle):
    """The thesis's Eq. 7.10 slip: standard deviation ``t`` instead of ``sqrt(2 t)``."""

    def reparameterize(self, posterior, noise):
        return wrap_angle(posterior.loc + posterior.time * noise)


def test_the_remainder_wrapping_differs_from_wrap_angle_by_rounding_only():
    """The premise: remainder and wrap_angle differ by a few ulp (not bitwise equal)."""
    x = torch.linspace(-20, 20, 10001, dtype=torch.float64)
    difference = (torch.remainder(x + math.pi, 2 * math.pi) - math.pi - wrap_angle(x)).abs()
    assert 0 < difference.max().item() < 1e-14


def test_a_remainder_implementation_passes_and_reports_its_difference():
    """Before issue 18 the check demanded bit equality and failed this correct manifold."""
    message = manifold_checks(RemainderCircle(), seed=0)["reparameterize"]()
    assert "largest" in message and "difference" in message


def test_a_wrong_implementation_fails_with_the_largest_difference():
    with pytest.raises(AssertionError, match=r"largest difference [0-9.e+-]+ in coordinates"):
        manifold_checks(WrongTimeCircle(), seed=0)["reparameterize"]()


def test_the_tolerance_is_a_rounding_tolerance():
    assert 1e-15 < REPARAMETERIZE_TOL <= 1e-12
