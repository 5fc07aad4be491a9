r"""The step-backend protocol: what the training loop needs from the models it trains.

A backend holds :math:`M \ge 1` members (models of one shape with their data, seeds, optimiser
state and last good state). The loop (:func:`~manifold_vae.trainer.loop.train`) asks it for
each member's data order, input noise and ELBO terms on a minibatch, and tells it to step, to
stop a member, and to remember the end of a good epoch. Two backends exist:

* :class:`~manifold_vae.trainer.single.SingleBackend`: one model, its own Adam, its own RNG
  stream (what :func:`~manifold_vae.training.fit` trains, and an ensemble member that cannot
  be stacked, e.g. on a latent without ``reparameterize``);
* :class:`~manifold_vae.trainer.stacked.StackedBackend`: :math:`M` models stacked along a
  member axis and run with :func:`torch.func.vmap` (what
  :func:`~manifold_vae.ensemble.fit_ensemble` trains).

Shapes: ``index`` is ``(M, b)`` (every member's datapoint indices of a step); ``members`` is
an increasing list of the :math:`A` members to evaluate; ELBO terms come back as ``(A, b)``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..likelihoods import Likelihood
from ..vae import ELBO, VAE
from .config import History

__all__ = [
    "TRAINING_DEVICES",
    "StepBackend",
    "adam",
    "check_device",
    "resolve_device",
    "stop_message",
]


def adam(
    params: Iterable[Tensor], lr: float, betas: tuple[float, float], foreach: bool | None = None
) -> torch.optim.Optimizer:
    """The optimiser of every backend: one definition.

    Adam is elementwise, so one Adam over stacked member parameters updates each member exactly
    as its own Adam would. ``foreach=None`` is torch's default implementation for the device
    (single-tensor on the CPU, ``foreach`` on CUDA); the stacked backend asks for ``foreach``
    (one multi-tensor kernel per operation instead of one per parameter), whose arithmetic is
    the single-tensor one: the updates agree bitwise (``tests/manifold_vae/test_trainer.py``).
    The fused implementation does not, and is not used.
    """
    return torch.optim.Adam(params, lr=lr, betas=betas, foreach=foreach)


#: Device types a model can train on (when torch has them available).
TRAINING_DEVICES = ("cpu", "cuda", "mps")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that can train a model here.

    Raises
    ------
    ValueError
        If ``device`` is not a device name torch knows, is of a type that cannot train
        (``meta``, ``xla`` ...; see :data:`TRAINING_DEVICES`), or is not available on this
        machine (CUDA without a GPU, a GPU index beyond the count, MPS off Apple silicon).
    """
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={str(device)!r} is not a torch device; use one of "
            f"{', '.join(TRAINING_DEVICES)} (e.g. 'cuda:0')"
        ) from error
    if device.type not in TRAINING_DEVICES:
        raise ValueError(
            f"device={str(device)!r} cannot train a model; use one of {', '.join(TRAINING_DEVICES)}"
        )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r} was asked for, but torch.cuda.is_available() is False"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(device)!r}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s)"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={str(device)!r}: MPS is not available on this machine")
    if device.type == "cpu" and device.index not in (None, 0):
        raise ValueError(f"device={str(device)!r}: the CPU has no index other than 0")
    return device


def resolve_device(device: str | torch.device | None, vae: VAE) -> torch.device:
    """``device`` as a ``torch.device`` (default: where ``vae`` is), checked by
    :func:`check_device`."""
    if device is None:
        return next(vae.parameters()).device
    return check_device(device)


def stop_message(problem: tuple[str, str], epoch: int) -> str:
    """``History.stopped`` for a problem ``(what, detail)`` in 0-based ``epoch``."""
    return (
        f"{problem[0]} in epoch {epoch + 1} ({problem[1]}); parameters restored to the end of "
        f"epoch {epoch}"
    )


class StepBackend(abc.ABC):
    """The members one step trains together; see the module docstring."""

    #: Number of members :math:`M`.
    size: int
    #: Datapoints per member.
    n: int
    #: Per member: its seed, history, whether it still trains, and the prefix of its warnings.
    seeds: list[int]
    histories: list[History]
    live: list[bool]
    labels: list[str]

    def __init__(self, seeds: list[int], n: int, labels: list[str] | None = None) -> None:
        self.size, self.n = len(seeds), n
        self.seeds = list(seeds)
        self.histories = [History() for _ in seeds]
        self.live = [True] * self.size
        self.labels = labels if labels is not None else [""] * self.size
        self.order_generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]

    # --- what every backend shares -----------------------------------------------------
    def orders(self) -> Tensor:
        """Each member's data order for an epoch, ``(M, n)`` on the backend's device.

        A live member draws ``randperm(n)`` from its own CPU generator seeded with its seed;
        a stopped member draws nothing.
        """
        rows = [
            torch.randperm(self.n, generator=generator) if live else torch.arange(self.n)
            for generator, live in zip(self.order_generators, self.live, strict=True)
        ]
        return torch.stack(rows).to(self.device)

    @property
    def live_members(self) -> list[int]:
        """The members still training, in order."""
        return [m for m in range(self.size) if self.live[m]]

    def stop_member(self, member: int, reason: str) -> None:
        """Stop ``member`` for good: ``History.stopped = reason``, its last good epoch restored.

        The loop calls it when a member diverges; an epoch callback may call it too (e.g. early
        stopping in ``on_epoch_end``, where the last good epoch is the one just finished).
        The member's weights and optimiser state are then held fixed.
        """
        self.live[member] = False
        self.histories[member].stopped = reason
        self.stop(member)

    # --- what each backend implements --------------------------------------------------
    device: torch.device

    @abc.abstractmethod
    def model(self, member: int) -> VAE:
        """Member ``member`` as a model holding its current weights."""

    @abc.abstractmethod
    def likelihood(self, member: int) -> Likelihood:
        """Member ``member``'s likelihood (its declared scale, its tempered buffers)."""

    @abc.abstractmethod
    def set_lr(self, lr: float) -> None:
        """Set the step size of the optimiser(s)."""

    @abc.abstractmethod
    def save_likelihood_buffers(self) -> Any:
        """A copy of every member's likelihood buffers, for :meth:`restore_likelihood_buffers`."""

    @abc.abstractmethod
    def restore_likelihood_buffers(self, saved: Any) -> None:
        """Put back what :meth:`save_likelihood_buffers` returned."""

    @abc.abstractmethod
    def set_likelihood_buffers(self, member: int, values: dict[str, Tensor]) -> None:
        """Write buffer values (names relative to the likelihood) for ``member``."""

    @abc.abstractmethod
    def input_noise(self, members: list[int], size: int, scale: float) -> dict[int, Tensor]:
        """Each listed member's input noise ``(size, *data_shape)`` times ``scale``."""

    @abc.abstractmethod
    def terms(
        self,
        members: list[int],
        index: Tensor,
        num_samples: int,
        beta: float,
        noise: dict[int, Tensor] | None = None,
    ) -> tuple[ELBO | None, list[tuple[int, str]]]:
        """ELBO terms ``(A, b)`` of ``members`` with a graph, or ``(None, [(member, error)])``.

        When some members' posterior parameters are invalid nothing is drawn from any of the
        members' random streams, so the loop can stop those members and ask again.
        """

    @abc.abstractmethod
    def zero_grad(self) -> None:
        """Clear the gradients."""

    @abc.abstractmethod
    def finite_gradients(self, members: list[int]) -> Tensor:
        """Per listed member: are all its gradients finite? ``(A,)`` bool."""

    @abc.abstractmethod
    def stop(self, member: int) -> None:
        """Restore ``member``'s last good epoch (weights and optimiser state) and keep it fixed."""

    @abc.abstractmethod
    def step(self) -> None:
        """One optimiser step for the live members (stopped ones stay as they are)."""

    @abc.abstractmethod
    def save_good(self) -> None:
        """Remember the current state as the end of a good epoch."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Leave the trained weights in the members' models, in eval mode."""
