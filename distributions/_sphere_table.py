r"""A piecewise Chebyshev table of the :math:`S^2` heat kernel for single precision.

For :math:`10^{-4} \le t \le 1/2` the log density is written as

.. math:: \log p_t(\theta) = -\frac{\theta^2}{4t} - \log(4\pi t) + R(\theta, t),

where the exact singular parts are kept in closed form and the smooth remainder :math:`R`
(:func:`distributions._sphere_series.image_residual`; :math:`R \to \frac12\log(\theta/\sin\theta)`
as :math:`t \to 0` away from the antipode) is a tensor-product Chebyshev interpolant of degree
``POINTS - 1`` in each variable, on cells of a coordinate :math:`v(\theta, t)` and of
:math:`s = \log t`. :math:`R` has a boundary layer at the antipode where the images
:math:`k = 0, -1` meet, of width :math:`t/\pi` in :math:`\theta`: with
:math:`\xi = \pi(\pi - \theta)/t` (the image ratio is :math:`e^{-\xi}`), the cells are

* segment A, :math:`\theta \in [0, \pi/2]`: uniform in :math:`\theta` (``THETA_CELLS`` cells);
* segment B, :math:`\theta > \pi/2` and :math:`\xi \ge \xi_1`: uniform in :math:`\log\xi`
  (``LOG_XI_WIDTH``), where :math:`R` is smooth on scale one (van Vleck's
  :math:`-\frac12\log(\pi - \theta)` is linear in :math:`\log\xi` at fixed :math:`t`, the image
  term :math:`e^{-\xi}` has :math:`n`-th derivative in :math:`\log\xi` at most about :math:`n!`);
* segment C, :math:`\xi < \xi_1`: uniform in :math:`\xi` (analytic there: :math:`p` is even in
  :math:`\pi - \theta`), so that :math:`d v / d\theta` stays of size :math:`1/t` and the
  gradient in :math:`\theta` keeps its relative accuracy up to the antipode.

The coefficients are computed once per ``(dtype, device)``, from the float64 image quadrature
at the Chebyshev points of every cell (exact to a few float64 unit roundoffs; about 0.25 s on
one CPU thread), and cached. Degree 5 on cells of width 1/4 (in :math:`\log t`, :math:`\log\xi`)
is as accurate as degree 7 on cells of width 1/2 (measured 4.8e-9 against 3e-9) and half the
work per element: 36 coefficients to gather and contract instead of 64. Error bound: on a
dense grid of the table's domain (random points,
the cell edges, the antipodal layer and both ends in time) the interpolant is within
:data:`TABLE_ERROR` of :math:`R` in absolute terms (measured: 4.8e-9) against the float64 image
quadrature, which is itself exact to a few float64 unit roundoffs against mpmath; the tests
(``tests/distributions/test_sphere_representation.py``) check this bound, check sample points
against mpmath, and check that perturbing a coefficient by a few times the bound is detected.
:data:`TABLE_ERROR` is a sixth of a float32 unit roundoff of :math:`\max(1, |\log p|)`, so
the table is used for float32 (and lower) precision only; float64 keeps the quadrature.

Evaluation costs a few logarithms, one gather of ``POINTS**2`` coefficients and their
contraction with the two Chebyshev bases, per element, instead of the 28-node quadrature.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._chunks import by_chunks, chunk_size
from .angles import PI

__all__ = [
    "POINTS",
    "TABLE_ERROR",
    "TABLE_MAX_TIME",
    "TABLE_MIN_TIME",
    "set_exact_residual",
    "table_coordinates",
    "table_log_density",
    "table_residual",
    "uses_table",
]

#: Times covered by the table (the image quadrature below, the Legendre series above).
TABLE_MIN_TIME = 1e-4
TABLE_MAX_TIME = 0.5
#: Chebyshev points (degree + 1) per cell and variable.
POINTS = 6
#: Bound on :math:`|R_{table} - R|` (absolute, float64 evaluation of the table; measured 4.8e-9).
TABLE_ERROR = 2e-8

#: Cells of segment A (uniform in theta on [0, pi/2]).
THETA_CELLS = 16
#: Cell width in log xi (segment B) and in s = log t.
LOG_XI_WIDTH = 0.25
LOG_TIME_WIDTH = 0.25
#: Boundary between segments B and C, and the cells of C (uniform in xi on [0, XI_SPLIT]).
XI_SPLIT = 2.0
XI_CELLS = 4

_S_LO = math.log(TABLE_MIN_TIME)
_S_HI = math.log(TABLE_MAX_TIME)
_TIME_CELLS = math.ceil((_S_HI - _S_LO) / LOG_TIME_WIDTH)
_S_WIDTH = (_S_HI - _S_LO) / _TIME_CELLS
_THETA_WIDTH = 0.5 * PI / THETA_CELLS
#: Largest log xi of segment B: xi at theta = pi/2 and the smallest time.
_LOG_XI_HI = math.log(PI * PI / (2.0 * TABLE_MIN_TIME))
_LOG_XI_LO = math.log(XI_SPLIT)
_B_CELLS = math.ceil((_LOG_XI_HI - _LOG_XI_LO) / LOG_XI_WIDTH)
_B_WIDTH = (_LOG_XI_HI - _LOG_XI_LO) / _B_CELLS
_C_WIDTH = XI_SPLIT / XI_CELLS
_ANGLE_CELLS = THETA_CELLS + _B_CELLS + XI_CELLS
_LOG_4PI = math.log(4.0 * PI)


def uses_table(dtype: torch.dtype) -> bool:
    """Whether ``dtype`` is coarse enough for the table (float32 and lower precision)."""
    return torch.finfo(dtype).eps >= 1e-7


def table_coordinates(theta: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
    r"""Cell coordinates :math:`(v, u)` of :math:`(\theta, t)`: the integer parts index the
    cell, the fractional parts are the position in it.

    :math:`u = (\log t - \log 10^{-4}) / h_s`; :math:`v` is :math:`\theta/h_A` on segment A,
    ``THETA_CELLS`` :math:`+ (\log\xi_{hi} - \log\xi)/h_B` on B and
    ``THETA_CELLS + B`` :math:`+ (\xi_1 - \xi)/h_C` on C (see the module docstring).

    Parameters
    ----------
    theta, time : Tensor, shape=[...]
        Broadcast angles in :math:`[0, \pi]` and times in ``[TABLE_MIN_TIME, TABLE_MAX_TIME]``.

    Returns
    -------
    v, u : Tensor, shape=[...]
    """
    xi = (PI - theta).clamp(min=0.0) * (PI / time)
    log_xi = torch.log(xi.clamp(min=XI_SPLIT))
    v = torch.where(
        theta <= 0.5 * PI,
        theta / _THETA_WIDTH,
        torch.where(
            xi >= XI_SPLIT,
            THETA_CELLS + (_LOG_XI_HI - log_xi) / _B_WIDTH,
            (THETA_CELLS + _B_CELLS) + (XI_SPLIT - xi) / _C_WIDTH,
        ),
    )
    u = (torch.log(time) - _S_LO) / _S_WIDTH
    return v, u


def _theta_of(v: Tensor, s: Tensor) -> Tensor:
    r"""Inverse of :func:`table_coordinates` in the angle (``s = log t``).

    Cells of segment B that cross :math:`\theta = 0` (:math:`\pi - \theta` grows by a factor
    :math:`e` across one cell) are continued by the evenness of :math:`R` in :math:`\theta`, so
    the sampled function stays analytic; the angle is then clamped to :math:`[0, \pi]`.
    """
    time = torch.exp(s)
    b = PI - torch.exp(_LOG_XI_HI - (v - THETA_CELLS) * _B_WIDTH) * time / PI
    c = PI - (XI_SPLIT - (v - THETA_CELLS - _B_CELLS) * _C_WIDTH) * time / PI
    theta = torch.where(
        v <= THETA_CELLS, v * _THETA_WIDTH, torch.where(v <= THETA_CELLS + _B_CELLS, b.abs(), c)
    )
    return theta.clamp(0.0, PI)


def _chebyshev_points() -> Tensor:
    k = torch.arange(POINTS, dtype=torch.float64)
    return torch.cos(PI * (k + 0.5) / POINTS)


#: The exact residual the table interpolates, set by :mod:`distributions._sphere_series`
#: (its ``image_residual``) when that module is imported; this module does not import it.
_EXACT_RESIDUAL: list[Callable[[Tensor, Tensor], Tensor]] = []


def set_exact_residual(residual: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Name the function ``R(theta, time)`` (float64) that the table is built from."""
    _EXACT_RESIDUAL[:] = [residual]
    _coefficients64.cache_clear()
    _coefficients.cache_clear()
    _coefficients_by_degree.cache_clear()


def _exact_residual() -> Callable[[Tensor, Tensor], Tensor]:
    if not _EXACT_RESIDUAL:
        raise RuntimeError("import distributions._sphere_series before building the sphere table")
    return _EXACT_RESIDUAL[0]


@functools.lru_cache(maxsize=1)
def _coefficients64() -> Tensor:
    r"""Chebyshev coefficients :math:`c_{ij}` of :math:`R` per cell, float64 on the CPU.

    :math:`R \approx \sum_{i,j < P} c_{ij} T_i(x) T_j(y)` with :math:`x, y \in [-1, 1]` the
    positions in the cell; interpolation at the :math:`P \times P` Chebyshev points by the
    discrete cosine transform (arguments reduced modulo :math:`4P` before the cosine).

    Returns
    -------
    Tensor, shape=[angle cells, time cells, P, P]
    """
    x = _chebyshev_points()
    v = torch.arange(_ANGLE_CELLS, dtype=torch.float64) + 0.5
    s = _S_LO + _S_WIDTH * (torch.arange(_TIME_CELLS, dtype=torch.float64) + 0.5)
    vv = v[:, None, None, None] + 0.5 * x[None, None, :, None]
    ss = s[None, :, None, None] + 0.5 * _S_WIDTH * x[None, None, None, :]
    vv, ss = torch.broadcast_tensors(vv, ss)
    with torch.no_grad():
        theta = _theta_of(vv, ss).reshape(-1)
        values = _exact_residual()(theta, torch.exp(ss).reshape(-1))
    values = values.reshape(vv.shape)
    index = torch.arange(POINTS)
    phase = (index[:, None] * (2 * index[None, :] + 1)) % (4 * POINTS)
    basis = torch.cos(PI * phase.double() / (2 * POINTS)) * (2.0 / POINTS)
    basis[0] = basis[0] / 2
    table = torch.einsum("ia,jb,vsab->vsij", basis, basis, values)
    return torch.where(_used_cells()[..., None, None], table, 0.0).contiguous()


def _used_cells() -> Tensor:
    r"""Which cells some valid :math:`(\theta, t)` falls in, shape ``[angle cells, time cells]``.

    A cell of segment B is used when its smallest :math:`\log\xi` is at most
    :math:`\log(\pi^2/2t)` at its smallest time (:math:`\theta \ge \pi/2`); the others hold
    zeros.
    """
    v = torch.arange(_ANGLE_CELLS, dtype=torch.float64)
    s = _S_LO + _S_WIDTH * torch.arange(_TIME_CELLS, dtype=torch.float64)
    log_xi = _LOG_XI_HI - (v + 1 - THETA_CELLS) * _B_WIDTH
    in_b = (v >= THETA_CELLS) & (v < THETA_CELLS + _B_CELLS)
    reached = log_xi[:, None] <= math.log(0.5 * PI * PI) - s[None, :] + 1e-9
    return ~in_b[:, None] | reached


@functools.lru_cache(maxsize=16)
def _coefficients(dtype: torch.dtype, device: torch.device) -> Tensor:
    """:func:`_coefficients64` flattened to ``[cells, P * P]``, cast and moved."""
    table = _coefficients64()
    return table.reshape(-1, POINTS * POINTS).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=16)
def _coefficients_by_degree(dtype: torch.dtype, device: torch.device) -> Tensor:
    """:func:`_coefficients` transposed to ``[P * P, cells]`` (contiguous): a gather along the
    cells then gives one contiguous row per coefficient (see :func:`table_residual`)."""
    return _coefficients(dtype, device).t().contiguous()


def _chebyshev_basis(x: Tensor) -> Tensor:
    """:math:`T_0(x), ..., T_{P-1}(x)` of the flat ``x`` (shape ``[n]``), stacked as ``[P, n]``."""
    out = [torch.ones_like(x), x]
    two_x = 2.0 * x
    for _ in range(POINTS - 2):
        out.append(two_x * out[-1] - out[-2])
    return torch.stack(out)


#: Elements per chunk on the CPU (the gathered coefficients have P**2 entries per element);
#: measured fastest among powers of two from 2^11 to 2^20.
_CPU_CHUNK = 1 << 15


def table_residual(theta: Tensor, time: Tensor, coefficients: Tensor | None = None) -> Tensor:
    r""":math:`R(\theta, t)` from the table (differentiable in both; broadcast inputs).

    Parameters
    ----------
    theta, time : Tensor, shape=[...]
        Angles in :math:`[0, \pi]`, times in ``[TABLE_MIN_TIME, TABLE_MAX_TIME]``.
    coefficients : Tensor, shape=[cells, P * P], optional
        Replaces the cached table (for tests).

    Returns
    -------
    Tensor, shape=broadcast(theta, time)
    """
    theta, time = torch.broadcast_tensors(theta, time)
    if coefficients is None:
        by_degree = _coefficients_by_degree(theta.dtype, theta.device)
    else:
        by_degree = coefficients.t().contiguous()
    return _table_residual(theta, time, by_degree)


def _table_residual(theta: Tensor, time: Tensor, by_degree: Tensor) -> Tensor:
    """:func:`table_residual` of broadcast inputs, from coefficients ``[P * P, cells]``."""
    chunk = chunk_size(theta.device, _CPU_CHUNK)
    if theta.numel() > chunk:
        fn = functools.partial(_table_residual, by_degree=by_degree)
        return by_chunks(fn, theta, time, chunk)
    v, u = table_coordinates(theta, time)
    # nan (a value off the sphere, unvalidated) picks cell 0 and stays nan through x or y
    cell_v = v.detach().nan_to_num(0.0).floor().clamp(0, _ANGLE_CELLS - 1)
    # theta = pi/2 is the top edge of segment A's last cell, not a point of segment B
    cell_v = torch.where(theta <= 0.5 * PI, cell_v.clamp(max=THETA_CELLS - 1), cell_v)
    cell_u = u.detach().nan_to_num(0.0).floor().clamp(0, _TIME_CELLS - 1)
    x = 2.0 * (v - cell_v) - 1.0
    y = 2.0 * (u - cell_u) - 1.0
    index = (cell_v * _TIME_CELLS + cell_u).long().reshape(-1)
    # c[i, j] is the contiguous row of coefficient (i, j) of every element's cell; the sums
    # sum_i T_i(x) sum_j c_ij T_j(y) run as multiply-adds over rows (twice as fast on the CPU
    # as batched matrix-vector products of gathered cells, which are slow on GPUs too)
    c = torch.gather(by_degree, 1, index.expand(POINTS * POINTS, -1))  # fastest gather here
    c = c.view(POINTS, POINTS, -1)
    basis_x, basis_y = _chebyshev_basis(x.reshape(-1)), _chebyshev_basis(y.reshape(-1))
    inner = c[:, 0] * basis_y[0]
    for j in range(1, POINTS):
        inner.addcmul_(c[:, j], basis_y[j])  # in place: the products' backward needs no sums
    out = inner[0] * basis_x[0]
    for i in range(1, POINTS):
        out.addcmul_(inner[i], basis_x[i])
    return out.view(theta.shape)


def table_log_density(theta: Tensor, time: Tensor) -> Tensor:
    r""":math:`\log p_t(\theta) = -\theta^2/4t - \log(4\pi t) + R(\theta, t)` from the table.

    Parameters
    ----------
    theta, time : Tensor, shape=[...]
        Broadcastable angles in :math:`[0, \pi]` and times in
        ``[TABLE_MIN_TIME, TABLE_MAX_TIME]``.

    Returns
    -------
    Tensor, shape=broadcast(theta, time)
    """
    theta, time = torch.broadcast_tensors(theta, time)
    singular = 0.25 * theta * theta / time + (_LOG_4PI + torch.log(time))
    return table_residual(theta, time) - singular
