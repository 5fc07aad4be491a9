"""One validation path for the public VAE API (issue 18): every method that takes data or
latent coordinates raises a ``ValueError`` naming the argument and the problem, before any
network or distribution sees the input; ``fit`` works inside ``torch.no_grad()``."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import Adam

from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Bernoulli, Gaussian
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean
from manifold_vae.reductors import fit_reductor
from manifold_vae.training import fit
from manifold_vae.vae import VAE

pytestmark = pytest.mark.usefixtures("one_thread")


def _vae(latent=None, likelihood=None, dtype=torch.float32) -> VAE:
    torch.manual_seed(0)
    return VAE(latent or CliffordTorus(), (25,), likelihood or Gaussian(0.1)).to(dtype)


def _data(n: int = 8) -> torch.Tensor:
    return sinusoids(n=n, seed=1).data


def _nan() -> torch.Tensor:
    x = _data()
    x[2, 3] = math.nan
    return x


FLOATING = "x must have a floating dtype, got torch."
BAD = [
    pytest.param(lambda: torch.zeros(4, 24), r"shape \(N, 25\), got \(4, 24\)", id="shape"),
    pytest.param(lambda: torch.zeros(25), r"x must have shape \(N, 25\), got \(25,\)", id="1d"),
    pytest.param(lambda: torch.zeros(4, 25, dtype=torch.long), FLOATING + "int64", id="int"),
    pytest.param(lambda: torch.zeros(4, 25, dtype=torch.bool), FLOATING + "bool", id="bool"),
    pytest.param(lambda: torch.zeros(4, 25, dtype=torch.cfloat), FLOATING + "complex64", id="cx"),
    pytest.param(lambda: torch.zeros(0, 25), "x is empty", id="empty"),
    pytest.param(_nan, r"x contains nan or inf values \(datapoints \[2\]", id="nan"),
    pytest.param(lambda: torch.full((3, 25), -math.inf), "x contains nan or inf", id="inf"),
    pytest.param(lambda: _data().numpy(), "x must be a torch.Tensor, got ndarray", id="numpy"),
]


def _trace_model(vae, x):
    poutine.trace(vae.model).get_trace(x)


def _trace_guide(vae, x):
    poutine.trace(vae.guide).get_trace(x)


def _log_likelihood(vae, x):
    n = x.shape[0] if torch.is_tensor(x) and x.dim() else 3
    vae.log_likelihood(torch.zeros(2, n, vae.latent.dim), x)


METHODS = {
    "elbo": lambda vae, x: vae.elbo(x),
    "encode": lambda vae, x: vae.encode(x),
    "forward": lambda vae, x: vae(x),
    "model": _trace_model,
    "guide": _trace_guide,
    "log_likelihood": _log_likelihood,
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_data_raises_a_value_error_naming_x(method, make, message):
    """Before issue 18 these raised raw RuntimeErrors (mat1 and mat2 shapes, dtypes) or a
    ValueError about ``TorusHeatKernel loc``."""
    pyro.clear_param_store()
    with pytest.raises(ValueError, match=message) as info:
        METHODS[method](_vae(), make())
    assert "TorusHeatKernel" not in str(info.value)


@pytest.mark.parametrize(("make", "message"), BAD[:-1])
def test_fit_names_its_argument_data(make, message):
    with pytest.raises(ValueError, match=message.replace("x ", "data ", 1)) as info:
        fit(_vae(), make(), epochs=1, progress=False)
    assert str(info.value).startswith("data")


def test_nan_data_is_about_the_data_not_the_posterior():
    with pytest.raises(ValueError, match="x contains nan") as info:
        _vae(CliffordTorus()).elbo(_nan())
    assert "loc" not in str(info.value)


@pytest.mark.parametrize("method", ["elbo", "encode", "model", "guide", "log_likelihood"])
def test_bernoulli_data_outside_the_unit_interval_is_refused(method):
    vae = _vae(Circle(), Bernoulli())
    good = torch.rand(6, 25, generator=torch.Generator().manual_seed(0))
    METHODS[method](vae, good)
    bad = good.clone()
    bad[4, 0] = 1.5
    with pytest.raises(ValueError, match=r"x for a Bernoulli likelihood must lie in \[0, 1\]"):
        METHODS[method](vae, bad)


@pytest.mark.parametrize(
    ("z", "message"),
    [
        (torch.zeros(3, 3), r"z must have shape \(\.\.\., 2\)"),
        (torch.zeros(3, 2, dtype=torch.long), "z must have a floating dtype"),
        (torch.full((3, 2), math.nan), "z contains nan"),
        (torch.zeros(0, 2), "z is empty"),
        ([0.0, 0.0], "z must be a torch.Tensor, got list"),
    ],
    ids=["shape", "int", "nan", "empty", "list"],
)
def test_decode_validates_coordinates(z, message):
    with pytest.raises(ValueError, match=message):
        _vae(CliffordTorus()).decode(z)


def test_log_likelihood_checks_that_z_and_x_match():
    vae = _vae(Circle())
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., N, 1\) with N = 8"):
        vae.log_likelihood(torch.zeros(2, 5, 1), _data())
    z = torch.zeros(2, 8, 1)
    expected = vae.point_log_likelihood(vae.latent.to_point(z), _data())
    assert torch.equal(vae.log_likelihood(z, _data()), expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_samples": 0}, "num_samples must be an integer >= 1"),
        ({"num_samples": 1.5}, "num_samples must be an integer >= 1"),
        ({"beta": math.nan}, "beta must be a finite real number"),
        ({"beta": "1"}, "beta must be a finite real number"),
    ],
)
def test_elbo_options_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        _vae().elbo(_data(), **options)


def test_other_float_dtypes_are_cast_to_the_models():
    """Documented: floating data of another dtype is cast (as fit always did), not refused."""
    vae = _vae(Circle())
    x = _data()
    torch.manual_seed(3)
    expected = vae.elbo(x).elbo
    torch.manual_seed(3)
    got = vae.elbo(x.double()).elbo
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)
    assert vae.decode(torch.zeros(2, 1, dtype=torch.float64)).mean.dtype == torch.float32


def test_validation_leaves_the_numbers_bitwise_unchanged():
    vae = _vae(CliffordTorus())
    x = _data()
    torch.manual_seed(5)
    checked = vae.elbo(x, num_samples=3, beta=0.5)
    torch.manual_seed(5)
    unchecked = vae.elbo(x, num_samples=3, beta=0.5, validate=False)
    for a, b in zip(checked, unchecked, strict=True):
        assert torch.equal(a, b)


def test_fit_works_inside_no_grad_and_trains_the_same():
    """Before: 'element 0 of tensors does not require grad and does not have a grad_fn'."""
    a, b = _vae(Circle()), _vae(Circle())
    data = _data(32)
    with torch.no_grad():
        history_a = fit(a, data, epochs=2, batch_size=16, progress=False)
    history_b = fit(b, data, epochs=2, batch_size=16, progress=False)
    assert history_a.loss == history_b.loss
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_fit_restores_the_callers_grad_mode():
    with torch.no_grad():
        fit(_vae(Circle()), _data(16), epochs=1, progress=False)
        assert not torch.is_grad_enabled()


def test_svi_steps_with_validated_model_and_guide():
    pyro.clear_param_store()
    vae = _vae(Euclidean(2))
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), loss=TraceMeanField_ELBO())
    assert math.isfinite(svi.step(_data()))
    with pytest.raises(ValueError, match="x must have shape"):
        svi.step(torch.zeros(4, 24))


def test_a_fitted_reductor_map_does_not_require_grad():
    """Before: the selected map's parameters required grad (reading them warned)."""
    source, target = _vae(Circle()), _vae(Circle())
    result = fit_reductor(source, target, "isometry", restarts=2, steps=2, num_samples=8,
                          eval_samples=16, progress=False)  # fmt: skip
    params = list(result.map.parameters())
    assert params and not any(p.requires_grad for p in params)


@pytest.mark.parametrize("seed", [1.5, "0", True])
def test_fit_names_a_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        fit(_vae(), _data(), epochs=1, progress=False, seed=seed)
