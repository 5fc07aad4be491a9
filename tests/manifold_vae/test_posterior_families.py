"""Posterior families on the circle and spheres (issue 16): the von Mises as angles, the choice."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.distributions import VonMises, kl_divergence

from distributions import PowerSpherical, TorusHeatKernel, TorusUniform, VonMisesFisher
from distributions.angles import wrap_angle
from manifold_vae.ensemble import fit_ensemble
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import (
    AngleVonMises,
    Circle,
    Hypersphere,
    Sphere,
    manifold_from_spec,
)
from manifold_vae.manifolds.families import MAX_CONCENTRATION, concentration
from manifold_vae.testing import check_distribution, check_manifold
from manifold_vae.training import fit
from manifold_vae.vae import VAE

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

KAPPAS = [1e-6, 0.3, 3.0, 300.0]


def angle_von_mises(dtype: torch.dtype) -> AngleVonMises:
    loc = torch.tensor([[0.5], [-3.0], [3.1], [0.0]], dtype=dtype)
    return AngleVonMises(loc, torch.tensor(KAPPAS, dtype=dtype).unsqueeze(-1), validate_args=True)


# --- the von Mises on angles --------------------------------------------------------------------
def test_angle_von_mises_passes_the_distribution_kit(one_thread):
    check_distribution(
        angle_von_mises,
        lambda dtype: TorusUniform(1, dtype=dtype),
        bad_params=[
            lambda dtype, v: AngleVonMises(torch.zeros(1, dtype=dtype), -1.0, validate_args=v),
            lambda dtype, v: AngleVonMises(
                torch.full((1,), math.nan, dtype=dtype), 1.0, validate_args=v
            ),
        ],
        bad_values=lambda dtype: [torch.full((4, 1), 4.0, dtype=dtype)],
        extreme=[
            lambda dtype: AngleVonMises(
                torch.zeros(2, 1, dtype=dtype), torch.tensor([[1e-8], [1e8]]).to(dtype)
            ),
        ],
        samples=2000,
    )


def test_log_prob_is_torch_von_mises_at_moderate_concentration():
    q = angle_von_mises(torch.float64)
    theta = torch.linspace(-math.pi, math.pi - 1e-9, 101, dtype=torch.float64).reshape(-1, 1, 1)
    reference = VonMises(q.loc[..., 0], q.concentration[..., 0]).log_prob(theta[..., 0])
    # torch's log I_0 is a polynomial approximation (about 1e-7 relative)
    assert torch.allclose(q.log_prob(theta.expand(-1, 4, 1)), reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kappa", [1e-8, 1.0, 1e4, 1e8])
def test_normalised_and_kl_equal_to_the_vmf_on_the_circle(kappa, dtype):
    loc = torch.tensor([[1.0]], dtype=dtype)
    q = AngleVonMises(loc, torch.tensor([[kappa]], dtype=dtype))
    theta = torch.tensor([[[0.7]], [[1.0 + 1e-3]], [[-2.0]]], dtype=dtype)
    # reference: the vMF density on S^1 at the embedded angle, in float64 at the same inputs
    loc64, theta64 = loc.double(), theta.double()
    unit = torch.stack([loc64.cos(), loc64.sin()], -1)
    vmf = VonMisesFisher(unit, torch.tensor([[kappa]], dtype=torch.float64))
    expected = vmf.log_prob(torch.stack([theta64.cos(), theta64.sin()], -1)).squeeze(-1)
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    error = (q.log_prob(theta).double() - expected).abs() / expected.abs().clamp(min=1.0)
    assert float(error.max()) < tol
    kl = kl_divergence(q, TorusUniform(1, dtype=dtype).expand((1,)))
    assert torch.equal(kl, q.kl_to_uniform()) and bool((kl >= 0).all())
    if dtype == torch.float64:  # normalisation by the trapezoid rule on a fine grid near loc
        width = min(math.pi, 40.0 / math.sqrt(kappa))
        grid = 1.0 + torch.linspace(-width, width, 200001, dtype=dtype)
        density = q.log_prob(wrap_angle(grid).reshape(-1, 1, 1)).exp().squeeze(-1)
        assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, rel=1e-6)


def test_rsample_gradients_are_finite_at_extreme_concentrations():
    for dtype in (torch.float32, torch.float64):
        kappa = torch.tensor([[1e-8], [1.0], [1e8]], dtype=dtype, requires_grad=True)
        loc = torch.zeros(3, 1, dtype=dtype, requires_grad=True)
        z = AngleVonMises(loc, kappa).rsample((16,))
        (gk, gl) = torch.autograd.grad(z.sin().sum(), [kappa, loc])
        assert bool(torch.isfinite(gk).all() & torch.isfinite(gl).all())


# --- the family choice on manifolds ------------------------------------------------------------
def test_circle_spec_is_unchanged_and_stores_the_family():
    assert Circle().spec() == {"name": "circle", "kwargs": {}}
    vm = Circle(family="von-mises")
    assert vm.spec() == {"name": "circle", "kwargs": {"family": "von-mises"}}
    assert manifold_from_spec(json.loads(json.dumps(vm.spec()))) == vm != Circle()
    assert repr(vm) == "Circle(family='von-mises')"


def test_circle_families_and_reparameterisation():
    raw = torch.randn(5, 3)
    assert isinstance(Circle().posterior(raw), TorusHeatKernel) and Circle().reparameterizable
    vm = Circle(family="von-mises")
    assert isinstance(vm.posterior(raw), AngleVonMises) and not vm.reparameterizable
    with pytest.raises(NotImplementedError, match="reparameterize"):
        vm.reparameterize(vm.posterior(raw), torch.randn(2, 5, 1))
    with pytest.raises(ValueError, match="family of Circle must be one of"):
        Circle(family="vmf")


@pytest.mark.parametrize(
    ("manifold", "cls"),
    [
        (Sphere(family="vmf"), VonMisesFisher),
        (Hypersphere(5, family="power-spherical"), PowerSpherical),
    ],
    ids=repr,
)
def test_sphere_families_build_their_distribution(manifold, cls):
    q = manifold.posterior(torch.randn(3, manifold.posterior_params))
    assert type(q) is cls and q.event_shape == (manifold.dim,)
    kl = kl_divergence(q, manifold.prior().expand((3,)))
    assert kl.shape == (3,) and bool((kl >= 0).all())


def test_concentration_is_capped_smoothly():
    raw = torch.tensor([-1e30, 0.0, 1e3, 1e8, 1e30], requires_grad=True)
    kappa = concentration(raw)
    assert bool(((kappa > 0) & (kappa <= MAX_CONCENTRATION)).all())
    assert float(kappa[2].detach()) == pytest.approx(1e3, rel=1e-4)
    (grad,) = torch.autograd.grad(kappa.sum(), raw)
    assert bool((grad[1:4] > 0).all())


@pytest.mark.parametrize(
    "manifold",
    [Circle(family="von-mises"), Sphere(family="vmf"), Hypersphere(2, family="power-spherical")],
    ids=repr,
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_raw_outputs_give_no_nan(manifold, dtype):
    raw = torch.tensor([-1e30, -30.0, 0.0, 30.0, 1e8, 1e30], dtype=dtype)
    raw = raw.unsqueeze(-1).expand(6, manifold.posterior_params).clone().requires_grad_(True)
    q = manifold.posterior(raw)
    z = q.rsample((4,))
    kl = kl_divergence(q, manifold.prior(dtype=dtype).expand((6,)))
    spread = manifold.posterior_spread(q)
    (grad,) = torch.autograd.grad(q.log_prob(z).sum() + kl.sum() + z.sum(), raw)
    for value in (z, q.log_prob(z), kl, spread, grad):
        assert bool(torch.isfinite(value).all())
    assert bool((spread > 0).all() & (kl >= 0).all())


def test_circle_von_mises_passes_the_conformance_kit(one_thread):
    check_manifold(Circle(family="von-mises"), samples=1000)


def test_von_mises_vae_trains_and_ensembles_train_member_by_member(one_thread):
    data = torch.randn(32, 5, generator=torch.Generator().manual_seed(0))
    vae = VAE(Circle(family="von-mises"), (5,), Gaussian(0.5), seed=0)
    history = fit(vae, data, epochs=2, batch_size=16, progress=False)
    assert all(math.isfinite(v) for v in history.loss)
    histories = fit_ensemble(
        [VAE(Circle(family="von-mises"), (5,), Gaussian(0.5), seed=s) for s in (1, 2)],
        data,
        epochs=1,
        batch_size=16,
        progress=False,
    )
    assert len(histories) == 2 and all(math.isfinite(h.loss[-1]) for h in histories)
