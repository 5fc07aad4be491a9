r"""Lipschitz estimates: the largest Jacobian spectral norm, by power iteration with autograd.

For a differentiable :math:`f` and points :math:`x_1, \dots, x_N`, the local Lipschitz
constants are :math:`\sigma_{\max}(J_f(x_n)) = \max_{\lVert v\rVert = 1}\lVert J_f(x_n) v\rVert`
and the estimate of the Lipschitz constant over the points is their maximum (a lower bound on
the Lipschitz constant of :math:`f` on any set containing them).

``method="power"``: power iteration on :math:`J^\top J`,

.. math::

    v_{k+1} = \frac{J^\top J v_k}{\lVert J^\top J v_k\rVert}, \qquad
    \sigma_k = \lVert J v_k\rVert,

with two reverse-mode passes per step (:math:`J^\top w` by backpropagation, :math:`J v` by
differentiating :math:`w \mapsto J^\top w` once more), never forming :math:`J`. :math:`\sigma_k`
increases to :math:`\sigma_{\max}`, with error shrinking like :math:`(\sigma_2/\sigma_1)^{2k}`;
iteration stops when every point's :math:`\sigma_k` changed by less than ``rtol`` relative in
one step, or after ``iterations`` steps (then a ``RuntimeWarning`` says how far from converged
it is: the estimates are then lower bounds).

``method="full"``: the whole Jacobian from :math:`\min(\text{in}, \text{out})` passes and its
exact spectral norm (an SVD); cheaper and exact when either side is small (a latent of a few
dimensions). ``method="auto"`` (default) takes ``"full"`` when
:math:`\min(\text{in}, \text{out}) \le 8`, else ``"power"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["jacobian_norms", "lipschitz_estimate"]

#: ``method="auto"`` forms the Jacobian when its smaller side has at most this many entries.
FULL_JACOBIAN_SIZE = 8


def _row_norm(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=-1)


def _per_row(scale: Tensor, like: Tensor) -> Tensor:
    return scale.reshape(-1, *([1] * (like.dim() - 1)))


class _Linearisation:
    """:math:`J v` and :math:`J^\\top w` of a row-wise function at fixed inputs, reverse mode."""

    def __init__(self, function: Callable[[Tensor], Tensor], inputs: Tensor) -> None:
        self.x = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            self.y = function(self.x)
            self.w = torch.zeros_like(self.y, requires_grad=True)
            (self.pullback,) = torch.autograd.grad(
                self.y, self.x, self.w, create_graph=True, allow_unused=False
            )

    def vjp(self, w: Tensor) -> Tensor:
        return torch.autograd.grad(self.y, self.x, w, retain_graph=True)[0]

    def jvp(self, v: Tensor) -> Tensor:
        if not self.pullback.requires_grad:  # the function is constant in its input
            return torch.zeros_like(self.y)
        return torch.autograd.grad(self.pullback, self.w, v, retain_graph=True)[0]


def _power(lin: _Linearisation, iterations: int, rtol: float, seed: int, progress: bool) -> Tensor:
    x = lin.x
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    v = v / _per_row(_row_norm(v), v)
    sigma = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    change = torch.full_like(sigma, math.inf)
    bar = tqdm(range(iterations), desc="power iteration", disable=not progress, leave=False)
    for _ in bar:
        jv = lin.jvp(v)
        new = _row_norm(jv)
        w = lin.vjp(jv)
        norm = _row_norm(w)
        change = (new - sigma).abs() / new.clamp_min(torch.finfo(new.dtype).tiny)
        sigma = new
        v = torch.where(_per_row(norm > 0, w), w / _per_row(norm.clamp_min(1e-300), w), v)
        if bool((change <= rtol).all()) or not bool((sigma > 0).any()):
            break
    else:
        warnings.warn(
            f"power iteration did not converge in {iterations} steps (largest relative change "
            f"of the last step {float(change.max()):.2e} > rtol = {rtol:g}); the estimates are "
            "lower bounds",
            RuntimeWarning,
            stacklevel=3,
        )
    return sigma


def _full(lin: _Linearisation) -> Tensor:
    """The Jacobians ``(N, out, in)`` by the cheaper side, then their spectral norms."""
    n = lin.x.shape[0]
    size_in, size_out = lin.x[0].numel(), lin.y[0].numel()
    columns = []
    if size_in <= size_out:
        for i in range(size_in):
            e = torch.zeros_like(lin.x).reshape(n, -1)
            e[:, i] = 1.0
            columns.append(lin.jvp(e.reshape(lin.x.shape)).reshape(n, -1))
        jac = torch.stack(columns, dim=-1)
    else:
        for j in range(size_out):
            e = torch.zeros_like(lin.y).reshape(n, -1)
            e[:, j] = 1.0
            columns.append(lin.vjp(e.reshape(lin.y.shape)).reshape(n, -1))
        jac = torch.stack(columns, dim=-2)
    return torch.linalg.matrix_norm(jac, ord=2)


def jacobian_norms(
    function: Callable[[Tensor], Tensor],
    inputs: Tensor,
    iterations: int = 200,
    rtol: float = 1e-6,
    seed: int = 0,
    progress: bool = False,
    method: str = "auto",
) -> Tensor:
    r"""Spectral norm :math:`\sigma_{\max}(J_f(x_n))` at every input.

    Parameters
    ----------
    function : callable
        Maps ``(N, *in_shape)`` to ``(N, *out_shape)`` row by row (row ``n`` of the output
        depends on row ``n`` of the input only; true of networks without batch statistics).
    inputs : Tensor, shape=[N, *in_shape]
        The points.
    iterations : int
        Largest number of power-iteration steps.
    rtol : float
        Stop when every point's estimate changed by less than this, relatively, in a step.
    seed : int
        Seed of the random start vectors (the global RNG is not touched).
    progress : bool
        Progress bar over the steps.
    method : {"auto", "power", "full"}
        See the module docstring.

    Returns
    -------
    Tensor, shape=[N]
        The estimates, detached, in the dtype of ``inputs``.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if not rtol > 0:
        raise ValueError(f"rtol must be positive, got {rtol}")
    if method not in ("auto", "power", "full"):
        raise ValueError(f"method must be 'auto', 'power' or 'full', got {method!r}")
    if inputs.dim() < 1 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have shape (N, ...) with N >= 1, got {tuple(inputs.shape)}")
    lin = _Linearisation(function, inputs)
    if lin.y.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"function must map (N, ...) to (N, ...): got {tuple(lin.y.shape)} from "
            f"{tuple(inputs.shape)}"
        )
    if method == "auto":
        small = min(lin.x[0].numel(), lin.y[0].numel()) <= FULL_JACOBIAN_SIZE
        method = "full" if small else "power"
    if method == "full":
        return _full(lin).detach()
    return _power(lin, iterations, rtol, seed, progress).detach()


def lipschitz_estimate(
    function: Callable[[Tensor], Tensor],
    inputs: Tensor,
    iterations: int = 200,
    rtol: float = 1e-6,
    seed: int = 0,
    progress: bool = False,
    method: str = "auto",
) -> float:
    r""":math:`\max_n \sigma_{\max}(J_f(x_n))`: the largest of :func:`jacobian_norms`."""
    return float(jacobian_norms(function, inputs, iterations, rtol, seed, progress, method).max())
