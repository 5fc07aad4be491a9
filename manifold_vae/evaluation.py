"""Metrics of recovered latent structure."""

from __future__ import annotations

import torch
from torch import Tensor

from .vae import VAE

__all__ = ["circular_correlation", "phase_recovery", "recovered_angles"]


def circular_correlation(a: Tensor, b: Tensor) -> Tensor:
    r"""Fisher-Lee circular correlation between two samples of angles.

    .. math::

        \rho = \frac{\sum_{i<j} \sin(a_i - a_j)\sin(b_i - b_j)}
                    {\sqrt{\sum_{i<j} \sin^2(a_i - a_j)\,\sum_{i<j}\sin^2(b_i - b_j)}},

    computed in :math:`O(N)` through
    :math:`\sum_{i,j}\sin(a_i-a_j)\sin(b_i-b_j) = 2[(\sum s t)(\sum c d) - (\sum s d)(\sum c t)]`
    with :math:`s, c = \sin a, \cos a` and :math:`t, d = \sin b, \cos b`. It is invariant to
    rotating either sample, equals :math:`+1` when :math:`b = a + \text{const}` and :math:`-1`
    when :math:`b = -a + \text{const}` (reversed orientation), and needs no mean direction, so it
    is well defined for uniformly spread angles.

    Parameters
    ----------
    a, b : Tensor, shape=[N]
        Angles (radians), ``N >= 2``.

    Returns
    -------
    Tensor, shape=[]
        The correlation in :math:`[-1, 1]`.
    """
    if a.shape != b.shape or a.dim() != 1 or a.shape[0] < 2:
        raise ValueError(
            f"a and b must be 1-D of the same length >= 2, got shapes {tuple(a.shape)}, "
            f"{tuple(b.shape)}"
        )
    a, b = a.double(), b.double()
    s, c, t, d = torch.sin(a), torch.cos(a), torch.sin(b), torch.cos(b)
    num = (s * t).sum() * (c * d).sum() - (s * d).sum() * (c * t).sum()
    den_a = (s * s).sum() * (c * c).sum() - (s * c).sum() ** 2
    den_b = (t * t).sum() * (d * d).sum() - (t * d).sum() ** 2
    return num / torch.sqrt(den_a * den_b)


@torch.no_grad()
def recovered_angles(vae: VAE, data: Tensor) -> Tensor:
    """Angles of the encoded data in each plane of the latent embedding.

    The posterior locations are embedded (``latent.to_point``), centred on their mean, and each
    consecutive coordinate pair gives one angle by ``atan2``: the angle itself on the circle, one
    angle per factor on tori, and the angle around the centre of the encoded loop in R^2.

    Returns
    -------
    Tensor, shape=[N, ambient_dim // 2]
    """
    vae.eval()
    points = vae.embedded_location(data).double()
    if points.shape[-1] < 2:
        raise ValueError(f"{vae.latent!r} embeds in fewer than 2 dimensions: no angle to recover")
    points = points - points.mean(0)
    pairs = points[:, : 2 * (points.shape[-1] // 2)].unflatten(-1, (-1, 2))
    return torch.atan2(pairs[..., 1], pairs[..., 0])


def phase_recovery(vae: VAE, data: Tensor, true_angles: Tensor) -> Tensor:
    """Absolute circular correlation of each true angle with its best recovered angle.

    Parameters
    ----------
    vae : VAE
        A trained model.
    data : Tensor, shape=[N, *data_shape]
        Datapoints.
    true_angles : Tensor, shape=[N, k]
        The angles that generated them.

    Returns
    -------
    Tensor, shape=[k]
        For each true angle, the largest ``|circular_correlation|`` over the recovered angles.
    """
    recovered = recovered_angles(vae, data)
    true_angles = true_angles.reshape(len(data), -1).double().cpu()
    corr = torch.stack(
        [
            torch.stack([circular_correlation(t, r).abs() for r in recovered.cpu().T])
            for t in true_angles.T
        ]
    )
    return corr.max(dim=1).values
