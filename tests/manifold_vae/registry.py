"""Every latent manifold, listed once, and helpers shared by the generic manifold and VAE tests.

``test_manifolds.py`` fails when a class in ``manifold_vae.manifolds.registered_manifolds()``
has no instance in ``MANIFOLDS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from manifold_vae.manifolds import (
    Circle,
    CliffordTorus,
    Euclidean,
    FixedTime,
    FlatTorus,
    LatentManifold,
    Product,
    Sphere,
)

__all__ = [
    "ALL_MANIFOLDS",
    "MANIFOLDS",
    "OTHER_MANIFOLDS",
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
#: them; ``test_conformance.py`` (the conformance kit), ``test_sphere_manifold.py`` and
#: ``test_product.py`` cover them.
OTHER_MANIFOLDS: list[LatentManifold] = [
    Sphere(),
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
