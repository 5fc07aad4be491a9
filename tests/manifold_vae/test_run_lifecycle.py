"""A run's folder tells the truth: no stale model, no mixed runs, strict JSON, per-epoch logs."""

from __future__ import annotations

import json

import pytest
import torch

from manifold_vae import VAE
from manifold_vae.datasets import LatentDataset, sinusoids
from manifold_vae.jobs import split_held_out, train_job
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle, Euclidean


def _strict(path):
    def reject(token):
        raise AssertionError(f"{path.name} is not strict JSON: {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def _train(latent, dataset, out, **kwargs):
    options = {"epochs": 2, "batch_size": 32, "hidden": 8, "progress": False}
    return train_job(latent, dataset, Gaussian(0.1), out, **{**options, **kwargs})


def _huge():
    data = torch.full((64, 25), 1e30)
    return LatentDataset(data, torch.empty(64, 0), "huge.npy")


def test_a_diverging_run_never_reports_an_earlier_model(tmp_path):
    """Defect 1: a run that diverges in its first epoch left the previous run's circle model
    beside metrics that said euclidean."""
    out = tmp_path / "Z"
    _train(Circle(), sinusoids(n=64), out)
    with pytest.raises(ValueError, match="already holds a run"):
        _train(Euclidean(2), _huge(), out)
    result = _train(Euclidean(2), _huge(), out, overwrite=True)
    assert result.stopped is not None and "epoch 1" in result.stopped
    model = VAE.load(out / "model.pt")
    assert model.latent == Euclidean(2)  # the model of this run: its initial weights
    metrics = _strict(out / "metrics.json")  # defect 5: no -Infinity / NaN tokens
    assert metrics["latent"] == Euclidean(2).spec()
    assert metrics["stopped"] == result.stopped
    record = _strict(out / "run.json")
    assert record["config"]["latent"] == Euclidean(2).spec()


def test_every_file_of_a_run_describes_the_same_model(tmp_path):
    out = tmp_path / "run"
    result = _train(Circle(), sinusoids(n=64), out, epochs=3, val_fraction=0.25)
    files = sorted(p.name for p in out.iterdir())
    assert files == [".lock", "latent.png", "metrics.json", "metrics.jsonl", "model.pt", "run.json"]
    metrics, record = _strict(out / "metrics.json"), _strict(out / "run.json")
    assert metrics["latent"] == record["config"]["latent"] == Circle().spec()
    assert record["config"]["val_fraction"] == 0.25 and "torch" in record["versions"]
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in log] == [1, 2, 3]
    assert [line["loss"] for line in log] == metrics["history"]["loss"]
    assert [line["val_loss"] for line in log] == metrics["held_out"]["loss"]
    assert metrics["held_out"]["n"] == 16 and metrics["n"] == 48
    loaded = VAE.load(out / "model.pt")
    for a, b in zip(loaded.parameters(), result.vae.parameters(), strict=True):
        assert torch.equal(a, b)


def test_patience_stops_on_the_held_out_loss(tmp_path):
    result = _train(
        Circle(),
        sinusoids(n=64),
        tmp_path / "run",
        epochs=40,
        lr=0.3,
        val_fraction=0.25,
        patience=1,
    )
    assert result.stopped is not None and result.stopped.startswith("early stopping")
    assert result.metrics["epochs"] < 40


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patience": 3}, "needs a held-out split"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
    ],
)
def test_bad_run_options_fail_before_anything_is_written(tmp_path, kwargs, match):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        _train(Circle(), sinusoids(n=64), out, **kwargs)
    assert not out.exists()


def test_the_held_out_split_is_reproducible_and_disjoint():
    train, held = split_held_out(10, 0.3, seed=4)
    again = split_held_out(10, 0.3, seed=4)
    assert torch.equal(train, again[0]) and torch.equal(held, again[1])
    assert len(held) == 3 and sorted((*train.tolist(), *held.tolist())) == list(range(10))
    train, held = split_held_out(5, 0.0, seed=4)
    assert train.tolist() == [0, 1, 2, 3, 4] and len(held) == 0
    with pytest.raises(ValueError, match="leaving none"):
        split_held_out(1, 0.5, seed=0)


# --- early, clear errors (defect 4) -----------------------------------------------------------
def test_impossible_network_sizes_are_refused_with_the_number(tmp_path):
    """A D = 2e6 dataset: the default networks would need terabytes (they tried to allocate)."""
    wide = LatentDataset(torch.zeros(1, 1).expand(4, 2_000_000), torch.empty(4, 0), "wide.npy")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"needs about [\d,.]+ GiB .* more than the"):
        _train(Circle(), wide, out, hidden=None)
    assert not out.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": 10**20}, "seed must be an integer"),
        ({"seed": -1}, "seed must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"device": "tpu"}, "not a torch device"),
        ({"device": "meta"}, "cannot train a model"),
        ({"device": "cpu:3"}, "no index other than 0"),
    ],
)
def test_bad_seed_and_device_fail_before_the_folder_is_touched(tmp_path, kwargs, match):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        _train(Circle(), sinusoids(n=64), out, **kwargs)
    assert not out.exists()


def test_load_data_errors(tmp_path):
    import numpy as np

    from manifold_vae.jobs import load_data, parse_latent

    folder = tmp_path / "x.npy"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        load_data(str(folder))
    np.save(tmp_path / "complex.npy", np.ones((3, 4), dtype=np.complex64))
    with pytest.raises(ValueError, match="complex numbers"):
        load_data(str(tmp_path / "complex.npy"))
    np.save(tmp_path / "empty.npy", np.ones((0, 4)))
    with pytest.raises(ValueError, match="non-empty"):
        load_data(str(tmp_path / "empty.npy"))
    np.save(tmp_path / "ints.npy", np.arange(12).reshape(3, 4))
    assert load_data(str(tmp_path / "ints.npy")).data.dtype == torch.float32
    with pytest.raises(ValueError, match="cannot be built from a name alone"):
        parse_latent("fixed-time")


@pytest.mark.parametrize("beta", [-1.0, float("inf"), float("nan"), True])
def test_fit_refuses_a_negative_or_non_finite_kl_weight(beta):
    """Defect 4 (API): fit(beta=-1) was accepted, beta=inf trained into a divergence."""
    from manifold_vae import fit

    vae = VAE(Circle(), (25,), Gaussian(0.1), hidden=8, seed=0)
    with pytest.raises(ValueError, match="beta"):
        fit(vae, sinusoids(n=16).data, epochs=1, progress=False, beta=beta)
