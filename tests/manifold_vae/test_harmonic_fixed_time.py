"""``FixedTime``: a latent manifold whose posterior has a fixed time (fixed encoder variance)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from manifold_vae.datasets import sinusoids
from manifold_vae.ensemble import fit_ensemble
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import (
    Circle,
    CliffordTorus,
    Euclidean,
    FixedTime,
    Sphere,
    manifold_from_spec,
)
from manifold_vae.training import fit
from manifold_vae.vae import VAE

pytestmark = pytest.mark.usefixtures("one_thread")

BASES = [Euclidean(2), Circle(), CliffordTorus()]


@pytest.mark.parametrize("base", BASES, ids=repr)
def test_posterior_is_the_base_heat_kernel_at_the_base_location(base):
    m = FixedTime(base, 0.3)
    raw = torch.randn(6, base.posterior_params, dtype=torch.float64)
    other = raw.clone()
    other[:, -base.dim :] += 5.0  # the time (variance) outputs: ignored
    q, q_other = m.posterior(raw), m.posterior(other)
    loc = base.posterior_location(base.posterior(raw))
    expected = base.coordinate_heat_kernel(loc, torch.full((6,), 0.3, dtype=torch.float64))
    z = expected.sample(torch.Size([4]))
    torch.testing.assert_close(q.log_prob(z), expected.log_prob(z), rtol=0, atol=0)
    torch.testing.assert_close(q_other.log_prob(z), expected.log_prob(z), rtol=0, atol=0)
    assert m.posterior_location(q).shape == (6, base.dim)


@pytest.mark.parametrize("base", [*BASES, Sphere()], ids=repr)
def test_geometry_is_the_base_manifolds(base):
    m = FixedTime(base, 0.3)
    assert m.intrinsic_dim == base.intrinsic_dim
    g = torch.Generator().manual_seed(0)
    a = base.to_point(base.sample_prior(5, g))
    b = base.to_point(m.sample_prior(5, g))
    vector = torch.randn(5, base.ambient_dim, generator=g, dtype=torch.float64)
    tangent = base.to_tangent(vector, a)
    torch.testing.assert_close(m.to_tangent(vector, a), tangent, rtol=0, atol=0)
    torch.testing.assert_close(m.exp(tangent, a), base.exp(tangent, a), rtol=0, atol=0)
    torch.testing.assert_close(m.distance(a, b), base.distance(a, b), rtol=0, atol=0)


def test_euclidean_fixed_time_is_variance_two_t():
    q = FixedTime(Euclidean(3), 0.125).posterior(torch.randn(5, 6))
    torch.testing.assert_close(q.base_dist.scale, torch.full((5, 3), 0.5))


@pytest.mark.parametrize("base", BASES, ids=repr)
def test_reparameterize_reproduces_rsample_and_time_outputs_get_no_gradient(base):
    m = FixedTime(base, 0.2)
    raw = torch.randn(4, base.posterior_params, dtype=torch.float64, requires_grad=True)
    q = m.posterior(raw)
    torch.manual_seed(7)
    z = q.rsample(torch.Size([3]))
    torch.manual_seed(7)
    noise = torch.randn(3, 4, base.dim, dtype=torch.float64)
    assert torch.equal(m.reparameterize(q, noise), z)
    z.sum().backward()
    assert torch.all(raw.grad[:, -base.dim :] == 0)


def test_spec_checkpoint_and_validation(tmp_path):
    m = FixedTime(CliffordTorus(), 0.05)
    rebuilt = manifold_from_spec(json.loads(json.dumps(m.spec())))
    assert rebuilt == m and repr(rebuilt) == "FixedTime(CliffordTorus(), time=0.05)"
    assert m.volume == pytest.approx(2 * math.pi**2) and m.dim == 2 and m.ambient_dim == 4
    vae = VAE(m, (25,), Gaussian(0.1))
    vae.save(tmp_path / "model.pt")
    loaded = VAE.load(tmp_path / "model.pt")
    assert loaded.latent == m
    for bad, message in [
        ((Circle(), 0.0), "time"),
        ((Circle(), math.inf), "time"),
        ((m, 0.1), "nest"),
        (("circle", 0.1), "base"),
    ]:
        with pytest.raises(ValueError, match=message):
            FixedTime(*bad)


def test_fit_ensemble_equals_fit_with_a_fixed_time():
    data = sinusoids(n=64, noise=0.1, seed=0, dtype=torch.float64).data
    vaes = []
    for seed in range(2):
        torch.manual_seed(seed)
        vaes.append(VAE(FixedTime(Circle(), 0.1), (25,), Gaussian(0.1)).double())
    options = {"epochs": 2, "batch_size": 16, "lr": 1e-2}
    models = [copy.deepcopy(v) for v in vaes]
    expected = [fit(v, data, seed=s, progress=False, **options) for s, v in enumerate(models)]
    histories = fit_ensemble(vaes, data, progress=False, **options)
    for h, e in zip(histories, expected, strict=True):
        assert h.loss == pytest.approx(e.loss, rel=1e-10)
    for v, w in zip(vaes, models, strict=True):
        for key, value in v.state_dict().items():
            torch.testing.assert_close(value, w.state_dict()[key], rtol=1e-10, atol=1e-12)


def test_reparameterizable_follows_the_base():
    """A product asks each factor: a fixed-time sphere cannot be reparameterised from noise, so
    the product's posterior samples factor by factor instead of failing."""
    from manifold_vae.manifolds import Product

    assert FixedTime(Circle(), 0.3).reparameterizable
    assert not FixedTime(Sphere(), 0.3).reparameterizable
    product = Product(FixedTime(Sphere(), 0.3), Circle())
    assert not product.reparameterizable
    raw = torch.randn(5, product.posterior_params, dtype=torch.float64)
    z = product.posterior(raw).rsample((2,))
    assert z.shape == (2, 5, product.dim) and torch.isfinite(z).all()
