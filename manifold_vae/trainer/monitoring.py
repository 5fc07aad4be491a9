r"""Epoch callbacks that watch a run: held-out ELBO, early stopping, per-epoch logs.

* :class:`Validation`: the negative ELBO per datapoint of held-out data after every epoch, and,
  with ``patience``, early stopping when it has not improved for that many epochs;
* :class:`MetricsLog`: one line of strict JSON per epoch and member appended to a file
  (``metrics.jsonl``), readable while the run goes on;
* :class:`TensorBoardLog`: the same scalars for TensorBoard (needs the ``tensorboard`` package).

Pass them to :func:`manifold_vae.fit` with ``callbacks=[...]`` (a :class:`Validation` before the
logs that report it). The held-out loss is evaluated at the decoder scale of the epoch (during
a decoder warm-up, the tempered one), as the training loss is, in a forked random-number
stream, so watching a run does not change it: a run with these callbacks trains bit for bit as
one without them (until early stopping ends it).
"""

from __future__ import annotations

import math
import numbers
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..files import append_jsonl
from .callbacks import EpochCallback

if TYPE_CHECKING:
    from ..vae import VAE
    from .backend import StepBackend

__all__ = ["MetricsLog", "TensorBoardLog", "Validation", "epoch_record"]


class Validation(EpochCallback):
    r"""Held-out loss :math:`-\frac1N\sum_i \mathrm{ELBO}(x_i)` after every epoch; early stopping.

    Parameters
    ----------
    data : Tensor, shape=(N, *data_shape)
        Held-out data (never trained on), ``N >= 1``.
    patience : int, optional
        Stop a member when its held-out loss has not improved on its best for this many
        epochs (``History.stopped`` then says so); ``None``: never stop.
    num_samples : int
        Posterior samples per datapoint of the ELBO estimate.
    batch_size : int
        Datapoints per evaluation batch.
    seed : int
        Seed of the estimate's random numbers (epoch ``e`` uses ``seed + e``), drawn in a
        forked stream.

    Attributes
    ----------
    losses : dict of (int, int) to list of float
        ``(backend index, member)`` -> held-out loss after each of its epochs.
    """

    def __init__(
        self,
        data: Tensor,
        patience: int | None = None,
        num_samples: int = 1,
        batch_size: int = 1024,
        seed: int = 0,
    ) -> None:
        if not isinstance(data, Tensor) or data.dim() < 1 or len(data) == 0:
            raise ValueError("data must be a non-empty tensor of held-out datapoints")
        if patience is not None and not _positive_integer(patience):
            raise ValueError(f"patience must be None or a positive integer, got {patience!r}")
        for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
            if not _positive_integer(value):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.data, self.patience = data, patience
        self.num_samples, self.batch_size, self.seed = int(num_samples), int(batch_size), seed
        self.losses: dict[tuple[int, int], list[float]] = {}

    state_key = "validation"

    def state_dict(self) -> dict[str, Any]:
        """The held-out losses so far (stored in checkpoints, for a resumed run's patience)."""
        return {"losses": {f"{i},{m}": list(v) for (i, m), v in self.losses.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.losses = {
            tuple(int(k) for k in key.split(",")): list(values)
            for key, values in state.get("losses", {}).items()
        }

    def loss(self, vae: VAE, device: torch.device, epoch: int) -> float:
        """The held-out loss of ``vae`` (on ``device``), with the random numbers of ``epoch``."""
        total, count = 0.0, 0
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + epoch)
            for batch in self.data.split(self.batch_size):
                terms = vae.elbo(batch.to(device), num_samples=self.num_samples)
                total -= float(terms.elbo.sum())
                count += len(batch)
        return total / count

    def on_epoch_end(self, epoch: int, backends: Sequence[StepBackend]) -> None:
        for index, backend in enumerate(backends):
            for member in backend.live_members:
                losses = self.losses.setdefault((index, member), [])
                losses.append(self.loss(backend.model(member), backend.device, epoch))
                self._maybe_stop(backend, member, losses)

    def _maybe_stop(self, backend: StepBackend, member: int, losses: list[float]) -> None:
        if self.patience is None:
            return
        finite = [(v, e) for e, v in enumerate(losses) if math.isfinite(v)]
        best, best_epoch = min(finite) if finite else (math.inf, -1)
        if len(losses) - 1 - best_epoch >= self.patience:
            backend.stop_member(
                member,
                f"early stopping: the held-out loss has not improved for {self.patience} "
                f"epochs (best {best:.6g} after epoch {best_epoch + 1})",
            )

    def last(self, index: int, member: int, epochs: int) -> float | None:
        """The held-out loss of ``member`` of backend ``index`` after its ``epochs``-th epoch, or
        ``None`` when it was not evaluated then."""
        losses = self.losses.get((index, member), [])
        return losses[epochs - 1] if 0 < epochs <= len(losses) else None


def _positive_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def epoch_record(
    backend: StepBackend,
    member: int,
    epoch: int,
    validation: Validation | None = None,
    index: int = 0,
) -> dict[str, Any]:
    """The scalars of ``member`` after 0-based ``epoch``: its training loss and ELBO terms and,
    with ``validation``, its held-out loss (keys ``epoch``, ``member``, ``loss``,
    ``reconstruction``, ``kl``, ``val_loss``, ``stopped``)."""
    history = backend.histories[member]
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        "member": member,
        "loss": history.loss[-1] if history.loss else None,
        "reconstruction": history.reconstruction[-1] if history.reconstruction else None,
        "kl": history.kl[-1] if history.kl else None,
    }
    if validation is not None:
        record["val_loss"] = validation.last(index, member, len(history.loss))
    record["stopped"] = history.stopped
    return record


class _PerEpoch(EpochCallback):
    """Calls :meth:`write` with each member's :func:`epoch_record` that trained this epoch."""

    def __init__(self, validation: Validation | None) -> None:
        self.validation = validation
        self._epochs: dict[tuple[int, int], int] = {}

    def on_epoch_end(self, epoch: int, backends: Sequence[StepBackend]) -> None:
        for index, backend in enumerate(backends):
            for member in range(backend.size):
                done = len(backend.histories[member].loss)
                if self._epochs.get((index, member)) == done:
                    continue  # stopped before this epoch: nothing new
                self._epochs[(index, member)] = done
                self.write(epoch_record(backend, member, epoch, self.validation, index))

    def write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError


class MetricsLog(_PerEpoch):
    """Appends one line of strict JSON per member and epoch to ``path`` (``metrics.jsonl``).

    Each line is :func:`epoch_record` plus ``seconds`` since training started. The file is
    appended to (a resumed run continues it) and synced after every line.

    Parameters
    ----------
    path : path-like
        The log file.
    validation : Validation, optional
        Adds its held-out loss as ``val_loss`` (place it before this callback).
    """

    def __init__(self, path: str | os.PathLike, validation: Validation | None = None) -> None:
        super().__init__(validation)
        self.path = Path(path)
        self._start = time.perf_counter()

    def on_train_start(self, backends: Sequence[StepBackend]) -> None:
        self._start = time.perf_counter()

    def write(self, record: dict[str, Any]) -> None:
        record["seconds"] = time.perf_counter() - self._start
        append_jsonl(self.path, record)


class TensorBoardLog(_PerEpoch):
    """The scalars of :func:`epoch_record` for TensorBoard, under ``member-{m}/`` tags.

    Parameters
    ----------
    logdir : path-like
        TensorBoard's log folder.
    validation : Validation, optional
        Adds its held-out loss (place it before this callback).

    Raises
    ------
    ValueError
        If the ``tensorboard`` package is not installed (``pip install tensorboard``).
    """

    def __init__(self, logdir: str | os.PathLike, validation: Validation | None = None) -> None:
        super().__init__(validation)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ValueError(
                "TensorBoard logs need the tensorboard package: pip install tensorboard"
            ) from error
        self.writer = SummaryWriter(log_dir=str(logdir))

    def write(self, record: dict[str, Any]) -> None:
        for key in ("loss", "reconstruction", "kl", "val_loss"):
            value = record.get(key)
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(f"member-{record['member']}/{key}", value, record["epoch"])

    def on_train_end(self, backends: Sequence[StepBackend]) -> None:
        self.writer.flush()
