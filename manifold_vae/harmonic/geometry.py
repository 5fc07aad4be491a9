r"""What harmonic analysis needs to know about a latent manifold, read off its declarations.

Spectra exist in closed form for two kinds of latent spaces, which a manifold *declares*
(:class:`~manifold_vae.manifolds.LatentManifold`'s capabilities; no class checks, no numerical
guessing):

* **flat products of circles** (the circle, flat tori, the Clifford torus): every coordinate is
  an angle (:attr:`~manifold_vae.manifolds.LatentManifold.angle_radii` has a radius
  :math:`r_i` for each), so ``to_point`` is :math:`2\pi`-periodic in each of them and the
  pulled-back metric :math:`g = J^\top J` (:math:`J` the Jacobian of ``to_point``) is
  :math:`g = \operatorname{diag}(r_1^2, \dots, r_n^2)`, with
  :math:`\mathrm{volume} = \prod_i 2\pi r_i`. Functions are expanded in
  :math:`e^{i m \cdot \theta}`, the Laplacian's eigenfunctions
  (:math:`\Delta e^{i m\cdot\theta} = -\sum_i m_i^2 / r_i^2\, e^{i m\cdot\theta}`);
* **Gaussian space** :math:`\mathbb R^d`
  (:attr:`~manifold_vae.manifolds.LatentManifold.is_vector_space`): ``to_point`` the identity
  (:math:`g = I`), standard normal prior. Functions are expanded in Hermite polynomials.

The conformance kit (:mod:`manifold_vae.testing`, checks ``angle-radii`` and
``vector-space``) verifies both declarations against the geometry (periodicity, the metric
:math:`J^\top J`, the volume, the prior). Other manifolds (e.g. the sphere, products with a
sphere) declare neither; the spectrum functions raise ``ValueError`` for them, naming the
missing capability, while the Lipschitz estimates work on every manifold.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor

from ..manifolds import LatentManifold

__all__ = ["circle_radii", "embedding_jacobian", "is_gaussian_space", "tangent_frame"]


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


def circle_radii(latent: LatentManifold) -> tuple[float, ...] | None:
    r"""The radii :math:`r_i` if ``latent`` declares every coordinate an angle, else ``None``.

    Read from the declared capability :attr:`~manifold_vae.manifolds.LatentManifold.angle_radii`
    (all radii present, :attr:`~manifold_vae.manifolds.LatentManifold.angle_product`); the
    conformance kit (:mod:`manifold_vae.testing`, check ``angle-radii``) verifies the
    declaration against the geometry.

    Returns
    -------
    tuple of float, or None
        One radius per coordinate, or ``None`` when some coordinate is not an angle.
    """
    if not latent.angle_product:
        return None
    return tuple(float(r) for r in latent.angle_radii)


def is_gaussian_space(latent: LatentManifold) -> bool:
    r"""Does ``latent`` declare itself :math:`\mathbb R^d` with an isometric embedding and
    prior :math:`N(0, I)` (:attr:`~manifold_vae.manifolds.LatentManifold.is_vector_space`,
    checked by the kit's ``vector-space`` check)?"""
    return bool(latent.is_vector_space)
