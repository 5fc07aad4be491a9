"""The von Mises-Fisher distribution on S^d: the Bessel normaliser against mpmath and the
implicit reparameterisation of its exact sampler (the contract shared with the Power Spherical
family is in ``test_hyperspherical.py``)."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch

from distributions import VonMisesFisher
from distributions._bessel import bessel_parts, switch_point
from distributions._vmf_sampling import radial_slope, sample_radial
from tests.distributions import spherical_reference as ref
from tests.distributions.hyperspherical_checks import (
    F64,
    assert_mean_within,
)


@pytest.mark.parametrize("d", [1, 2, 3, 9, 64, 128])
def test_bessel_parts_against_mpmath(d):
    """g, g - kappa, A and 1 - A to 5e-12 relative (d <= 64), one kappa per call and batched."""
    nu = (d - 1) / 2
    grid = [1e-8, 1e-3, 0.5, 7.0, 29.9, 30.1, switch_point(nu) * 0.9, switch_point(nu) * 1.1]
    grid += [1e4, 1e8]
    tol = 5e-12 if d <= 64 else 5e-11
    batched = bessel_parts(nu, torch.tensor(grid, dtype=F64))
    with mp.workdps(40):
        for i, kappa in enumerate(grid):
            single = bessel_parts(nu, torch.tensor([kappa], dtype=F64))
            k = mp.mpf(kappa)
            g = ref._log_hyp(k, d)
            a = ref.vmf_mean(k, d)
            for parts, j in ((batched, i), (single, 0)):
                got = [parts.log_hyp[j], parts.log_hyp_minus_kappa[j], parts.ratio[j]]
                want = [g, g - k, a]
                got.append(parts.ratio_complement[j])
                want.append(1 - a)
                for value, exact in zip(got, want, strict=True):
                    assert abs(value.item() - exact) <= tol * abs(exact), (kappa, value, exact)


@pytest.mark.parametrize("d", [1, 3, 64])
def test_radial_slope_against_mpmath(d):
    """dw/dkappa of the implicit reparameterisation, against mpmath quadrature, to 1e-11."""
    torch.manual_seed(0)
    for kappa in [1e-3, 3.0, 1e4, 1e8]:
        k = torch.full((4,), kappa, dtype=F64)
        y = sample_radial(k, d)
        a = bessel_parts((d - 1) / 2, k).ratio_complement
        slope = radial_slope(y, k, a, d)
        for yi, si in zip(y.tolist(), slope.tolist(), strict=True):
            exact = _slope_reference(yi, kappa, d)
            assert abs(si - exact) <= 1e-11 * exact, (kappa, yi)


def _slope_reference(y: float, kappa: float, d: int) -> float:
    """dw/dkappa by mpmath quadrature of the tail of (s - A) f(s) on the side away from A."""
    with mp.workdps(30):
        m, k, yy = mp.mpf(d - 2) / 2, mp.mpf(kappa), mp.mpf(y)
        a = 1 - ref.vmf_mean(k, d)

        def integrand(e):
            return abs(a - e) * mp.exp(-k * (e - yy) + m * mp.log(e * (2 - e) / (yy * (2 - yy))))

        if yy <= a:
            return float(mp.quad(integrand, [0, yy]))
        cuts = [yy] + [yy + j / k for j in (1, 10, 100) if yy + j / k < 2] + [2]
        return float(mp.quad(integrand, cuts))


def _mean_derivative(kappa: float, d: int) -> float:
    """dA/dkappa = 1 - A^2 - d A / kappa (from I'_nu = I_{nu+1} + nu I_nu / kappa), in mpmath."""
    with mp.workdps(40):
        a = ref.vmf_mean(kappa, d)
        return float(1 - a * a - d * a / mp.mpf(kappa))


@pytest.mark.parametrize("d", [3, 5, 10])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0])
def test_implicit_gradient_of_the_mean_is_unbiased(d, kappa):
    r"""Per-sample :math:`d(\mu\cdot x)/d\kappa` averages to :math:`A'_d(\kappa)` within 5
    standard errors, and :math:`\nabla_\mu E[c\cdot x] = A(I - \mu\mu^T)c`."""
    torch.manual_seed(3)
    n = 10_000
    mu = torch.nn.functional.normalize(torch.arange(1.0, d + 2, dtype=F64), dim=0)
    loc = mu.expand(n, d + 1).clone().requires_grad_(True)
    k = torch.full((n,), kappa, dtype=F64, requires_grad=True)
    x = VonMisesFisher(loc, k).rsample()
    c = torch.linspace(-1.0, 1.0, d + 1, dtype=F64)
    (dk,) = torch.autograd.grad((x @ mu).sum(), k, retain_graph=True)
    (dloc,) = torch.autograd.grad((x @ c).sum(), loc)
    expected = _mean_derivative(kappa, d)
    assert_mean_within(dk, expected)
    a = float(ref.vmf_mean(kappa, d))
    expected_loc = a * (c - (c @ mu) * mu)
    se = dloc.std(0) / math.sqrt(n)
    assert ((dloc.mean(0) - expected_loc).abs() <= 5 * se + 1e-12).all()
