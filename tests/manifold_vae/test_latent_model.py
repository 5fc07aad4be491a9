"""Trained VAEs and known generating processes share the LatentVariableModel protocol."""

from __future__ import annotations

import torch

from manifold_vae.datasets import sinusoid_model
from manifold_vae.latent_model import LatentVariableModel
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle
from manifold_vae.vae import VAE


def test_vae_and_generative_model_share_the_protocol():
    truth = sinusoid_model(noise=0.1)
    vae = VAE(Circle(), (25,), Gaussian(0.1)).double()
    coords = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64).unsqueeze(-1)
    for model in (truth, vae):
        assert isinstance(model, LatentVariableModel)
        conditional = model.conditional(coords)
        assert conditional.batch_shape == (7,) and conditional.event_shape == (25,)
        torch.testing.assert_close(model.decoder_mean(coords), conditional.mean)
        prior = model.prior(dtype=torch.float64)
        assert prior.event_shape == (1,) and prior.sample().dtype == torch.float64


def test_vae_prior_defaults_to_the_model_dtype():
    vae = VAE(Circle(), (25,), Gaussian(0.1))
    assert vae.prior().sample().dtype == torch.float32
    assert vae.prior(dtype=torch.float64).sample().dtype == torch.float64
