r"""Resumable runs: the training state after an epoch, and stopping on a signal.

:class:`TrainingState` is everything that decides a single model's remaining epochs besides
its weights: the number of epochs done, Adam's moments and step counts, the model's own
random stream (posterior samples, input noise), the data-order generator, the history so far
and the state of the epoch callbacks that keep one (e.g. the held-out losses that early
stopping compares). :class:`~manifold_vae.trainer.callbacks.SaveCheckpoint` stores it in the
checkpoint after every good epoch (:func:`manifold_vae.checkpoint.save_vae`), and
``fit(..., resume=state)`` continues from it: the final model is the one an uninterrupted run
with the same options gives, bit for bit, on the same device.

:func:`graceful_interrupts` turns SIGINT and SIGTERM into a request that the training loop
honours after the current minibatch: every model goes back to the end of its last good epoch
(the one its checkpoint holds), ``History.stopped`` says ``interrupted by SIGINT in epoch k``,
and ``fit`` returns normally, so that the caller can write its records and exit. Outside the
context manager the signals keep their usual meaning (``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "TrainingState",
    "graceful_interrupts",
    "interrupt_requested",
    "read_training_state",
]

#: Version of the stored layout (checked on load).
STATE_VERSION = 1


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively (what JSON stores)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class TrainingState:
    """The state of a single-model run after ``epoch`` completed epochs (module docstring).

    Attributes
    ----------
    epoch : int
        Completed epochs.
    optimizer : dict
        The optimiser's ``state_dict()``.
    rng : list of Tensor
        The model's own random stream: the CPU generator state, and the CUDA one when the run
        trains on a GPU.
    order : Tensor
        The data-order generator's state.
    history : dict of str to list of float
        ``loss``, ``reconstruction`` and ``kl`` per completed epoch.
    device : str
        The device type the run trains on (a run resumes on the same type).
    callbacks : dict
        JSON-able states of the callbacks with a ``state_key``, by key.
    """

    epoch: int
    optimizer: dict[str, Any]
    rng: list[Tensor]
    order: Tensor
    history: dict[str, list[float]]
    device: str = "cpu"
    callbacks: dict[str, Any] = field(default_factory=dict)

    def to_checkpoint(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """``(values, tensors)``: JSON-able values and named tensors, as checkpoints store them."""
        tensors: dict[str, Tensor] = {"order": self.order}
        tensors.update({f"rng.{i}": state for i, state in enumerate(self.rng)})
        values_of_state: dict[str, dict[str, Any]] = {}
        for param, entries in self.optimizer["state"].items():
            for key, value in entries.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{param}.{key}"] = value
                else:
                    values_of_state.setdefault(str(param), {})[key] = value
        values = {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "rng_streams": len(self.rng),
            "optimizer_groups": _plain(self.optimizer["param_groups"]),
            "optimizer_values": values_of_state,
            "history": self.history,
            "device": self.device,
            "callbacks": self.callbacks,
        }
        return values, tensors

    @classmethod
    def from_checkpoint(cls, values: dict[str, Any], tensors: dict[str, Tensor]) -> TrainingState:
        """Inverse of :meth:`to_checkpoint`.

        Raises
        ------
        ValueError
            If the stored state is of another version or incomplete.
        """
        if values.get("version") != STATE_VERSION:
            raise ValueError(
                f"the checkpoint's training state has version {values.get('version')!r}; this "
                f"package resumes version {STATE_VERSION}"
            )
        try:
            state: dict[int, dict[str, Any]] = {}
            for name, tensor in tensors.items():
                if name.startswith("optimizer."):
                    _, param, key = name.split(".", 2)
                    state.setdefault(int(param), {})[key] = tensor
            for param, entries in values["optimizer_values"].items():
                state.setdefault(int(param), {}).update(entries)
            return cls(
                epoch=int(values["epoch"]),
                optimizer={"state": state, "param_groups": values["optimizer_groups"]},
                rng=[tensors[f"rng.{i}"] for i in range(int(values["rng_streams"]))],
                order=tensors["order"],
                history={k: list(v) for k, v in values["history"].items()},
                device=str(values["device"]),
                callbacks=dict(values.get("callbacks", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the checkpoint's training state is incomplete: {error}") from None


def read_training_state(path: str | os.PathLike) -> TrainingState | None:
    """The training state in the checkpoint at ``path`` (verified like the whole file), or
    ``None`` when it holds a model only (written by ``VAE.save``, or by an ensemble)."""
    from ..checkpoint import read_training

    stored = read_training(path)
    return None if stored is None else TrainingState.from_checkpoint(*stored)


# ---------------------------------------------------------------------------------------------
# Stopping on a signal

_REQUEST: list[str] = []


def interrupt_requested() -> str | None:
    """The name of the signal that asked the running training to stop (``None``: none)."""
    return _REQUEST[0] if _REQUEST else None


@contextlib.contextmanager
def graceful_interrupts(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """Inside the block, ``signals`` ask training to stop after the current minibatch.

    A second signal of the same kind while the first is pending raises ``KeyboardInterrupt``
    at once (a way out if a step hangs). The previous handlers are restored on exit. Outside
    the main thread (where Python cannot install handlers) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def request(number: int, frame: Any) -> None:
        if _REQUEST:
            raise KeyboardInterrupt
        _REQUEST.append(signal.Signals(number).name)

    _REQUEST.clear()
    for sig in signals:
        signal.signal(sig, request)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _REQUEST.clear()
