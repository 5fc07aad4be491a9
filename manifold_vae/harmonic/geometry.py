r"""What harmonic analysis needs to know about a latent manifold, read off the protocol.

Spectra exist in closed form for two kinds of latent spaces, recognised from
:class:`~manifold_vae.manifolds.LatentManifold`'s members alone (no class checks):

* **flat products of circles** (the circle, flat tori, the Clifford torus): coordinates are
  angles, ``to_point`` is :math:`2\pi`-periodic in each of them, and the pulled-back metric
  :math:`g = J^\top J` (:math:`J` the Jacobian of ``to_point``) is constant and diagonal,
  :math:`g = \operatorname{diag}(r_1^2, \dots, r_n^2)`, with
  :math:`\mathrm{volume} = \prod_i 2\pi r_i`. Functions are expanded in
  :math:`e^{i m \cdot \theta}`, the Laplacian's eigenfunctions
  (:math:`\Delta e^{i m\cdot\theta} = -\sum_i m_i^2 / r_i^2\, e^{i m\cdot\theta}`);
* **Gaussian space** :math:`\mathbb R^d`: infinite volume, ``to_point`` an isometry
  (:math:`g = I`), standard normal prior. Functions are expanded in Hermite polynomials.

Other manifolds (e.g. the sphere, products with a sphere) are neither; the spectrum functions
raise ``ValueError`` for them, while the Lipschitz estimates work on every manifold.
"""

from __future__ import annotations

import math

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor

from ..manifolds import LatentManifold

__all__ = ["circle_radii", "embedding_jacobian", "is_gaussian_space", "tangent_frame"]

_PROBES = 16


def embedding_jacobian(latent: LatentManifold, coords: Tensor) -> Tensor:
    r"""The Jacobian :math:`J = \partial\,\mathrm{to\_point} / \partial\,\mathrm{coords}`.

    Computed column by column with forward-mode autodiff (``dim`` passes of dual numbers).

    Parameters
    ----------
    latent : LatentManifold
        The manifold.
    coords : Tensor, shape=[..., dim]
        Coordinates.

    Returns
    -------
    Tensor, shape=[..., ambient_dim, dim]
    """
    columns = []
    coords = coords.detach()
    for i in range(latent.dim):
        direction = torch.zeros_like(coords)
        direction[..., i] = 1.0
        with fwad.dual_level():
            point = latent.to_point(fwad.make_dual(coords, direction))
            columns.append(fwad.unpack_dual(point).tangent)
    return torch.stack(columns, dim=-1)


def tangent_frame(latent: LatentManifold, coords: Tensor) -> Tensor:
    r"""The factor :math:`R` of :math:`J = QR`: :math:`g = R^\top R` in coordinates.

    A coordinate displacement :math:`R^{-1} u` has Riemannian length :math:`\lVert u\rVert`, so
    the Jacobian of :math:`u \mapsto F(c + R^{-1} u)` is the differential of :math:`F` in an
    orthonormal tangent frame.

    Parameters
    ----------
    latent : LatentManifold
        The manifold.
    coords : Tensor, shape=[..., dim]
        Coordinates.

    Returns
    -------
    Tensor, shape=[..., dim, dim]
        Upper triangular; singular where the embedding is (e.g. a coordinate pole).
    """
    return torch.linalg.qr(embedding_jacobian(latent, coords), mode="reduced").R


def _probe(latent: LatentManifold, scale: float) -> Tensor:
    g = torch.Generator().manual_seed(0)
    return scale * (2.0 * torch.rand(_PROBES, latent.dim, generator=g, dtype=torch.float64) - 1.0)


def _metric(latent: LatentManifold, coords: Tensor) -> Tensor:
    jac = embedding_jacobian(latent, coords)
    return jac.transpose(-1, -2) @ jac


def circle_radii(latent: LatentManifold) -> tuple[float, ...] | None:
    r"""The radii :math:`r_i` if ``latent`` is a flat product of circles in angle coordinates.

    Checked at 16 fixed pseudo-random points in float64: :math:`2\pi`-periodicity of
    ``to_point`` in every coordinate, a constant diagonal metric, and
    :math:`\mathrm{volume} = \prod_i 2\pi r_i` (all to ``1e-9`` relative).

    Returns
    -------
    tuple of float, or None
        One radius per coordinate, or ``None`` when the manifold is not of this kind.
    """
    if not math.isfinite(latent.volume):
        return None
    coords = _probe(latent, math.pi)
    points = latent.to_point(coords)
    for i in range(latent.dim):
        shifted = coords.clone()
        shifted[:, i] += 2.0 * math.pi
        if not torch.allclose(latent.to_point(shifted), points, rtol=1e-9, atol=1e-9):
            return None
    metric = _metric(latent, coords)
    diagonal = metric.diagonal(dim1=-2, dim2=-1)
    if not torch.allclose(metric, torch.diag_embed(diagonal), rtol=1e-9, atol=1e-9):
        return None
    if not torch.allclose(diagonal, diagonal[:1].expand_as(diagonal), rtol=1e-9, atol=0.0):
        return None
    radii = tuple(math.sqrt(v) for v in diagonal[0].tolist())
    if not math.isclose(math.prod(2.0 * math.pi * r for r in radii), latent.volume, rel_tol=1e-9):
        return None
    return radii


def is_gaussian_space(latent: LatentManifold) -> bool:
    r"""Is ``latent`` :math:`\mathbb R^d` with an isometric embedding and prior :math:`N(0, I)`?"""
    if math.isfinite(latent.volume):
        return False
    metric = _metric(latent, _probe(latent, 3.0))
    eye = torch.eye(latent.dim, dtype=torch.float64)
    if not torch.allclose(metric, eye.expand_as(metric), rtol=1e-9, atol=1e-9):
        return False
    prior = latent.prior(dtype=torch.float64)
    try:
        mean, variance = prior.mean, prior.variance
    except NotImplementedError:
        return False
    zero = torch.zeros(latent.dim, dtype=torch.float64)
    return bool(
        torch.allclose(mean, zero, atol=1e-12) and torch.allclose(variance, zero + 1.0, atol=1e-12)
    )
