"""Pyro integration: heat kernels as guides and priors in SVI, plates, autoguides, poutines."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_value
from pyro.optim import ClippedAdam
from torch import Tensor
from torch.distributions import constraints, kl_divergence
from torch.distributions import kl as torch_kl

from distributions import CircleHeatKernel, CircleUniform, TorusHeatKernel, TorusUniform
from distributions.angles import wrap_angle

# Every warning (Pyro's validation warnings included) fails the test.
pytestmark = pytest.mark.filterwarnings("error")

KAPPA = 4.0  # concentration of the von Mises "compass" observations
TRUE_ANGLE = 1.0


@pytest.fixture(autouse=True)
def _pyro_state():
    """Fresh param store and Pyro validation on; restore every validation flag afterwards."""
    torch_default = torch.distributions.Distribution._validate_args
    pyro.clear_param_store()
    with pyro.validation_enabled(True):
        yield
    torch.distributions.Distribution.set_default_validate_args(torch_default)
    pyro.clear_param_store()


# ----------------------------------------------------------------------------------------------
# Models and guides
# ----------------------------------------------------------------------------------------------


def compass_data(n: int = 20, seed: int = 0) -> Tensor:
    """``n`` von Mises readings around ``TRUE_ANGLE``."""
    pyro.set_rng_seed(seed)
    return dist.VonMises(torch.tensor(TRUE_ANGLE), torch.tensor(KAPPA)).sample((n,))


def compass_model(data: Tensor | None = None, n: int = 20, prior=None) -> Tensor:
    """A latent angle with a circle prior and von Mises readings around it."""
    n = n if data is None else data.shape[0]
    theta = pyro.sample("theta", CircleUniform() if prior is None else prior)
    with pyro.plate("obs", n):
        return pyro.sample("x", dist.VonMises(theta, KAPPA), obs=data)


def heat_guide(data: Tensor | None = None, n: int = 20, prior=None) -> Tensor:
    """Heat-kernel guide whose loc and time are Pyro params (time constrained positive)."""
    loc = pyro.param("loc", torch.tensor(0.0))
    time = pyro.param("time", torch.tensor(0.5), constraint=constraints.positive)
    return pyro.sample("theta", CircleHeatKernel(loc, time))


def von_mises_posterior(data: Tensor) -> tuple[float, float]:
    """Exact posterior of ``compass_model`` under a uniform prior: VonMises(mode, kappa_post)."""
    s, c = torch.sin(data).sum().item(), torch.cos(data).sum().item()
    return math.atan2(s, c), KAPPA * math.hypot(s, c)


def best_heat_time(kappa_post: float) -> float:
    r"""Time of the heat kernel closest in KL(q || p) to a von Mises posterior at its mode.

    :math:`\mathrm{KL} = -H(t) - \kappa\,E_q\cos(\theta - \mu) + \text{const}
    = -H(t) - \kappa e^{-t} + \text{const}`, minimised on a fine grid of ``t``.
    """
    t = torch.logspace(-4, 0, 4001, dtype=torch.float64)
    objective = -CircleHeatKernel(torch.zeros_like(t), t).entropy() - kappa_post * torch.exp(-t)
    return t[objective.argmin()].item()


def run_svi(model, guide, loss, *args, steps: int = 300, lr: float = 0.1, lrd: float = 0.995):
    """Run SVI with a decaying learning rate; return the list of losses."""
    svi = SVI(model, guide, ClippedAdam({"lr": lr, "lrd": lrd}), loss)
    return [svi.step(*args) for _ in range(steps)]


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# ----------------------------------------------------------------------------------------------
# SVI with a heat-kernel guide
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceMeanField_ELBO])
def test_svi_heat_guide_finds_posterior(elbo):
    data = compass_data()
    mode, kappa_post = von_mises_posterior(data)
    assert abs(mode) > 0.5  # clear-cut: far from the guide's initial loc 0
    pyro.set_rng_seed(1)
    losses = run_svi(compass_model, heat_guide, elbo(), data)
    assert mean(losses[-20:]) < mean(losses[:10]) - 10.0
    loc, time = pyro.param("loc").item(), pyro.param("time").item()
    assert abs(wrap_angle(torch.tensor(loc - mode)).item()) < 0.06
    assert 0.6 < time / best_heat_time(kappa_post) < 1.6


PRIORS = [CircleUniform(), CircleHeatKernel(torch.tensor(2.0), torch.tensor(0.25))]


@pytest.mark.parametrize("prior", PRIORS, ids=["uniform", "heat"])
def test_mean_field_elbo_uses_analytic_kl(prior):
    """With the same random draw, the loss is -log p(x | z) + exact KL (no Monte Carlo KL)."""
    data = compass_data()
    heat_guide(data)  # create the params
    q = CircleHeatKernel(pyro.param("loc").detach(), pyro.param("time").detach())
    exact_kl = kl_divergence(q, prior)
    for seed in range(3):
        pyro.set_rng_seed(seed)
        loss = TraceMeanField_ELBO().loss(compass_model, heat_guide, data, 20, prior)
        pyro.set_rng_seed(seed)
        z = q.rsample()
        nll = -dist.VonMises(z, KAPPA).log_prob(data).sum()
        assert loss == pytest.approx((nll + exact_kl).item(), rel=1e-5)
        # Trace_ELBO estimates the KL by log q(z) - log p(z) instead: a different number.
        pyro.set_rng_seed(seed)
        mc_loss = Trace_ELBO().loss(compass_model, heat_guide, data, 20, prior)
        mc_kl = q.log_prob(z) - prior.log_prob(z)
        assert mc_loss == pytest.approx((nll + mc_kl).item(), rel=1e-5)
        assert abs(mc_loss - loss) > 1e-3


@pytest.mark.parametrize("prior", PRIORS, ids=["uniform", "heat"])
def test_mean_field_elbo_without_data_is_exact_kl(prior):
    """No observations: TraceMeanField's loss is the exact KL, the same for every seed."""

    def model():
        pyro.sample("theta", prior)

    def guide():
        pyro.sample("theta", CircleHeatKernel(torch.tensor(0.4), torch.tensor(0.3)))

    exact = kl_divergence(CircleHeatKernel(torch.tensor(0.4), torch.tensor(0.3)), prior).item()
    assert exact > 0
    for seed in range(3):
        pyro.set_rng_seed(seed)
        assert TraceMeanField_ELBO().loss(model, guide) == pytest.approx(exact, rel=1e-6)
    mc = []
    for seed in range(3):
        pyro.set_rng_seed(seed)
        mc.append(Trace_ELBO().loss(model, guide))
    assert max(mc) - min(mc) > 1e-3  # Trace_ELBO's single-sample KL estimate is noisy


def test_mean_field_elbo_calls_registered_kl(monkeypatch):
    """Spy on torch's KL registry: TraceMeanField_ELBO calls our function once per step."""
    key = (CircleHeatKernel, CircleUniform)
    original = torch_kl._KL_REGISTRY[key]
    calls = []

    def spy(p, q):
        calls.append((type(p), type(q)))
        return original(p, q)

    monkeypatch.setitem(torch_kl._KL_REGISTRY, key, spy)
    monkeypatch.setattr(torch_kl, "_KL_MEMOIZE", {})
    data = compass_data(n=5)
    svi = SVI(compass_model, heat_guide, ClippedAdam({"lr": 0.05}), TraceMeanField_ELBO())
    for _ in range(3):
        svi.step(data)
    assert calls == [key] * 3
    svi = SVI(compass_model, heat_guide, ClippedAdam({"lr": 0.05}), Trace_ELBO())
    svi.step(data)
    assert len(calls) == 3  # Trace_ELBO never asks for the analytic KL


def test_svi_step_with_heat_prior_has_finite_gradients():
    """One TraceMeanField step through KL(heat || heat) moves both params by finite amounts."""
    data = compass_data(n=5)
    pyro.set_rng_seed(0)
    run_svi(compass_model, heat_guide, TraceMeanField_ELBO(), data, 5, PRIORS[1], steps=1)
    params = pyro.get_param_store()
    assert torch.isfinite(params["loc"]) and params["loc"].item() != 0.0
    assert torch.isfinite(params["time"]) and params["time"].item() != pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------
# Plates, subsampling, to_event and the torus
# ----------------------------------------------------------------------------------------------

PLATE_DATA = torch.tensor([-3.0, -2.0, -1.0, 0.0, 0.5, 1.5, 2.5, 3.1])
OBS_TIME = 0.05


def plate_model(data: Tensor, subsample_size: int | None = None) -> None:
    """Independent angles, one heat-kernel observation each: posterior = heat kernel at data."""
    with pyro.plate("data", data.shape[0], subsample_size=subsample_size) as idx:
        theta = pyro.sample("theta", CircleUniform())
        pyro.sample("x", CircleHeatKernel(theta, OBS_TIME), obs=data[idx])


def plate_guide(data: Tensor, subsample_size: int | None = None) -> None:
    n = data.shape[0]
    loc = pyro.param("loc", wrap_angle(data + 1.0))  # start 1 rad off; some cross +-pi
    time = pyro.param("time", torch.full((n,), 0.5), constraint=constraints.positive)
    with pyro.plate("data", n, subsample_size=subsample_size) as idx:
        pyro.sample("theta", CircleHeatKernel(loc[idx], time[idx]))


def test_plate_subsampled_svi_recovers_exact_posteriors():
    pyro.set_rng_seed(0)
    losses = run_svi(plate_model, plate_guide, TraceMeanField_ELBO(), PLATE_DATA, 4)
    assert mean(losses[-20:]) < mean(losses[:10]) - 20.0
    err = wrap_angle(pyro.param("loc") - PLATE_DATA).abs()
    assert err.max() < 0.25  # posterior standard deviation is sqrt(2 * 0.05) = 0.32
    ratio = pyro.param("time") / OBS_TIME
    assert ((ratio > 0.6) & (ratio < 1.6)).all(), ratio


def test_plate_subsample_scales_analytic_kl():
    """TraceMeanField scales the subsample's exact KLs by N / B: a deterministic loss."""
    n, b = 10, 3

    def model():
        with pyro.plate("data", n, subsample_size=b):
            pyro.sample("theta", CircleUniform())

    def guide():
        with pyro.plate("data", n, subsample_size=b) as idx:
            assert idx.shape == (b,)
            pyro.sample("theta", CircleHeatKernel(torch.zeros(b), torch.full((b,), 0.2)))

    kl = kl_divergence(CircleHeatKernel(0.0, 0.2), CircleUniform()).item()
    assert TraceMeanField_ELBO().loss(model, guide) == pytest.approx(n * kl, rel=1e-6)
    tr = poutine.trace(model).get_trace()
    assert tr.nodes["theta"]["value"].shape == (b,)
    assert tr.nodes["theta"]["scale"] == pytest.approx(n / b)
    assert tr.log_prob_sum().item() == pytest.approx(-n * math.log(2 * math.pi), rel=1e-6)


def torus_model(data: Tensor, kind: str) -> None:
    prior = TorusUniform(2) if kind == "torus" else CircleUniform().expand([2]).to_event(1)
    z = pyro.sample("z", prior)
    if data.shape[0]:  # no observations: the loss is the KL alone
        with pyro.plate("obs", data.shape[0]):
            pyro.sample("x", TorusHeatKernel(z, OBS_TIME), obs=data)


def torus_guide(data: Tensor, kind: str) -> None:
    loc = pyro.param("loc", torch.tensor([0.0, -1.5]))  # 1 rad from the data
    time = pyro.param("time", torch.full((2,), 0.5), constraint=constraints.positive)
    q = TorusHeatKernel(loc, time) if kind == "torus" else CircleHeatKernel(loc, time).to_event(1)
    pyro.sample("z", q)


@pytest.mark.parametrize("kind", ["torus", "to_event"])
def test_torus_latent_svi(kind):
    """A 2-torus latent, as TorusHeatKernel or as CircleHeatKernel(...).to_event(1)."""
    data = torch.tensor([[1.0, -2.5]])  # one observation: the posterior is exactly the kernel
    q = TorusHeatKernel(torch.tensor([0.0, -1.5]), torch.full((2,), 0.5))
    prior = TorusUniform(2)
    if kind == "to_event":
        q = CircleHeatKernel(torch.tensor([0.0, -1.5]), torch.full((2,), 0.5)).to_event(1)
        prior = CircleUniform().expand([2]).to_event(1)
    no_data = torch.empty(0, 2)
    assert TraceMeanField_ELBO().loss(torus_model, torus_guide, no_data, kind) == pytest.approx(
        kl_divergence(q, prior).item(), rel=1e-6
    )
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    losses = run_svi(torus_model, torus_guide, TraceMeanField_ELBO(), data, kind, steps=250)
    assert mean(losses[-20:]) < mean(losses[:10]) - 2.0
    assert wrap_angle(pyro.param("loc") - data[0]).abs().max() < 0.2
    ratio = pyro.param("time") / OBS_TIME
    assert ((ratio > 0.6) & (ratio < 1.7)).all(), ratio


# ----------------------------------------------------------------------------------------------
# Autoguides: the heat kernel as a prior
# ----------------------------------------------------------------------------------------------

HEAT_PRIOR = CircleHeatKernel(torch.tensor(0.5), torch.tensor(1.0))
FAR_INIT = init_to_value(values={"theta": torch.tensor(-1.0)})  # 2 rad from the MAP


def map_angle(data: Tensor, prior: CircleHeatKernel) -> float:
    grid = torch.linspace(-math.pi, math.pi, 20001, dtype=torch.float64)[:-1]
    log_joint = CircleHeatKernel(prior.loc.double(), prior.time.double()).log_prob(grid)
    log_joint = log_joint + KAPPA * torch.cos(data.double()[:, None] - grid).sum(0)
    return grid[log_joint.argmax()].item()


def test_auto_delta_finds_map():
    data = compass_data(n=5)
    guide = AutoDelta(compass_model, init_loc_fn=FAR_INIT)
    pyro.set_rng_seed(0)
    losses = run_svi(compass_model, guide, Trace_ELBO(), data, 5, HEAT_PRIOR, steps=200)
    assert losses[-1] < losses[0] - 5.0
    theta = guide.median(data, 5, HEAT_PRIOR)["theta"]
    assert HEAT_PRIOR.support.check(theta)
    assert theta.item() == pytest.approx(map_angle(data, HEAT_PRIOR), abs=1e-3)


def test_auto_normal_samples_in_support_and_improves():
    data = compass_data(n=5)
    guide = AutoNormal(compass_model, init_loc_fn=FAR_INIT)
    pyro.set_rng_seed(0)
    losses = run_svi(compass_model, guide, Trace_ELBO(), data, 5, HEAT_PRIOR, steps=200)
    assert mean(losses[-20:]) < mean(losses[:20]) - 2.0
    samples = Predictive(guide, num_samples=2000)(data, 5, HEAT_PRIOR)["theta"]
    assert samples.shape == (2000,)
    assert HEAT_PRIOR.support.check(samples).all()
    median = guide.median(data, 5, HEAT_PRIOR)["theta"].item()
    assert median == pytest.approx(map_angle(data, HEAT_PRIOR), abs=0.15)


def test_auto_normal_torus_prior():
    """AutoNormal on a TorusUniform latent goes through biject_to(independent(angle, 1))."""

    def model(data: Tensor) -> None:
        z = pyro.sample("z", TorusUniform(2))
        with pyro.plate("obs", data.shape[0]):
            pyro.sample("x", TorusHeatKernel(z, 0.1), obs=data)

    data = torch.tensor([[0.5, -1.0], [0.7, -1.2]])
    guide = AutoNormal(model)
    pyro.set_rng_seed(0)
    losses = run_svi(model, guide, Trace_ELBO(), data, steps=150)
    assert mean(losses[-20:]) < mean(losses[:20])
    z = Predictive(guide, num_samples=500)(data)["z"]
    assert z.shape == (500, 2)
    assert TorusUniform(2).support.check(z).all()


def test_angle_bijection_stays_in_support():
    """biject_to(angle) maps every real, even huge ones in float32, into [-pi, pi)."""
    transform = torch.distributions.biject_to(CircleUniform().support)
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([-1e4, -40.0, -17.0, -1.0, 0.0, 0.3, 17.0, 40.0, 1e4], dtype=dtype)
        y = transform(x)
        assert CircleUniform().support.check(y).all()
        assert torch.allclose(transform.inv(y[3:6]), x[3:6])
    x = torch.linspace(-8.0, 8.0, 33, dtype=torch.float64, requires_grad=True)
    y = transform(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(transform.log_abs_det_jacobian(x, y), grad.log())


# ----------------------------------------------------------------------------------------------
# Predictive and poutines
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True])
def test_predictive_prior_and_posterior(parallel):
    prior_pred = Predictive(compass_model, num_samples=50, parallel=parallel)(None, 7)
    assert prior_pred["theta"].shape == (50, 1)
    assert prior_pred["x"].shape == (50, 7)
    assert CircleUniform().support.check(prior_pred["theta"]).all()
    assert prior_pred["theta"].std() > 1.0  # a uniform prior, not a point

    pyro.param("loc", torch.tensor(1.2))  # heat_guide picks up these values
    pyro.param("time", torch.tensor(0.01), constraint=constraints.positive)
    post = Predictive(compass_model, guide=heat_guide, num_samples=50, parallel=parallel)(None, 7)
    assert post["theta"].shape == (50, 1)
    assert post["x"].shape == (50, 7)
    assert CircleUniform().support.check(post["theta"]).all()
    assert (post["theta"] - 1.2).abs().max() < 0.6  # sd of the guide is sqrt(0.02) = 0.14


def test_predictive_plate_batch_shapes():
    pred = Predictive(plate_model, guide=plate_guide, num_samples=30)(PLATE_DATA)
    assert pred["theta"].shape == (30, 8)
    assert CircleUniform().support.check(pred["theta"]).all()


def test_trace_log_prob_sum_matches_by_hand():
    data = compass_data(n=6)
    prior = CircleHeatKernel(torch.tensor(0.3), torch.tensor(0.4))
    tr = poutine.trace(compass_model).get_trace(data, 6, prior)
    theta = tr.nodes["theta"]["value"]
    expected = prior.log_prob(theta) + dist.VonMises(theta, KAPPA).log_prob(data).sum()
    assert tr.log_prob_sum().item() == pytest.approx(expected.item(), rel=1e-6)
    tr.compute_log_prob()
    assert tr.nodes["theta"]["log_prob"].shape == ()
    assert tr.nodes["theta"]["log_prob"].item() == pytest.approx(prior.log_prob(theta).item())
    assert tr.nodes["x"]["log_prob"].shape == (6,)

    guide_tr = poutine.trace(heat_guide).get_trace(data)
    q = CircleHeatKernel(pyro.param("loc"), pyro.param("time"))
    assert guide_tr.log_prob_sum().item() == pytest.approx(
        q.log_prob(guide_tr.nodes["theta"]["value"]).item()
    )


def test_condition_and_replay():
    data = compass_data(n=6)
    conditioned = poutine.condition(compass_model, data={"theta": torch.tensor(-2.0)})
    tr = poutine.trace(conditioned).get_trace(data)
    assert tr.nodes["theta"]["is_observed"]
    assert tr.nodes["theta"]["value"].item() == -2.0
    expected = -math.log(2 * math.pi) + dist.VonMises(-2.0, KAPPA).log_prob(data).sum()
    assert tr.log_prob_sum().item() == pytest.approx(expected.item(), rel=1e-6)
    # Validation: conditioning on an angle outside [-pi, pi) is rejected, naming the value.
    bad = poutine.condition(compass_model, data={"theta": torch.tensor(4.0)})
    with pytest.raises(ValueError, match="value"):
        poutine.trace(bad).get_trace(data).log_prob_sum()

    # Replay: the model reuses the guide's angle; the log weight is the Trace_ELBO loss.
    pyro.set_rng_seed(3)
    guide_tr = poutine.trace(heat_guide).get_trace(data)
    model_tr = poutine.trace(poutine.replay(compass_model, trace=guide_tr)).get_trace(data)
    assert model_tr.nodes["theta"]["value"] is guide_tr.nodes["theta"]["value"]
    log_weight = model_tr.log_prob_sum() - guide_tr.log_prob_sum()
    pyro.set_rng_seed(3)
    assert Trace_ELBO().loss(compass_model, heat_guide, data) == pytest.approx(
        -log_weight.item(), rel=1e-6
    )


def test_validation_rejects_bad_guide_time():
    """Under validation a non-positive time reaching the distribution raises, naming it."""

    def guide(data: Tensor) -> None:
        pyro.sample("theta", CircleHeatKernel(torch.tensor(0.0), torch.tensor(-1.0)))

    with pytest.raises(ValueError, match="time"):
        Trace_ELBO().loss(compass_model, guide, compass_data(n=3))


def test_validation_is_on_during_these_tests():
    assert pyro.infer.util.is_validation_enabled()
    assert pyro.poutine.util.is_validation_enabled()
    assert torch.distributions.Distribution._validate_args
    assert CircleHeatKernel(0.0, 1.0)._validate_args
