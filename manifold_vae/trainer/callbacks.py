r"""Epoch callbacks of the training loop: the step-size schedule, the decoder warm-up, checkpoints.

A callback sees the run at four moments, each with the list of step backends
(:class:`~manifold_vae.trainer.backend.StepBackend`) being trained::

    on_train_start(backends)
    for each epoch:   on_epoch_start(epoch, backends) ... batches ... on_epoch_end(epoch, backends)
    on_train_end(backends)          # always, however training ends (also on an exception)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import StepBackend

__all__ = [
    "DecoderWarmup",
    "EpochCallback",
    "LearningRateSchedule",
    "SaveCheckpoint",
    "decoder_sigma",
    "learning_rate",
]


def learning_rate(epoch: int, epochs: int, lr: float, lr_final: float | None = None) -> float:
    r"""The step size of 0-based ``epoch``: constant, or a cosine from ``lr`` to ``lr_final``.

    .. math::

        \eta_e = \eta_{\text{final}} + \tfrac12 (\eta - \eta_{\text{final}})
        \big(1 + \cos(\pi e / (E - 1))\big), \qquad e = 0, \dots, E - 1,

    so the first epoch uses ``lr`` and the last ``lr_final`` (``lr`` throughout when
    ``lr_final`` is ``None`` or ``epochs == 1``).
    """
    if lr_final is None or epochs <= 1:
        return lr
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * epoch / (epochs - 1)))


def decoder_sigma(
    epoch: int, sigma: float, sigma_start: float | None = None, warmup_epochs: int = 0
) -> float:
    r"""The decoder scale of 0-based ``epoch`` under a warm-up from ``sigma_start``.

    .. math::

        \sigma_e = \begin{cases}
            \sigma_{\text{start}}^{\,1 - e/W}\, \sigma_X^{\,e/W}
                & e < W \text{ and } \sigma_X < \sigma_{\text{start}}, \\
            \sigma_X & \text{otherwise,}
        \end{cases}

    a geometric path from :math:`\sigma_{\text{start}}` (epoch 0) to the model's own
    :math:`\sigma_X` (epoch :math:`W` on). A model whose :math:`\sigma_X \ge
    \sigma_{\text{start}}` trains at :math:`\sigma_X` throughout. The schedule counts epochs
    from the start of training, not from the end, so a shorter run (a restart screen) goes
    through the same decoder scales as the first epochs of the full one; a run of at most
    :math:`W` epochs ends inside the warm-up.

    Why: on a circle with a uniform prior, what the objective pays for a non-uniform encoding
    (with narrow posteriors and a decoder that follows it) enters only through the posterior
    entropy: about :func:`~manifold_vae.evaluation.encoding_nonuniformity` nats per
    datapoint, whatever :math:`\sigma_X`, while the reconstruction term and its minibatch
    noise scale as :math:`1/\sigma_X^2`. At :math:`\sigma_X = 0.01` that pull towards a
    uniform encoding is lost in the noise, and the encoding keeps whatever shape the first
    epochs gave it; at :math:`\sigma_X \approx 1` it is felt. Starting at a large scale and
    shrinking it shapes the encoder while the pull still acts. Each epoch's loss is the exact
    negative ELBO of the model at :math:`\sigma_e`; from epoch :math:`W` on it is the
    model's own objective.
    """
    if sigma_start is None or epoch >= warmup_epochs or sigma >= sigma_start:
        return sigma
    if epoch == 0:
        return float(sigma_start)
    fraction = epoch / warmup_epochs
    return math.exp((1.0 - fraction) * math.log(sigma_start) + fraction * math.log(sigma))


class EpochCallback:
    """Base class of the loop's callbacks: every hook does nothing unless overridden.

    A callback whose state matters for the rest of a run (e.g. the held-out losses early
    stopping compares) sets ``state_key`` and implements :meth:`state_dict` and
    :meth:`load_state_dict`; checkpoints then store its state and a resumed run restores it.
    """

    #: Key of this callback's state in a checkpoint's training state (``None``: no state).
    state_key: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state to store in checkpoints (with ``state_key``)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` when a run resumes."""

    def on_train_start(self, backends: Sequence[StepBackend]) -> None:
        """Before the first epoch."""

    def on_epoch_start(self, epoch: int, backends: Sequence[StepBackend]) -> None:
        """Before the first batch of 0-based ``epoch``."""

    def on_epoch_end(self, epoch: int, backends: Sequence[StepBackend]) -> None:
        """After ``epoch``'s histories are written and its state saved as the last good one."""

    def on_train_end(self, backends: Sequence[StepBackend]) -> None:
        """After training, however it ended (also when an exception leaves the loop)."""


class LearningRateSchedule(EpochCallback):
    """Sets every optimiser's step size to :func:`learning_rate` at the start of each epoch."""

    def __init__(self, epochs: int, lr: float, lr_final: float | None = None) -> None:
        self.epochs, self.lr, self.lr_final = epochs, lr, lr_final

    def on_epoch_start(self, epoch: int, backends: Sequence[StepBackend]) -> None:
        rate = learning_rate(epoch, self.epochs, self.lr, self.lr_final)
        for backend in backends:
            backend.set_lr(rate)


class DecoderWarmup(EpochCallback):
    r"""Trains epoch ``e`` at decoder scale :func:`decoder_sigma` ``(e, sigma_X, ...)``.

    Through the likelihood hook: each member's likelihood declares its scale
    (``Likelihood.warmup_scale``) and the buffer values that evaluate it at another scale
    (``Likelihood.tempered_buffers``); the backend writes those into the member's buffers.
    The buffers are put back when training ends, however it ends.
    """

    def __init__(self, sigma_start: float, warmup_epochs: int) -> None:
        self.sigma_start, self.warmup_epochs = sigma_start, warmup_epochs
        self._saved: list[Any] = []

    def on_train_start(self, backends: Sequence[StepBackend]) -> None:
        self._saved = [backend.save_likelihood_buffers() for backend in backends]

    def on_epoch_start(self, epoch: int, backends: Sequence[StepBackend]) -> None:
        for backend in backends:
            for member in range(backend.size):
                likelihood = backend.likelihood(member)
                scale = decoder_sigma(
                    epoch, likelihood.warmup_scale, self.sigma_start, self.warmup_epochs
                )
                backend.set_likelihood_buffers(member, likelihood.tempered_buffers(scale))

    def on_train_end(self, backends: Sequence[StepBackend]) -> None:
        for backend, saved in zip(backends, self._saved, strict=False):
            backend.restore_likelihood_buffers(saved)
        self._saved = []


class SaveCheckpoint(EpochCallback):
    """Saves member ``member`` of the first backend to ``path`` after each of its good epochs.

    Written atomically (:meth:`manifold_vae.VAE.save`) when the member completed the epoch
    (its weights are then those of the epoch's end, also when a callback before this one
    stopped it early); a member that stopped before or during an epoch is not saved again, so
    the file keeps its last good epoch. When the backend can resume (a
    :class:`~manifold_vae.trainer.single.SingleBackend`) the file also holds its
    :class:`~manifold_vae.trainer.resume.TrainingState`, with the states of ``callbacks``
    that keep one, so that ``fit(..., resume=...)`` continues the run bit for bit.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        member: int = 0,
        callbacks: Sequence[EpochCallback] = (),
    ) -> None:
        self.path, self.member = path, member
        self.callbacks = [c for c in callbacks if c.state_key is not None]

    def on_epoch_end(self, epoch: int, backends: Sequence[StepBackend]) -> None:
        backend = backends[0]
        if len(backend.histories[self.member].loss) != epoch + 1:
            return  # the member did not complete this epoch (it stopped before or during it)
        training = None
        if hasattr(backend, "training_state"):
            states = {c.state_key: c.state_dict() for c in self.callbacks}
            training = backend.training_state(epoch + 1, states).to_checkpoint()
        backend.model(self.member).save(self.path, training)
