"""Latent manifolds: R^d, the circle, flat tori, the Clifford torus, the sphere, products;
geomstats spaces as given (:func:`as_latent`)."""

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
from .fixed_time import FixedTime
from .geomstats_latent import ApproximateGeomstatsLatent
from .geomstats_spaces import as_latent, geomstats_volume
from .product import Product, ProductDistribution
from .sphere import Sphere

__all__ = [
    "MANIFOLDS",
    "ApproximateGeomstatsLatent",
    "Circle",
    "CliffordTorus",
    "Euclidean",
    "FixedTime",
    "FlatTorus",
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
