"""Constraints of the manifold distributions: finite reals, positive finite times, angles."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = ["angle", "finite", "positive_finite"]


class _Finite(constraints.Constraint):
    """Real numbers that are neither ``nan`` nor infinite."""

    def check(self, value: Tensor) -> Tensor:
        return torch.isfinite(value)

    def __repr__(self) -> str:
        return "finite()"


class _PositiveFinite(constraints.Constraint):
    """Strictly positive, finite real numbers (diffusion times, scales)."""

    def check(self, value: Tensor) -> Tensor:
        return torch.isfinite(value) & (value > 0)

    def __repr__(self) -> str:
        return "positive_finite()"


class _Angle(constraints._HalfOpenInterval):
    r"""Angles in radians in :math:`[-\pi, \pi)`, the support of circle distributions.

    A point of the circle is represented by its angle, never by a unit vector in R^2.
    """

    def __init__(self) -> None:
        super().__init__(-math.pi, math.pi)

    def __repr__(self) -> str:
        return "angle(-pi <= value < pi)"


finite = _Finite()
positive_finite = _PositiveFinite()
angle = _Angle()
