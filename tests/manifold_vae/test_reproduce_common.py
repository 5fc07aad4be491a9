"""Grids of members: restarts are trained together and the best training loss is kept."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle
from manifold_vae.reproduce.common import RESTART_SEED, build_members, json_text, train_members
from manifold_vae.trainer import TrainConfig
from manifold_vae.training import fit
from manifold_vae.vae import VAE

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = sinusoids(n=64, noise=0.1, seed=0).data


def _make(cell):
    return VAE(Circle(), (25,), Gaussian(cell["sigma_x"]), hidden=4), DATA


def test_one_start_per_member_by_default():
    members = build_members([{"sigma_x": 0.1}, {"sigma_x": 1.0}], 2, _make)
    assert [m.seed for m in members] == [0, 1, 1000, 1001]
    assert all(m.candidates == [] for m in members)


def test_restarts_keep_the_lowest_final_loss_and_record_all():
    members = build_members([{"sigma_x": 0.1}], 1, _make, restarts=3)
    (member,) = members
    assert [seed for _, seed in member.candidates] == [RESTART_SEED, 2 * RESTART_SEED]
    starts = [copy.deepcopy(v) for v in (member.vae, *(v for v, _ in member.candidates))]
    # sabotage the first start so that it cannot be the best
    with torch.no_grad():
        for p in member.vae.decoder.parameters():
            p.mul_(50.0)
        for p in starts[0].decoder.parameters():
            p.mul_(50.0)
    train_members(members, TrainConfig(epochs=2, batch_size=32, progress=False))
    record = member.restarts
    assert record["seeds"] == [0, RESTART_SEED, 2 * RESTART_SEED]
    losses = record["final_loss"]
    assert record["chosen"] == min(range(3), key=losses.__getitem__) != 0
    assert member.candidates == [] and member.seed == record["seeds"][record["chosen"]]
    # the kept model is what fit makes of that start with that seed
    alone = starts[record["chosen"]]
    history = fit(alone, DATA, epochs=2, batch_size=32, seed=member.seed, progress=False)
    assert member.history.loss == pytest.approx(history.loss, rel=1e-4)
    for a, b in zip(alone.parameters(), member.vae.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_screened_restarts_train_only_the_best_start_in_full():
    members = build_members([{"sigma_x": 0.1}, {"sigma_x": 1.0}], 1, _make, restarts=2)
    first = members[0]
    with torch.no_grad():
        for p in first.vae.decoder.parameters():
            p.mul_(50.0)  # the first start of the first member is bad
    starts = [copy.deepcopy(v) for m in members for v in (m.vae, *(c for c, _ in m.candidates))]
    train_members(members, TrainConfig(epochs=3, batch_size=32, progress=False), screen_epochs=1)
    assert first.restarts["chosen"] == 1 and first.restarts["screen_epochs"] == 1
    assert first.seed == RESTART_SEED and len(first.history.loss) == 3
    alone = starts[1]
    history = fit(alone, DATA, epochs=3, batch_size=32, seed=RESTART_SEED, progress=False)
    assert first.history.loss == pytest.approx(history.loss, rel=1e-4)
    for a, b in zip(alone.parameters(), first.vae.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="screen_epochs"):
        train_members(members, TrainConfig(epochs=1, progress=False), screen_epochs=0)


def test_screen_and_full_run_share_the_warmup():
    """The screen goes through the decoder scales of the full run's first epochs: the kept
    model is what ``fit`` makes of its start with the same warm-up."""
    members = build_members([{"sigma_x": 0.01}], 1, _make, restarts=2)
    starts = [copy.deepcopy(v) for v in (members[0].vae, members[0].candidates[0][0])]
    warmup = {"sigma_start": 1.0, "warmup_epochs": 3}
    config = TrainConfig(epochs=3, batch_size=32, progress=False, **warmup)
    train_members(members, config, screen_epochs=2)
    member = members[0]
    chosen = member.restarts["chosen"]
    screen = fit(
        copy.deepcopy(starts[1 - chosen]),
        DATA,
        epochs=2,
        batch_size=32,
        seed=member.restarts["seeds"][1 - chosen],
        progress=False,
        **warmup,
    )
    assert member.restarts["final_loss"][1 - chosen] == pytest.approx(screen.loss[-1], rel=1e-4)
    alone = starts[chosen]
    history = fit(alone, DATA, epochs=3, batch_size=32, seed=member.seed, progress=False, **warmup)
    assert member.history.loss == pytest.approx(history.loss, rel=1e-4)
    assert member.vae.likelihood.scale.item() == pytest.approx(0.01, rel=1e-7)
    for a, b in zip(alone.parameters(), member.vae.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("restarts", [0, -1, 1.5, True])
def test_bad_restarts_raise(restarts):
    with pytest.raises(ValueError, match="restarts"):
        build_members([{"sigma_x": 0.1}], 1, _make, restarts=restarts)


def test_results_json_rounds_numbers_and_keeps_flat_arrays_on_one_line():
    payload = {
        "loss": [1.0 / 3.0, float("nan"), float("inf"), 2],
        "tensor": torch.tensor([0.123456789, 2.0], dtype=torch.float64),
        "nested": {"cells": [[1.5, 2.5], [3.5]], "names": ["a", "b"]},
    }
    text = json_text(payload)
    assert '"loss": [0.3333333, NaN, Infinity, 2]' in text
    back = json.loads(text)
    assert back["tensor"] == [0.1234568, 2.0]
    assert back["nested"] == {"cells": [[1.5, 2.5], [3.5]], "names": ["a", "b"]}
    assert math.isnan(back["loss"][1]) and back["loss"][2] == math.inf
