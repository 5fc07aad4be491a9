r"""The training loop: one for a single model, an ensemble, and members that train on their own.

Minibatch Adam on each member's mean negative ELBO,

.. math::

    L = \sum_{m} \frac{1}{|B_m|} \sum_{x \in B_m} -\mathrm{ELBO}_m(x),

over step backends (:mod:`manifold_vae.trainer.backend`). Every epoch: the callbacks' epoch
start (step-size schedule, decoder warm-up, ...), each member's data order, then per
minibatch and backend: input noise, the ELBO terms, one backward pass, the divergence check
and one optimiser step; at the end the per-epoch means go into each member's
:class:`~manifold_vae.trainer.config.History` and the state is remembered as the last good one.

Divergence is handled per member: when a member's posterior parameters are invalid or its
loss or gradients non-finite, that member alone stops; its weights and optimiser state go back
to the end of its last good epoch, a ``RuntimeWarning`` says why, and ``History.stopped``
keeps the reason. The others go on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .backend import StepBackend, stop_message
from .callbacks import DecoderWarmup, EpochCallback, LearningRateSchedule
from .config import History, TrainConfig
from .resume import interrupt_requested

__all__ = ["default_callbacks", "train"]

#: ``warnings.warn`` stacklevel that points at the caller of ``fit``/``fit_ensemble``
#: (``_stop`` <- ``_batch`` <- ``_epoch`` <- ``_run`` <- ``train`` <- ``fit`` <- caller).
_STACKLEVEL = 7


def default_callbacks(config: TrainConfig) -> list[EpochCallback]:
    """The callbacks every run has: the step-size schedule, and the warm-up if asked for."""
    callbacks: list[EpochCallback] = [
        LearningRateSchedule(config.epochs, config.lr, config.lr_final)
    ]
    if config.sigma_start is not None:
        callbacks.append(DecoderWarmup(config.sigma_start, config.warmup_epochs))
    return callbacks


def train(
    backends: Sequence[StepBackend],
    config: TrainConfig,
    callbacks: Sequence[EpochCallback] = (),
    description: str = "train",
    start_epoch: int = 0,
) -> list[History]:
    """Train every member of ``backends`` for ``config.epochs`` epochs; their histories.

    Parameters
    ----------
    backends : sequence of StepBackend
        The members, grouped into backends; all members have the same number of datapoints.
    config : TrainConfig
        The options.
    callbacks : sequence of EpochCallback
        Run after :func:`default_callbacks` ``(config)``, in order.
    description : str
        The progress bar's label.
    start_epoch : int
        The first (0-based) epoch to train: a resumed run's completed epochs.

    Returns
    -------
    list of History
        One per member, backends in order.
    """
    callbacks = [*default_callbacks(config), *callbacks]
    bar = tqdm(
        range(start_epoch, config.epochs),
        desc=description,
        disable=not config.progress,
        leave=False,
        initial=start_epoch,
        total=config.epochs,
    )
    try:  # gradients on even when fit is called inside torch.no_grad()
        with torch.enable_grad():
            _run(backends, config, callbacks, bar)
    finally:
        bar.close()
        for callback in callbacks:
            callback.on_train_end(backends)
    for backend in backends:
        backend.finish()
    return [h for backend in backends for h in backend.histories]


def _run(
    backends: Sequence[StepBackend],
    config: TrainConfig,
    callbacks: Sequence[EpochCallback],
    bar: tqdm,
) -> None:
    """The epochs: callbacks' train start, then per epoch their start, the pass, their end."""
    for callback in callbacks:
        callback.on_train_start(backends)
    for epoch in bar:
        if not any(any(b.live) for b in backends):
            break
        for callback in callbacks:
            callback.on_epoch_start(epoch, backends)
        if not _epoch(backends, config, epoch, bar):
            _interrupt(backends, epoch)
            break
        for callback in callbacks:
            callback.on_epoch_end(epoch, backends)


def _interrupt(backends: Sequence[StepBackend], epoch: int) -> None:
    """Stop every live member after a signal (:func:`~.resume.graceful_interrupts`)."""
    reason = stop_message(("interrupted", str(interrupt_requested())), epoch)
    for backend in backends:
        for member in backend.live_members:
            backend.stop_member(member, reason)


def _epoch(backends: Sequence[StepBackend], config: TrainConfig, epoch: int, bar: tqdm) -> bool:
    """One pass over the data for every member, then the histories and the good state;
    ``False`` (the epoch left unfinished) when a signal asked training to stop."""
    orders = [backend.orders() for backend in backends]
    totals = [torch.zeros(backend.size, 3, dtype=torch.float64) for backend in backends]
    n = backends[0].n
    for start in range(0, n, config.batch_size):
        for backend, order, total in zip(backends, orders, totals, strict=True):
            _batch(backend, order[:, start : start + config.batch_size], config, epoch, total)
        if interrupt_requested() is not None:
            return False
    losses = []
    for backend, total in zip(backends, totals, strict=True):
        total /= backend.n
        done = backend.live_members
        for m in done:
            history = backend.histories[m]
            history.loss.append(total[m, 0].item())
            history.reconstruction.append(total[m, 1].item())
            history.kl.append(total[m, 2].item())
            losses.append(history.loss[-1])
        if done:
            backend.save_good()
    if losses:
        bar.set_postfix(loss=f"{math.fsum(losses) / len(losses):.4g}")
    return True


def _batch(
    backend: StepBackend, index: Tensor, config: TrainConfig, epoch: int, total: Tensor
) -> None:
    """One optimiser step of ``backend``'s live members on their minibatches ``index``."""
    members = backend.live_members
    if not members:
        return
    noise = None
    if config.input_noise > 0:  # drawn once: a retry after stopping members reuses it
        noise = backend.input_noise(members, index.shape[1], config.input_noise)
    terms = None
    while members:
        terms, bad = backend.terms(members, index, config.num_samples, config.beta, noise)
        if not bad:
            break
        for member, message in bad:
            _stop(backend, member, epoch, ("invalid distribution parameters", message))
        members = backend.live_members
    if terms is None:  # every member has stopped
        return
    loss = -terms.elbo.mean(1)  # (A,): each member's mean negative ELBO
    backend.zero_grad()
    loss.sum().backward()
    finite = torch.isfinite(loss) & backend.finite_gradients(members)
    if not bool(finite.all()):
        for row in (~finite).nonzero().flatten().tolist():
            problem = ("non-finite loss or gradient", f"loss {loss[row].item()}")
            _stop(backend, members[row], epoch, problem)
        if not backend.live_members:
            return
    backend.step()
    stats = torch.stack(
        [loss.detach(), terms.reconstruction.detach().mean(1), terms.kl.detach().mean(1)], dim=1
    )  # (A, 3)
    stats = index.shape[1] * stats.cpu().double()
    if len(members) == backend.size:
        total += stats
    else:
        total[torch.tensor(members)] += stats


def _stop(backend: StepBackend, member: int, epoch: int, problem: tuple[str, str]) -> None:
    """Stop ``member``: say why in its history and a warning, restore its last good epoch."""
    reason = stop_message(problem, epoch)
    backend.stop_member(member, reason)
    warnings.warn(f"{backend.labels[member]}{reason}", RuntimeWarning, stacklevel=_STACKLEVEL)
