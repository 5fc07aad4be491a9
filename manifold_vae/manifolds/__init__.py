"""Latent manifolds: R^d, the circle, flat tori and the Clifford torus, and the protocol."""

from .._geomstats import load_geomstats
from .base import (
    LatentManifold,
    PointDistribution,
    manifold_from_spec,
    register_manifold,
    registered_manifolds,
)
from .circles import Circle, CliffordTorus, FlatTorus
from .euclidean import Euclidean

__all__ = [
    "Circle",
    "CliffordTorus",
    "Euclidean",
    "FlatTorus",
    "LatentManifold",
    "PointDistribution",
    "load_geomstats",
    "manifold_from_spec",
    "register_manifold",
    "registered_manifolds",
]
