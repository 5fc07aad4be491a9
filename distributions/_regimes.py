"""Per-element choice between three formulas of a function of the diffusion time."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["by_time_regime"]


def by_time_regime(
    time: Tensor,
    small_max: float,
    large_min: float,
    mid_time: float,
    small: Callable[[Tensor], Tensor],
    mid: Callable[[Tensor], Tensor],
    large: Callable[[Tensor], Tensor],
) -> Tensor:
    r"""``small(t)`` for :math:`t \le` ``small_max``, ``large(t)`` for :math:`t \ge`
    ``large_min``, ``mid(t)`` in between, per element.

    Every formula runs on every element (no host synchronisation), fed a safe time where its
    result is not used (``small_max``, ``large_min`` or ``mid_time``, a time inside the middle
    range), so no formula sees a time outside its range and the gradients through
    ``torch.where`` stay finite.

    Parameters
    ----------
    time : Tensor, shape=[...]
        Positive diffusion times.
    small_max, large_min, mid_time : float
        The switch points and the safe time of the middle formula.
    small, mid, large : callable
        Elementwise formulas.

    Returns
    -------
    Tensor, shape=time.shape
    """
    is_small = time <= small_max
    is_large = time >= large_min
    t_small = torch.where(is_small, time, torch.full_like(time, small_max))
    t_large = torch.where(is_large, time, torch.full_like(time, large_min))
    t_mid = torch.where(is_small | is_large, torch.full_like(time, mid_time), time)
    return torch.where(is_small, small(t_small), torch.where(is_large, large(t_large), mid(t_mid)))
