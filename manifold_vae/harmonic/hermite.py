r"""Hermite spectra in Gaussian space: :math:`\mathbb R^d` with the standard normal measure.

The normalised probabilists' Hermite polynomials :math:`h_k = \mathrm{He}_k / \sqrt{k!}`,

.. math::

    h_0 = 1, \quad h_1(x) = x, \quad h_{k+1}(x) = \frac{x\,h_k(x) - \sqrt{k}\,h_{k-1}(x)}
    {\sqrt{k + 1}},

are orthonormal under :math:`N(0, 1)`, and the products
:math:`h_\alpha(z) = \prod_i h_{\alpha_i}(z_i)` are an orthonormal basis of
:math:`L^2(N(0, I_d))` (the Gaussian-space analysis of Camuto & Willetts, AISTATS 2022). The
coefficients :math:`c_\alpha = E[f(Z) h_\alpha(Z)]` are computed with the tensor-product
Gauss-Hermite rule of :math:`q` nodes per axis (nodes and weights by the Golub-Welsch
eigenproblem of the Jacobi matrix with off-diagonal :math:`\sqrt{1}, \dots, \sqrt{q - 1}`). It
integrates polynomials of degree :math:`\le 2q - 1` in each variable exactly, so
:math:`c_\alpha` is exact for a polynomial :math:`f` of degree :math:`\le 2q - 1 - \alpha_i` in
each :math:`z_i`; for other functions (networks) it is the quadrature estimate, which converges
as :math:`q` grows. The frequency of :math:`h_\alpha` is its total degree :math:`|\alpha|`.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from ..latent_model import LatentVariableModel
from ._evaluate import evaluate_in_chunks, model_dtype_device
from .geometry import is_gaussian_space
from .spectrum import Spectrum

__all__ = ["decoder_hermite_spectrum", "gauss_hermite", "hermite_functions", "hermite_spectrum"]


def gauss_hermite(nodes: int) -> tuple[Tensor, Tensor]:
    r"""Gauss-Hermite nodes and weights for :math:`E_{Z \sim N(0,1)}[g(Z)]`, float64.

    :math:`\sum_j w_j g(x_j) = E[g(Z)]` for polynomials of degree :math:`\le 2q - 1`.

    Parameters
    ----------
    nodes : int
        :math:`q \ge 1`.

    Returns
    -------
    (Tensor, Tensor), each of shape=[q]
        Nodes (increasing) and weights (summing to 1).
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
    off = torch.sqrt(torch.arange(1, nodes, dtype=torch.float64))
    jacobi = torch.diag(off, 1) + torch.diag(off, -1)
    x, vectors = torch.linalg.eigh(jacobi)
    return x, vectors[0] ** 2


def hermite_functions(x: Tensor, degree: int) -> Tensor:
    r""":math:`h_0(x), \dots, h_K(x)` by the three-term recurrence.

    Parameters
    ----------
    x : Tensor, shape=[...]
        Points.
    degree : int
        :math:`K \ge 0`.

    Returns
    -------
    Tensor, shape=[..., K + 1]
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    values = [torch.ones_like(x), x]
    for k in range(1, degree):
        values.append((x * values[k] - math.sqrt(k) * values[k - 1]) / math.sqrt(k + 1))
    return torch.stack(values[: degree + 1], dim=-1)


def _check_degree_nodes(degree: int, nodes: int) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes <= degree:
        raise ValueError(f"nodes must be an integer > degree = {degree}, got {nodes!r}")


def hermite_spectrum(values: Tensor, ndim: int, degree: int) -> Spectrum:
    r"""Hermite spectrum from values on the tensor Gauss-Hermite grid of :func:`gauss_hermite`.

    Parameters
    ----------
    values : Tensor, shape=[q, ..., q, *out_shape]
        :math:`f` at the grid of nodes (``ndim`` axes of ``q`` nodes, ``indexing="ij"``).
    ndim : int
        :math:`d`.
    degree : int
        Largest total degree :math:`|\alpha|` to list; needs :math:`q > ` ``degree``.

    Returns
    -------
    Spectrum
        ``basis="hermite"``, multi-indices :math:`\alpha` ``(K, d)`` with
        :math:`|\alpha| \le` ``degree``, real coefficients ``(K, *out_shape)``, and
        ``total_energy`` the quadrature of :math:`E\lVert f(Z)\rVert^2`.
    """
    if isinstance(ndim, bool) or not isinstance(ndim, int) or not 1 <= ndim <= values.dim():
        raise ValueError(f"ndim must be an integer in [1, values.dim()], got {ndim!r}")
    q = values.shape[0]
    if any(s != q for s in values.shape[:ndim]):
        raise ValueError(f"values needs {ndim} grid axes of equal size, got {tuple(values.shape)}")
    _check_degree_nodes(degree, q)
    if not torch.isfinite(values).all():
        raise ValueError("values must be finite")
    x, w = gauss_hermite(q)
    basis = hermite_functions(x, degree).T * w  # (degree + 1, q): w_j h_k(x_j)
    work = values.double()
    for _ in range(ndim):  # contract the leading grid axis; the new axis goes last
        work = torch.tensordot(basis, work, dims=([1], [0])).movedim(0, -1)
    work = work.movedim(tuple(range(-ndim, 0)), tuple(range(ndim)))  # (K+1,)*d + out
    modes = [a for a in itertools.product(range(degree + 1), repeat=ndim) if sum(a) <= degree]
    index = torch.tensor(modes, dtype=torch.long)
    coefficients = work[tuple(index.T)]
    weights = w
    for _ in range(ndim - 1):
        weights = torch.outer(weights.reshape(-1), w)
    squares = (values.double() ** 2).reshape(q**ndim, -1).sum(-1)
    total = float((weights.reshape(-1) * squares).sum())
    return Spectrum("hermite", index, index.sum(-1).double(), coefficients, total_energy=total)


def decoder_hermite_spectrum(
    model: LatentVariableModel,
    degree: int = 6,
    nodes: int = 16,
    chunk: int = 4096,
    progress: bool = False,
) -> Spectrum:
    r"""Hermite spectrum of the decoder mean :math:`F(z) = E[x \mid z]` under the prior N(0, I).

    Evaluates the decoder at :math:`q^d` Gauss-Hermite nodes.

    Parameters
    ----------
    model : LatentVariableModel
        A model whose latent is Gaussian space
        (declared ``is_vector_space``, :func:`~manifold_vae.harmonic.geometry.is_gaussian_space`).
    degree : int
        Largest total degree listed (the energy beyond it still counts in ``total_energy``).
    nodes : int
        :math:`q > ` ``degree`` nodes per axis.
    chunk, progress
        Decoder evaluations per call; progress bar.

    Raises
    ------
    ValueError
        If the latent is not :math:`\mathbb R^d` with a standard normal prior.
    """
    latent = model.latent
    if not is_gaussian_space(latent):
        raise ValueError(
            f"the latent {latent!r} is not R^d with an isometric embedding and an N(0, I) "
            "prior (it does not declare is_vector_space): no Hermite spectrum (use "
            "decoder_fourier_spectrum on circles and tori)"
        )
    _check_degree_nodes(degree, nodes)
    dtype, device = model_dtype_device(model)
    x, _ = gauss_hermite(nodes)
    axes = [x] * latent.dim
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, latent.dim)
    values = evaluate_in_chunks(
        model.decoder_mean, grid.to(dtype=dtype, device=device), chunk, progress, "decoder"
    )
    shape = (nodes,) * latent.dim
    return hermite_spectrum(values.reshape(*shape, *values.shape[1:]).cpu(), latent.dim, degree)
