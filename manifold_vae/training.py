"""Training one VAE: Adam on the negative ELBO, with a progress bar and divergence protection.

:func:`fit` is a thin front end over the one training loop (:mod:`manifold_vae.trainer`): one
:class:`~manifold_vae.trainer.SingleBackend`, the options of a
:class:`~manifold_vae.trainer.TrainConfig`, and the epoch callbacks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from .trainer import (
    EpochCallback,
    History,
    SaveCheckpoint,
    SingleBackend,
    TrainConfig,
    decoder_sigma,
    learning_rate,
    resolve_config,
    resolve_device,
    train,
)
from .vae import VAE

__all__ = ["History", "TrainConfig", "decoder_sigma", "fit", "learning_rate"]


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
) -> History:
    r"""Train ``vae`` on ``data`` by minibatch Adam on the mean negative ELBO.

    Deterministic under ``seed``: data order and latent noise come from the model's own random
    stream seeded with ``seed`` (the caller's global RNG state is left untouched). If a
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
        Extra epoch callbacks, run after the schedule, warm-up and checkpoint ones.

    Returns
    -------
    History
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
    config.check_likelihood(vae.likelihood)
    vae.likelihood.validate_data(data)
    device = resolve_device(device, vae)
    backend = SingleBackend(vae, data, seed, device, config.lr, config.betas)
    extra = [SaveCheckpoint(checkpoint)] if checkpoint is not None else []
    (history,) = train([backend], config, [*extra, *callbacks], description=f"fit {vae.latent!r}")
    return history
