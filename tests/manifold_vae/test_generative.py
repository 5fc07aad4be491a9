"""The Pyro model as a generative model (issue 18): ``vae.model(None, num_samples=N)`` draws new
data, and ``Predictive`` gives new data and reconstructions as docs/vae.md shows."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle, CliffordTorus
from manifold_vae.vae import VAE

pytestmark = pytest.mark.usefixtures("one_thread")

SIGMA = 0.5


def _vae(latent=None) -> VAE:
    torch.manual_seed(0)
    return VAE(latent or Circle(), (25,), Gaussian(SIGMA))


def _standardised(vae: VAE, latent: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """``(obs - E[x | z]) / sigma``: standard normal when ``obs ~ p(x | z)``."""
    with torch.no_grad():
        return (obs - vae.decoder_mean(latent)) / SIGMA


def _assert_standard_normal(values: torch.Tensor) -> None:
    # n >= 3000 values: the mean's standard error is <= 0.018 and the std's <= 0.013, so these
    # bounds (> 5 standard errors) fail with probability below 1e-6 for a correct sampler
    assert values.numel() >= 3000
    assert abs(values.mean().item()) < 0.1
    assert abs(values.std().item() - 1.0) < 0.07


def test_model_none_draws_from_the_generative_model():
    """Before issue 18: AttributeError ('NoneType' object has no attribute 'shape')."""
    vae = _vae()
    pyro.set_rng_seed(0)
    trace = poutine.trace(vae.model).get_trace(None, num_samples=200)
    obs, latent = trace.nodes["obs"], trace.nodes["latent"]
    assert not obs["is_observed"]
    assert obs["value"].shape == (200, 25) and latent["value"].shape == (200, 1)
    _assert_standard_normal(_standardised(vae, latent["value"], obs["value"]))
    # the latent site is the prior: uniform angles on the circle
    angles = latent["value"].flatten()
    assert angles.min() >= -torch.pi and angles.max() < torch.pi
    assert abs(torch.cos(angles).mean().item()) < 0.3  # |E cos| <= 0.07 se * 4


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((None,), {}, r"model\(None\) .* needs num_samples"),
        ((None,), {"num_samples": 0}, "num_samples must be an integer >= 1"),
        ((torch.zeros(3, 25),), {"num_samples": 4}, "num_samples = 4 differs from the 3"),
        ((torch.zeros(3, 25),), {"beta": float("inf")}, "beta must be a finite"),
    ],
)
def test_model_arguments_are_validated(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _vae().model(*args, **kwargs)


def test_the_guide_needs_data():
    with pytest.raises(ValueError, match=r"guide\(None\).*Predictive\(vae.model"):
        _vae().guide(None, num_samples=3)


def test_predictive_draws_new_data():
    vae = _vae(CliffordTorus())
    pyro.set_rng_seed(1)
    draws = Predictive(vae.model, num_samples=4)(None, num_samples=100)
    assert draws["obs"].shape == (4, 100, 25) and draws["latent"].shape == (4, 100, 2)
    _assert_standard_normal(_standardised(vae, draws["latent"], draws["obs"]))
    pyro.set_rng_seed(1)
    again = Predictive(vae.model, num_samples=4)(None, num_samples=100)
    assert torch.equal(again["obs"], draws["obs"])


def test_predictive_with_the_guide_returns_the_data_but_unconditioned_reconstructs():
    vae = _vae()
    x = sinusoids(n=50, seed=3).data
    observed = Predictive(vae.model, guide=vae.guide, num_samples=3)(x)
    assert all(torch.equal(o, x) for o in observed["obs"])  # the model observes x
    pyro.set_rng_seed(2)
    rec = Predictive(poutine.uncondition(vae.model), guide=vae.guide, num_samples=30)(x)
    assert rec["obs"].shape == (30, 50, 25) and not torch.equal(rec["obs"][0], x)
    _assert_standard_normal(_standardised(vae, rec["latent"], rec["obs"]))
    # the latent samples come from the guide q(z | x): their circular mean is the encoder's
    with torch.no_grad():
        location = vae.latent.posterior_location(vae.encode(x))
    mean = torch.atan2(torch.sin(rec["latent"]).mean(0), torch.cos(rec["latent"]).mean(0))
    spread = torch.atan2(torch.sin(mean - location), torch.cos(mean - location)).abs()
    assert spread.median().item() < 0.5
