"""The generic VAE: one class for every manifold, shapes, the ELBO, the Pyro path, networks."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch import nn
from torch.distributions import Independent, kl_divergence

from distributions import TorusHeatKernel
from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Bernoulli, Gaussian, GaussianLearnedScale
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean
from manifold_vae.vae import ELBO, VAE

from .registry import MANIFOLDS, ids

parametrize_manifolds = pytest.mark.parametrize("m", MANIFOLDS, ids=ids(MANIFOLDS))

# geomstats is not used here, but keep the suite quiet if another test imported it
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(autouse=True)
def _clean_pyro_and_one_thread():
    """A fresh Pyro parameter store; one torch thread (tiny models run faster on a busy CPU)."""
    pyro.clear_param_store()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    pyro.clear_param_store()


def _data(n: int = 16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return sinusoids(n=n, noise=0.1, seed=5, dtype=dtype).data


def _vae(latent, seed: int = 0, **kwargs) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent, (25,), kwargs.pop("likelihood", Gaussian(0.1)), **kwargs)


def _linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [layer for layer in module.modules() if isinstance(layer, nn.Linear)]


# --- one model for every manifold ------------------------------------------------------------
@pytest.mark.parametrize(
    ("latent", "family", "times"),
    [
        (Euclidean(2), Independent, None),
        (Circle(), TorusHeatKernel, 1),
        (CliffordTorus(), TorusHeatKernel, 2),
    ],
    ids=["baseline", "circle", "torus"],
)
def test_thesis_models_differ_only_in_the_manifold(latent, family, times):
    """Baseline (Ch. 4), circle (Ch. 7) and torus (Ch. 11) VAEs: the same call."""
    vae = VAE(latent, (25,), Gaussian(0.1))
    assert type(vae) is VAE and vae.latent is latent
    assert _linear_layers(vae.encoder)[-1].out_features == latent.posterior_params
    assert _linear_layers(vae.decoder)[0].in_features == latent.ambient_dim
    x = _data()
    posterior = vae.encode(x)
    assert isinstance(posterior, family)
    if times is not None:  # one time per circle factor (thesis Eq. 11.8)
        assert posterior.time.shape == (16, times)
    seen = []
    handle = vae.decoder.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    terms = vae.elbo(x)
    handle.remove()
    assert torch.isfinite(terms.elbo).all()
    assert seen[0].shape == (16, latent.ambient_dim)
    assert latent.point_support().check(seen[0]).all()  # the decoder sees points on M


def test_clifford_decoder_inputs_lie_on_the_three_sphere():
    vae = _vae(CliffordTorus())
    seen = []
    vae.decoder.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    vae.elbo(_data())
    torch.testing.assert_close(seen[0].norm(dim=-1), torch.ones(16))


@pytest.mark.parametrize(
    "make",
    [
        lambda: VAE("circle", (25,), Gaussian()),
        lambda: VAE(Circle(), (25,), "gaussian"),
        lambda: VAE(Circle(), (), Gaussian()),
        lambda: VAE(Circle(), (0, 3), Gaussian()),
    ],
    ids=["latent", "likelihood", "empty-shape", "zero-size"],
)
def test_bad_constructor_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


# --- shapes ----------------------------------------------------------------------------------
@parametrize_manifolds
def test_encode_decode_shapes(m):
    vae = _vae(m)
    x = _data(10)
    posterior = vae.encode(x)
    assert posterior.batch_shape == (10,) and posterior.event_shape == (m.dim,)
    z = posterior.rsample(torch.Size([3]))
    likelihood = vae.decode(z)
    assert likelihood.batch_shape == (3, 10) and likelihood.event_shape == (25,)
    assert likelihood.log_prob(x).shape == (3, 10)
    assert vae(x).shape == (10, 25)
    assert vae.prior().event_shape == (m.dim,)


def _conv_networks(latent) -> tuple[nn.Module, nn.Module]:
    encoder = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, latent.posterior_params),
    )
    decoder = nn.Sequential(
        nn.Linear(latent.ambient_dim, 4 * 8 * 8),
        nn.ReLU(),
        nn.Unflatten(1, (4, 8, 8)),
        nn.Conv2d(4, 1, 3, padding=1),
    )
    return encoder, decoder


@parametrize_manifolds
def test_image_shapes_with_user_supplied_conv_networks(m):
    encoder, decoder = _conv_networks(m)
    torch.manual_seed(0)
    vae = VAE(m, (1, 8, 8), Bernoulli(), encoder=encoder, decoder=decoder)
    assert vae.encoder is encoder and vae.decoder is decoder
    x = torch.rand(6, 1, 8, 8)
    posterior = vae.encode(x)
    assert posterior.batch_shape == (6,) and posterior.event_shape == (m.dim,)
    likelihood = vae.decode(posterior.rsample(torch.Size([2])))
    assert likelihood.batch_shape == (2, 6) and likelihood.event_shape == (1, 8, 8)
    terms = vae.elbo(x, num_samples=2)
    assert terms.elbo.shape == (6,) and torch.isfinite(terms.elbo).all()
    terms.elbo.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    assert vae(x).shape == (6, 1, 8, 8)


def test_default_networks_on_images():
    vae = VAE(Circle(), (1, 8, 8), Bernoulli())
    x = torch.rand(5, 1, 8, 8)
    assert vae.elbo(x).elbo.shape == (5,) and vae(x).shape == (5, 1, 8, 8)


@pytest.mark.parametrize(("shape", "hidden"), [((25,), 8), ((1, 8, 8), 21), ((3, 5), 5), ((4,), 2)])
def test_default_hidden_is_a_third_of_the_data_dimension(shape, hidden):
    vae = VAE(Circle(), shape, Gaussian())
    assert vae.hidden == hidden
    for network in (vae.encoder, vae.decoder):
        layers = _linear_layers(network)
        assert len(layers) == 3  # thesis: two hidden layers
        assert [layer.out_features for layer in layers[:-1]] == [hidden, hidden]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_depth_and_hidden_are_configurable(depth):
    vae = VAE(CliffordTorus(), (25,), Gaussian(), hidden=11, depth=depth, activation="tanh")
    encoder, decoder = _linear_layers(vae.encoder), _linear_layers(vae.decoder)
    assert len(encoder) == len(decoder) == depth + 1
    assert [layer.in_features for layer in encoder] == [25] + [11] * depth
    assert [layer.out_features for layer in decoder] == [11] * depth + [25]
    assert sum(isinstance(layer, nn.Tanh) for layer in vae.encoder.modules()) == depth


# --- the ELBO --------------------------------------------------------------------------------
@parametrize_manifolds
@pytest.mark.parametrize("beta", [1.0, 0.5, 4.0])
def test_elbo_terms(m, beta):
    vae = _vae(m)
    x = _data(12)
    torch.manual_seed(1)
    terms = vae.elbo(x, beta=beta)
    assert isinstance(terms, ELBO)
    for term in terms:
        assert term.shape == (12,) and torch.isfinite(term).all()
    torch.testing.assert_close(terms.elbo, terms.reconstruction - beta * terms.kl)
    # the reconstruction term is log p(x | z) at the posterior sample
    torch.manual_seed(1)
    z = vae.encode(x).rsample(torch.Size([1]))
    torch.testing.assert_close(terms.reconstruction, vae.decode(z).log_prob(x)[0])


@parametrize_manifolds
def test_elbo_with_several_samples_averages_the_reconstruction(m):
    vae = _vae(m)
    x = _data(8)
    torch.manual_seed(2)
    terms = vae.elbo(x, num_samples=5)
    torch.manual_seed(2)
    z = vae.encode(x).rsample(torch.Size([5]))
    torch.testing.assert_close(terms.reconstruction, vae.decode(z).log_prob(x).mean(0))
    assert terms.elbo.shape == (8,)


@parametrize_manifolds
def test_kl_is_exact_and_non_negative(m):
    vae = _vae(m)
    x = _data(12)
    with torch.no_grad():  # spread the encoder outputs, including very sharp posteriors
        vae.encoder.layers[-1].weight.mul_(20.0)
    posterior = vae.encode(x)
    expected = kl_divergence(posterior, vae.prior().expand(posterior.batch_shape))
    kls = []
    for seed in range(3):
        torch.manual_seed(seed)
        kls.append(vae.elbo(x, num_samples=1 + seed).kl)
    for kl in kls:  # no Monte Carlo: independent of the noise and of the number of samples
        torch.testing.assert_close(kl, expected, rtol=0, atol=0)
        assert (kl >= 0).all()


def test_kl_closed_forms():
    """R^d: ``(mu^2 + s^2 - 1 - log s^2) / 2`` summed; circle: ``log 2 pi - entropy``."""
    raw = torch.randn(10, 4, dtype=torch.float64)
    posterior = Euclidean(2).posterior(raw)
    mu, log_var = raw[:, :2], raw[:, 2:]
    expected = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
    vae = _vae(Euclidean(2)).double()
    torch.testing.assert_close(vae.kl(posterior), expected)
    raw = torch.randn(10, 3, dtype=torch.float64)
    posterior = Circle().posterior(raw)
    vae = _vae(Circle()).double()
    torch.testing.assert_close(vae.kl(posterior), math.log(2 * math.pi) - posterior.entropy())


@parametrize_manifolds
def test_monte_carlo_kl_is_log_q_minus_log_p_at_the_sample(m):
    vae = _vae(m)
    x = _data(8)
    torch.manual_seed(3)
    terms = vae.elbo(x, analytic_kl=False)
    torch.manual_seed(3)
    posterior = vae.encode(x)
    z = posterior.rsample(torch.Size([1]))
    torch.testing.assert_close(terms.kl, (posterior.log_prob(z) - vae.prior().log_prob(z))[0])


# --- Pyro ------------------------------------------------------------------------------------
@parametrize_manifolds
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_pyro_and_plain_paths_agree(m, dtype, beta):
    vae = _vae(m).to(dtype)
    x = _data(24, dtype)
    rtol = 1e-6 if dtype == torch.float32 else 1e-13
    for pyro_elbo, analytic in ((TraceMeanField_ELBO(), True), (Trace_ELBO(), False)):
        for seed in (0, 1):
            pyro.set_rng_seed(seed)
            loss = pyro_elbo.loss(vae.model, vae.guide, x, beta=beta)
            torch.manual_seed(seed)
            plain = -vae.elbo(x, beta=beta, analytic_kl=analytic).elbo.sum().item()
            assert loss == pytest.approx(plain, rel=rtol), type(pyro_elbo).__name__


def test_pyro_and_plain_gradients_agree():
    vae = _vae(Circle()).double()
    x = _data(24, torch.float64)
    pyro.set_rng_seed(4)
    TraceMeanField_ELBO().loss_and_grads(vae.model, vae.guide, x)
    pyro_grads = [p.grad.clone() for p in vae.parameters()]
    vae.zero_grad()
    torch.manual_seed(4)
    (-vae.elbo(x).elbo.sum()).backward()
    for pyro_grad, p in zip(pyro_grads, vae.parameters(), strict=True):
        torch.testing.assert_close(pyro_grad, p.grad, rtol=1e-10, atol=1e-12)


def test_pyro_svi_trains_the_circle_vae():
    vae = _vae(Circle())
    data = sinusoids(n=512, noise=0.1, seed=0).data
    pyro.set_rng_seed(0)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 3e-3}), loss=TraceMeanField_ELBO())
    losses = []
    for step in range(100):
        batch = data[(step * 64) % 512 :][:64]
        losses.append(svi.step(batch) / 64)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert math.isfinite(last) and last < 0.75 * first, (first, last)
    assert set(pyro.get_param_store().keys()) == {
        f"vae$$${name}" for name, _ in vae.named_parameters()
    }


def test_svi_with_learned_scale_registers_its_parameter():
    vae = _vae(Euclidean(2), likelihood=GaussianLearnedScale())
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), loss=Trace_ELBO())
    before = vae.likelihood.log_sigma.detach().clone()
    svi.step(_data())
    assert "vae$$$likelihood.log_sigma" in pyro.get_param_store().keys()
    assert not torch.equal(vae.likelihood.log_sigma.detach(), before)


# --- dtype -----------------------------------------------------------------------------------
@parametrize_manifolds
def test_float64_model(m):
    vae = _vae(m).double()
    x = _data(8, torch.float64)
    terms = vae.elbo(x)
    assert all(term.dtype == torch.float64 for term in terms)
    assert vae.prior().sample().dtype == torch.float64
    assert vae.encode(x).rsample().dtype == torch.float64
    assert vae(x).dtype == torch.float64
    terms.elbo.sum().backward()
    assert all(p.grad.dtype == torch.float64 for p in vae.parameters())


def test_circle_posterior_keeps_its_checks_on_the_fast_path():
    """Finite raw outputs skip the parameter checks, not those of the values to ``log_prob``;
    invalid parameters still raise."""
    latent = CliffordTorus()
    posterior = latent.posterior(torch.randn(4, latent.posterior_params, dtype=torch.float64))
    with pytest.raises(ValueError):
        posterior.log_prob(torch.full((4, 2), 10.0, dtype=torch.float64))
    raw = torch.randn(4, latent.posterior_params, dtype=torch.float64)
    raw[1, 0] = math.nan
    with pytest.raises(ValueError):
        latent.posterior(raw)


@parametrize_manifolds
def test_elbo_samples_what_rsample_draws(m):
    """The ELBO's latent sample through ``reparameterize`` is the one ``rsample`` draws."""
    vae = _vae(m).double()
    x = _data(6, torch.float64)
    torch.manual_seed(3)
    terms = vae.elbo(x, num_samples=2)
    torch.manual_seed(3)
    posterior = vae.encode(x)
    z = posterior.rsample(torch.Size([2]))
    expected = vae.point_log_likelihood(vae.latent.to_point(z), x).mean(0)
    assert torch.equal(terms.reconstruction, expected)
