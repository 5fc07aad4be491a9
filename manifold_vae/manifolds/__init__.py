"""Latent manifolds: R^d, the circle, flat tori, the Clifford torus, the sphere and every
hypersphere S^d (with a choice of posterior family), products; geomstats spaces as given
(:func:`as_latent`)."""

from .._geomstats import load_geomstats
from .base import (
    MANIFOLDS,
    LatentManifold,
    PointDistribution,
    manifold_from_spec,
    register_manifold,
    registered_manifolds,
    require,
)
from .circles import Circle, CliffordTorus, FlatTorus
from .euclidean import Euclidean
from .families import CIRCLE_FAMILIES, SPHERE_FAMILIES, AngleVonMises
from .fixed_time import FixedTime
from .geomstats_latent import ApproximateGeomstatsLatent
from .geomstats_spaces import as_latent, geomstats_volume
from .hypersphere import Hypersphere
from .product import Product, ProductDistribution
from .sphere import Sphere

__all__ = [
    "CIRCLE_FAMILIES",
    "MANIFOLDS",
    "SPHERE_FAMILIES",
    "AngleVonMises",
    "ApproximateGeomstatsLatent",
    "Circle",
    "CliffordTorus",
    "Euclidean",
    "FixedTime",
    "FlatTorus",
    "Hypersphere",
    "LatentManifold",
    "PointDistribution",
    "Product",
    "ProductDistribution",
    "Sphere",
    "as_latent",
    "geomstats_volume",
    "load_geomstats",
    "manifold_from_spec",
    "register_manifold",
    "registered_manifolds",
    "require",
]
