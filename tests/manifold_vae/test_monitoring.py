"""Held-out ELBO, early stopping and per-epoch logs (manifold_vae.trainer.monitoring)."""

from __future__ import annotations

import json

import pytest
import torch

from manifold_vae import VAE, fit
from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle
from manifold_vae.trainer.monitoring import MetricsLog, TensorBoardLog, Validation


def _vae(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(Circle(), (25,), Gaussian(0.1), hidden=16)


def _split():
    data = sinusoids(n=96, seed=0).data
    return data[:64], data[64:]


def test_watching_a_run_does_not_change_it(tmp_path):
    train, held_out = _split()
    plain = _vae()
    fit(plain, train, epochs=3, batch_size=16, seed=1, progress=False)
    watched = _vae()
    validation = Validation(held_out, num_samples=2)
    log = tmp_path / "metrics.jsonl"
    history = fit(
        watched,
        train,
        epochs=3,
        batch_size=16,
        seed=1,
        progress=False,
        callbacks=[validation, MetricsLog(log, validation)],
    )
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert [line["loss"] for line in lines] == history.loss
    losses = validation.losses[(0, 0)]
    assert [line["val_loss"] for line in lines] == losses
    assert all(line["seconds"] >= 0 and line["stopped"] is None for line in lines)
    # the held-out loss is the negative ELBO of the final model on the held-out data
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(2)
        direct = -watched.elbo(held_out, num_samples=2).elbo.mean().item()
    assert losses[-1] == pytest.approx(direct, rel=1e-5)


def test_early_stopping_after_patience_epochs_without_improvement(monkeypatch):
    train, held_out = _split()
    sequence = iter([3.0, 2.0, 2.5, 2.1, 1.0, 0.5])
    monkeypatch.setattr(Validation, "loss", lambda self, vae, device, epoch: next(sequence))
    validation = Validation(held_out, patience=2)
    history = fit(_vae(), train, epochs=6, batch_size=32, progress=False, callbacks=[validation])
    assert len(history.loss) == 4  # best after epoch 2, no improvement in epochs 3 and 4
    assert history.stopped is not None
    assert history.stopped.startswith("early stopping") and "after epoch 2" in history.stopped
    assert validation.losses[(0, 0)] == [3.0, 2.0, 2.5, 2.1]


def test_no_early_stopping_without_patience(monkeypatch):
    train, held_out = _split()
    monkeypatch.setattr(Validation, "loss", lambda self, vae, device, epoch: 1.0 + epoch)
    history = fit(
        _vae(), train, epochs=4, batch_size=32, progress=False, callbacks=[Validation(held_out)]
    )
    assert len(history.loss) == 4 and history.stopped is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": torch.empty(0, 25)}, "non-empty"),
        ({"patience": 0}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"num_samples": 0}, "num_samples"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"data": torch.zeros(4, 25), **kwargs}
    with pytest.raises(ValueError, match=match):
        Validation(**kwargs)


def test_tensorboard_log(tmp_path):
    pytest.importorskip("tensorboard")
    train, held_out = _split()
    validation = Validation(held_out)
    fit(
        _vae(),
        train,
        epochs=2,
        batch_size=32,
        progress=False,
        callbacks=[validation, TensorBoardLog(tmp_path / "tb", validation)],
    )
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_tensorboard_missing_is_a_clear_error(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "torch.utils.tensorboard":
            raise ImportError("no tensorboard")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ValueError, match="pip install tensorboard"):
        TensorBoardLog(tmp_path)
