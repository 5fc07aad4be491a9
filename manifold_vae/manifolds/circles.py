r"""Products of circles: the circle :math:`S^1`, the flat torus :math:`T^n`, the Clifford torus.

All three are :math:`n` circles of radius :math:`r`, embedded factor by factor in
:math:`\mathbb R^{2n}` as :math:`r(\cos\theta_1, \sin\theta_1, \dots, \cos\theta_n, \sin\theta_n)`;
coordinates are the angles :math:`\theta_i \in [-\pi, \pi)`.

* ``Circle()``: :math:`n = 1`, :math:`r = 1`.
* ``FlatTorus(n)``: :math:`n` unit circles.
* ``CliffordTorus()`` (thesis Eq. 11.6): :math:`n = 2`, :math:`r = 1/\sqrt2`, so the points lie
  on the unit 3-sphere; area :math:`2\pi^2`. (The Delta-VAE reference code uses two unit
  circles instead: that is ``FlatTorus(2)``.)

Metric :math:`g = r^2 \sum_i d\theta_i^2`, so :math:`\sqrt{\det g} = r^n`. The heat kernel at
intrinsic time :math:`t` is the product of unit-circle kernels at angle time :math:`t / r^2`.
Posterior family (thesis Eqs. 7.5, 11.8, corrected): a product of circle heat kernels with one
location and one angle time per factor; the prior is uniform. ``Circle(family="von-mises")``
chooses the von Mises distribution instead (:mod:`~manifold_vae.manifolds.families`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, constraints

from distributions import TorusHeatKernel, TorusUniform
from distributions.angles import wrap_angle

from .._geomstats import load_geomstats
from .base import LatentManifold, register_manifold
from .families import CIRCLE_FAMILIES, AngleVonMises, check_family, circle_spread, concentration

__all__ = ["Circle", "CliffordTorus", "FlatTorus"]

#: Smallest posterior time produced from raw encoder outputs: softplus(raw) + MIN_TIME.
MIN_TIME = 1e-6


class _OnCircles(constraints.Constraint):
    """Points of ``R^(2n)`` whose consecutive coordinate pairs have norm ``radius``."""

    event_dim = 1

    def __init__(self, n: int, radius: float) -> None:
        self.n, self.radius = n, radius
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        if value.shape[-1] != 2 * self.n:
            return torch.zeros(value.shape[:-1], dtype=torch.bool, device=value.device)
        norms = value.unflatten(-1, (self.n, 2)).norm(dim=-1)
        tol = 10.0 * math.sqrt(torch.finfo(value.dtype).eps) * self.radius
        return ((norms - self.radius).abs() <= tol).all(-1)

    def __repr__(self) -> str:
        return f"on_circles(n={self.n}, radius={self.radius:.6g})"


class _CircleProduct(LatentManifold):
    """``n`` circles of radius ``radius``; the shared implementation of the three manifolds."""

    def __init__(self, n: int, radius: float) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer (number of circles), got {n!r}")
        if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be a positive finite number, got {radius!r}")
        self.n = n
        self.radius = float(radius)
        self.dim = n
        self.ambient_dim = 2 * n
        self.posterior_params = 3 * n
        self._space: Any = None

    @property
    def volume(self) -> float:
        return (2.0 * math.pi * self.radius) ** self.n

    @property
    def space(self) -> Any:
        """geomstats: ``Hypersphere(1)`` or a product of them, metric scaled by ``radius**2``.

        geomstats represents each factor by a unit vector: divide our points by ``radius``.
        """
        if self._space is None:
            load_geomstats()
            from geomstats.geometry.hypersphere import Hypersphere
            from geomstats.geometry.product_manifold import ProductManifold

            if self.n == 1:
                space = Hypersphere(1)
            else:
                space = ProductManifold([Hypersphere(1) for _ in range(self.n)], point_ndim=1)
            if self.radius != 1.0:
                space.metric = self.radius**2 * space.metric
            self._space = space
        return self._space

    def to_point(self, coordinates: Tensor) -> Tensor:
        """``radius * (cos a_1, sin a_1, ..., cos a_n, sin a_n)``, shape=[..., 2n]."""
        pairs = torch.stack([torch.cos(coordinates), torch.sin(coordinates)], dim=-1).flatten(-2)
        return pairs if self.radius == 1.0 else self.radius * pairs

    def to_coordinates(self, point: Tensor) -> Tensor:
        """Angles of each coordinate pair (the projection onto the circles), shape=[..., n]."""
        pairs = point.unflatten(-1, (self.n, 2))
        return wrap_angle(torch.atan2(pairs[..., 1], pairs[..., 0]))

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        return torch.full_like(coordinates[..., 0], self.n * math.log(self.radius))

    # --- geometry on embedded points, factor by factor -----------------------------------
    def _unit_tangents(self, base_point: Tensor) -> Tensor:
        r"""Unit tangent :math:`(-\sin a_i, \cos a_i)` of each factor, shape ``(..., n, 2)``."""
        angles = self.to_coordinates(base_point)
        return torch.stack([-torch.sin(angles), torch.cos(angles)], dim=-1)

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        r"""Per factor, the component of ``vector`` along the unit tangent at ``base_point``.

        Parameters
        ----------
        vector, base_point : Tensor, shape=[..., 2n]
            Ambient vectors and embedded points.

        Returns
        -------
        Tensor, shape=[..., 2n]
        """
        tangents = self._unit_tangents(base_point)
        speed = (vector.unflatten(-1, (self.n, 2)) * tangents).sum(-1, keepdim=True)
        return (speed * tangents).flatten(-2)

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        r"""Move each factor's angle by its arc length over the radius.

        .. math::

            a_i \mapsto a_i + \frac{\langle v_i, (-\sin a_i, \cos a_i)\rangle}{r}

        (the exponential map of :math:`g = r^2 \sum_i da_i^2`; the normal part of ``tangent_vec``
        is ignored).

        Parameters
        ----------
        tangent_vec : Tensor, shape=[..., 2n]
            Ambient vector at ``base_point``.
        base_point : Tensor, shape=[..., 2n]
            Embedded point.

        Returns
        -------
        Tensor, shape=[..., 2n]
        """
        tangents = self._unit_tangents(base_point)
        arc = (tangent_vec.unflatten(-1, (self.n, 2)) * tangents).sum(-1)
        return self.to_point(wrap_angle(self.to_coordinates(base_point) + arc / self.radius))

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        r""":math:`\sqrt{\sum_i r^2 \operatorname{wrap}(a_i - b_i)^2}`, shape ``(...)``."""
        step = wrap_angle(self.to_coordinates(point_a) - self.to_coordinates(point_b))
        return self.radius * step.norm(dim=-1)

    def point_support(self) -> constraints.Constraint:
        return _OnCircles(self.n, self.radius)

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> TorusUniform:
        """Uniform distribution on the angles (the normalised Riemannian volume)."""
        return TorusUniform(self.n, dtype=dtype, device=device)

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        r"""Uniform angles ``(n, n_circles)``: :math:`u \sim U[0, 1)^k`,
        :math:`z = \operatorname{wrap}(2\pi u - \pi)`, from ``generator`` only."""
        u = torch.rand(n, self.dim, generator=generator, dtype=dtype)
        return wrap_angle((u * 2.0 - 1.0) * math.pi)

    def posterior(self, raw: Tensor) -> TorusHeatKernel:
        r"""Product of circle heat kernels from raw outputs ``(..., 3n)``.

        The first ``2n`` outputs are an ambient vector per factor, projected to its angle by
        ``atan2``; the last ``n`` give the angle times ``softplus(raw) + 1e-6``.

        Finite raw outputs give valid parameters (a finite angle, a positive finite time), so
        when they are all finite (one fused check) the distribution's own parameter checks are
        skipped; values passed to its ``log_prob`` are still checked as torch's default says.
        Otherwise the distribution is built with its checks, which raise ``ValueError`` for
        invalid parameters (a ``nan`` angle, an infinite time).
        """
        if raw.shape[-1] != self.posterior_params:
            raise ValueError(
                f"raw posterior parameters must have last dimension {self.posterior_params} "
                f"for {self!r}, got shape {tuple(raw.shape)}"
            )
        n = self.n
        loc = torch.atan2(raw[..., 1 : 2 * n : 2], raw[..., 0 : 2 * n : 2])
        time = F.softplus(raw[..., 2 * n :]) + MIN_TIME
        if not (Distribution._validate_args and bool(torch.isfinite(raw).all())):
            return TorusHeatKernel(loc, time)
        posterior = TorusHeatKernel(loc, time, validate_args=False)
        posterior._validate_args = True  # checks of the values passed to log_prob
        return posterior

    def reparameterize(self, posterior: TorusHeatKernel, noise: Tensor) -> Tensor:
        r""":math:`\operatorname{wrap}(\mu_i + \sqrt{2 t_i}\,\varepsilon_i)` per factor.

        The same arithmetic as :meth:`TorusHeatKernel.rsample`.

        Parameters
        ----------
        posterior : TorusHeatKernel
            From :meth:`posterior`.
        noise : Tensor, shape=[*sample_shape, *posterior.batch_shape, n]
            Standard normal noise.

        Returns
        -------
        Tensor, shape=[*sample_shape, *posterior.batch_shape, n]
            Angles in :math:`[-\pi, \pi)`.
        """
        return wrap_angle(posterior.loc + torch.sqrt(2.0 * posterior.time) * noise)

    def posterior_location(self, posterior: TorusHeatKernel) -> Tensor:
        return posterior.mean_direction

    @property
    def angle_radii(self) -> tuple[float | None, ...]:
        """Every coordinate is the angle of a circle of radius ``radius``."""
        return (self.radius,) * self.n

    def posterior_spread(self, posterior: TorusHeatKernel) -> Tensor:
        r""":math:`\sqrt{2 t_i}` per factor (angle times), shape ``(*batch, n)``."""
        return torch.sqrt(2.0 * posterior.time)

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> TorusHeatKernel:
        """Angle time ``time / radius**2`` in every factor."""
        angle_time = (time / self.radius**2).unsqueeze(-1).expand_as(coordinates)
        return TorusHeatKernel(coordinates, angle_time)


@register_manifold
class Circle(_CircleProduct):
    r"""The unit circle :math:`S^1 \subset \mathbb R^2`; coordinates ``(..., 1)`` (the angle).

    Parameters
    ----------
    family : str
        Posterior family: ``"heat"`` (default; the wrapped normal, reparameterisable) or
        ``"von-mises"`` (:class:`~manifold_vae.manifolds.families.AngleVonMises`, its
        concentration ``softplus(raw) + 1e-6`` (smoothly capped below 1e8) from the third raw
        output; no fixed-noise
        reparameterisation, so ensembles train it member by member). Stored in :meth:`spec`
        when not the default.
    """

    name = "circle"

    def __init__(self, *, family: str = "heat") -> None:
        super().__init__(1, 1.0)
        self.family = check_family(family, CIRCLE_FAMILIES, "Circle")

    def _kwargs(self) -> dict[str, Any]:
        return {} if self.family == "heat" else {"family": self.family}

    def posterior(self, raw: Tensor) -> Distribution:
        r"""The heat kernel (:meth:`_CircleProduct.posterior`) or, for ``"von-mises"``,
        :class:`~manifold_vae.manifolds.families.AngleVonMises` with location
        ``atan2(raw[..., 1], raw[..., 0])`` and concentration from ``raw[..., 2]``
        (:func:`~manifold_vae.manifolds.families.concentration`)."""
        if self.family == "heat":
            return super().posterior(raw)
        if raw.shape[-1] != self.posterior_params:
            raise ValueError(
                f"raw posterior parameters must have last dimension {self.posterior_params} "
                f"for {self!r}, got shape {tuple(raw.shape)}"
            )
        loc = torch.atan2(raw[..., 1:2], raw[..., 0:1])
        return AngleVonMises(loc, concentration(raw[..., 2:]))

    @property
    def reparameterizable(self) -> bool:
        """Only the heat family has a fixed-noise reparameterisation (and only where a
        subclass keeps :meth:`reparameterize`)."""
        return self.family == "heat" and super().reparameterizable

    def reparameterize(self, posterior: Distribution, noise: Tensor) -> Tensor:
        """:meth:`_CircleProduct.reparameterize` for the heat family; ``NotImplementedError``
        for the von Mises (a rejection sampler)."""
        if self.family != "heat":
            raise NotImplementedError(
                "Circle(family='von-mises') does not implement reparameterize(posterior, noise): "
                "its sampler uses rejection, not one standard normal draw; train it with fit "
                "(ensembles train member by member)"
            )
        return super().reparameterize(posterior, noise)

    def posterior_spread(self, posterior: Distribution) -> Tensor:
        r"""Circular standard deviation: :math:`\sqrt{2t}` (heat), :math:`\sqrt{-2\log
        A_1(\kappa)}` (von Mises), shape ``(*batch, 1)``
        (:func:`~manifold_vae.manifolds.families.circle_spread`)."""
        return circle_spread(posterior)


@register_manifold
class FlatTorus(_CircleProduct):
    r"""The flat torus :math:`T^n`: ``n`` unit circles in :math:`\mathbb R^{2n}`."""

    name = "flat-torus"

    def __init__(self, n: int = 2) -> None:
        super().__init__(n, 1.0)

    def _kwargs(self) -> dict[str, Any]:
        return {"n": self.n}


@register_manifold
class CliffordTorus(_CircleProduct):
    r"""The Clifford torus :math:`\tfrac{1}{\sqrt2}(\cos a, \sin a, \cos b, \sin b) \subset S^3`."""

    name = "clifford-torus"

    def __init__(self) -> None:
        super().__init__(2, 1.0 / math.sqrt(2.0))
