"""Decoder likelihoods: formulas checked by hand, learned scales, data validation, specs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from manifold_vae.likelihoods import LIKELIHOODS as REGISTRY
from manifold_vae.likelihoods import (
    Bernoulli,
    Gaussian,
    GaussianLearnedScale,
    Likelihood,
    likelihood_from_spec,
)
from manifold_vae.manifolds import Circle
from manifold_vae.vae import VAE

#: One instance of every likelihood class.
LIKELIHOODS = [
    Gaussian(0.3),
    GaussianLearnedScale(0.5),
    GaussianLearnedScale(2.0, shared=True),
    Bernoulli(),
]
SHAPES = [(25,), (1, 8, 8)]


def _built(likelihood: Likelihood, shape: tuple[int, ...]) -> Likelihood:
    new = likelihood_from_spec(likelihood.spec())
    new.build(torch.Size(shape))
    return new


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_likelihood_class_is_listed():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    listed = {type(lik) for lik in LIKELIHOODS}
    public = {cls for cls in subclasses(Likelihood) if cls.__module__ == "manifold_vae.likelihoods"}
    assert public <= listed, f"missing from LIKELIHOODS: {public - listed}"


# --- Gaussian --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("sigma", [0.01, 0.3, 1.0, 2.5])
def test_gaussian_negative_log_likelihood_by_hand(shape, sigma):
    r"""``||x - mu||^2 / (2 sigma^2) + D/2 log(2 pi sigma^2)`` per datapoint."""
    mu = torch.randn(6, *shape, dtype=torch.float64, generator=_generator(1))
    x = mu + sigma * torch.randn(mu.shape, dtype=torch.float64, generator=_generator(2))
    nll = -_built(Gaussian(sigma), shape)(mu).log_prob(x)
    d = math.prod(shape)
    squared = (x - mu).pow(2).flatten(1).sum(1)
    expected = squared / (2 * sigma**2) + d / 2 * math.log(2 * math.pi * sigma**2)
    assert nll.shape == (6,)
    torch.testing.assert_close(nll, expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_gaussian_is_not_the_thesis_eq_4_13(sigma):
    """Eq. 4.13 drops the 1/2 on ``D log(2 pi sigma^2)``; Eq. 5.9 the 1/2 on the squared error."""
    shape = (25,)
    mu = torch.zeros(4, *shape, dtype=torch.float64)
    x = torch.randn(mu.shape, dtype=torch.float64, generator=_generator(3))
    nll = -_built(Gaussian(sigma), shape)(mu).log_prob(x)
    squared = x.pow(2).sum(1)
    eq_4_13 = squared / (2 * sigma**2) + 25 * math.log(2 * math.pi * sigma**2)
    eq_5_9 = squared / sigma**2 + 25 / 2 * math.log(2 * math.pi * sigma**2)
    for wrong in (eq_4_13, eq_5_9):
        assert ((nll - wrong).abs() > 1.0).all()


def test_gaussian_matches_torch_normal():
    mu = torch.randn(3, 1, 8, 8, generator=_generator(4))
    x = torch.randn(3, 1, 8, 8, generator=_generator(5))
    distribution = _built(Gaussian(0.7), (1, 8, 8))(mu)
    assert distribution.batch_shape == (3,) and distribution.event_shape == (1, 8, 8)
    expected = torch.distributions.Normal(mu, 0.7).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(distribution.log_prob(x), expected)
    torch.testing.assert_close(distribution.mean, mu)


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.nan, math.inf, "1", None])
def test_gaussian_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma must be a positive finite number"):
        Gaussian(sigma)


@pytest.mark.parametrize("sigma", [0.0, -0.5, math.nan, math.inf])
def test_learned_scale_rejects_bad_initial_sigma(sigma):
    with pytest.raises(ValueError, match="init_sigma must be a positive finite number"):
        GaussianLearnedScale(sigma)


# --- learned scale ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_learned_scale_has_one_parameter_per_feature(shape):
    likelihood = _built(GaussianLearnedScale(0.5), shape)
    assert likelihood.log_sigma.shape == shape
    torch.testing.assert_close(likelihood.sigma, torch.full(shape, 0.5))
    shared = _built(GaussianLearnedScale(0.5, shared=True), shape)
    assert shared.log_sigma.shape == ()


@pytest.mark.parametrize("shared", [False, True])
def test_learned_scale_log_likelihood_by_hand(shared):
    likelihood = _built(GaussianLearnedScale(0.5, shared=shared), (25,)).double()
    with torch.no_grad():
        likelihood.log_sigma.copy_(
            torch.randn(likelihood.log_sigma.shape, generator=_generator(6)).double() * 0.3
        )
    mu = torch.randn(5, 25, dtype=torch.float64, generator=_generator(7))
    x = torch.randn(5, 25, dtype=torch.float64, generator=_generator(8))
    sigma = likelihood.log_sigma.exp().expand(25)
    expected = ((x - mu) ** 2 / (2 * sigma**2) + 0.5 * torch.log(2 * math.pi * sigma**2)).sum(1)
    torch.testing.assert_close(-likelihood(mu).log_prob(x), expected)


def test_learned_scale_is_trained_with_the_vae():
    torch.manual_seed(0)
    vae = VAE(Circle(), (25,), GaussianLearnedScale(0.5))
    names = dict(vae.named_parameters())
    assert "likelihood.log_sigma" in names and names["likelihood.log_sigma"].shape == (25,)
    x = torch.randn(8, 25, generator=_generator(9))
    (-vae.elbo(x).elbo.mean()).backward()
    grad = vae.likelihood.log_sigma.grad
    assert grad is not None and torch.isfinite(grad).all() and (grad != 0).all()
    optimizer = torch.optim.Adam(vae.parameters(), lr=0.1)
    before = vae.likelihood.log_sigma.detach().clone()
    optimizer.step()
    assert not torch.equal(vae.likelihood.log_sigma.detach(), before)


def test_learned_scale_follows_the_model_dtype():
    vae = VAE(Circle(), (25,), GaussianLearnedScale(0.5)).double()
    assert vae.likelihood.log_sigma.dtype == torch.float64
    terms = vae.elbo(torch.randn(4, 25, dtype=torch.float64, generator=_generator(10)))
    assert terms.elbo.dtype == torch.float64


# --- Bernoulli -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("values", ["binary", "grey"])
def test_bernoulli_is_binary_cross_entropy(shape, values):
    logits = 3 * torch.randn(7, *shape, dtype=torch.float64, generator=_generator(11))
    x = torch.rand(7, *shape, dtype=torch.float64, generator=_generator(12))
    if values == "binary":
        x = (x > 0.5).to(x.dtype)
    else:
        x[0].fill_(0.5)  # grey levels, including the least certain one
    distribution = _built(Bernoulli(), shape)(logits)
    assert distribution.batch_shape == (7,) and distribution.event_shape == shape
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(-distribution.log_prob(x), bce, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(distribution.mean, torch.sigmoid(logits))


def test_bernoulli_grey_level_optimum_is_the_grey_level():
    """The cross-entropy of a grey level ``g`` has gradient ``sigmoid(logit) - g``."""
    x = torch.tensor([[0.2, 0.7, 0.5]], dtype=torch.float64)
    likelihood = _built(Bernoulli(), (3,))
    logits = torch.logit(x).requires_grad_(True)
    (-likelihood(logits).log_prob(x).sum()).backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(x), rtol=0, atol=1e-12)
    logits = torch.zeros_like(x, requires_grad=True)
    (-likelihood(logits).log_prob(x).sum()).backward()
    torch.testing.assert_close(logits.grad, 0.5 - x, rtol=0, atol=1e-12)


# --- data validation -------------------------------------------------------------------------
def _bad_data(shape):
    good = torch.rand(10, *shape)
    nan = good.clone()
    nan[3].view(-1)[0] = math.nan
    inf = good.clone()
    inf[7].view(-1)[-1] = -math.inf
    wrong_shape = torch.rand(10, math.prod(shape) + 1)
    return [
        pytest.param(wrong_shape, "must have shape", id="wrong-shape"),
        pytest.param(good[0], "must have shape", id="no-batch-dimension"),
        pytest.param(good.unsqueeze(1), "must have shape", id="extra-dimension"),
        pytest.param((good > 0.5).long(), "floating dtype, got torch.int64", id="integer"),
        pytest.param(good > 0.5, "floating dtype, got torch.bool", id="bool"),
        pytest.param(nan, r"nan or inf values \(datapoints \[3\]", id="nan"),
        pytest.param(inf, r"nan or inf values \(datapoints \[7\]", id="inf"),
        pytest.param(good[:0], "data is empty", id="empty"),
        pytest.param(good.numpy(), "must be a torch.Tensor, got ndarray", id="numpy"),
    ]


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=repr)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_validate_data_accepts_good_data(likelihood, shape):
    lik = _built(likelihood, shape)
    lik.validate_data(torch.rand(10, *shape))
    lik.validate_data(torch.rand(10, *shape, dtype=torch.float64))


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=repr)
@pytest.mark.parametrize(("data", "message"), _bad_data((25,)))
def test_validate_data_rejects_bad_data(likelihood, data, message):
    with pytest.raises(ValueError, match=message):
        _built(likelihood, (25,)).validate_data(data)


@pytest.mark.parametrize(("data", "message"), _bad_data((1, 8, 8)))
def test_validate_data_rejects_bad_images(data, message):
    with pytest.raises(ValueError, match=message):
        _built(Bernoulli(), (1, 8, 8)).validate_data(data)


def test_shape_message_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"shape \(N, 1, 8, 8\), got \(10, 64\)"):
        _built(Gaussian(), (1, 8, 8)).validate_data(torch.rand(10, 64))


@pytest.mark.parametrize("bad", [-0.01, 1.01, 255.0])
def test_bernoulli_rejects_values_outside_the_unit_interval(bad):
    data = torch.rand(10, 25)
    data[4, 2] = bad
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        _built(Bernoulli(), (25,)).validate_data(data)
    _built(Gaussian(), (25,)).validate_data(data)  # fine for a Gaussian


# --- specs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=repr)
def test_spec_round_trip(likelihood):
    rebuilt = likelihood_from_spec(likelihood.spec())
    assert type(rebuilt) is type(likelihood) and rebuilt.spec() == likelihood.spec()
    assert repr(rebuilt) == repr(likelihood)


@pytest.mark.parametrize("spec", [{"name": "poisson"}, {}, None])
def test_unknown_likelihood_spec_raises(spec):
    with pytest.raises(ValueError, match="unknown likelihood spec"):
        likelihood_from_spec(spec)


def test_a_spec_whose_kwargs_do_not_fit_raises():
    with pytest.raises(ValueError, match="does not fit its class"):
        likelihood_from_spec({"name": "gaussian", "kwargs": {"scale": 0.1}})
    with pytest.raises(ValueError, match="kwargs must be a dict"):
        likelihood_from_spec({"name": "gaussian", "kwargs": [0.1]})


def test_every_likelihood_class_is_registered():
    registered = {cls for _, cls in REGISTRY.items()}
    assert {type(lik) for lik in LIKELIHOODS} <= registered
    assert all(REGISTRY[cls.name] is cls for cls in registered)


# --- built from the command line's options -----------------------------------------------------
@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_registered_likelihood_builds_from_options(name):
    likelihood = REGISTRY[name].from_options(sigma_x=0.4)
    assert type(likelihood) is REGISTRY[name] and likelihood.name == name
    assert likelihood_from_spec(likelihood.spec()).spec() == likelihood.spec()


def test_from_options_sets_the_scale():
    assert Gaussian.from_options(sigma_x=0.2).config() == {"sigma": 0.2}
    assert GaussianLearnedScale.from_options(sigma_x=0.3).config() == {
        "init_sigma": 0.3,
        "shared": False,
    }
    assert Bernoulli.from_options(sigma_x=0.3).config() == {}  # no scale to set
    with pytest.raises(ValueError, match="sigma must be a positive"):
        Gaussian.from_options(sigma_x=-1.0)


def test_only_the_fixed_scale_gaussian_declares_the_thesis_metrics():
    assert [lik.gaussian_metrics for lik in LIKELIHOODS] == [True, False, False, False]
    assert isinstance(Gaussian(0.3).sigma, float)  # what the thesis metrics read


# --- the decoder KL, a method of the likelihood ------------------------------------------------
def test_gaussian_decoder_kl_with_two_scales_is_thesis_eq_8_12():
    """Scalar scales: ||mu1 - mu2||^2 / (2 s2^2) + D/2 (log(s2^2/s1^2) + s1^2/s2^2 - 1)."""
    s1, s2 = 0.1, 0.3
    p_lik, q_lik = _built(Gaussian(s1), (1, 5, 5)), _built(Gaussian(s2), (1, 5, 5))
    mu1 = torch.randn(3, 1, 5, 5, dtype=torch.float64, generator=_generator(7))
    mu2 = torch.randn(3, 1, 5, 5, dtype=torch.float64, generator=_generator(8))
    kl = Gaussian.decoder_kl(p_lik(mu1), q_lik(mu2))
    expected = (mu1 - mu2).pow(2).flatten(1).sum(1) / (2 * s2**2) + 25 / 2 * (
        math.log(s2**2 / s1**2) + s1**2 / s2**2 - 1
    )
    torch.testing.assert_close(kl, expected)
    torch.testing.assert_close(GaussianLearnedScale.decoder_kl(p_lik(mu1), q_lik(mu2)), kl)


def test_bernoulli_decoder_kl_is_the_mean_of_the_log_ratio():
    lik = _built(Bernoulli(), (6,))
    a = torch.randn(2, 6, dtype=torch.float64, generator=_generator(9))
    b = torch.randn(2, 6, dtype=torch.float64, generator=_generator(10))
    p, q = lik(a), lik(b)
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)), dtype=torch.float64)
    log_ratio = p.log_prob(x[:, None]) - q.log_prob(x[:, None])  # every binary datapoint
    expected = (p.log_prob(x[:, None]).exp() * log_ratio).sum(0)
    torch.testing.assert_close(Bernoulli.decoder_kl(p, q), expected)


def test_decoder_kl_refuses_another_family_or_shape():
    gaussian, bernoulli = _built(Gaussian(), (4,)), _built(Bernoulli(), (4,))
    with pytest.raises(ValueError, match=r"Bernoulli\.decoder_kl needs two products of Bernoulli"):
        Bernoulli.decoder_kl(bernoulli(torch.zeros(4)), gaussian(torch.zeros(4)))
    other = _built(Bernoulli(), (5,))
    with pytest.raises(ValueError, match="same event shape"):
        Bernoulli.decoder_kl(bernoulli(torch.zeros(4)), other(torch.zeros(5)))


# --- log_density: the closed forms the ELBO and the ensemble use ------------------------------
def _output_and_data(likelihood: Likelihood, shape, dtype, batch=(3, 4)):
    output = torch.randn(*batch, *shape, dtype=dtype, generator=_generator(5))
    if isinstance(likelihood, Bernoulli):
        x = torch.rand(batch[-1:] + tuple(shape), dtype=dtype, generator=_generator(6))
    else:
        x = torch.randn(batch[-1:] + tuple(shape), dtype=dtype, generator=_generator(6))
    return output, x


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=repr)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_log_density_equals_the_distributions_log_prob(likelihood, shape, dtype):
    lik = _built(likelihood, shape).to(dtype)
    if isinstance(lik, GaussianLearnedScale):
        with torch.no_grad():
            lik.log_sigma.uniform_(-1.0, 1.0, generator=_generator(7))
    output, x = _output_and_data(lik, shape, dtype)  # x broadcasts over the sample axis
    value = lik.log_density(output, x)
    expected = lik(output).log_prob(x)
    assert value.shape == (3, 4) and value.dtype == dtype
    # the closed forms sum in another order: equal to rounding (D = 64 features at most)
    tolerance = {torch.float32: 1e-5, torch.float64: 1e-13}[dtype]
    torch.testing.assert_close(value, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=repr)
def test_log_density_maps_over_stacked_members(likelihood):
    """vmap-safe: stacked copies of the likelihood (e.g. different sigma_X) in one call."""
    members = [_built(likelihood, (25,)).double() for _ in range(3)]
    if isinstance(likelihood, Gaussian):
        members = [_built(Gaussian(s), (25,)).double() for s in (0.01, 0.1, 1.0)]
    params, buffers = torch.func.stack_module_state([_LogDensity(m) for m in members])
    output, x = _output_and_data(members[0], (25,), torch.float64, batch=(3, 4))
    template = _LogDensity(members[0])

    def call(params, buffers, out, data):
        return torch.func.functional_call(template, (params, buffers), (out, data))

    value = torch.func.vmap(call, in_dims=(0, 0, 0, None))(params, buffers, output, x)
    expected = torch.stack([m.log_density(output[i], x) for i, m in enumerate(members)])
    torch.testing.assert_close(value, expected, rtol=1e-14, atol=1e-12)


class _LogDensity(torch.nn.Module):
    """``forward = lik.log_density``, for ``functional_call``."""

    def __init__(self, lik: Likelihood) -> None:
        super().__init__()
        self.lik = lik

    def forward(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.lik.log_density(output, x)


def test_gaussian_scale_is_a_non_persistent_buffer():
    lik = _built(Gaussian(0.1), (25,))
    assert dict(lik.named_buffers())["scale"].item() == 0.1
    assert "scale" not in lik.state_dict()
    assert lik.to(torch.float32).scale.dtype == torch.float32
    assert lik.to(torch.float64).scale.dtype == torch.float64
    vae = VAE(Circle(), (25,), Gaussian(0.3))
    assert not any("scale" in key for key in vae.state_dict())
