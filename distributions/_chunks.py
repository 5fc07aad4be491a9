"""Elementwise evaluation in chunks: the same values, with temporaries that stay in cache."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["by_chunks"]


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
