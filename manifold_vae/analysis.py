r"""Comparing a learned model with the truth: recovered directions up to an orthogonal map, and
the true model's log-likelihood.

* :func:`encoded_directions`: a model's codes of the data as unit vectors in :math:`\mathbb R^3`;
* :func:`procrustes_alignment`: the orthogonal map (rotation or reflection) that best aligns
  recovered directions with the true ones, and the residual angles;
* :func:`true_negative_log_likelihood`: :math:`-\log p(x)` under a known generating process
  (:class:`~manifold_vae.datasets.GenerativeModel`), by importance sampling: the lowest average
  negative ELBO any model could reach.

The ``sphere`` experiment measures recovery of a direction in :math:`S^2` with them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .vae import VAE

__all__ = ["encoded_directions", "procrustes_alignment", "true_negative_log_likelihood"]


def procrustes_alignment(recovered: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    r"""Best orthogonal map from ``recovered`` to ``truth`` directions, and the residual angles.

    .. math::

        R = \arg\min_{R \in O(3)} \sum_i \lVert R u_i - z_i \rVert^2 = A B^\top, \qquad
        \sum_i z_i u_i^\top = A S B^\top

    (orthogonal Procrustes; reflections allowed), and the angles
    :math:`\angle(R u_i, z_i) = \operatorname{atan2}(\lVert R u_i \times z_i\rVert,
    R u_i \cdot z_i)`.

    Parameters
    ----------
    recovered : Tensor, shape=[N, 3]
        Unit vectors :math:`u_i`.
    truth : Tensor, shape=[N, 3]
        Unit vectors :math:`z_i`.

    Returns
    -------
    rotation : Tensor, shape=[3, 3]
        :math:`R` (determinant :math:`\pm 1`), float64.
    angles : Tensor, shape=[N]
        :math:`\angle(R u_i, z_i) \in [0, \pi]`, float64.
    """
    if recovered.shape != truth.shape or recovered.ndim != 2 or recovered.shape[-1] != 3:
        raise ValueError(
            f"recovered and truth must both have shape (N, 3), got {tuple(recovered.shape)} "
            f"and {tuple(truth.shape)}"
        )
    u, z = recovered.double(), truth.double()
    a, _, bt = torch.linalg.svd(z.T @ u)
    rotation = a @ bt
    aligned = u @ rotation.T
    cross = torch.linalg.cross(aligned, z).norm(dim=-1)
    return rotation, torch.atan2(cross, (aligned * z).sum(-1))


def encoded_directions(vae: VAE, data: Tensor) -> tuple[Tensor, Tensor]:
    r"""Unit vectors of the encoded data and the relative spread of their radii.

    The embedded posterior locations :math:`p_i` of the data; on a vector space
    (``latent.is_vector_space``, e.g. :math:`\mathbb R^3`) centred on their average first. The
    directions are :math:`p_i / \lVert p_i \rVert`; the spread
    :math:`\operatorname{std}_i \lVert p_i\rVert / \operatorname{mean}_i \lVert p_i\rVert`
    says how far the code is from a sphere (0 on the sphere itself).

    Parameters
    ----------
    vae : VAE
        A model whose latent is embedded in :math:`\mathbb R^3` (``Sphere()``,
        ``Euclidean(3)``); it is put in evaluation mode.
    data : Tensor, shape=[N, *data_shape]
        Datapoints.

    Returns
    -------
    directions : Tensor, shape=[N, 3]
        float64 unit vectors.
    spread : Tensor, shape=[]
        The relative spread of the radii.
    """
    vae.eval()
    with torch.no_grad():
        points = vae.embedded_location(data).double()
    if points.shape[-1] != 3:
        raise ValueError(f"vae: need a latent embedded in R^3, got {vae.latent!r}")
    if vae.latent.is_vector_space:
        points = points - points.mean(0)
    radius = points.norm(dim=-1)
    spread = (radius.std() / radius.mean()).item()
    return points / radius.clamp_min(1e-300).unsqueeze(-1), torch.tensor(spread)


def true_negative_log_likelihood(
    model: Any, data: Tensor, truth: Tensor, samples: int = 512, time: float = 1e-3, seed: int = 0
) -> Tensor:
    r""":math:`-\log p(x)` under the true generating process, by importance sampling.

    .. math::

        p(x) = \int p(x \mid z)\, p(z)\, dz \approx \frac1S \sum_s
        \frac{p(x \mid z_s)\, p(z_s)}{q(z_s)}, \qquad z_s \sim q = p^{\text{heat}}_t(\cdot
        \mid z_{\text{true}}),

    an unbiased estimate of :math:`p(x)` for any proposal; the heat kernel at the true latent
    with :math:`t` a little wider than the posterior keeps its variance small (the log of the
    average is biased upwards in :math:`-\log p` by about half its relative variance).

    Parameters
    ----------
    model : GenerativeModel
        The true process (``latent``, ``log_joint``).
    data : Tensor, shape=[N, *data_shape]
        Datapoints.
    truth : Tensor, shape=[N, dim]
        Their true latent coordinates (the proposals' locations).
    samples : int
        :math:`S`.
    time : float
        Proposal time :math:`t`.
    seed : int
        Seed of the proposals (forked RNG).

    Returns
    -------
    Tensor, shape=[N]
        float64.
    """
    x, z = data.double(), truth.double()
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        q = model.latent.coordinate_heat_kernel(z, torch.tensor(time, dtype=torch.float64))
        draws = q.sample(torch.Size([samples]))
        log_w = model.log_joint(x, draws) - q.log_prob(draws)
    return -(torch.logsumexp(log_w, 0) - math.log(samples))
