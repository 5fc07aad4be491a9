"""Metrics of recovered latent structure."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["circular_correlation"]


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
