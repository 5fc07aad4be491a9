"""Angle wrapping and the angle constants: public, shared by the distributions and the toolkit."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LOG_2PI", "PI", "TWO_PI", "reduce_angle", "wrap_angle"]

PI = math.pi
TWO_PI = 2.0 * math.pi
LOG_2PI = math.log(TWO_PI)


def wrap_angle(x: Tensor) -> Tensor:
    r"""Map angles to the half-open interval :math:`[-\pi, \pi)`, differentiably.

    .. math:: \operatorname{wrap}(x) = x - 2\pi \operatorname{round}(x / 2\pi)

    keeps full relative precision for small angles (``remainder(x + pi, 2 pi) - pi`` loses up
    to ~300 ulp there). The derivative is 1 everywhere. Two corrections follow: the rounded
    form can return exactly ``pi`` (in the tensor's dtype), which is moved to ``-pi``; and
    for ``|x|`` so large that ``2 pi round(x / 2 pi)`` is inexact (beyond ~1e15 in float64,
    ~1e7 in float32, where the rounding of ``x`` itself exceeds a turn and its angle is
    undetermined) the result is clamped into the interval, so that it always lies in the
    support.

    Parameters
    ----------
    x : Tensor, shape=[...]
        Angles in radians, any finite value.

    Returns
    -------
    Tensor, shape=[...]
        ``x`` modulo :math:`2\pi`, in :math:`[-\pi, \pi)`.
    """
    if x.requires_grad:
        # the same value, and the derivative 1 (the rounding's is 0) in two graph nodes instead
        # of the seven of the arithmetic: every reparameterised sample passes through here
        detached = x.detach()
        return _wrap(detached) + (x - detached)
    return _wrap(x)


def _wrap(x: Tensor) -> Tensor:
    y = reduce_angle(x)
    return torch.where(y >= PI, y - TWO_PI, y)


def reduce_angle(x: Tensor) -> Tensor:
    r"""``x`` modulo :math:`2\pi` in the closed interval :math:`[-\pi, \pi]` (cheaper than wrap).

    For log densities, where :math:`\pm\pi` are the same point, :func:`wrap_angle` without its
    final fold of ``pi`` onto ``-pi``.
    """
    y = x - TWO_PI * torch.round(x * _INV_TWO_PI)
    return y.clamp(-PI, PI)


_INV_TWO_PI = 1.0 / TWO_PI
