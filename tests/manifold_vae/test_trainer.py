"""The one training loop: TrainConfig, epoch callbacks, the likelihood warm-up hook, backends."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import Tensor

from manifold_vae.datasets import sinusoids
from manifold_vae.ensemble import fit_ensemble
from manifold_vae.likelihoods import Gaussian, GaussianLearnedScale
from manifold_vae.manifolds import Circle, Euclidean
from manifold_vae.trainer import (
    DecoderWarmup,
    EpochCallback,
    LearningRateSchedule,
    SaveCheckpoint,
    StepBackend,
    TrainConfig,
    default_callbacks,
    learning_rate,
)
from manifold_vae.training import fit
from manifold_vae.vae import VAE

pytestmark = pytest.mark.usefixtures("one_thread")


def _vae(latent=None, seed: int = 0, likelihood=None) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent or Circle(), (25,), likelihood or Gaussian(0.1), hidden=8).double()


def _data(n: int = 48) -> Tensor:
    return sinusoids(n=n, noise=0.1, seed=1).data.double()


def _same_weights(a: VAE, b: VAE) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


# --- TrainConfig ------------------------------------------------------------------------------
def test_config_is_frozen_and_validated_when_built():
    config = TrainConfig(epochs=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]
    for options, name in [
        ({"epochs": -1}, "epochs"),
        ({"lr": math.nan}, "lr"),
        ({"lr_final": 1.0}, "lr_final"),
        ({"input_noise": -0.1}, "input_noise"),
        ({"warmup_epochs": 2}, "needs sigma_start"),
        ({"sigma_start": 2.0}, "needs warmup_epochs"),
    ]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**options)
    assert dataclasses.replace(config, lr_final=1e-4).lr_final == 1e-4
    assert TrainConfig().as_dict()["betas"] == [0.9, 0.999]


def test_fit_with_a_config_equals_fit_with_keywords():
    options = dict(epochs=3, batch_size=16, lr=3e-3, lr_final=1e-4, progress=False)
    a, b = _vae(), _vae()
    ha = fit(a, _data(), seed=4, **options)
    hb = fit(b, _data(), seed=4, config=TrainConfig(**options))
    assert ha == hb and _same_weights(a, b)


def test_default_callbacks_follow_the_options():
    kinds = [type(c) for c in default_callbacks(TrainConfig())]
    assert kinds == [LearningRateSchedule]
    warm = TrainConfig(sigma_start=1.0, warmup_epochs=2)
    assert [type(c) for c in default_callbacks(warm)] == [LearningRateSchedule, DecoderWarmup]


# --- callbacks --------------------------------------------------------------------------------
class Recorder(EpochCallback):
    """Records every hook call and each backend's step size at the start of an epoch."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_train_start(self, backends):
        self.calls.append(("start", len(backends)))

    def on_epoch_start(self, epoch, backends):
        lr = backends[0].optimizer.param_groups[0]["lr"]
        self.calls.append(("epoch", epoch, lr))

    def on_epoch_end(self, epoch, backends):
        self.calls.append(("end", epoch, backends[0].histories[0].loss[-1]))

    def on_train_end(self, backends):
        self.calls.append(("finish",))


def test_a_user_callback_sees_every_epoch_after_the_schedule():
    recorder = Recorder()
    history = fit(
        _vae(), _data(), epochs=3, lr=1e-2, lr_final=1e-3, progress=False, callbacks=[recorder]
    )
    assert recorder.calls[0] == ("start", 1) and recorder.calls[-1] == ("finish",)
    epochs = [c for c in recorder.calls if c[0] == "epoch"]
    assert [c[2] for c in epochs] == [learning_rate(e, 3, 1e-2, 1e-3) for e in range(3)]
    assert [c[2] for c in recorder.calls if c[0] == "end"] == history.loss


class Boom(EpochCallback):
    def on_epoch_end(self, epoch, backends):
        raise KeyboardInterrupt


def test_the_warmup_buffers_are_restored_when_training_is_interrupted():
    vae = _vae(likelihood=Gaussian(0.05))
    with pytest.raises(KeyboardInterrupt):
        fit(vae, _data(), epochs=4, sigma_start=1.0, warmup_epochs=3, progress=False,
            callbacks=[Boom()])  # fmt: skip
    assert vae.likelihood.scale.item() == 0.05


# --- the likelihood warm-up hook -------------------------------------------------------------
class TemperedLearned(GaussianLearnedScale):
    """A user likelihood with a fixed, shared scale buffer of its own name: the hook, not a
    buffer name or a class, decides whether and how it warms up."""

    name = "test-tempered"

    def __init__(self, sigma: float = 0.05) -> None:
        super().__init__(init_sigma=sigma, shared=True)
        self.fixed = sigma
        self.register_buffer("width", torch.tensor(sigma, dtype=torch.float64), persistent=False)

    @property
    def warmup_scale(self) -> float:
        return self.fixed

    def tempered_buffers(self, scale: float) -> dict[str, Tensor]:
        return {"width": torch.full_like(self.width, scale)}

    def log_density(self, output: Tensor, x: Tensor) -> Tensor:
        width = self.width.to(output.dtype)
        residual = (x - output) / width
        return self._feature_sum(
            -0.5 * residual**2 - torch.log(width) - 0.5 * math.log(2 * math.pi)
        )


class ScaleSpy(EpochCallback):
    def __init__(self) -> None:
        self.widths: list[list[float]] = []

    def on_epoch_start(self, epoch, backends):
        self.widths.append([backends[0].likelihood(m).width.item() for m in range(2)])


def test_the_warmup_goes_through_the_likelihood_hook():
    vaes = [_vae(Euclidean(2), seed=s, likelihood=TemperedLearned()) for s in range(2)]
    histories = fit_ensemble(
        vaes, _data(), epochs=3, sigma_start=1.0, warmup_epochs=2, seeds=[0, 1], progress=False
    )
    assert all(len(h.loss) == 3 and h.stopped is None for h in histories)
    assert all(v.likelihood.width.item() == 0.05 for v in vaes)  # put back after training
    single = _vae(Euclidean(2), seed=0, likelihood=TemperedLearned())
    spy = ScaleSpy()
    fit(single, _data(), epochs=3, sigma_start=1.0, warmup_epochs=2, seed=0, progress=False,
        callbacks=[spy])  # fmt: skip
    # the spy runs after the warm-up callback: epoch 0 at sigma_start, then geometric, then own
    assert spy.widths[0][0] == 1.0 and spy.widths[2][0] == 0.05
    assert spy.widths[1][0] == pytest.approx(math.sqrt(0.05))
    torch.testing.assert_close(vaes[0].state_dict(), single.state_dict(), rtol=1e-9, atol=1e-12)


# --- backends ---------------------------------------------------------------------------------
def test_save_checkpoint_writes_an_ensemble_member(tmp_path):
    vaes = [_vae(seed=s) for s in range(2)]
    path = tmp_path / "member1.pt"
    fit_ensemble(vaes, _data(), epochs=2, seeds=[0, 1], progress=False,
                 callbacks=[SaveCheckpoint(path, member=1)])  # fmt: skip
    assert _same_weights(VAE.load(path), vaes[1])


def test_the_backend_protocol_is_abstract():
    with pytest.raises(TypeError):
        StepBackend([0], 4)  # type: ignore[abstract]


def test_a_config_and_a_changed_keyword_are_refused():
    with pytest.raises(ValueError, match="not both: got config and epochs=5"):
        fit(_vae(), _data(), epochs=5, config=TrainConfig(epochs=2, progress=False))
    with pytest.raises(ValueError, match="config must be a TrainConfig"):
        fit(_vae(), _data(), config={"epochs": 2})  # type: ignore[arg-type]


class EarlyStop(EpochCallback):
    """Stops member 1 after epoch 0 through the public backend method."""

    def on_epoch_end(self, epoch, backends):
        if epoch == 0:
            backends[0].stop_member(1, "early stop")


def test_a_callback_can_stop_a_member_and_it_stays_where_it_was():
    vaes = [_vae(seed=s) for s in range(2)]
    after_one = [_vae(seed=s) for s in range(2)]
    histories = fit_ensemble(vaes, _data(), epochs=3, seeds=[0, 1], progress=False,
                             callbacks=[EarlyStop()])  # fmt: skip
    fit_ensemble(after_one, _data(), epochs=1, seeds=[0, 1], progress=False)
    assert histories[1].stopped == "early stop" and len(histories[1].loss) == 1
    assert histories[0].stopped is None and len(histories[0].loss) == 3
    assert _same_weights(vaes[1], after_one[1])  # held fixed: Adam's momentum did not move it


def test_divergence_warnings_point_at_the_caller():
    vae = _vae()
    with pytest.warns(RuntimeWarning, match="non-finite") as record:
        fit(vae, _data() * 1e200, epochs=1, progress=False)
    assert record[0].filename == __file__


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_adam_of_the_stacked_backend_equals_the_single_tensor_adam(dtype):
    """The stacked backend's ``foreach`` Adam updates bitwise as ``fit``'s single-tensor one."""
    from manifold_vae.trainer import adam

    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 8, 25, generator=generator, dtype=dtype) for _ in range(3)]
    results = []
    for foreach in (None, True):
        params = [p.clone().requires_grad_() for p in start]
        optimizer = adam(params, 1e-3, (0.9, 0.999), foreach=foreach)
        noise = torch.Generator().manual_seed(1)
        for step in range(30):
            for p in params:  # gradients over five orders of magnitude
                p.grad = torch.randn(p.shape, generator=noise, dtype=dtype) * 10.0 ** (step % 5 - 2)
            optimizer.step()
        results.append([p.detach() for p in params])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))
