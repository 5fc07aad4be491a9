"""An experiment's ensemble groups as Ray tasks: ``manifold-vae reproduce NAME --ray``.

:func:`~manifold_vae.reproduce.common.train_members` splits a grid into ensemble groups (the
models one :func:`~manifold_vae.ensemble.fit_ensemble` call trains together) and hands them to
the current group trainer. :class:`RayGroupTrainer` submits each group as one Ray task with
its own CPU request, waits for all of them and writes the trained weights back into the
driver's models. A group's result depends only on its members' seeds (data order and latent
noise come from each member's own generators; the initial weights were drawn by the driver),
so the numbers are those of the local run whatever the number of workers, the order in which
tasks finish, or a task that is retried after its worker died (``max_retries``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from ..trainer import History

if TYPE_CHECKING:  # importing the experiments is the driver's business, not a worker's
    from ..reproduce.common import EnsembleGroup

__all__ = ["INSTALL_HINT", "RayGroupTrainer", "ray_session", "require_ray"]

#: What to do when Ray is missing.
INSTALL_HINT = "Ray is not installed: pip install -e .[ray]  (or pip install 'ray[tune]')"


def require_ray() -> Any:
    """The ``ray`` module; ``ValueError`` saying how to install it when it is missing."""
    try:
        import ray
    except ImportError as error:
        raise ValueError(INSTALL_HINT) from error
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to Ray for the block: join ``address``, or start a local instance.

    Parameters
    ----------
    address : str, optional
        A running cluster (``ray start --head`` prints it, e.g. ``10.0.0.1:6379``; ``auto``
        finds one on this machine). ``None`` or ``""`` starts a local Ray instance for the
        block, with ``num_cpus`` CPUs (default: all).
    num_cpus : int, optional
        CPUs of a local instance (ignored when joining a cluster).

    When Ray is already initialised in this process (a test's cluster, a notebook), that
    connection is used and left open.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _train_group(group: EnsembleGroup, threads: int) -> tuple[list[dict], list[History]]:
    """The body of a Ray task: train ``group``; the members' CPU state dicts and histories."""
    torch.set_num_threads(threads)
    group = replace(group, config=replace(group.config, progress=False))
    histories = group.train()
    states = [{k: v.detach().cpu() for k, v in vae.state_dict().items()} for vae in group.vaes]
    return states, histories


class RayGroupTrainer:
    """A :data:`~manifold_vae.reproduce.common.GroupTrainer` that trains each group as a Ray task.

    Parameters
    ----------
    num_cpus : int
        CPUs each task requests (and its torch threads).
    num_gpus : float
        GPUs each task requests (set it with a CUDA ``device``).
    max_retries : int
        How often a task whose worker died (killed, out of memory, node lost) is re-run. A
        re-run trains the same group from the same initial weights and seeds: its result is
        the same.

    Ray must be initialised (:func:`ray_session`) when the trainer is called.
    """

    def __init__(self, num_cpus: int = 1, num_gpus: float = 0, max_retries: int = 3) -> None:
        for name, value in (("num_cpus", num_cpus), ("max_retries", max_retries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")
        if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or num_gpus < 0:
            raise ValueError(f"num_gpus must be a number >= 0, got {num_gpus!r}")
        self.num_cpus, self.num_gpus, self.max_retries = num_cpus, num_gpus, max_retries

    def __call__(self, groups: Sequence[EnsembleGroup]) -> list[list[History]]:
        """Submit every group, gather the results in the groups' order, write the weights back."""
        ray = require_ray()
        if not ray.is_initialized():
            raise ValueError("Ray is not initialised: use manifold_vae.distributed.ray_session")
        task = ray.remote(_train_group).options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            max_retries=self.max_retries,
            retry_exceptions=False,  # a Python exception is a bug or bad input: not retried
            name="manifold-vae ensemble group",
        )
        pending = [task.remote(group, self.num_cpus) for group in groups]
        results = ray.get(pending)
        out = []
        for group, (states, histories) in zip(groups, results, strict=True):
            for vae, state in zip(group.vaes, states, strict=True):
                vae.load_state_dict(state)
                vae.eval()  # as fit_ensemble leaves its members
                if group.device is not None:
                    vae.to(group.device)
            out.append(histories)
        return out

    def __repr__(self) -> str:
        return (
            f"RayGroupTrainer(num_cpus={self.num_cpus}, num_gpus={self.num_gpus}, "
            f"max_retries={self.max_retries})"
        )
