r"""The unit sphere :math:`S^2 \subset \mathbb R^3`, with unit vectors as coordinates.

``Sphere()`` is :class:`~manifold_vae.manifolds.hypersphere.Hypersphere` with :math:`d = 2`
under its own registered name ``"sphere"`` (so checkpoints written as ``{"name": "sphere"}``
load unchanged, with the same values). Spherical angles :math:`(\vartheta, \varphi)` are
singular at the poles (the chart degenerates and :math:`\sqrt{\det g} = \sin\vartheta`
vanishes), so the coordinates are the unit vectors themselves: ``dim == 3`` while
``intrinsic_dim == 2``, and coordinates equal points. Densities over coordinates are with
respect to the area measure (total area :math:`4\pi`), so :meth:`Sphere.log_volume_density`
is 0.

Prior: uniform, :math:`1 / 4\pi`. Posterior family (``family=``, default ``"heat"``): the exact
heat kernel :class:`distributions.SphereHeatKernel` (:math:`\partial_t p = \Delta p`), its mean
direction from three raw encoder outputs (normalised) and its time from a fourth
(``softplus(raw) + 1e-6``); or ``"vmf"``, ``"power-spherical"``
(:mod:`~manifold_vae.manifolds.families`).

The heat kernel is sampled by rejection on the polar angle, which is not a deterministic
function of one standard normal draw: :meth:`LatentManifold.reparameterize` is not available
(so :func:`~manifold_vae.ensemble.fit_ensemble` cannot train a sphere; use
:func:`~manifold_vae.training.fit`), although ``rsample`` is exactly reparameterised (implicit
reparameterisation). The same holds for the other families.
"""

from __future__ import annotations

from typing import Any

from .base import register_manifold
from .hypersphere import MIN_TIME, Hypersphere, normalize

__all__ = ["MIN_TIME", "Sphere", "normalize"]


@register_manifold
class Sphere(Hypersphere):
    r"""The unit sphere :math:`S^2`: coordinates and points are unit vectors ``(..., 3)``.

    Metric induced from :math:`\mathbb R^3`; area :math:`4\pi`; geodesic distance
    :math:`\arccos\langle x, y\rangle`; exponential map
    :math:`\exp_x(v) = \cos\lVert v\rVert\, x + \sin\lVert v\rVert\, v / \lVert v\rVert`.

    Parameters
    ----------
    family : str
        Posterior family: ``"heat"`` (default), ``"vmf"`` or ``"power-spherical"``.
    """

    name = "sphere"

    def __init__(self, *, family: str = "heat") -> None:
        super().__init__(2, family=family)

    def _kwargs(self) -> dict[str, Any]:
        return {} if self.family == "heat" else {"family": self.family}
