"""The contract shared by the von Mises-Fisher and Power Spherical families on S^d: log_prob and
KL against mpmath in both dtypes, float32 KL at concentration 1e8, finiteness at extreme
parameters, gradcheck, normalisation and goodness of fit of the samples."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch.distributions import kl_divergence

from distributions import HypersphereUniform, PowerSpherical, VonMisesFisher
from tests.distributions import spherical_reference as ref
from tests.distributions.hyperspherical_checks import (
    F64,
    TEST_FAILURE_RATE,
    exact_chi2sf,  # noqa: F401 (autouse fixture)
    north,
    radial_gof,
    total_mass,
)

DIMS = [1, 2, 3, 9, 64]
KAPPAS = [1e-8, 1e-3, 0.3, 3.0, 30.0, 300.0, 3e3, 1e5, 1e8]
#: 1 - mu.x at the test points: the location, near it, the equator, near the antipode.
YS = [0.0, 1e-10, 1e-4, 0.01, 0.5, 1.0, 1.9, 2.0]


@dataclass
class Family:
    cls: type
    log_prob: object  # mpmath reference (chordal_sq, kappa, d)
    kl: object  # mpmath reference (kappa, d)
    switches: tuple[float, ...]  # concentrations at regime switches of the implementation


FAMILIES = [
    Family(VonMisesFisher, ref.vmf_log_prob, ref.vmf_kl, (0.99, 1.01, 29.9, 30.1, 990, 1e3)),
    Family(
        PowerSpherical, ref.power_spherical_log_prob, ref.power_spherical_kl, (1.99, 2.01, 99, 101)
    ),
]
families = pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.cls.__name__)
dtypes = pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float32], ids=["float64", "float32"]
)


def points(d: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The north pole and points at ``1 - mu.x`` in :data:`YS`."""
    y = torch.tensor(YS, dtype=F64)
    x = torch.zeros((len(YS), d + 1), dtype=F64)
    x[:, 0] = torch.sqrt(y * (2 - y))
    x[:, -1] = 1 - y
    return north(d, dtype), x.to(dtype)


@families
@dtypes
def test_log_prob_and_kl_against_mpmath(family, dtype):
    """Worst errors (measured), log_prob relative to max(1, |log p|), KL relative:
    vMF float64 2.6e-15 / 2.2e-13, float32 1.3e-6 / 5.1e-8; Power Spherical float64
    9.1e-15 / 1.4e-13, float32 5.7e-7 / 4.8e-8."""
    tol_lp, tol_kl = (1e-13, 1e-12) if dtype == F64 else (5e-6, 2e-7)
    for d in DIMS:
        mu, x = points(d, dtype)
        chordal = ((x.double() - mu.double()) ** 2).sum(-1).tolist()
        uniform = HypersphereUniform(d, dtype=dtype)
        for kappa in KAPPAS + list(family.switches):
            p = family.cls(mu, torch.tensor(kappa, dtype=dtype), validate_args=True)
            k = float(p.concentration)
            for got, c in zip(p.log_prob(x).tolist(), chordal, strict=True):
                if c == 4.0 and family.cls is PowerSpherical:  # the antipode: density 0
                    assert got == -math.inf
                    continue
                exact = float(family.log_prob(c, k, d))
                assert abs(got - exact) <= tol_lp * max(1.0, abs(exact)), (d, kappa, c)
            kl = kl_divergence(p, uniform)
            assert kl.dtype == dtype
            exact = float(family.kl(k, d))
            assert abs(kl.item() - exact) <= tol_kl * exact, (d, kappa, kl.item(), exact)
            entropy = float(ref.log_sphere_volume(d)) - exact
            assert abs(p.entropy().item() - entropy) <= tol_kl * max(1.0, abs(entropy))


@families
@pytest.mark.parametrize("d", DIMS)
def test_float32_kl_at_concentration_1e8(family, d):
    """Measured: at most 4e-8 relative (the acceptance asks 1e-6)."""
    p = family.cls(north(d, torch.float32), torch.tensor(1e8))
    kl = kl_divergence(p, HypersphereUniform(d))
    exact = float(family.kl(1e8, d))
    assert abs(kl.item() - exact) <= 1e-6 * exact


@families
@dtypes
@pytest.mark.parametrize("d", DIMS)
def test_finite_at_extreme_parameters(family, d, dtype):
    kappa = torch.tensor([1e-8, 1e-4, 1.0, 1e4, 1e8], dtype=dtype, requires_grad=True)
    loc = north(d, dtype).expand(5, d + 1).clone().requires_grad_(True)
    p = family.cls(loc, kappa, validate_args=True)
    x = p.rsample((3,))
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(3, 5, dtype=dtype))
    kl = kl_divergence(p, HypersphereUniform(d, dtype=dtype))
    total = p.log_prob(x).sum() + kl.sum() + p.entropy().sum() + p.mean.sum()
    grads = torch.autograd.grad(total, (kappa, loc))
    for t in (x, p.log_prob(x), kl, p.entropy(), p.mean, p.variance, *grads):
        assert torch.isfinite(t).all()
    assert (kl >= 0).all()


@families
def test_kl_increases_with_concentration(family):
    kappa = torch.logspace(-8, 8, 200, dtype=torch.float32)
    for d in DIMS:
        kl = kl_divergence(family.cls(north(d, torch.float32), kappa), HypersphereUniform(d))
        assert (kl >= 0).all() and (kl.diff() >= 0).all()


@families
@pytest.mark.parametrize("kappa", [0.5, 5.0, 40.0, 500.0])
def test_gradcheck(family, kappa):
    torch.manual_seed(0)
    d = 4
    loc = torch.nn.functional.normalize(torch.tensor([0.3, -0.2, 0.5, 0.1, 0.7], dtype=F64), dim=0)
    x = torch.nn.functional.normalize(torch.randn(6, d + 1, dtype=F64), dim=-1)
    k = torch.tensor(kappa, dtype=F64, requires_grad=True)
    loc = loc.requires_grad_(True)
    uniform = HypersphereUniform(d, dtype=F64)

    def f(loc, k):
        p = family.cls(loc, k, validate_args=False)  # finite differences leave the sphere
        return p.log_prob(x), kl_divergence(p, uniform), p.mean, p.variance

    def kl(k):
        return kl_divergence(family.cls(loc, k, validate_args=False), uniform)

    assert torch.autograd.gradcheck(f, (loc, k))
    assert torch.autograd.gradgradcheck(kl, (k,))


@families
@pytest.mark.parametrize(
    ("d", "kappa"), [(1, 0.5), (1, 3e3), (2, 1e-8), (3, 4.0), (9, 1e5), (64, 30.0), (64, 1e8)]
)
def test_normalised(family, d, kappa):
    p = family.cls(north(d), torch.tensor(kappa, dtype=F64))
    assert total_mass(p, d) == pytest.approx(1.0, abs=1e-10)


@families
@pytest.mark.parametrize(("d", "kappa"), [(1, 2.0), (2, 0.1), (3, 30.0), (9, 5.0), (64, 1e6)])
def test_rsample_fits_log_prob(family, d, kappa):
    torch.manual_seed(0)
    p = family.cls(north(d), torch.tensor(kappa, dtype=F64), validate_args=True)
    assert radial_gof(p, p.rsample((20_000,))) > TEST_FAILURE_RATE


@families
def test_a_wrong_sampler_fails_goodness_of_fit(family):
    """The gof test has power: samples with kappa' = 1.5 kappa are rejected."""
    torch.manual_seed(0)
    p = family.cls(north(3), torch.tensor(10.0, dtype=F64))
    wrong = family.cls(north(3), torch.tensor(15.0, dtype=F64)).rsample((20_000,))
    assert radial_gof(p, wrong) < 1e-6


@families
def test_moments_of_samples(family):
    torch.manual_seed(4)
    for d, kappa in [(1, 1.0), (9, 20.0), (64, 1e8)]:
        p = family.cls(north(d), torch.tensor(kappa, dtype=F64))
        x = p.rsample((20_000,))
        w = x @ north(d)
        se = w.std().item() / math.sqrt(w.numel())
        assert abs(w.mean().item() - p.mean_resultant_length.item()) <= 5 * se + 1e-15
        var = x.var(0)
        se_var = var * math.sqrt(2.0 / (w.numel() - 1))  # Gaussian approximation, loose
        assert ((var - p.variance).abs() <= 6 * se_var + 1e-15).all()


@families
def test_validation_and_shapes(family):
    with pytest.raises(ValueError, match="loc"):
        family.cls(torch.tensor([1.0]), 1.0)
    with pytest.raises(ValueError, match="concentration"):
        family.cls(north(2), torch.tensor(-1.0), validate_args=True)
    with pytest.raises(ValueError, match="loc"):
        family.cls(north(2) * 2, torch.tensor(1.0), validate_args=True)
    p = family.cls(north(3), torch.tensor([1.0, 2.0], dtype=F64))
    assert p.batch_shape == (2,) and p.event_shape == (4,)
    assert p.rsample((5,)).shape == (5, 2, 4)
    assert p.expand((3, 2)).log_prob(north(3)).shape == (3, 2)
    with pytest.raises(ValueError, match="different dimension"):
        kl_divergence(p, HypersphereUniform(2, dtype=F64))
