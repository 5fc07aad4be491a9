"""Elementwise evaluation in chunks: the same values, with temporaries that stay in cache."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["ACCELERATOR_CHUNK", "by_chunks", "chunk_size"]

#: Elements per chunk on an accelerator: large enough that each kernel launch has work for the
#: whole device, small enough that temporaries with tens of entries per element fit in memory
#: whatever the batch (without chunks, 10^8 sphere elements would need over 130 GiB).
ACCELERATOR_CHUNK = 1 << 22


def chunk_size(device: torch.device, cpu_chunk: int) -> int:
    """Elements per chunk on ``device``: ``cpu_chunk`` (cache-sized) on the CPU, else
    :data:`ACCELERATOR_CHUNK`."""
    return cpu_chunk if device.type == "cpu" else ACCELERATOR_CHUNK


def by_chunks(
    fn: Callable[[Tensor, Tensor], Tensor], theta: Tensor, time: Tensor, chunk: int
) -> Tensor:
    """``fn`` on consecutive chunks of ``chunk`` elements of the same-shaped ``theta`` and
    ``time`` (flattened), reassembled.

    Parameters
    ----------
    fn : callable
        Elementwise in its two arguments.
    theta, time : Tensor, shape=[...]
        Inputs of one shape.
    chunk : int
        Elements per chunk.

    Returns
    -------
    Tensor, shape=theta.shape
    """
    pairs = zip(theta.reshape(-1).split(chunk), time.reshape(-1).split(chunk), strict=True)
    return torch.cat([fn(a, b) for a, b in pairs]).reshape(theta.shape)
