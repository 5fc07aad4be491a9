"""Every latent manifold, listed once, and helpers shared by the generic manifold and VAE tests.

``test_manifolds.py`` fails when a class in ``manifold_vae.manifolds.registered_manifolds()``
has no instance in ``MANIFOLDS``. ``ScaledCircle`` is a manifold written by a user against the
public protocol only (not registered, no capability declared), shared by ``test_manifolds.py``
and ``test_user_manifold.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from distributions import TorusHeatKernel, TorusUniform
from manifold_vae._geomstats import load_geomstats
from manifold_vae.manifolds import (
    Circle,
    CliffordTorus,
    Euclidean,
    FixedTime,
    FlatTorus,
    Hypersphere,
    LatentManifold,
    Product,
    Sphere,
)

__all__ = [
    "ALL_MANIFOLDS",
    "MANIFOLDS",
    "OTHER_MANIFOLDS",
    "ScaledCircle",
    "coordinate_grid",
    "default_dtype",
    "is_compact",
    "radius",
    "random_coordinates",
]

MANIFOLDS: list[LatentManifold] = [
    Euclidean(1),
    Euclidean(2),
    Circle(),
    FlatTorus(2),
    FlatTorus(3),
    CliffordTorus(),
]

#: Manifolds whose coordinates are neither angles nor R^d (the sphere's unit vectors) or mix
#: both (products): the angle-specific generic tests of ``test_manifolds.py`` do not apply to
#: them; ``test_conformance.py`` (the conformance kit), ``test_sphere_manifold.py``,
#: ``test_hypersphere_manifold.py`` and ``test_product.py`` cover them. Hyperspheres S^d with
#: d >= 3 are not listed: the kit's small-time heat-kernel checks do not apply there (the exact
#: kernel needs t >= T_d); ``test_hypersphere_manifold.py`` runs every other check on them.
OTHER_MANIFOLDS: list[LatentManifold] = [
    Sphere(),
    Sphere(family="power-spherical"),
    Hypersphere(2, family="vmf"),
    # angles, but a von Mises posterior: test_manifolds.py's generic posterior tests expect
    # heat kernels on angle coordinates; the kit and test_posterior_families.py cover it
    Circle(family="von-mises"),
    Product(Circle(), Euclidean(1)),
    Product(CliffordTorus(), Euclidean(2)),
    # a fixed posterior time: its spread outputs get no gradient by design (harmonic sweeps)
    FixedTime(Circle(), 0.3),
    FixedTime(Euclidean(2), 0.5),
]

#: Every built-in manifold instance.
ALL_MANIFOLDS: list[LatentManifold] = [*MANIFOLDS, *OTHER_MANIFOLDS]

#: Half-width of the box on which densities over R^d are integrated.
EUCLIDEAN_BOX = 12.0


def ids(manifolds: list[LatentManifold]) -> list[str]:
    """Readable test ids: the manifolds' reprs."""
    return [repr(m) for m in manifolds]


def is_compact(manifold: LatentManifold) -> bool:
    return math.isfinite(manifold.volume)


def radius(manifold: LatentManifold) -> float:
    """Radius of the circle factors (1 for R^d, where geomstats needs no rescaling)."""
    return float(getattr(manifold, "radius", 1.0))


def random_coordinates(
    manifold: LatentManifold,
    shape: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Coordinates of shape ``shape + (dim,)``: angles in [-pi, pi) or normal vectors."""
    size = (*shape, manifold.dim)
    if is_compact(manifold):
        return (torch.rand(size, generator=generator, dtype=dtype) * 2.0 - 1.0) * math.pi
    return 2.0 * torch.randn(size, generator=generator, dtype=dtype)


def coordinate_grid(
    manifold: LatentManifold, per_dim: int, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, float]:
    """A regular grid of coordinates ``(per_dim**dim, dim)`` and the volume of one cell.

    On circle products the grid is periodic on [-pi, pi)^n (the trapezoid rule, spectrally
    accurate for smooth periodic integrands); on R^d it is a box of half-width
    ``EUCLIDEAN_BOX`` (cell midpoints).
    """
    if is_compact(manifold):
        axis = -math.pi + 2.0 * math.pi * torch.arange(per_dim, dtype=dtype) / per_dim
        step = 2.0 * math.pi / per_dim
    else:
        step = 2.0 * EUCLIDEAN_BOX / per_dim
        axis = -EUCLIDEAN_BOX + step * (torch.arange(per_dim, dtype=dtype) + 0.5)
    mesh = torch.meshgrid(*([axis] * manifold.dim), indexing="ij")
    return torch.stack(mesh, dim=-1).reshape(-1, manifold.dim), step**manifold.dim


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Run with torch's default dtype set to ``dtype`` (geomstats computes in its default)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --- a manifold written by a user, against the public protocol only --------------------------
class _OnCircle(constraints.Constraint):
    """Points of R^2 at distance ``radius`` from the origin."""

    event_dim = 1

    def __init__(self, radius: float) -> None:
        self.radius = radius
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        return (value.norm(dim=-1) - self.radius).abs() <= 1e-4 * self.radius


def _wrap(angle: Tensor) -> Tensor:
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


class ScaledCircle(LatentManifold):
    """A circle of radius ``radius`` in R^2: metric ``radius^2 d theta^2``."""

    name = "test-scaled-circle"

    def __init__(self, radius: float = 2.0) -> None:
        self.radius = float(radius)
        self.dim, self.ambient_dim, self.posterior_params = 1, 2, 3
        self._space: Any = None

    def _kwargs(self) -> dict[str, Any]:
        return {"radius": self.radius}

    @property
    def space(self) -> Any:
        if self._space is None:
            load_geomstats()
            from geomstats.geometry.hypersphere import Hypersphere

            self._space = Hypersphere(1)
            self._space.metric = self.radius**2 * self._space.metric
        return self._space

    @property
    def volume(self) -> float:
        return 2.0 * math.pi * self.radius

    def to_point(self, coordinates: Tensor) -> Tensor:
        return self.radius * torch.cat([coordinates.cos(), coordinates.sin()], dim=-1)

    def to_coordinates(self, point: Tensor) -> Tensor:
        return _wrap(torch.atan2(point[..., 1:], point[..., :1]))

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        return torch.full_like(coordinates[..., 0], math.log(self.radius))

    def point_support(self) -> constraints.Constraint:
        return _OnCircle(self.radius)

    def prior(self, *, dtype=None, device=None) -> Distribution:
        return TorusUniform(1, dtype=dtype, device=device)

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        u = torch.rand(n, 1, generator=generator, dtype=dtype)
        return _wrap((2.0 * u - 1.0) * math.pi)

    def posterior(self, raw: Tensor) -> Distribution:
        if raw.shape[-1] != 3:
            raise ValueError(f"raw must have last dimension 3, got {tuple(raw.shape)}")
        loc = torch.atan2(raw[..., 1:2], raw[..., 0:1])
        return TorusHeatKernel(loc, torch.nn.functional.softplus(raw[..., 2:]) + 1e-6)

    def posterior_location(self, posterior: Distribution) -> Tensor:
        return posterior.mean_direction

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> Distribution:
        return TorusHeatKernel(coordinates, (time / self.radius**2).unsqueeze(-1))
