"""A likelihood defined and registered outside the package: trained, checkpointed, reloaded,
used by the command line and by the reductors' decoder KL (issue 13's acceptance test)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pyro.distributions as dist
import pytest
import torch
from torch import Tensor
from torch.distributions import Distribution

from manifold_vae.cli import main
from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import LIKELIHOODS, Likelihood
from manifold_vae.manifolds import Circle
from manifold_vae.reductors import decoder_kl, delta
from manifold_vae.training import fit
from manifold_vae.vae import VAE

from .test_checkpoint import _assert_same_model as assert_same_model

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class StudentT(Likelihood):
    r"""Student-t noise with fixed degrees of freedom :math:`\nu` and scale :math:`s` per feature.

    .. math::

        p(x \mid z) = \prod_i t_\nu\big((x_i - f_i(z)) / s\big) / s
    """

    name = "student-t"

    def __init__(self, df: float = 4.0, scale: float = 0.1) -> None:
        super().__init__()
        self.df, self.scale = float(df), float(scale)

    def config(self) -> dict[str, Any]:
        return {"df": self.df, "scale": self.scale}

    @classmethod
    def from_options(cls, *, sigma_x: float = 1.0) -> StudentT:
        return cls(scale=sigma_x)

    def forward(self, output: Tensor) -> Distribution:
        return dist.StudentT(self.df, output, self.scale).to_event(len(self.data_shape))


class Laplace(Likelihood):
    r"""Laplace noise of fixed scale :math:`b`, with the closed-form decoder KL

    .. math::

        \mathrm{KL}(L(\mu_1, b_1) \,\|\, L(\mu_2, b_2)) = \log\frac{b_2}{b_1}
        + \frac{|\mu_1 - \mu_2|}{b_2} + \frac{b_1}{b_2} e^{-|\mu_1 - \mu_2| / b_1} - 1.
    """

    name = "laplace"
    feature_family = torch.distributions.Laplace

    def __init__(self, scale: float = 0.2) -> None:
        super().__init__()
        self.scale = float(scale)

    def config(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def forward(self, output: Tensor) -> Distribution:
        return dist.Laplace(output, self.scale).to_event(len(self.data_shape))

    @staticmethod
    def feature_kl(p: Distribution, q: Distribution) -> Tensor:
        distance = (p.loc - q.loc).abs()
        ratio = p.scale / q.scale
        return -torch.log(ratio) + distance / q.scale + ratio * torch.exp(-distance / p.scale) - 1


@pytest.fixture
def registered() -> Iterator[None]:
    """Register the two user likelihoods for one test, and remove them afterwards."""
    LIKELIHOODS.register(StudentT)
    LIKELIHOODS.register(Laplace)
    yield
    LIKELIHOODS.unregister("student-t")
    LIKELIHOODS.unregister("laplace")


def test_a_user_likelihood_trains_saves_and_reloads(tmp_path, registered):
    data = sinusoids(n=64, noise=0.1, seed=0).data
    torch.manual_seed(0)
    vae = VAE(Circle(), (25,), StudentT(df=3.0, scale=0.2), hidden=8)
    before = vae.elbo(data).elbo.mean().item()
    history = fit(vae, data, epochs=2, batch_size=32, lr=1e-2, progress=False)
    assert len(history.loss) == 2 and not history.stopped
    assert vae.elbo(data).elbo.mean().item() != before
    vae.save(tmp_path / "model.pt")
    loaded = VAE.load(tmp_path / "model.pt")
    assert isinstance(loaded.likelihood, StudentT)
    assert loaded.likelihood.config() == {"df": 3.0, "scale": 0.2}
    assert_same_model(vae, loaded, data)  # weights, specs and the ELBO on the same noise


def test_a_user_likelihood_from_the_command_line(tmp_path, capsys, registered):
    out = tmp_path / "run"
    argv = ["train", "--likelihood", "student-t", "--sigma-x", "0.3", "--epochs", "1"]
    assert main([*argv, "--n", "64", "--out", str(out), "--no-progress"]) == 0
    assert "ELBO per datapoint" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["likelihood"] == {"name": "student-t", "kwargs": {"df": 4.0, "scale": 0.3}}
    vae = VAE.load(out / "model.pt")
    assert isinstance(vae.likelihood, StudentT) and vae.likelihood.scale == 0.3
    assert math.isfinite(vae.elbo(sinusoids(n=8, seed=1).data).elbo.mean().item())


def test_a_checkpoint_of_an_unregistered_user_likelihood_names_it(tmp_path, registered):
    torch.manual_seed(0)
    VAE(Circle(), (25,), StudentT(), hidden=8).save(tmp_path / "model.pt")
    LIKELIHOODS.unregister("student-t")
    try:
        with pytest.raises(ValueError, match="'student-t', which is not registered"):
            VAE.load(tmp_path / "model.pt")
    finally:
        LIKELIHOODS.register(StudentT)


def test_decoder_kl_dispatches_to_a_user_likelihood(registered):
    """Laplace's closed form: exact zero on itself, the Monte Carlo mean elsewhere."""
    lik = Laplace(0.3)
    lik.build(torch.Size([4]))
    g = torch.Generator().manual_seed(0)
    p = lik(torch.randn(3, 4, generator=g, dtype=torch.float64))
    q = dist.Laplace(torch.randn(3, 4, generator=g, dtype=torch.float64), 0.5).to_event(1)
    assert torch.equal(decoder_kl(p, p), torch.zeros(3, dtype=torch.float64))
    exact = decoder_kl(p, q)
    torch.manual_seed(1)
    x = p.sample((100000,))
    ratio = p.log_prob(x) - q.log_prob(x)
    mc, se = ratio.mean(0), ratio.std(0) / math.sqrt(len(ratio))
    assert exact.shape == (3,) and ((exact - mc).abs() <= 5 * se).all(), (exact, mc, se)


def test_delta_between_models_of_a_user_likelihood(registered):
    torch.manual_seed(0)
    vae = VAE(Circle(), (25,), Laplace(), hidden=8)
    estimate = delta(vae, vae, lambda points: points, num_samples=64)
    assert estimate.value.item() == 0.0


def test_decoder_kl_refuses_a_likelihood_without_a_closed_form(registered):
    lik = StudentT()
    lik.build(torch.Size([4]))
    p = lik(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="StudentT and StudentT"):
        decoder_kl(p, p)
    with pytest.raises(ValueError, match=r"StudentT\.decoder_kl needs two products of closed-form"):
        StudentT.decoder_kl(p, p)
