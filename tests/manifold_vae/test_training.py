"""``fit``: determinism, global RNG, history, divergence protection, validation, phase recovery."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

from manifold_vae.datasets import sinusoids, sinusoids_grid
from manifold_vae.evaluation import circular_correlation
from manifold_vae.likelihoods import Bernoulli, Gaussian
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean
from manifold_vae.training import History, decoder_sigma, fit, learning_rate
from manifold_vae.vae import ELBO, VAE

# One torch thread: tiny models run many times faster on a busy 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _vae(latent=None, seed: int = 0, likelihood=None, **kwargs) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent or Circle(), (25,), likelihood or Gaussian(0.1), **kwargs)


def _data(n: int = 64) -> torch.Tensor:
    return sinusoids(n=n, noise=0.1, seed=1).data


def _state(vae: VAE) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in vae.state_dict().items()}


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _fit(vae: VAE, data: torch.Tensor, **kwargs) -> History:
    options = {"epochs": 3, "batch_size": 16, "lr": 3e-3, "seed": 0, "progress": False}
    return fit(vae, data, **{**options, **kwargs})


# --- determinism and history -----------------------------------------------------------------
@pytest.mark.parametrize("latent", [Circle(), Euclidean(2), CliffordTorus()], ids=repr)
def test_fit_is_deterministic_under_a_seed(latent):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # a different global state must not matter
        vae = _vae(latent)
        torch.manual_seed(len(runs))
        history = _fit(vae, _data(), seed=7)
        runs.append((_state(vae), history))
    _assert_same_state(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]

    vae = _vae(latent)
    other = _fit(vae, _data(), seed=8)
    assert other.loss != runs[0][1].loss  # the seed matters


def test_fit_leaves_the_global_rng_untouched():
    vae = _vae()
    torch.manual_seed(99)
    state = torch.get_rng_state()
    _fit(vae, _data())
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_history_has_one_entry_per_epoch(beta):
    vae = _vae()
    history = _fit(vae, _data(), epochs=4, beta=beta)
    assert history.stopped is None
    assert len(history.loss) == len(history.reconstruction) == len(history.kl) == 4
    for loss, rec, kl in zip(history.loss, history.reconstruction, history.kl, strict=True):
        assert loss == pytest.approx(beta * kl - rec, rel=1e-5)
        assert kl >= 0
    assert history.loss[-1] < history.loss[0]
    assert history.as_dict()["loss"] == history.loss


def test_zero_epochs_changes_nothing():
    vae = _vae()
    before = _state(vae)
    history = _fit(vae, _data(), epochs=0)
    assert history.loss == [] and history.stopped is None
    _assert_same_state(_state(vae), before)


def test_fit_trains_in_place_and_returns_in_eval_mode():
    vae = _vae()
    before = _state(vae)
    _fit(vae, _data(), epochs=1)
    assert not vae.training
    assert any(not torch.equal(before[k], v) for k, v in _state(vae).items())


def test_checkpoint_is_written_after_every_good_epoch(tmp_path):
    path = tmp_path / "run" / "model.pt"
    vae = _vae()
    _fit(vae, _data(), epochs=2, checkpoint=path)
    _assert_same_state(_state(VAE.load(path)), _state(vae))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


# --- divergence ------------------------------------------------------------------------------
def _nan_on_call(vae: VAE, bad_call: int) -> None:
    """Make ``vae.elbo`` return a nan ELBO (with a graph) on its ``bad_call``-th call."""
    elbo, calls = vae.elbo, [0]

    def wrapped(*args, **kwargs) -> ELBO:
        calls[0] += 1
        terms = elbo(*args, **kwargs)
        if calls[0] == bad_call:
            return terms._replace(elbo=terms.elbo * math.nan)
        return terms

    vae.elbo = wrapped


def test_divergence_stops_with_a_warning_and_keeps_the_last_good_parameters(tmp_path):
    # 64 datapoints in batches of 16: 4 steps per epoch; the 3rd step of epoch 2 diverges,
    # after two good steps in that epoch have already moved the parameters.
    reference = _vae()
    _fit(reference, _data(), epochs=1)
    path = tmp_path / "model.pt"
    vae = _vae()
    _nan_on_call(vae, bad_call=7)
    with pytest.warns(RuntimeWarning, match="non-finite loss") as record:
        history = _fit(vae, _data(), epochs=5, checkpoint=path)
    message = str(record[0].message)
    assert "epoch 2" in message and "restored to the end of epoch 1" in message
    assert history.stopped == message
    assert len(history.loss) == 1
    assert all(torch.isfinite(v).all() for v in _state(vae).values())
    _assert_same_state(_state(vae), _state(reference))
    _assert_same_state(_state(VAE.load(path)), _state(reference))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_divergence_in_the_first_epoch_restores_the_initial_parameters():
    data = _data()
    # put an overflowing datapoint (its squared error is inf in float32) in the last batch
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    data[order[-1]] = 1e30
    vae = _vae()
    initial = _state(vae)
    with pytest.warns(RuntimeWarning, match="epoch 1 .*restored to the end of epoch 0"):
        history = _fit(vae, data)
    assert history.loss == [] and history.stopped is not None
    _assert_same_state(_state(vae), initial)


@pytest.mark.parametrize("latent", [Circle(), Euclidean(2)], ids=repr)
def test_huge_learning_rate_stops_cleanly(latent):
    """A diverging run ends with the warning, never with an exception from a distribution."""
    vae = _vae(latent)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        history = _fit(vae, sinusoids(n=256, seed=0).data, epochs=5, batch_size=32, lr=1e6)
    assert history.stopped is not None
    assert all(torch.isfinite(v).all() for v in _state(vae).values())


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make_data", "message"),
    [
        (lambda: torch.rand(10, 24), "must have shape"),
        (lambda: torch.rand(25), "must have shape"),
        (lambda: torch.randint(0, 2, (10, 25)), "floating dtype"),
        (lambda: torch.full((10, 25), math.nan), "nan or inf"),
        (lambda: torch.full((10, 25), math.inf), "nan or inf"),
        (lambda: torch.rand(0, 25), "empty"),
    ],
    ids=["wrong-shape", "no-batch", "integer", "nan", "inf", "empty"],
)
def test_bad_data_raises_before_training(make_data, message):
    vae = _vae()
    before = _state(vae)

    def never(*args, **kwargs):
        raise AssertionError("training started")

    vae.elbo = never
    with pytest.raises(ValueError, match=message):
        _fit(vae, make_data())
    _assert_same_state(_state(vae), before)


def test_bernoulli_data_outside_the_unit_interval_raises():
    vae = _vae(likelihood=Bernoulli())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _fit(vae, _data())
    _fit(vae, torch.rand(32, 25), epochs=1)


@pytest.mark.parametrize(
    "options",
    [
        {"epochs": -1},
        {"batch_size": 0},
        {"num_samples": 0},
        {"lr": 0.0},
        {"lr": -1e-3},
        {"lr": math.nan},
        {"lr": math.inf},
    ],
    ids=repr,
)
def test_bad_arguments_raise(options):
    with pytest.raises(ValueError):
        _fit(_vae(), _data(), **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_when_unavailable_raises():
    with pytest.raises(ValueError, match=r"device='cuda'.*is_available\(\) is False"):
        _fit(_vae(), _data(), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda():
    vae = _vae()
    history = _fit(vae, _data(), device="cuda")
    assert next(vae.parameters()).is_cuda and len(history.loss) == 3


# --- the acceptance test: the circle VAE recovers the phase ----------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_circle_vae_recovers_the_phase_of_sinusoids(seed):
    """Thesis Sec. 5.1 data, ``sigma_X = 0.1``; dense networks of two hidden layers of 64."""
    data = sinusoids(n=1000, noise=0.1, seed=0).data
    vae = _vae(Circle(), seed=seed, hidden=64)
    history = fit(vae, data, epochs=20, batch_size=64, lr=1e-3, seed=seed, progress=False)
    assert history.stopped is None
    grid = sinusoids_grid()
    with torch.no_grad():
        angle = vae.latent.posterior_location(vae.encode(grid.data))[:, 0]
    rho = circular_correlation(angle, grid.latent[:, 0]).item()
    assert abs(rho) >= 0.99, rho


def test_phase_recovery_metric_is_not_trivially_satisfied():
    """An untrained encoder does not recover the phase."""
    vae = _vae(Circle(), hidden=64)
    grid = sinusoids_grid()
    with torch.no_grad():
        angle = vae.latent.posterior_location(vae.encode(grid.data))[:, 0]
    assert abs(circular_correlation(angle, grid.latent[:, 0]).item()) < 0.99


def test_fit_emits_no_warning_when_nothing_goes_wrong():
    """Warnings are reserved for trouble: a normal run emits none."""
    vae = _vae()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(copy.deepcopy(vae), _data(), epochs=1)


def test_learning_rate_schedule():
    """Cosine from lr (first epoch) to lr_final (last epoch); constant without lr_final."""
    assert [learning_rate(e, 5, 1e-2) for e in range(5)] == [1e-2] * 5
    rates = [learning_rate(e, 5, 1e-2, 1e-4) for e in range(5)]
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-4)
    assert rates[2] == pytest.approx(0.5 * (1e-2 + 1e-4))
    assert rates == sorted(set(rates), reverse=True)  # strictly decreasing
    assert learning_rate(0, 1, 1e-2, 1e-4) == 1e-2


@pytest.mark.parametrize("lr_final", [0.0, -1e-3, 2e-3, float("nan")])
def test_bad_lr_final_raises(lr_final):
    vae = VAE(Circle(), (25,), Gaussian(0.1))
    with pytest.raises(ValueError, match="lr_final"):
        fit(vae, sinusoids(n=8).data, epochs=1, lr=1e-3, lr_final=lr_final, progress=False)


def test_input_noise_needs_a_real_valued_likelihood():
    """Noisy data would leave a Bernoulli likelihood's support [0, 1]: refused by both trainers."""
    from manifold_vae.ensemble import fit_ensemble

    data = torch.rand(16, 25, generator=torch.Generator().manual_seed(0))
    vae = VAE(Circle(), (25,), Bernoulli())
    with pytest.raises(ValueError, match="needs real-valued data"):
        fit(vae, data, epochs=1, input_noise=0.1, progress=False)
    with pytest.raises(ValueError, match="bounded support"):
        fit_ensemble([vae], data, epochs=1, input_noise=0.1, progress=False)
    fit(vae, data, epochs=1, input_noise=0.0, progress=False)  # no noise: fine


# --- decoder-scale warm-up -------------------------------------------------------------------
def test_decoder_sigma_schedule():
    """Geometric from sigma_start (epoch 0) to sigma_X (epoch W on); no warm-up above it."""
    values = [decoder_sigma(e, 0.01, 1.0, 4) for e in range(6)]
    assert values[0] == pytest.approx(1.0) and values[4:] == [0.01, 0.01]
    assert values[2] == pytest.approx(0.1)  # halfway on a log scale
    ratios = [values[e + 1] / values[e] for e in range(4)]
    assert ratios == pytest.approx([0.01**0.25] * 4)
    assert [decoder_sigma(e, 2.0, 1.0, 4) for e in range(3)] == [2.0] * 3
    assert decoder_sigma(0, 0.01) == 0.01


def test_warmup_epoch_is_an_epoch_of_the_model_at_that_scale():
    """Epoch e trains the model with sigma_X replaced by decoder_sigma(e): bitwise for e = 0."""
    data = _data()
    warm = _vae(likelihood=Gaussian(0.01))
    hot = copy.deepcopy(warm)
    hot.likelihood.scale.fill_(1.0)
    seen: list[float] = []
    log_density = warm.likelihood.log_density

    def recording(output, x):
        seen.append(warm.likelihood.scale.item())
        return log_density(output, x)

    warm.likelihood.log_density = recording
    options = {"batch_size": 16, "progress": False}
    history = fit(warm, data, epochs=3, sigma_start=1.0, warmup_epochs=2, **options)
    assert seen == pytest.approx([1.0] * 4 + [0.1] * 4 + [0.01] * 4)  # 4 batches per epoch
    assert warm.likelihood.scale.item() == 0.01 and warm.likelihood.sigma == 0.01  # restored
    first = _vae(likelihood=Gaussian(0.01))
    assert fit(first, data, epochs=1, sigma_start=1.0, warmup_epochs=2, **options).loss == (
        fit(hot, data, epochs=1, **options).loss
    )
    assert history.loss[0] == fit(_vae(likelihood=Gaussian(1.0)), data, epochs=1, **options).loss[0]
    for key, value in hot.state_dict().items():
        assert torch.equal(first.state_dict()[key], value), key


def test_checkpoint_written_during_warmup_keeps_sigma_x(tmp_path):
    vae = _vae(likelihood=Gaussian(0.01))
    path = tmp_path / "model.pt"
    fit(vae, _data(16), epochs=1, sigma_start=1.0, warmup_epochs=3, checkpoint=path, progress=False)
    loaded = VAE.load(path)
    assert loaded.likelihood.sigma == 0.01
    assert loaded.likelihood.scale.item() == pytest.approx(0.01, rel=1e-7)


def test_warmup_scale_is_restored_when_training_stops():
    vae = _vae(likelihood=Gaussian(0.01))
    data = _data(16)
    data[3, 0] = 1e30  # the loss overflows in the first step
    with pytest.warns(RuntimeWarning, match="non-finite"):
        history = fit(vae, data, epochs=2, sigma_start=1.0, warmup_epochs=2, progress=False)
    assert history.stopped is not None and vae.likelihood.scale.item() == 0.01


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"warmup_epochs": 3}, "needs sigma_start"),
        ({"sigma_start": 1.0}, "needs warmup_epochs >= 1"),
        ({"sigma_start": 0.0, "warmup_epochs": 3}, "sigma_start must be"),
        ({"sigma_start": float("inf"), "warmup_epochs": 3}, "sigma_start must be"),
        ({"sigma_start": True, "warmup_epochs": 3}, "sigma_start must be"),
        ({"sigma_start": 1.0, "warmup_epochs": -1}, "warmup_epochs must be"),
        ({"sigma_start": 1.0, "warmup_epochs": 2.5}, "warmup_epochs must be"),
    ],
    ids=repr,
)
def test_bad_warmup_raises(options, message):
    with pytest.raises(ValueError, match=message):
        fit(_vae(), _data(8), epochs=1, progress=False, **options)


def test_warmup_needs_a_fixed_gaussian_scale():
    from manifold_vae.ensemble import fit_ensemble

    data = torch.rand(16, 25, generator=torch.Generator().manual_seed(0))
    vae = _vae(likelihood=Bernoulli())
    for train in (fit, lambda v, d, **k: fit_ensemble([v], d, **k)):
        with pytest.raises(ValueError, match="needs a Gaussian likelihood with fixed sigma_X"):
            train(vae, data, epochs=1, sigma_start=1.0, warmup_epochs=2, progress=False)
