r"""geomstats spaces as given: map a geomstats manifold to a latent manifold.

:func:`as_latent` takes a space built by geomstats itself (``Hypersphere(2)``,
``ProductManifold([Hypersphere(1), Euclidean(1)])``, ...) and returns the latent manifold with
the same Riemannian metric:

============================================================  ==============================
geomstats space (metric as geomstats equips it)                latent
============================================================  ==============================
``Euclidean(d)``                                               ``Euclidean(d)``
``Hypersphere(1)``                                             ``Circle()``
``Hypersphere(2)``                                             ``Sphere()``
``Hypersphere(n)``, ``n >= 3``                                 ``Hypersphere(n)`` (exact)
``k`` unit circles: ``ProductManifold`` / ``NFoldManifold``    ``FlatTorus(k)`` (``Circle()``
of ``Hypersphere(1)`` factors                                  for ``k = 1``)
2 circles with the product metric scaled by 1/2                ``CliffordTorus()``
``ProductManifold`` of other factors                           ``Product(*mapped factors)``
a :class:`~manifold_vae.manifolds.LatentManifold`              itself
other compact embedded spaces with the induced metric          APPROXIMATE (warning)
anything else                                                  ``ValueError``
============================================================  ==============================

geomstats 2.8 has no torus class: a torus is a ``ProductManifold`` (which stacks factors of
equal shape as rows, ``point_ndim=2``, unless ``point_ndim=1`` is asked for) or an
``NFoldManifold`` of ``Hypersphere(1)``; every representation maps alike, and the metric is
read through geomstats' ``ScalarProductMetric`` wrappers (``s * space.metric``).

**Two circles.** geomstats' product of two ``Hypersphere(1)`` is two *unit* circles, metric
:math:`d\theta_1^2 + d\theta_2^2` and area :math:`4\pi^2`: that is ``FlatTorus(2)``, not
``CliffordTorus()``, whose circles have radius :math:`1/\sqrt2` (area :math:`2\pi^2`, the
thesis's Eq. 11.6). The heat kernel, the prior density and the posterior times depend on the
metric, so only a product whose metric geomstats scales by 1/2 (``0.5 * space.metric``, which
is ``CliffordTorus().space``) maps to the Clifford torus. In general ``as_latent(m.space) == m``
for every built-in manifold ``m``.

**Approximate family.** A compact embedded space without an exact family (e.g. geomstats'
``Grassmannian(3, 1)`` with ``volume=``; every ``Hypersphere(n)`` with its own metric is exact)
becomes an :class:`~manifold_vae.manifolds.geomstats_latent.ApproximateGeomstatsLatent` (factor
by factor in a product, so exact factors stay exact), with a ``UserWarning`` naming the space: its
posterior density is an approximation (a geodesic random walk and Varadhan's short-time
density), so the ELBO is too. It needs (checked; one ``ValueError`` naming the space lists what
is missing): points that embed the space (``prod(shape) > dim``; not ``SpecialOrthogonal(3,
point_type="vector")``); the metric the flattened points induce (the walk's steps are
isotropic in the ambient space; not ``SpecialOrthogonal(3)`` matrices, whose bi-invariant
metric is half the Frobenius one, nor a rescaled sphere); and the Riemannian volume for the
uniform prior, which geomstats does not give: it is known here for ``Hypersphere(n)`` and
products of them; for another compact space pass ``volume=``. A non-compact space
(``PoincareBall``, ``Hyperboloid``, ``SPDMatrices``, a rescaled ``Euclidean``) has infinite
volume and no uniform prior: ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from .._geomstats import load_geomstats
from .base import LatentManifold
from .circles import Circle, CliffordTorus, FlatTorus
from .euclidean import Euclidean
from .geomstats_latent import (
    ApproximateGeomstatsLatent,
    check_embedded,
    check_induced_metric,
    space_repr,
)
from .hypersphere import Hypersphere
from .product import Product
from .sphere import Sphere

__all__ = ["as_latent", "geomstats_volume"]

#: Relative tolerance when comparing metric scales (geomstats stores 0.5 as 0.4999999999999999).
_RTOL = 1e-9


def _unscaled(space: Any) -> tuple[float, Any]:
    """``(scale, metric)``: ``space.metric`` is ``scale * metric`` (``ScalarProductMetric``)."""
    from geomstats.geometry.scalar_product_metric import ScalarProductMetric

    scale, metric = 1.0, space.metric
    while isinstance(metric, ScalarProductMetric):
        scale, metric = scale * float(metric.scale), metric.underlying_metric
    return scale, metric


def _factors(space: Any, metric: Any) -> list[Any] | None:
    """The factors of a geomstats product with its product metric, else ``None``."""
    from geomstats.geometry.nfold_manifold import NFoldManifold, NFoldMetric
    from geomstats.geometry.product_manifold import ProductManifold, ProductRiemannianMetric

    if isinstance(space, ProductManifold) and isinstance(metric, ProductRiemannianMetric):
        return list(space.factors)
    if isinstance(space, NFoldManifold) and isinstance(metric, NFoldMetric):
        if metric.scales is None:
            return [space.base_manifold] * space.n_copies
    return None


def _sphere_dim(space: Any, metric: Any) -> int | None:
    """``n`` when ``space`` is geomstats' ``Hypersphere(n)`` in extrinsic coordinates."""
    from geomstats.geometry.hypersphere import Hypersphere, HypersphereMetric

    ok = isinstance(space, Hypersphere) and isinstance(metric, HypersphereMetric)
    return space.dim if ok and tuple(space.shape) == (space.dim + 1,) else None


def _circle_radius(space: Any) -> float | None:
    """The radius of ``space`` when it is a ``Hypersphere(1)`` with a (scaled) round metric."""
    scale, metric = _unscaled(space)
    return math.sqrt(scale) if _sphere_dim(space, metric) == 1 else None


def _circles(radii: list[float]) -> LatentManifold | None:
    """The built-in product of circles of these radii, if there is one."""
    if all(math.isclose(r, 1.0, rel_tol=_RTOL) for r in radii):
        return Circle() if len(radii) == 1 else FlatTorus(len(radii))
    if len(radii) == 2 and all(math.isclose(r, math.sqrt(0.5), rel_tol=_RTOL) for r in radii):
        return CliffordTorus()
    return None


def _exact(space: Any) -> LatentManifold | None:
    """The built-in latent with the metric of ``space``, or ``None``."""
    from geomstats.geometry.euclidean import Euclidean as GsEuclidean
    from geomstats.geometry.euclidean import EuclideanMetric

    scale, metric = _unscaled(space)
    unit = math.isclose(scale, 1.0, rel_tol=_RTOL)
    if isinstance(space, GsEuclidean) and isinstance(metric, EuclideanMetric):
        return Euclidean(space.dim) if unit else None
    sphere = _sphere_dim(space, metric)
    if sphere == 1:
        return _circles([math.sqrt(scale)])
    if sphere is not None:
        if not unit:
            return None
        return Sphere() if sphere == 2 else Hypersphere(sphere)
    factors = _factors(space, metric)
    if factors is None:
        return None
    radii = [_circle_radius(f) for f in factors]
    if all(r is not None for r in radii):
        return _circles([math.sqrt(scale) * r for r in radii])
    parts = [_exact(f) for f in factors] if unit else [None]
    return Product(*parts) if all(p is not None for p in parts) else None


def geomstats_volume(space: Any) -> float | None:
    r"""The Riemannian volume of a geomstats space where known, else ``None``.

    ``Hypersphere(n)``: :math:`2\pi^{(n+1)/2} / \Gamma((n+1)/2)`; products (and
    ``NFoldManifold``): the product of the factors'; a metric scaled by :math:`s`
    (``s * space.metric``): times :math:`s^{n/2}`, :math:`n` the dimension.

    Parameters
    ----------
    space : geomstats Manifold
        The space (its metric as it carries it).

    Returns
    -------
    float or None
    """
    scale, metric = _unscaled(space)
    sphere, factors = _sphere_dim(space, metric), _factors(space, metric)
    if sphere is not None:
        volume = 2.0 * math.pi ** ((sphere + 1) / 2) / math.gamma((sphere + 1) / 2)
    elif factors is not None:
        volumes = [geomstats_volume(f) for f in factors]
        volume = None if None in volumes else math.prod(volumes)
    else:
        volume = None
    return None if volume is None else volume * scale ** (space.dim / 2)


def _problems(space: Any, volume: float | None) -> list[str]:
    """What the approximate family misses for ``space`` (empty when it can take it)."""
    problems = []
    if volume is None:
        problems.append(
            "its Riemannian volume, for the uniform prior, is not known (it is here for "
            "Hypersphere(n) and products of them): for a compact space pass "
            "as_latent(space, volume=...); a non-compact space (e.g. PoincareBall, Hyperboloid, "
            "SPDMatrices, a rescaled Euclidean) has infinite volume and no uniform prior"
        )
    for check in (check_embedded, check_induced_metric):
        try:
            check(space)
        except ValueError as error:
            problems.append(str(error))
            break  # a chart has no induced metric to check
    return problems


def _convert(space: Any, volume: float | None, steps: int, approximated: list[str]) -> Any:
    """Exact where possible; otherwise factor by factor, else the approximate family."""
    exact = _exact(space)
    if exact is not None:
        if volume is not None:
            raise ValueError(
                f"volume is only for spaces without an exact family; {space_repr(space)} "
                f"maps exactly to {exact!r}"
            )
        return exact
    scale, metric = _unscaled(space)
    factors = _factors(space, metric)
    if volume is None and factors is not None and math.isclose(scale, 1.0, rel_tol=_RTOL):
        return Product(*(_convert(f, None, steps, approximated) for f in factors))
    volume = geomstats_volume(space) if volume is None else volume
    problems = _problems(space, volume)
    if problems:
        raise ValueError(
            f"the geomstats space {space_repr(space)} has no exact latent family, and the "
            f"approximate family cannot take it: {'; '.join(problems)}. Write a LatentManifold "
            "of your own for it (docs/manifolds.md)"
        )
    approximated.append(space_repr(space))
    return ApproximateGeomstatsLatent(space, volume, steps)


def as_latent(space: Any, *, volume: float | None = None, steps: int = 64) -> LatentManifold:
    """The latent manifold of a geomstats space (see the module docstring for the mapping).

    Parameters
    ----------
    space : geomstats Manifold or LatentManifold
        A space built by geomstats (with the pytorch backend, as
        :func:`~manifold_vae.manifolds.load_geomstats` imports it); a ``LatentManifold`` is
        returned unchanged.
    volume : float, optional
        Riemannian volume of a compact space without an exact family whose volume is not known
        here (see :func:`geomstats_volume`); refused for a space with an exact family.
    steps : int
        Random-walk steps of an approximate posterior.

    Returns
    -------
    LatentManifold

    Warns
    -----
    UserWarning
        When (a factor of) the space gets the APPROXIMATE family, naming it.

    Raises
    ------
    ValueError
        If ``space`` is neither a geomstats manifold nor a ``LatentManifold``; or has no exact
        family and no known or given volume (e.g. a non-compact space), saying so.
    """
    if isinstance(space, LatentManifold):
        if volume is not None:
            raise ValueError(f"volume is only for geomstats spaces; {space!r} is a LatentManifold")
        return space
    if not type(space).__module__.startswith("geomstats."):
        raise ValueError(
            f"latent must be a LatentManifold or a geomstats manifold, got {type(space).__name__}"
        )
    load_geomstats()
    from geomstats.geometry.manifold import Manifold

    if not isinstance(space, Manifold):
        raise ValueError(f"latent must be a LatentManifold or a geomstats manifold, got {space!r}")
    approximated: list[str] = []
    latent = _convert(space, volume, steps, approximated)
    if approximated:
        warnings.warn(
            f"no exact latent family for the geomstats space {', '.join(approximated)}: using "
            f"{latent!r}, whose posterior density is APPROXIMATE (a geodesic random walk and "
            "Varadhan's short-time density, see manifold_vae.manifolds.approximate), so the "
            "ELBO and its KL are approximate too",
            UserWarning,
            stacklevel=2,
        )
    return latent
