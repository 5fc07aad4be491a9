"""Training one VAE: Adam on the negative ELBO, with a progress bar and divergence protection.

:func:`fit` is a thin front end over the one training loop (:mod:`manifold_vae.trainer`): one
:class:`~manifold_vae.trainer.SingleBackend`, the options of a
:class:`~manifold_vae.trainer.TrainConfig`, and the epoch callbacks.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from .ensemble import check_restarts, train_with_restarts
from .trainer import (
    EpochCallback,
    History,
    SaveCheckpoint,
    SingleBackend,
    TrainConfig,
    TrainingState,
    decoder_sigma,
    learning_rate,
    resolve_config,
    resolve_device,
    train,
)
from .trainer.config import Restarts
from .vae import VAE

__all__ = ["History", "Restarts", "TrainConfig", "decoder_sigma", "fit", "learning_rate"]


def fit(
    vae: VAE,
    data: Tensor,
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    num_samples: int = 1,
    beta: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    lr_final: float | None = None,
    input_noise: float = 0.0,
    sigma_start: float | None = None,
    warmup_epochs: int = 0,
    *,
    config: TrainConfig | None = None,
    callbacks: Sequence[EpochCallback] = (),
    restarts: int = 1,
    screen_epochs: int | None = None,
    resume: TrainingState | None = None,
) -> History:
    r"""Train ``vae`` on ``data`` by minibatch Adam on the mean negative ELBO.

    Deterministic under ``seed``: data order and latent noise come from the model's own random
    stream seeded with ``seed`` (the caller's global RNG state is left untouched). The initial
    weights are the model's as passed: ``fit`` never re-initialises them (restart candidates
    are copies); to make them reproducible too, build the model with ``VAE(..., seed=s)`` or
    inside :func:`~manifold_vae.vae.seeded` ``(s)``. Works inside ``torch.no_grad()``. If a
    minibatch loss or gradient becomes non-finite, training stops with a warning, the
    parameters are restored to the end of the last good epoch, and ``History.stopped`` says
    why.

    Parameters
    ----------
    vae : VAE
        The model, trained in place.
    data : Tensor, shape=[N, *vae.data_shape]
        Training data (validated by the likelihood: shape, dtype, finiteness, range).
    epochs, batch_size : int
        Passes over the data and minibatch size.
    lr, betas : float
        Adam's step size and moment coefficients (thesis Sec. 5.3: ``betas=(0.9, 0.999)``; the
        thesis's ``lr=1e-4`` over 1e5 epochs is replaced by ``1e-3`` and fewer epochs).
    seed : int
        Seed of data order and noise.
    device : str or torch.device, optional
        Where to train (default: where the model is); the model is moved there.
    num_samples : int
        Latent samples per datapoint in the reconstruction term.
    beta : float
        KL weight.
    progress : bool
        Show a progress bar with the current loss.
    checkpoint : path, optional
        If given, the model is saved there (atomically) after every good epoch.
    lr_final : float, optional
        Anneal the step size from ``lr`` to ``lr_final`` by a cosine over the epochs
        (:func:`learning_rate`); ``None`` keeps ``lr``.
    input_noise : float
        Standard deviation :math:`s \ge 0` of Gaussian noise added to every minibatch before
        it is encoded (and reconstructed): the model is trained on :math:`x + s\,\varepsilon`.
        The noise is drawn from the seeded stream just before the latent noise of the same step.
    sigma_start, warmup_epochs : float, int
        Decoder-scale warm-up (a likelihood with a fixed scale, e.g. ``Gaussian``): epoch ``e``
        trains the model with its :math:`\sigma_X` replaced by :func:`decoder_sigma` ``(e,
        sigma_X, sigma_start, warmup_epochs)``, geometric from ``sigma_start`` down to
        :math:`\sigma_X` over the first ``warmup_epochs`` epochs (``History.loss`` of those
        epochs is the negative ELBO at that scale). ``None`` (default): no warm-up. Only the
        likelihood's buffers (``Likelihood.tempered_buffers``) change, and they are restored
        when training ends, however it ends; checkpoints store :math:`\sigma_X`. With
        ``epochs <= warmup_epochs`` training ends inside the warm-up (as a restart screen
        does).
    config : TrainConfig, optional
        All the training options above at once (``seed``, ``device`` and ``checkpoint`` stay
        separate). The keyword options must then keep their defaults (``ValueError``
        otherwise, rather than ignoring one).
    callbacks : sequence of EpochCallback
        Extra epoch callbacks, run after the schedule and warm-up ones and before the
        checkpoint is written (whose training state holds their states, if they keep one).
    resume : TrainingState, optional
        Continue a run from a checkpoint's training state
        (:func:`~manifold_vae.trainer.read_training_state`), with ``vae`` loaded from the same
        checkpoint and the options of the original run: the result equals the uninterrupted
        run's bit for bit (on the same device). Epochs ``state.epoch + 1 .. epochs`` are
        trained; the returned history covers them all. Not with ``restarts > 1``.
    restarts : int
        Train from this many starts and keep the one of lowest final training loss (the
        negative ELBO: an unsupervised choice). Start 0 is ``vae`` as passed, trained with
        ``seed``; start ``j >= 1`` is a copy with fresh initial weights drawn under seed
        ``seed + RESTART_SEED * j`` (:func:`~manifold_vae.ensemble.reinitialized`: every
        network module's ``reset_parameters()``), trained with that seed. ``vae`` ends with
        the kept model's weights, exactly as ``fit`` alone would train that start.
    screen_epochs : int, optional
        With ``restarts > 1``: first train copies of all starts for ``screen_epochs`` epochs
        at constant ``lr`` (the screen), then train only the best start for ``epochs``
        (``callbacks`` and ``checkpoint`` apply to that run). ``None`` (default): train every
        start for ``epochs`` (``callbacks`` see them all; ``checkpoint`` is written once, with
        the kept model, at the end).

    Returns
    -------
    History
        With ``restarts > 1``, ``History.restarts`` (:class:`Restarts`) holds every
        candidate's seed, history (of the screen, or of its full run) and final loss, and the
        index of the kept one.

    Raises
    ------
    ValueError
        For invalid options or data (:func:`~manifold_vae.validation.check_data`, naming
        ``data``).
    """
    config = resolve_config(
        config,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        betas=betas,
        num_samples=num_samples,
        beta=beta,
        lr_final=lr_final,
        input_noise=input_noise,
        sigma_start=sigma_start,
        warmup_epochs=warmup_epochs,
        progress=progress,
    )
    check_restarts(restarts, screen_epochs)
    if not isinstance(vae, VAE):
        raise ValueError(f"vae must be a VAE, got {type(vae).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    config.check_likelihood(vae.likelihood)
    vae.likelihood.validate_data(data)
    device = resolve_device(device, vae)
    description = f"fit {vae.latent!r}"
    extra = [SaveCheckpoint(checkpoint, callbacks=callbacks)] if checkpoint is not None else []
    if resume is not None:
        _check_resume(resume, restarts, config)
    if restarts > 1:
        if screen_epochs is None:  # every start trains: save the kept one once, at the end
            extra = []
        (history,) = train_with_restarts(
            [vae], [data], [seed], device, config, [*callbacks, *extra], restarts,
            screen_epochs, False, [""], description,
        )  # fmt: skip
        if checkpoint is not None and screen_epochs is None:
            vae.save(checkpoint)
        return history
    backend = SingleBackend(vae, data, seed, device, config.lr, config.betas)
    start = 0
    if resume is not None:
        backend.load_training_state(resume)
        for callback in callbacks:
            if callback.state_key is not None and callback.state_key in resume.callbacks:
                callback.load_state_dict(resume.callbacks[callback.state_key])
        start = resume.epoch
    (history,) = train(
        [backend], config, [*callbacks, *extra], description=description, start_epoch=start
    )
    return history


def _check_resume(resume: TrainingState, restarts: int, config: TrainConfig) -> None:
    if not isinstance(resume, TrainingState):
        raise ValueError(f"resume must be a TrainingState, got {type(resume).__name__}")
    if restarts > 1:
        raise ValueError("resume continues one run: it cannot be combined with restarts > 1")
    if resume.epoch >= config.epochs:
        raise ValueError(
            f"resume: the run has already trained {resume.epoch} of epochs={config.epochs}"
        )
    if config.sigma_start is not None:
        raise ValueError(
            "resume: a run with a decoder warm-up (sigma_start) cannot be resumed, since its "
            "checkpoints hold the tempered decoder scale"
        )
