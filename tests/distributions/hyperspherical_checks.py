"""Shared checks of the hyperspherical families: points at a given angle, the radial density,
normalisation by quadrature and goodness of fit of the radial part of samples."""

from __future__ import annotations

import itertools
import math

import pyro.distributions.testing.gof as gof
import pytest
import torch

from distributions._hyperspherical import log_sphere_volume
from distributions._quadrature import gauss_legendre

F64 = torch.float64
TEST_FAILURE_RATE = 1e-3


@pytest.fixture(autouse=True)
def exact_chi2sf(monkeypatch):
    """Pyro's chi2sf is wrong for large statistics (see ``test_gof.py``): patch in the exact one.

    Import this fixture into a test module to use it there.
    """
    from tests.distributions.test_gof import _chi2sf

    monkeypatch.setattr(gof, "chi2sf", _chi2sf)


def north(d: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """The unit vector e_{d+1} of R^{d+1}."""
    mu = torch.zeros(d + 1, dtype=dtype)
    mu[-1] = 1.0
    return mu


def at_angle(theta: torch.Tensor, d: int) -> torch.Tensor:
    """Points at polar angles ``theta`` from :func:`north`, in the plane of e_1 (..., d + 1)."""
    x = torch.zeros((*theta.shape, d + 1), dtype=theta.dtype)
    x[..., 0] = torch.sin(theta)
    x[..., -1] = torch.cos(theta)
    return x


def total_mass(dist, d: int, nodes: int = 24, levels: int = 40) -> float:
    r""":math:`\int_{S^d} p = |S^{d-1}|\int_0^\pi \sin^{d-1}\theta\, p(\theta)\, d\theta` by
    Gauss-Legendre on panels graded geometrically towards :math:`\theta = 0`."""
    x, w = gauss_legendre(nodes, F64, torch.device("cpu"))
    edges = [math.pi * 2.0**-j for j in range(levels, -1, -1)]
    panels = [(0.0, edges[0]), *itertools.pairwise(edges)]
    total = 0.0
    for a, b in panels:
        theta = 0.5 * (b - a) * (x + 1.0) + a
        log_p = dist.log_prob(at_angle(theta, d).to(dist.loc.dtype)).double()
        log_sin = (d - 1) * torch.log(torch.sin(theta))
        total += 0.5 * (b - a) * (w * torch.exp(log_p + log_sin)).sum().item()
    return total * math.exp(log_sphere_volume(d - 1))  # |S^0| = 2


def radial_gof(dist, samples: torch.Tensor) -> float:
    r"""Goodness of fit of :math:`y = 1 - \mu\cdot x` of ``samples`` against its exact density
    :math:`q(y) = |S^{d-1}|\,(y(2-y))^{(d-2)/2}\,p(x)` (Pyro's 1-D spacing test)."""
    d = samples.shape[-1] - 1
    y = 0.5 * ((samples - dist.loc) ** 2).sum(-1)
    log_q = (
        dist.log_prob(samples).double()
        + log_sphere_volume(d - 1)
        + 0.5 * (d - 2) * torch.log(y.double() * (2.0 - y.double()))
    )
    return gof.auto_goodness_of_fit(y.double(), log_q.exp())


def assert_mean_within(values: torch.Tensor, expected: float, z: float = 5.0) -> None:
    """The mean of the i.i.d. ``values`` is within ``z`` standard errors of ``expected``."""
    mean, se = values.mean().item(), values.std().item() / math.sqrt(values.numel())
    assert abs(mean - expected) <= z * se, (mean, expected, se)
