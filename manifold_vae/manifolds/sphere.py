r"""The unit sphere :math:`S^2 \subset \mathbb R^3`, with unit vectors as coordinates.

Spherical angles :math:`(\vartheta, \varphi)` are singular at the poles (the chart degenerates
and :math:`\sqrt{\det g} = \sin\vartheta` vanishes), so the coordinates are the unit vectors
themselves: ``dim == 3`` while ``intrinsic_dim == 2``, and coordinates equal points. Densities
over coordinates are with respect to the area measure (total area :math:`4\pi`), so
:meth:`Sphere.log_volume_density` is 0.

Prior: uniform, :math:`1 / 4\pi`. Posterior family: the exact heat kernel
:class:`distributions.SphereHeatKernel` (:math:`\partial_t p = \Delta p`), its mean direction
from three raw encoder outputs (normalised) and its time from a fourth
(``softplus(raw) + 1e-6``).

The heat kernel is sampled by rejection on the polar angle, which is not a deterministic
function of one standard normal draw: :meth:`LatentManifold.reparameterize` is not available
(so :func:`~manifold_vae.ensemble.fit_ensemble` cannot train a sphere; use
:func:`~manifold_vae.training.fit`), although ``rsample`` is exactly reparameterised (implicit
reparameterisation).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution, constraints

from distributions import SphereHeatKernel, SphereUniform
from distributions.constraints import unit_sphere

from .._geomstats import load_geomstats
from .base import LatentManifold, register_manifold

__all__ = ["Sphere"]

#: Smallest posterior time produced from raw encoder outputs: softplus(raw) + MIN_TIME.
MIN_TIME = 1e-6


def normalize(vector: Tensor) -> Tensor:
    """Unit vectors along ``vector`` ``(..., 3)``; the zero vector maps to the north pole.

    Divides by the largest absolute entry first, so that entries as large as ``1e30`` (whose
    squares overflow in float32) still give the right direction.
    """
    scale = vector.abs().amax(-1, keepdim=True)
    north = torch.zeros_like(vector)
    north[..., 2] = 1.0
    safe = torch.where(scale > 0, vector / scale.clamp_min(torch.finfo(vector.dtype).tiny), north)
    return safe / safe.norm(dim=-1, keepdim=True)


@register_manifold
class Sphere(LatentManifold):
    r"""The unit sphere :math:`S^2`: coordinates and points are unit vectors ``(..., 3)``.

    Metric induced from :math:`\mathbb R^3`; area :math:`4\pi`; geodesic distance
    :math:`\arccos\langle x, y\rangle`; exponential map
    :math:`\exp_x(v) = \cos\lVert v\rVert\, x + \sin\lVert v\rVert\, v / \lVert v\rVert`.
    """

    name = "sphere"

    def __init__(self) -> None:
        self.dim = 3
        self.ambient_dim = 3
        self.posterior_params = 4
        self._space: Any = None

    @property
    def intrinsic_dim(self) -> int:
        return 2

    @property
    def volume(self) -> float:
        return 4.0 * math.pi

    @property
    def space(self) -> Any:
        """geomstats ``Hypersphere(2)`` (its points are our points)."""
        if self._space is None:
            load_geomstats()
            from geomstats.geometry.hypersphere import Hypersphere

            self._space = Hypersphere(2)
        return self._space

    def to_point(self, coordinates: Tensor) -> Tensor:
        """The identity: coordinates are already unit vectors ``(..., 3)``."""
        return coordinates

    def to_coordinates(self, point: Tensor) -> Tensor:
        """Radial projection ``point / |point|`` of ``(..., 3)`` (0 maps to the north pole)."""
        return normalize(point)

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        """0: densities over the unit-vector coordinates are already with respect to area."""
        return torch.zeros_like(coordinates[..., 0])

    def point_support(self) -> constraints.Constraint:
        return unit_sphere(3)

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        r""":math:`\cos\lVert v\rVert\, x + \operatorname{sinc}\lVert v\rVert\, v`, ``(..., 3)``."""
        norm = tangent_vec.norm(dim=-1, keepdim=True)
        safe = torch.where(norm > 0, norm, torch.ones_like(norm))
        sinc = torch.where(norm > 0, torch.sin(safe) / safe, torch.ones_like(norm))
        return normalize(torch.cos(norm) * base_point + sinc * tangent_vec)

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        r""":math:`\operatorname{atan2}(\lVert a \times b\rVert, \langle a, b\rangle)`, ``(...)``.

        Accurate near 0 and :math:`\pi`, where :math:`\arccos` loses half the digits.
        """
        a, b = torch.broadcast_tensors(point_a, point_b)
        return torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(-1))

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        r""":math:`v - \langle v, x\rangle x`, ``(..., 3)``."""
        return vector - (vector * base_point).sum(-1, keepdim=True) * base_point

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        """Uniform on the sphere, density :math:`1 / 4\\pi` with respect to area."""
        return SphereUniform(dtype=dtype, device=device)

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Normalised standard normal vectors ``(n, 3)``: uniform on the sphere."""
        return normalize(torch.randn(n, 3, generator=generator, dtype=dtype))

    def posterior(self, raw: Tensor) -> Distribution:
        r"""Heat kernel from raw outputs ``(..., 4)``.

        ``raw[..., :3]`` normalised is the location (the zero vector gives the north pole);
        ``softplus(raw[..., 3]) + 1e-6`` the time.
        """
        if raw.shape[-1] != self.posterior_params:
            raise ValueError(
                f"raw posterior parameters must have last dimension {self.posterior_params} "
                f"for {self!r}, got shape {tuple(raw.shape)}"
            )
        loc = normalize(raw[..., :3])
        time = F.softplus(raw[..., 3]) + MIN_TIME
        return SphereHeatKernel(loc, time)

    def posterior_location(self, posterior: Distribution) -> Tensor:
        return posterior.mean_direction

    def posterior_spread(self, posterior: Distribution) -> Tensor:
        r""":math:`\sqrt{2t}` (per tangent direction) for each of the 3 coordinates."""
        return torch.sqrt(2.0 * posterior.time).unsqueeze(-1).expand(*posterior.batch_shape, 3)

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> Distribution:
        """The exact heat kernel at unit vectors ``(..., 3)`` and times ``(...)``."""
        return SphereHeatKernel(normalize(coordinates), time)
