"""VAE.marginal_log_likelihood (issue 16): the importance-weighted estimate of log p(x)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle, Euclidean
from manifold_vae.vae import VAE, log_mean_exp

D, DIM, SIGMA = 5, 2, 0.5


def linear_gaussian(posterior_scale: float | None) -> tuple[VAE, torch.Tensor]:
    r"""A linear Gaussian VAE, ``x = W z + b + sigma eps``, ``z ~ N(0, I)``, and 8 datapoints.

    ``W`` has orthogonal columns, so the true posterior is a diagonal Gaussian: precision
    :math:`\Lambda = I + W^\top W / \sigma^2`, mean :math:`\Lambda^{-1} W^\top (x - b)/\sigma^2`.
    The encoder gives that mean and variance ``posterior_scale**2 * Lambda^-1`` (the exact
    posterior for ``posterior_scale = 1``), or is random (``None``). Truth:
    :math:`p(x) = N(b, W W^\top + \sigma^2 I)`.
    """
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D, DIM, generator=g, dtype=torch.float64))
    w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    decoder = nn.Linear(DIM, D).double()
    encoder = nn.Linear(D, 2 * DIM).double()
    with torch.no_grad():
        decoder.weight.copy_(w)
        decoder.bias.copy_(b)
        if posterior_scale is not None:
            variance = 1.0 / (1.0 + (w**2).sum(0) / SIGMA**2)
            gain = variance.unsqueeze(-1) * w.T / SIGMA**2
            encoder.weight.copy_(torch.cat([gain, torch.zeros(DIM, D, dtype=torch.float64)]))
            log_var = torch.log(posterior_scale**2 * variance)
            encoder.bias.copy_(torch.cat([-gain @ b, log_var]))
    vae = VAE(Euclidean(DIM), (D,), Gaussian(SIGMA), encoder=encoder, decoder=decoder).double()
    x = b + 1.5 * torch.randn(8, D, generator=g, dtype=torch.float64)
    return vae, x


def truth(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    w, b = vae.decoder.weight.detach(), vae.decoder.bias.detach()
    cov = w @ w.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def test_the_exact_posterior_gives_the_exact_value():
    vae, x = linear_gaussian(1.0)
    torch.manual_seed(0)
    result = vae.marginal_log_likelihood(x, num_samples=16)
    assert torch.allclose(result.value, truth(vae, x), rtol=0, atol=1e-10)
    assert bool((result.standard_error < 1e-10).all())
    assert torch.allclose(result.effective_sample_size, torch.full((8,), 16.0, dtype=x.dtype))


def test_converges_to_the_truth_within_its_standard_errors():
    """A posterior twice as wide as the true one (bounded weights): the error shrinks with K,
    and for K >= 256 (where the sample standard deviation of the weights is itself reliable)
    the estimate is within 5.4 standard errors (plus the second-order bias, about half the
    squared standard error)."""
    vae, x = linear_gaussian(2.0)
    exact = truth(vae, x)
    errors = []
    for k in (16, 256, 4096):
        torch.manual_seed(k)
        result = vae.marginal_log_likelihood(x, num_samples=k, batch_size=3, sample_batch_size=500)
        error = (result.value - exact).abs()
        se = result.standard_error
        assert k < 256 or bool((error <= 5.4 * se + se**2).all()), (k, error, se)
        errors.append(float(error.mean()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01


def test_at_least_the_elbo_on_average():
    """E L_K >= E L_1 = ELBO (exact KL), here with a random, poor encoder."""
    vae, x = linear_gaussian(None)
    torch.manual_seed(1)
    with torch.no_grad():  # the ELBO with the exact KL, and its Monte Carlo standard error
        posterior = vae.encode(x)
        log_lik = vae.log_likelihood(posterior.sample((4000,)), x)
        elbo = log_lik.mean(0) - vae.kl(posterior)
    elbo_var = log_lik.var(0) / 4000
    bounds = [vae.marginal_log_likelihood(x, num_samples=k).value.mean() for k in (1, 100, 3000)]
    assert float(bounds[1]) > float(elbo.mean()) and float(bounds[2]) > float(bounds[1])
    assert float(bounds[2]) <= float(truth(vae, x).mean()) + 0.05
    # E L_1 = ELBO: 2000 single-sample estimates per datapoint, at 5.4 standard errors of both
    repeats = 2000
    single = vae.marginal_log_likelihood(x.repeat(repeats, 1), num_samples=1)
    single = single.value.reshape(repeats, -1)
    se = (single.var(0) / repeats + elbo_var).sqrt()
    assert bool(((single.mean(0) - elbo).abs() <= 5.4 * se).all())


def test_circle_latent_against_quadrature(one_thread):
    """A 1-d latent: log p(x) = log (1/2pi) int p(x | theta) dtheta by the trapezoid rule
    (spectrally accurate for a smooth periodic integrand), for both circle families."""
    torch.manual_seed(2)
    x = torch.randn(6, 4, dtype=torch.float64)
    for family in ("heat", "von-mises"):
        vae = VAE(Circle(family=family), (4,), Gaussian(0.8), seed=3).double()
        theta = torch.linspace(-math.pi, math.pi, 4097, dtype=torch.float64)[:-1]
        log_lik = vae.log_likelihood(theta.reshape(-1, 1, 1).expand(-1, 6, 1), x)
        exact = torch.logsumexp(log_lik, 0) - math.log(theta.shape[0])
        result = vae.marginal_log_likelihood(x, num_samples=4000)
        se = result.standard_error
        assert bool(((result.value - exact).abs() <= 5.4 * se + se**2 + 1e-9).all()), family


def test_log_mean_exp_is_stable_and_its_error_is_the_delta_method():
    log_w = torch.tensor([[-1000.0, 0.0], [-1000.0 + math.log(3.0), 0.0]], dtype=torch.float64)
    result = log_mean_exp(log_w)
    assert torch.allclose(result.value, torch.tensor([-1000.0 + math.log(2.0), 0.0]).double())
    # weights (1, 3): sd sqrt(2), mean 2, K = 2: se = sqrt(2) / (sqrt(2) * 2)
    assert torch.allclose(result.standard_error, torch.tensor([0.5, 0.0]).double())
    assert torch.allclose(result.effective_sample_size, torch.tensor([1.6, 2.0]).double())


def test_validation():
    vae, x = linear_gaussian(1.0)
    with pytest.raises(ValueError, match="x"):
        vae.marginal_log_likelihood(x[:, :3])
    with pytest.raises(ValueError, match="num_samples"):
        vae.marginal_log_likelihood(x, num_samples=0)
    with pytest.raises(ValueError, match="batch_size"):
        vae.marginal_log_likelihood(x, batch_size=0)
    with pytest.raises(ValueError, match="sample_batch_size"):
        vae.marginal_log_likelihood(x, sample_batch_size=1.5)
    bad = x.clone()
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="x"):
        vae.marginal_log_likelihood(bad)
