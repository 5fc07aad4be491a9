"""The linear VAE of Ch. 6 and the corrected Theorem 3."""

from __future__ import annotations

import math

import pytest
import torch

from manifold_vae.linear_vae import (
    encoder_matrix,
    expected_neg_elbo,
    linear_vae,
    optimal_radius,
    optimise_expected_loss,
    thesis_printed_radius,
)
from manifold_vae.training import fit

CELLS = [
    (0.1, 0.1, 0.5),
    (0.01, 1.0, 1.0),  # collapse: sqrt(Gamma) < sigma_X sigma_Z
    (1.0, 0.5, 0.3),
    (0.1, 0.01, 1.0),
    (0.0, 2.0, 0.2),
]


@pytest.mark.parametrize(("noise", "sigma_x", "sigma_z"), CELLS)
def test_closed_form_is_the_minimum_of_the_expected_loss(noise, sigma_x, sigma_z):
    direct = optimise_expected_loss(noise, sigma_x, sigma_z, restarts=4)
    radius = optimal_radius(noise, sigma_x, sigma_z)
    torch.testing.assert_close(
        direct.singular_values, torch.full((2,), radius, dtype=torch.float64), atol=1e-6, rtol=1e-6
    )
    assert direct.loss >= direct.closed_form_loss - 1e-12
    assert direct.loss - direct.closed_form_loss < 1e-10


def test_the_thesis_formula_is_not_the_optimum():
    noise, sigma_x, sigma_z = 0.1, 0.1, 0.5
    direct = optimise_expected_loss(noise, sigma_x, sigma_z, restarts=2)
    printed = thesis_printed_radius(noise, sigma_x, sigma_z)
    assert abs(printed - direct.singular_values[0].item()) > 1.0
    # For sigma_Z = 1 the printed value is the squared radius.
    assert thesis_printed_radius(0.1, 0.1, 1.0) == pytest.approx(optimal_radius(0.1, 0.1, 1.0) ** 2)


def _sample(n: int, noise: float, g: torch.Generator) -> torch.Tensor:
    phi = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    x = torch.stack([torch.sin(phi), torch.cos(phi)], -1)
    return x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)


def test_expected_loss_matches_the_vae_negative_elbo():
    """The formula against the library's VAE, by Monte Carlo over data and latent noise."""
    noise, sigma_x, sigma_z = 0.3, 0.7, 0.4
    vae = linear_vae(sigma_x, sigma_z).double()
    g = torch.Generator().manual_seed(0)
    G = torch.randn(2, 2, generator=g, dtype=torch.float64)
    H = torch.randn(2, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        vae.encoder.G.weight.copy_(G)
        vae.decoder.weight.copy_(H)
    x = _sample(200_000, noise, g)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)
        terms = vae.elbo(x)
    neg = -terms.elbo
    estimate, error = neg.mean().item(), neg.std().item() / math.sqrt(len(neg))
    exact = expected_neg_elbo(G, H, noise, sigma_x, sigma_z).item()
    assert abs(estimate - exact) < 5 * error


def test_trained_linear_vae_reaches_the_closed_form_radius():
    noise, sigma_x, sigma_z = 0.1, 0.5, 0.5
    g = torch.Generator().manual_seed(3)
    x = _sample(4000, noise, g).float()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = linear_vae(sigma_x, sigma_z)
    fit(vae, x, epochs=15, batch_size=128, lr=1e-2, seed=0, progress=False)
    s = torch.linalg.svdvals(encoder_matrix(vae).double())
    radius = optimal_radius(noise, sigma_x, sigma_z)
    assert radius == pytest.approx(0.9547, abs=1e-3)
    torch.testing.assert_close(s, torch.full((2,), radius, dtype=torch.float64), rtol=0.05, atol=0)


def test_validation():
    with pytest.raises(ValueError, match="noise"):
        optimal_radius(-0.1, 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma_x"):
        optimal_radius(0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match="sigma_z"):
        linear_vae(1.0, math.inf)
    with pytest.raises(ValueError, match="restarts"):
        optimise_expected_loss(0.1, 1.0, 1.0, restarts=0)
    with pytest.raises(ValueError, match="linear_vae"):
        from manifold_vae.likelihoods import Gaussian
        from manifold_vae.manifolds import Euclidean
        from manifold_vae.vae import VAE

        encoder_matrix(VAE(Euclidean(2), (2,), Gaussian(1.0)))
