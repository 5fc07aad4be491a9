"""Recovered directions up to an orthogonal map, and the true model's log-likelihood."""

from __future__ import annotations

import math

import pytest
import torch

from manifold_vae.analysis import (
    encoded_directions,
    procrustes_alignment,
    true_negative_log_likelihood,
)
from manifold_vae.datasets import sinusoid_model, sinusoids
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle, Euclidean, Sphere
from manifold_vae.vae import VAE


def _directions(n: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("det", [1.0, -1.0])
def test_procrustes_undoes_an_orthogonal_map_of_either_sign(det):
    truth = _directions(50, 0)
    q, _ = torch.linalg.qr(
        torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    )
    q = q * torch.sign(torch.linalg.det(q)) * torch.tensor([1.0, 1.0, det], dtype=torch.float64)
    rotation, angles = procrustes_alignment((truth @ q.T).float(), truth)
    assert rotation.dtype == angles.dtype == torch.float64
    assert torch.linalg.det(rotation).item() == pytest.approx(det)
    torch.testing.assert_close(rotation @ q, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
    assert angles.shape == (50,) and angles.max() < 1e-3  # float32 input


def test_procrustes_angles_are_angles_and_shapes_are_checked():
    _, angles = procrustes_alignment(_directions(400, 2), _directions(400, 3))
    assert 0 <= angles.min() and angles.max() <= math.pi
    assert 1.0 < angles.mean() < 2.0  # unrelated directions: about pi / 2 on average
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        procrustes_alignment(_directions(4, 0), _directions(5, 0))


def test_encoded_directions_on_the_sphere_and_on_r3():
    data = torch.randn(40, 6, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(0)
    sphere = VAE(Sphere(), (6,), Gaussian(0.1), hidden=8)
    directions, spread = encoded_directions(sphere, data)
    torch.testing.assert_close(directions, sphere.embedded_location(data).double())
    assert spread.item() < 1e-6  # the code is the sphere itself
    euclidean = VAE(Euclidean(3), (6,), Gaussian(0.1), hidden=8)
    directions, spread = encoded_directions(euclidean, data)
    with torch.no_grad():
        points = euclidean.embedded_location(data).double()
    centred = points - points.mean(0)  # a vector space is centred first
    torch.testing.assert_close(directions, centred / centred.norm(dim=-1, keepdim=True))
    assert spread.item() > 0
    with pytest.raises(ValueError, match="R\\^3"):
        encoded_directions(VAE(Circle(), (6,), Gaussian(0.1), hidden=8), data)


def test_true_negative_log_likelihood_matches_quadrature_on_the_circle():
    """Broad noise (0.5): p(x) = (1 / 2 pi) integral of p(x | phi) d phi by the trapezoid rule,
    exact to rounding for this smooth periodic integrand."""
    model = sinusoid_model(dim=5, noise=0.5)
    ds = sinusoids(n=6, dim=5, noise=0.5, seed=3)
    phases = (torch.arange(2048, dtype=torch.float64) / 2048 * 2 * math.pi - math.pi)[:, None]
    log_joint = model.log_joint(ds.data.double()[:, None], phases[None])
    exact = -(torch.logsumexp(log_joint, -1) + math.log(2 * math.pi / 2048))
    estimate = true_negative_log_likelihood(model, ds.data, ds.latent, samples=40000, time=1.0)
    assert estimate.dtype == torch.float64 and estimate.shape == (6,)
    torch.testing.assert_close(estimate, exact, rtol=0, atol=0.02)
    once, twice = (
        true_negative_log_likelihood(model, ds.data, ds.latent, samples=100, seed=5)
        for _ in range(2)
    )
    torch.testing.assert_close(once, twice, rtol=0, atol=0)  # seeded
