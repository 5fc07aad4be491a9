"""Constraints of the manifold distributions: finite reals, positive finite times, angles, unit
vectors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import biject_to, constraints, transform_to
from torch.distributions.transforms import Transform

from .angles import LOG_2PI, PI, wrap_angle

__all__ = ["angle", "finite", "positive_finite", "sphere", "unit_sphere"]


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


class _Sphere(constraints.Constraint):
    r"""Unit vectors :math:`x \in R^n`, :math:`\lVert x \rVert = 1` (for ``n = 3``: points of
    :math:`S^2`), the support of the sphere distributions.

    A vector satisfies it when it is finite and :math:`|\lVert x\rVert^2 - 1|` is at most
    :data:`SPHERE_TOLERANCE_ULPS` unit roundoffs of its dtype, which ``x / x.norm(dim=-1,
    keepdim=True)`` always meets; with ``dim`` given, also when its length is ``dim``.
    ``event_dim = 1``: one check per vector.
    """

    event_dim = 1

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def check(self, value: Tensor) -> Tensor:
        if self.dim is not None and value.shape[-1] != self.dim:
            return torch.zeros(value.shape[:-1], dtype=torch.bool, device=value.device)
        eps = torch.finfo(value.dtype).eps if value.is_floating_point() else 0.0
        norm2 = (value * value).sum(-1)
        finite = torch.isfinite(value).all(-1)
        return finite & ((norm2 - 1.0).abs() <= SPHERE_TOLERANCE_ULPS * eps)

    def __repr__(self) -> str:
        return "sphere(|value| = 1)" if self.dim is None else f"sphere(|value| = 1, dim={self.dim})"


def unit_sphere(dim: int) -> constraints.Constraint:
    """:data:`sphere` for vectors of length ``dim`` only (points of :math:`S^{dim-1}`)."""
    return _Sphere(dim)


#: Tolerance of :data:`sphere` on the squared norm, in unit roundoffs of the value's dtype.
SPHERE_TOLERANCE_ULPS = 64

finite = _Finite()
positive_finite = _PositiveFinite()
angle = _Angle()
sphere = _Sphere()


class _AngleTransform(Transform):
    r"""Bijection of the real line onto the angles :math:`[-\pi, \pi)`: :math:`\pi\tanh(x/2)`.

    It equals torch's interval transform :math:`-\pi + 2\pi\,\sigma(x)`, and is what
    ``biject_to(angle)`` and ``transform_to(angle)`` return, so that Pyro's autoguides
    (``AutoNormal``, ``AutoDelta``) and constrained ``pyro.param`` work with circle latents.
    Where rounding gives exactly :math:`\pi` (large ``x``) the value is wrapped to :math:`-\pi`,
    the same point of the circle, so results always lie in the support. Note the chart does not
    cover :math:`\pm\pi` itself: a posterior concentrated there is better handled by a heat-kernel
    guide than by an autoguide.
    """

    domain = constraints.real
    codomain = angle
    bijective = True
    sign = +1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _AngleTransform)

    def _call(self, x: Tensor) -> Tensor:
        return wrap_angle(PI * torch.tanh(x / 2))

    def _inverse(self, y: Tensor) -> Tensor:
        return 2 * torch.atanh(y / PI)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        r""":math:`\log(\tfrac{\pi}{2}\operatorname{sech}^2 \tfrac{x}{2})
        = \log 2\pi - |x| - 2\log(1 + e^{-|x|})`."""
        return LOG_2PI - x.abs() - 2 * F.softplus(-x.abs())


@biject_to.register(type(angle))
@transform_to.register(type(angle))
def _transform_to_angle(constraint: constraints.Constraint) -> Transform:
    return _AngleTransform()
