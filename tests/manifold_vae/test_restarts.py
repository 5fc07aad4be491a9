"""Public restarts and seeds (issue 18): ``fit(..., restarts=k, screen_epochs=w)`` and
``fit_ensemble``'s equivalent keep the start of lowest training loss and report every
candidate; each start's initial weights, and a whole run, are reproducible from seeds."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import manifold_vae
from manifold_vae.datasets import sinusoids
from manifold_vae.ensemble import RESTART_SEED, fit_ensemble, reinitialized, restart_seeds
from manifold_vae.likelihoods import Gaussian, GaussianLearnedScale
from manifold_vae.manifolds import Circle
from manifold_vae.training import fit
from manifold_vae.vae import VAE, seeded

pytestmark = pytest.mark.usefixtures("one_thread")

OPTIONS = {"epochs": 3, "batch_size": 16, "lr": 1e-2, "progress": False}


def _vae(seed: int = 0, dtype=torch.float32) -> VAE:
    return VAE(Circle(), (25,), Gaussian(0.1), seed=seed).to(dtype)


def _data(dtype=torch.float32) -> torch.Tensor:
    return sinusoids(n=32, seed=4, dtype=dtype).data


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _alone(vae: VAE, j: int, seed: int, **options):
    """What plain ``fit`` makes of start ``j`` of ``vae`` (before training)."""
    start = copy.deepcopy(vae) if j == 0 else reinitialized(vae, seed + RESTART_SEED * j)
    history = fit(start, _data(), seed=seed + RESTART_SEED * j, **{**OPTIONS, **options})
    return start, history


@pytest.mark.parametrize("screen_epochs", [None, 1])
def test_fit_keeps_the_start_of_lowest_loss_exactly_as_fit_trains_it(screen_epochs):
    vae = _vae()
    initial = copy.deepcopy(vae)
    history = fit(vae, _data(), seed=7, restarts=3, screen_epochs=screen_epochs, **OPTIONS)
    restarts = history.restarts
    assert restarts.seeds == restart_seeds(7, 3) == [7, 100_007, 200_007]
    assert restarts.screen_epochs == screen_epochs and len(restarts.histories) == 3
    assert restarts.final_loss == [h.loss[-1] for h in restarts.histories]
    assert restarts.chosen == min(range(3), key=restarts.final_loss.__getitem__)
    screen = {"epochs": screen_epochs} if screen_epochs else {}
    for j, candidate in enumerate(restarts.histories):  # every candidate, as fit alone
        assert candidate.loss == _alone(initial, j, 7, **screen)[1].loss
    kept, kept_history = _alone(initial, restarts.chosen, 7)
    assert _same(vae, kept) and history.loss == kept_history.loss
    assert not vae.training
    assert history.as_dict()["restarts"]["chosen"] == restarts.chosen


def test_the_losses_differ_between_starts():
    history = fit(_vae(), _data(), restarts=3, **OPTIONS)
    assert len(set(history.restarts.final_loss)) == 3


def test_restart_weights_are_reproducible_from_the_seed():
    vae = _vae()
    before, state = copy.deepcopy(vae), torch.get_rng_state()
    a, b, c = reinitialized(vae, 5), reinitialized(vae, 5), reinitialized(vae, 6)
    assert _same(a, b) and not _same(a, c) and not _same(a, vae)
    assert _same(vae, before), "the model passed is never re-initialised"
    assert torch.equal(torch.get_rng_state(), state), "the global random state changed"


def test_the_likelihoods_parameters_keep_their_values():
    vae = VAE(Circle(), (25,), GaussianLearnedScale(0.3), seed=0)
    with torch.no_grad():
        vae.likelihood.log_sigma.fill_(-1.0)
    assert torch.equal(reinitialized(vae, 1).likelihood.log_sigma, vae.likelihood.log_sigma)


class _Raw(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, 25))

    def forward(self, x):
        return torch.cat([x @ self.weight.T, torch.zeros_like(x[:, :1])], dim=-1)


def test_a_network_without_reset_parameters_is_named():
    vae = VAE(Circle(), (25,), Gaussian(0.1), encoder=_Raw())
    with pytest.raises(ValueError, match=r"module 'encoder' \(_Raw\) .* no reset_parameters"):
        fit(vae, _data(), restarts=2, **OPTIONS)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"restarts": 0}, "restarts must be an integer >= 1"),
        ({"restarts": 2.0}, "restarts must be an integer >= 1"),
        ({"restarts": 2, "screen_epochs": 0}, "screen_epochs must be None or an integer >= 1"),
        ({"screen_epochs": 2}, "screen_epochs = 2 needs restarts >= 2"),
    ],
)
def test_bad_restart_options_raise(options, message):
    with pytest.raises(ValueError, match=message):
        fit(_vae(), _data(), **OPTIONS, **options)
    with pytest.raises(ValueError, match=message):
        fit_ensemble([_vae()], _data(), **OPTIONS, **options)


def test_a_checkpoint_holds_the_kept_model(tmp_path):
    vae = _vae()
    fit(vae, _data(), restarts=2, checkpoint=tmp_path / "model.pt", **OPTIONS)
    assert _same(VAE.load(tmp_path / "model.pt"), vae)


@pytest.mark.parametrize("screen_epochs", [None, 1])
def test_fit_ensemble_restarts_match_fit(screen_epochs):
    """Stacked members equal fit to rounding (float64 here)."""
    dtype = torch.float64
    vaes = [_vae(0, dtype), _vae(1, dtype)]
    alone = [copy.deepcopy(v) for v in vaes]
    data = _data(dtype)
    histories = fit_ensemble(
        vaes, data, seeds=[3, 4], restarts=2, screen_epochs=screen_epochs, **OPTIONS
    )
    for vae, reference, seed, history in zip(vaes, alone, [3, 4], histories, strict=True):
        expected = fit(reference, data, seed=seed, restarts=2, screen_epochs=screen_epochs,
                       **OPTIONS)  # fmt: skip
        assert history.restarts.chosen == expected.restarts.chosen
        assert history.restarts.seeds == expected.restarts.seeds
        assert history.loss == pytest.approx(expected.loss, rel=1e-9)
        for name, value in vae.state_dict().items():
            torch.testing.assert_close(value, reference.state_dict()[name], rtol=1e-7, atol=1e-9)


# --- seeds ---------------------------------------------------------------------------------------
def test_vae_seed_fixes_the_initial_weights_without_touching_the_global_rng():
    """Before issue 18 the initial weights came from the global RNG (no seed argument)."""
    state = torch.get_rng_state()
    a, b, c = _vae(3), _vae(3), _vae(4)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same(a, b) and not _same(a, c)


def test_a_seed_with_custom_networks_is_refused():
    with pytest.raises(ValueError, match=r"custom encoder .* manifold_vae.seeded\(seed\)"):
        VAE(Circle(), (25,), Gaussian(0.1), encoder=nn.Linear(25, 3), seed=0)


def test_seeded_makes_custom_networks_reproducible():
    def build():
        with manifold_vae.seeded(9):
            return VAE(Circle(), (25,), Gaussian(0.1), encoder=nn.Linear(25, 3))

    state = torch.get_rng_state()
    assert _same(build(), build())
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seeds_raise(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        with seeded(seed):
            pass
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        VAE(Circle(), (25,), Gaussian(0.1), seed=seed)


def test_a_whole_run_is_reproducible_from_two_seeds():
    runs = []
    for _ in range(2):
        torch.manual_seed(len(runs))  # a different global state each time: it does not matter
        vae = _vae(11)
        history = fit(vae, _data(), seed=5, restarts=2, screen_epochs=1, **OPTIONS)
        runs.append((vae, history))
    (a, ha), (b, hb) = runs
    assert _same(a, b) and ha.loss == hb.loss and ha.restarts.final_loss == hb.restarts.final_loss
    assert all(math.isfinite(v) for v in ha.loss)
