r"""What the rotation-invariant families on :math:`S^d \subset R^{d+1}` share.

A family here has a location :math:`\mu \in S^d` and one positive scalar parameter (a
concentration or a time); its density depends on :math:`w = \mu\cdot x` only. A sample is
:math:`x = w\,\mu + \sqrt{1 - w^2}\,v` with :math:`v` uniform on the unit sphere of the tangent
space at :math:`\mu`; the radial part is drawn as :math:`y = 1 - w \in [0, 2]`, which keeps full
relative precision near the location (at concentration :math:`10^8`, :math:`y \approx 10^{-8}`
is below the float32 spacing of :math:`w` near 1).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor

from . import constraints as mconstraints
from ._repr import shape_repr

__all__ = [
    "DirectionalFamily",
    "chordal_sq",
    "log_sphere_volume",
    "place",
    "tangent_directions",
    "unit",
]


def log_sphere_volume(d: int) -> float:
    r""":math:`\log|S^d| = \log 2 + \frac{d+1}{2}\log\pi - \log\Gamma(\frac{d+1}{2})`
    (:math:`\log 2`, :math:`\log 2\pi`, :math:`\log 4\pi` exactly as written for
    :math:`d \le 2`, the values the circle and sphere modules use)."""
    if d <= 2:
        return math.log((2.0, 2.0 * math.pi, 4.0 * math.pi)[d])
    return math.log(2.0) + 0.5 * (d + 1) * math.log(math.pi) - math.lgamma(0.5 * (d + 1))


def unit(x: Tensor) -> Tensor:
    """``x`` divided by its norm over the last dimension (floored at the smallest normal)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(
        min=torch.finfo(x.dtype).tiny
    )


def chordal_sq(value: Tensor, loc: Tensor) -> Tensor:
    r""":math:`\lVert x - \mu\rVert^2 = 2(1 - \mu\cdot x)` on the sphere, without cancellation.

    Shapes broadcast; the result drops the last dimension.
    """
    diff = value - loc
    return (diff * diff).sum(-1)


def tangent_directions(loc: Tensor) -> Tensor:
    r"""Uniform unit vectors in the tangent spaces at the unit vectors ``loc``.

    :math:`v = (g - (g\cdot\mu)\mu)/\lVert\cdot\rVert` with :math:`g \sim N(0, I)`: uniform by
    rotational symmetry about :math:`\mu` and differentiable in :math:`\mu` everywhere. This
    replaces the Householder reflection of a sample about the north pole (equal in law), which
    is singular where :math:`\mu` is the pole.
    """
    g = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
    v = unit(g - (g * loc).sum(-1, keepdim=True) * loc)
    # a second projection: the first leaves a component along loc of relative size eps |g| /
    # |g_perp|, large when g is nearly parallel to loc (often on S^1)
    return unit(v - (v * loc).sum(-1, keepdim=True) * loc)


def place(y: Tensor, loc: Tensor) -> Tensor:
    r""":math:`x = (1 - y)\mu + \sqrt{y(2 - y)}\,v`: the point at :math:`\mu\cdot x = 1 - y`
    (normalised once more, so that rounding leaves it on the sphere to the support's tolerance).

    Parameters
    ----------
    y : Tensor, shape=[...]
        :math:`1 - \mu\cdot x \in [0, 2]`.
    loc : Tensor, shape=[..., d + 1]
        Unit vectors, broadcast against ``y``.
    """
    loc = unit(loc)
    y = y.clamp(0.0, 2.0).unsqueeze(-1)
    # sqrt has an infinite slope at 0; y = 0 exactly has probability 0 for every family here
    side = torch.sqrt((y * (2.0 - y)).clamp(min=torch.finfo(y.dtype).tiny))
    return unit((1.0 - y) * loc + side * tangent_directions(loc))


class DirectionalFamily(TorchDistribution):
    r"""A location :math:`\mu` on :math:`S^d` and one positive scalar parameter.

    Subclasses name the parameter in :attr:`_scalar` (``"concentration"`` or ``"time"``) and
    call :meth:`_setup`. Gives broadcasting, ``expand``, ``support``, ``mode``, ``mean``,
    ``variance`` (from :meth:`_radial_moments`) and ``repr``.
    """

    #: Unit vectors (the event shape ``(d + 1,)`` is checked by ``_validate_sample``).
    support = mconstraints.sphere
    _scalar: ClassVar[str] = "concentration"
    #: The smallest sphere dimension the family supports.
    _min_dim: ClassVar[int] = 1
    has_rsample = True

    def _setup(self, loc: Tensor, scalar: Tensor | float, validate_args: bool | None) -> None:
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        if loc.dim() < 1 or loc.shape[-1] < self._min_dim + 1:
            raise ValueError(
                f"loc must have shape (..., d + 1) with d >= {self._min_dim} (unit vectors of "
                f"R^(d+1)), got {tuple(loc.shape)}"
            )
        scalar = torch.as_tensor(scalar, dtype=loc.dtype, device=loc.device)
        try:
            batch_shape = torch.broadcast_shapes(loc.shape[:-1], scalar.shape)
        except RuntimeError as error:
            raise ValueError(
                f"{self._scalar} of shape {tuple(scalar.shape)} does not broadcast against the "
                f"batch shape {tuple(loc.shape[:-1])} of loc"
            ) from error
        n = loc.shape[-1]
        self.loc = loc.expand((*batch_shape, n))
        setattr(self, self._scalar, scalar.expand(batch_shape))
        super().__init__(batch_shape, torch.Size([n]), validate_args=validate_args)

    @property
    def dim(self) -> int:
        """The dimension :math:`d` of the sphere :math:`S^d` (``event_shape == (d + 1,)``)."""
        return self.event_shape[0] - 1

    def expand(self, batch_shape: torch.Size, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand((*batch_shape, *self.event_shape))
        setattr(new, self._scalar, getattr(self, self._scalar).expand(batch_shape))
        super(DirectionalFamily, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _on_sphere(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """Validated ``value`` and the location, both radially projected onto the sphere.

        A unit vector moves by a relative rounding error only, and so does its chordal
        distance to the location (:math:`x\\cdot(x - \\mu) = \\lVert x - \\mu\rVert^2/2`); without
        validation other non-zero vectors are read as their radial projections.
        """
        if self._validate_args:
            self._validate_sample(value)
        return unit(value), unit(self.loc)

    def _chordal(self, value: Tensor) -> Tensor:
        r""":math:`\lVert x - \mu\rVert^2` of the projected ``value`` (see :meth:`_on_sphere`)."""
        return chordal_sq(*self._on_sphere(value))

    @property
    def mean_direction(self) -> Tensor:
        """The location, shape ``batch_shape + (d + 1,)``."""
        return self.loc

    @property
    def mode(self) -> Tensor:
        """The location (the density's maximum)."""
        return self.loc

    @property
    def mean(self) -> Tensor:
        r""":math:`E[x] = E[\mu\cdot x]\,\mu`, shape ``batch_shape + (d + 1,)``."""
        return self.mean_resultant_length.unsqueeze(-1) * self.loc

    @property
    def mean_resultant_length(self) -> Tensor:
        r""":math:`E[\mu\cdot x]`, shape ``batch_shape``."""
        raise NotImplementedError

    def kl_to_uniform(self) -> Tensor:
        r"""Exact :math:`\mathrm{KL}(p \,\|\, \mathrm{Uniform}(S^d))`, shape ``batch_shape``
        (what ``kl_divergence(p, HypersphereUniform(d))`` returns)."""
        raise NotImplementedError

    def entropy(self) -> Tensor:
        r""":math:`H = \log|S^d| - \mathrm{KL}(p \,\|\, \mathrm{uniform})`, exact."""
        return log_sphere_volume(self.dim) - self.kl_to_uniform()

    def _radial_moments(self) -> tuple[Tensor, Tensor]:
        r""":math:`(\operatorname{Var} w, E[1 - w^2])` of :math:`w = \mu\cdot x`, shape
        ``batch_shape`` each."""
        raise NotImplementedError

    @property
    def variance(self) -> Tensor:
        r"""Variances of the coordinates of :math:`x`, shape ``batch_shape + (d + 1,)``.

        From :math:`x = w\mu + \sqrt{1 - w^2}\,v` with :math:`E[vv^\top] = (I -
        \mu\mu^\top)/d`: :math:`\operatorname{Var} x_i = \mu_i^2\operatorname{Var} w
        + (1 - \mu_i^2)\,E[1 - w^2]/d`.
        """
        var_w, spread = self._radial_moments()
        mu2 = self.loc * self.loc
        return mu2 * var_w.unsqueeze(-1) + (1.0 - mu2) * (spread / self.dim).unsqueeze(-1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({shape_repr('loc', self.loc, 1)}, "
            f"{shape_repr(self._scalar, getattr(self, self._scalar), 0)})"
        )
