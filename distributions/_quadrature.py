r"""Gauss-Legendre rules and the graded composite quadrature used for KL divergences.

Nothing here uses numpy or scipy: nodes and weights come from the Golub-Welsch eigenproblem in
torch, cached per ``(n, dtype, device)``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .angles import PI

__all__ = ["gauss_legendre", "graded_breakpoints", "panel_quadrature"]


@functools.lru_cache(maxsize=32)
def gauss_legendre(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    r"""Nodes and weights of the ``n``-point Gauss-Legendre rule on :math:`[-1, 1]`.

    Golub-Welsch: the nodes are the eigenvalues of the symmetric Jacobi matrix with
    off-diagonal :math:`k / \sqrt{4k^2 - 1}`, the weights twice the squared first components
    of its eigenvectors. Computed in float64 on the CPU, then cast.

    Returns
    -------
    nodes, weights : Tensor, shape=[n]
    """
    k = torch.arange(1, n, dtype=torch.float64)
    off = k / torch.sqrt(4.0 * k * k - 1.0)
    jacobi = torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vectors = torch.linalg.eigh(jacobi)
    weights = 2.0 * vectors[0] ** 2
    return nodes.to(dtype=dtype, device=device), weights.to(dtype=dtype, device=device)


def graded_breakpoints(centers: Tensor, levels: int) -> Tensor:
    r"""Breakpoints on :math:`[-\pi, \pi]` graded geometrically towards each center.

    For every center :math:`c` the points :math:`c \pm \pi 2^{-j}`, :math:`j = 0..levels`, are
    clipped to :math:`[-\pi, \pi]`; together with :math:`\pm\pi` and the centers they cut the
    interval into panels whose length is at most proportional to their distance from the
    nearest center. A function that is analytic except near the centers, with features of any
    width down to :math:`\pi 2^{-levels}`, is then integrated to high accuracy by a fixed
    Gauss-Legendre rule on every panel.

    Parameters
    ----------
    centers : Tensor, shape=[..., c]
        Feature locations in :math:`[-\pi, \pi]`.
    levels : int
        Number of halvings.

    Returns
    -------
    Tensor, shape=[..., 2 + c (2 levels + 3)]
        Sorted breakpoints.
    """
    offsets = PI * torch.exp2(-torch.arange(levels + 1, dtype=centers.dtype, device=centers.device))
    offsets = torch.cat([-offsets, torch.zeros_like(offsets[:1]), offsets])
    points = (centers.unsqueeze(-1) + offsets).flatten(-2).clamp(-PI, PI)
    ends = torch.tensor([-PI, PI], dtype=centers.dtype, device=centers.device)
    points = torch.cat([points, ends.expand(*points.shape[:-1], 2)], dim=-1)
    return torch.sort(points, dim=-1).values


def panel_quadrature(breakpoints: Tensor, nodes: int) -> tuple[Tensor, Tensor]:
    r"""Composite Gauss-Legendre nodes and weights on the panels between sorted breakpoints.

    Parameters
    ----------
    breakpoints : Tensor, shape=[..., b]
        Sorted panel ends (panels of zero length get zero weight).
    nodes : int
        Gauss-Legendre nodes per panel.

    Returns
    -------
    x, w : Tensor, shape=[..., (b - 1) nodes]
        Quadrature points and weights; ``(w * f(x)).sum(-1)`` approximates the integral of ``f``
        from the first to the last breakpoint.
    """
    gl_x, gl_w = gauss_legendre(nodes, breakpoints.dtype, breakpoints.device)
    left, right = breakpoints[..., :-1, None], breakpoints[..., 1:, None]
    half = 0.5 * (right - left)
    x = (left + half * (1.0 + gl_x)).flatten(-2)
    w = (half * gl_w).flatten(-2)
    return x, w
