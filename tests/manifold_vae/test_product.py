"""Product latents: factor-wise geometry and distributions, specs, the VAE, fit and fit_ensemble."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.distributions import kl_divergence

from distributions import CircleHeatKernel
from manifold_vae.cli import main
from manifold_vae.datasets import sinusoids
from manifold_vae.ensemble import fit_ensemble
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import (
    Circle,
    CliffordTorus,
    Euclidean,
    Product,
    ProductDistribution,
    Sphere,
    manifold_from_spec,
)
from manifold_vae.training import fit
from manifold_vae.vae import VAE

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

PRODUCTS = [Product(Circle(), Euclidean(1)), Product(CliffordTorus(), Euclidean(2))]


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("m", PRODUCTS, ids=repr)
def test_sizes_are_the_sums_of_the_factors(m):
    for key in ("dim", "ambient_dim", "posterior_params", "intrinsic_dim"):
        assert getattr(m, key) == sum(getattr(f, key) for f in m.factors)
    assert math.isinf(m.volume)
    assert Product(Circle(), CliffordTorus()).volume == pytest.approx(2 * math.pi * 2 * math.pi**2)


@pytest.mark.parametrize("m", PRODUCTS, ids=repr)
def test_spec_round_trip_and_repr(m):
    rebuilt = manifold_from_spec(json.loads(json.dumps(m.spec())))
    assert rebuilt == m and repr(rebuilt) == repr(m) and hash(rebuilt) == hash(m)
    assert Product(Circle(), Euclidean(1)) != Product(Euclidean(1), Circle())
    assert repr(Product(Circle(), Euclidean(1))) == "Product(Circle(), Euclidean(dim=1))"


@pytest.mark.parametrize(
    "make",
    [lambda: Product(), lambda: Product(3), lambda: Product(Circle(), specs=[Circle().spec()])],
)
def test_bad_factors_raise(make):
    with pytest.raises(ValueError, match="factors"):
        make()


def test_heat_kernel_is_the_product_of_the_factor_kernels():
    m = Product(Circle(), Euclidean(1))
    loc = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)  # angle 0, x = 0.5
    time = 0.3
    z = torch.tensor([[0.2, -1.0], [3.0, 2.0]], dtype=torch.float64)
    log_p = m.heat_kernel(loc, time).log_prob(m.to_point(z))
    circle = CircleHeatKernel(torch.tensor(0.0).double(), torch.tensor(time).double())
    normal = torch.distributions.Normal(0.5, math.sqrt(2 * time))
    torch.testing.assert_close(log_p, circle.log_prob(z[:, 0]) + normal.log_prob(z[:, 1]))


def test_heat_kernel_of_a_circle_times_a_line_is_normalised():
    """Trapezoid in the angle (spectral), midpoint rule on the line; density w.r.t. area."""
    m = Product(Circle(), Euclidean(1))
    theta = -math.pi + 2 * math.pi * torch.arange(256, dtype=torch.float64) / 256
    x = torch.linspace(-12, 12, 2001, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(theta, x, indexing="ij"), -1).reshape(-1, 2)
    kernel = m.heat_kernel(m.to_point(torch.tensor([0.4, 1.0], dtype=torch.float64)), 0.2)
    density = kernel.log_prob(m.to_point(grid)).exp()
    total = density.sum() * (2 * math.pi / 256) * (x[1] - x[0])
    assert total.item() == pytest.approx(1.0, abs=1e-6)


def test_product_of_a_clifford_torus_uses_its_area_element():
    m = Product(CliffordTorus(), Euclidean(1))
    z = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    assert m.log_volume_density(z).item() == pytest.approx(2 * math.log(0.5**0.5))


@pytest.mark.parametrize("m", PRODUCTS, ids=repr)
def test_kl_is_the_sum_of_the_factor_kls(m):
    raw = torch.randn(6, m.posterior_params, dtype=torch.float64, generator=_g(1))
    q = m.posterior(raw)
    assert isinstance(q, ProductDistribution)
    kl = kl_divergence(q, m.prior(dtype=torch.float64).expand(q.batch_shape))
    expected = sum(
        kl_divergence(part, f.prior(dtype=torch.float64).expand(q.batch_shape))
        for f, part in zip(m.factors, q.parts, strict=True)
    )
    torch.testing.assert_close(kl, expected)
    assert q.entropy().shape == (6,) and q.mean.shape == (6, m.dim)


def test_posterior_support_rejects_values_outside_a_factor():
    m = Product(Circle(), Euclidean(1))
    q = m.posterior(torch.zeros(2, m.posterior_params))
    ok = torch.tensor([[0.5, 100.0]])
    assert q.support.check(ok).all()
    assert not q.support.check(torch.tensor([[4.0, 0.0]])).any()  # angle outside [-pi, pi)
    assert not q.support.check(torch.zeros(1, 3)).any()  # wrong size


def test_sample_prior_draws_the_factors_in_turn():
    m = Product(Circle(), Euclidean(2))
    z = m.sample_prior(5, _g(3))
    g = _g(3)
    expected = torch.cat([Circle().sample_prior(5, g), Euclidean(2).sample_prior(5, g)], -1)
    assert torch.equal(z, expected)


def test_rsample_draws_one_normal_tensor_and_matches_reparameterize():
    m = Product(Circle(), Euclidean(1))
    raw = torch.randn(4, m.posterior_params, dtype=torch.float64, generator=_g(2))
    q = m.posterior(raw)
    torch.manual_seed(5)
    z = q.rsample(torch.Size([3]))
    noise = torch.randn((3, 4, m.dim), generator=_g(5), dtype=torch.float64)
    assert torch.equal(z, m.reparameterize(q, noise))


def test_products_train_with_fit_and_fit_ensemble_alike(one_thread):
    data = sinusoids(n=64, noise=0.1, seed=0).data
    latent = Product(Circle(), Euclidean(1))

    def make() -> VAE:
        torch.manual_seed(0)
        return VAE(latent, (25,), Gaussian(0.1), hidden=8)

    alone, together = make(), make()
    history = fit(alone, data, epochs=2, batch_size=32, seed=3, progress=False)
    (ensemble_history,) = fit_ensemble(
        [together], [data], epochs=2, batch_size=32, seeds=[3], progress=False
    )
    assert history.loss == pytest.approx(ensemble_history.loss, rel=1e-5)
    for a, b in zip(alone.parameters(), together.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_product_latents_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--latent", "circle*euclidean:1", "--out", str(out), "--epochs", "1"]
    assert main([*argv, "--n", "32", "--no-progress"]) == 0
    vae = VAE.load(str(out / "model.pt"))
    assert vae.latent == Product(Circle(), Euclidean(1))


@pytest.mark.parametrize(
    "latent", [Product(Circle(), Euclidean(1)), Product(Sphere(), Circle())], ids=repr
)
def test_the_pyro_loss_uses_the_exact_product_kl(latent):
    """TraceMeanField_ELBO (registered KL) equals the plain negative ELBO on the same noise."""
    import pyro
    from pyro.infer import TraceMeanField_ELBO

    pyro.clear_param_store()
    x = sinusoids(n=16, noise=0.1, seed=1, dtype=torch.float64).data
    torch.manual_seed(0)
    vae = VAE(latent, (25,), Gaussian(0.1), hidden=8).double()
    pyro.set_rng_seed(2)
    loss = TraceMeanField_ELBO().loss(vae.model, vae.guide, x)
    torch.manual_seed(2)
    assert loss == pytest.approx(-vae.elbo(x).elbo.sum().item(), rel=1e-10)
