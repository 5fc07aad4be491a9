r"""Exact KL divergences between the heat kernels and uniform distributions, registered with torch.

``torch.distributions.kl_divergence`` (and so Pyro's ``TraceMeanField_ELBO``) finds them:

* heat kernel against uniform: :math:`\log 2\pi - H(t)` per factor, exact (the Gaussian form
  for small times, a piecewise-polynomial table of the exact values above, see
  :func:`distributions._circle_kl.circle_kl_to_uniform_table`);
* heat kernel against heat kernel on the same space: graded Gauss-Legendre quadrature of the
  exact log densities, error below :math:`10^{-13}\max(1, \mathrm{KL})`
  (:func:`distributions._circle_kl.circle_kl`);
* uniform against uniform: zero.
* sphere heat kernel against the sphere's uniform: :math:`\log 4\pi - H(t)`, exact for every
  time (:func:`distributions._sphere_series.sphere_kl_to_uniform`).
* von Mises-Fisher, Power Spherical and the hypersphere heat kernel against
  :class:`~distributions.hypersphere.HypersphereUniform` of the same dimension: closed forms
  (:func:`~distributions.vmf.vmf_kl_to_uniform`,
  :func:`~distributions.power_spherical.power_spherical_kl_to_uniform`) and exact quadrature
  (:func:`~distributions.hypersphere.hypersphere_heat_kl_to_uniform`); uniform against uniform:
  zero. Different dimensions raise ``ValueError``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import register_kl

from ._circle_kl import circle_kl, circle_kl_to_uniform_table
from ._sphere_series import sphere_kl_to_uniform
from .circle import CircleHeatKernel, CircleUniform
from .hypersphere import HypersphereHeatKernel, HypersphereUniform
from .power_spherical import PowerSpherical
from .sphere import SphereHeatKernel, SphereUniform
from .torus import TorusHeatKernel, TorusUniform
from .vmf import VonMisesFisher

__all__: list[str] = []


def _check_factors(p: TorusHeatKernel | TorusUniform, q: TorusHeatKernel | TorusUniform) -> None:
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"KL between tori of different dimension: event shapes {tuple(p.event_shape)} "
            f"and {tuple(q.event_shape)}"
        )


def _batch_of(p, q, value: Tensor) -> Tensor:
    """Broadcast a KL computed from ``p``'s parameters to the joint batch shape of p and q."""
    if q.batch_shape == p.batch_shape or not q.batch_shape:  # the common cases, without a call
        return value
    return value.expand(torch.broadcast_shapes(p.batch_shape, q.batch_shape))


@register_kl(CircleHeatKernel, CircleUniform)
def _kl_circle_heat_uniform(p: CircleHeatKernel, q: CircleUniform) -> Tensor:
    return _batch_of(p, q, circle_kl_to_uniform_table(p.time))


@register_kl(CircleHeatKernel, CircleHeatKernel)
def _kl_circle_heat_heat(p: CircleHeatKernel, q: CircleHeatKernel) -> Tensor:
    return circle_kl(p.loc, p.time, q.loc, q.time)


@register_kl(CircleUniform, CircleUniform)
def _kl_circle_uniform_uniform(p: CircleUniform, q: CircleUniform) -> Tensor:
    return torch.zeros(
        torch.broadcast_shapes(p.batch_shape, q.batch_shape), dtype=p._dtype, device=p._device
    )


@register_kl(TorusHeatKernel, TorusUniform)
def _kl_torus_heat_uniform(p: TorusHeatKernel, q: TorusUniform) -> Tensor:
    _check_factors(p, q)
    return _batch_of(p, q, circle_kl_to_uniform_table(p.time).sum(-1))


@register_kl(TorusHeatKernel, TorusHeatKernel)
def _kl_torus_heat_heat(p: TorusHeatKernel, q: TorusHeatKernel) -> Tensor:
    _check_factors(p, q)
    return circle_kl(p.loc, p.time, q.loc, q.time).sum(-1)


@register_kl(TorusUniform, TorusUniform)
def _kl_torus_uniform_uniform(p: TorusUniform, q: TorusUniform) -> Tensor:
    _check_factors(p, q)
    return torch.zeros(
        torch.broadcast_shapes(p.batch_shape, q.batch_shape), dtype=p._dtype, device=p._device
    )


@register_kl(SphereHeatKernel, SphereUniform)
def _kl_sphere_heat_uniform(p: SphereHeatKernel, q: SphereUniform) -> Tensor:
    return _batch_of(p, q, sphere_kl_to_uniform(p.time))


@register_kl(SphereUniform, SphereUniform)
def _kl_sphere_uniform_uniform(p: SphereUniform, q: SphereUniform) -> Tensor:
    return torch.zeros(
        torch.broadcast_shapes(p.batch_shape, q.batch_shape), dtype=p._dtype, device=p._device
    )


def _check_dimension(p, q) -> None:
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"KL between distributions on spheres of different dimension: event shapes "
            f"{tuple(p.event_shape)} and {tuple(q.event_shape)}"
        )


def _kl_hyperspherical_uniform(
    p: VonMisesFisher | PowerSpherical | HypersphereHeatKernel, q: HypersphereUniform
) -> Tensor:
    _check_dimension(p, q)
    return _batch_of(p, q, p.kl_to_uniform())


for _family in (VonMisesFisher, PowerSpherical, HypersphereHeatKernel):
    register_kl(_family, HypersphereUniform)(_kl_hyperspherical_uniform)


@register_kl(HypersphereUniform, HypersphereUniform)
def _kl_hypersphere_uniform_uniform(p: HypersphereUniform, q: HypersphereUniform) -> Tensor:
    _check_dimension(p, q)
    return torch.zeros(
        torch.broadcast_shapes(p.batch_shape, q.batch_shape), dtype=p._dtype, device=p._device
    )
