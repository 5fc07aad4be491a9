r"""The hypersphere :math:`S^d \subset \mathbb R^{d+1}`, :math:`d \ge 2`, in unit vectors.

Angles are singular somewhere on every chart of :math:`S^d`, so the coordinates are the unit
vectors themselves: ``dim == ambient_dim == d + 1`` while ``intrinsic_dim == d``, coordinates
equal points, and densities over coordinates are with respect to the surface measure (total
:math:`|S^d| = 2\pi^{(d+1)/2}/\Gamma(\tfrac{d+1}{2})`), so :meth:`log_volume_density` is 0.

Prior: uniform, :math:`1/|S^d|`. Posterior: one of the families of
:mod:`~manifold_vae.manifolds.families` (``family="heat"``, the default, ``"vmf"``,
``"power-spherical"``), its location from ``d + 1`` raw encoder outputs (normalised; the zero
vector gives the north pole :math:`e_{d+1}`) and its scalar from one more:

* ``"heat"``, :math:`d = 2`: :class:`distributions.SphereHeatKernel`, time
  :math:`\operatorname{softplus}(r) + 10^{-6}` (exactly :class:`Sphere`);
* ``"heat"``, :math:`d \ge 3`: :class:`distributions.HypersphereHeatKernel`, time
  :math:`T_d + \operatorname{softplus}(r) + 10^{-6}`: the exact kernel is only available for
  :math:`t \ge T_d` (0.595 on :math:`S^3`, 0.308 on :math:`S^9`, 0.0738 on :math:`S^{64}`),
  so **this posterior cannot concentrate**: its mean resultant length is at most
  :math:`e^{-dT_d}` (0.17 on :math:`S^3`, 0.06 on :math:`S^9`, 0.009 on :math:`S^{64}`). It
  is exact, but too diffuse to encode much; use ``"vmf"`` or ``"power-spherical"`` there.
  For the same reason :meth:`coordinate_heat_kernel` on :math:`d \ge 3` only takes times
  :math:`t \ge T_d` (smaller ones raise ``ValueError``).
* ``"vmf"`` / ``"power-spherical"``: :class:`distributions.VonMisesFisher` /
  :class:`distributions.PowerSpherical`, concentration
  :math:`\operatorname{softplus}(r) + 10^{-6}`, smoothly capped below :math:`10^8`
  (:func:`~manifold_vae.manifolds.families.concentration`).

The prior is :class:`distributions.SphereUniform` for the heat family on :math:`S^2` (as
:class:`Sphere` always had) and :class:`distributions.HypersphereUniform` otherwise (the class
the other KLs are registered against; the densities are equal). Every KL is exact.

No family is a deterministic function of one standard normal draw (rejection, gamma
variables), so :meth:`~LatentManifold.reparameterize` is not available:
:func:`~manifold_vae.training.fit` trains every family (``rsample`` is reparameterised), and
:func:`~manifold_vae.ensemble.fit_ensemble` does not.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from distributions import (
    HypersphereHeatKernel,
    HypersphereUniform,
    PowerSpherical,
    SphereHeatKernel,
    SphereUniform,
    VonMisesFisher,
)
from distributions.constraints import unit_sphere
from distributions.hypersphere import min_time

from .._geomstats import load_geomstats
from .base import LatentManifold, register_manifold
from .families import SPHERE_FAMILIES, check_family, concentration, sphere_spread

__all__ = ["MIN_TIME", "Hypersphere", "normalize"]

#: Smallest posterior time above the supported minimum: softplus(raw) + MIN_TIME (+ T_d).
MIN_TIME = 1e-6

_FAMILIES = {"vmf": VonMisesFisher, "power-spherical": PowerSpherical}


def normalize(vector: Tensor) -> Tensor:
    """Unit vectors along ``vector`` ``(..., n)``; the zero vector maps to :math:`e_n`.

    Divides by the largest absolute entry first, so that entries as large as ``1e30`` (whose
    squares overflow in float32) still give the right direction.
    """
    scale = vector.abs().amax(-1, keepdim=True)
    north = torch.zeros_like(vector)
    north[..., -1] = 1.0
    safe = torch.where(scale > 0, vector / scale.clamp_min(torch.finfo(vector.dtype).tiny), north)
    return safe / safe.norm(dim=-1, keepdim=True)


@register_manifold
class Hypersphere(LatentManifold):
    r"""The unit sphere :math:`S^d`, :math:`d \ge 2`: coordinates and points are unit vectors.

    Metric induced from :math:`\mathbb R^{d+1}`; geodesic distance
    :math:`\arccos\langle x, y\rangle`; exponential map
    :math:`\exp_x(v) = \cos\lVert v\rVert\, x + \sin\lVert v\rVert\, v / \lVert v\rVert`.
    ``Hypersphere(2)`` has the values of :class:`~manifold_vae.manifolds.Sphere`.

    Parameters
    ----------
    d : int
        Dimension, at least 2 (coordinates ``(..., d + 1)``).
    family : str
        Posterior family: ``"heat"`` (default), ``"vmf"`` or ``"power-spherical"`` (module
        docstring; stored in :meth:`spec` when not the default).
    """

    name = "hypersphere"

    def __init__(self, d: int, *, family: str = "heat") -> None:
        if isinstance(d, bool) or not isinstance(d, int) or d < 2:
            raise ValueError(f"d must be an integer >= 2 (the sphere S^d), got {d!r}")
        self.d = d
        self.family = check_family(family, SPHERE_FAMILIES, type(self).__name__)
        self.dim = d + 1
        self.ambient_dim = d + 1
        self.posterior_params = d + 2
        #: Smallest posterior time of the heat family (0 on S^2, T_d above).
        self.min_time = min_time(d)
        self._space: Any = None

    def _kwargs(self) -> dict[str, Any]:
        family = {} if self.family == "heat" else {"family": self.family}
        return {"d": self.d, **family}

    @property
    def intrinsic_dim(self) -> int:
        return self.d

    @property
    def volume(self) -> float:
        r""":math:`|S^d| = 2\pi^{(d+1)/2}/\Gamma(\tfrac{d+1}{2})` (:math:`4\pi` for ``d = 2``)."""
        if self.d == 2:
            return 4.0 * math.pi
        return 2.0 * math.pi ** ((self.d + 1) / 2) / math.gamma((self.d + 1) / 2)

    @property
    def space(self) -> Any:
        """geomstats ``Hypersphere(d)`` (its points are our points)."""
        if self._space is None:
            load_geomstats()
            from geomstats.geometry.hypersphere import Hypersphere as GsHypersphere

            self._space = GsHypersphere(self.d)
        return self._space

    def to_point(self, coordinates: Tensor) -> Tensor:
        """The identity: coordinates are already unit vectors ``(..., d + 1)``."""
        return coordinates

    def to_coordinates(self, point: Tensor) -> Tensor:
        """Radial projection ``point / |point|`` of ``(..., d + 1)`` (0 maps to :math:`e_{d+1}`)."""
        return normalize(point)

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        """0: densities over the unit-vector coordinates are already with respect to area."""
        return torch.zeros_like(coordinates[..., 0])

    def point_support(self) -> constraints.Constraint:
        return unit_sphere(self.d + 1)

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        r""":math:`\cos\lVert v\rVert\, x + \operatorname{sinc}\lVert v\rVert\, v`, ``(..., n)``."""
        norm = tangent_vec.norm(dim=-1, keepdim=True)
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        sinc = torch.where(norm > 0, torch.sin(safe) / safe, torch.ones_like(norm))
        return normalize(torch.cos(norm) * base_point + sinc * tangent_vec)

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        r"""Geodesic distance ``(...)``, accurate near 0 and :math:`\pi`.

        :math:`\operatorname{atan2}(\lVert a \times b\rVert, \langle a, b\rangle)` on
        :math:`S^2`, :math:`2\operatorname{atan2}(\lVert a - b\rVert, \lVert a + b\rVert)`
        above (:math:`\arccos` loses half the digits at both ends).
        """
        a, b = torch.broadcast_tensors(point_a, point_b)
        if self.d == 2:
            return torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(-1))
        return 2.0 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        r""":math:`v - \langle v, x\rangle x`, ``(..., d + 1)``."""
        return vector - (vector * base_point).sum(-1, keepdim=True) * base_point

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        """Uniform on the sphere, density :math:`1/|S^d|` with respect to area."""
        if self.d == 2 and self.family == "heat":
            return SphereUniform(dtype=dtype, device=device)
        return HypersphereUniform(self.d, dtype=dtype, device=device)

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Normalised standard normal vectors ``(n, d + 1)``: uniform on the sphere."""
        return normalize(torch.randn(n, self.d + 1, generator=generator, dtype=dtype))

    def posterior(self, raw: Tensor) -> Distribution:
        r"""The family's posterior from raw outputs ``(..., d + 2)``.

        ``raw[..., :d+1]`` normalised is the location (the zero vector gives the north pole);
        ``raw[..., d+1]`` the time or concentration (module docstring).
        """
        if raw.shape[-1] != self.posterior_params:
            raise ValueError(
                f"raw posterior parameters must have last dimension {self.posterior_params} "
                f"for {self!r}, got shape {tuple(raw.shape)}"
            )
        loc = normalize(raw[..., : self.d + 1])
        scalar = raw[..., self.d + 1]
        if self.family != "heat":
            return _FAMILIES[self.family](loc, concentration(scalar))
        time = torch.nn.functional.softplus(scalar) + MIN_TIME
        if self.d == 2:
            return SphereHeatKernel(loc, time)
        return HypersphereHeatKernel(loc, time + self.min_time)

    def posterior_location(self, posterior: Distribution) -> Tensor:
        return posterior.mean_direction

    def posterior_spread(self, posterior: Distribution) -> Tensor:
        r"""The spread per tangent direction, repeated for each of the ``d + 1`` coordinates.

        :func:`~manifold_vae.manifolds.families.sphere_spread`: :math:`\sqrt{2t}` for heat
        kernels, the standard deviation of each tangent component for vMF and Power Spherical.
        """
        spread = sphere_spread(posterior)
        return spread.unsqueeze(-1).expand(*posterior.batch_shape, self.d + 1)

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> Distribution:
        r"""The exact heat kernel at unit vectors ``(..., d + 1)`` and times ``(...)``.

        On :math:`d \ge 3` only for :math:`t \ge T_d` (``min_time``): smaller times raise
        ``ValueError`` (under torch's argument validation, the default).
        """
        if self.d == 2:
            return SphereHeatKernel(normalize(coordinates), time)
        return HypersphereHeatKernel(normalize(coordinates), time)
