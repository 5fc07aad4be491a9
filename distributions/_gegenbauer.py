r"""The heat kernel on :math:`S^d`, :math:`d \ge 3`, by its Gegenbauer series, with error bounds.

Convention :math:`\partial_t p = \Delta p`. With :math:`\lambda = (d-1)/2` and
:math:`c = \cos\theta`,

.. math::

    |S^d|\, p_t(c) = 1 + S_t(c), \qquad
    S_t(c) = \sum_{l \ge 1} \frac{2l + d - 1}{d - 1}\, e^{-l(l + d - 1)t}\, C_l^{\lambda}(c).

Since :math:`|C_l^\lambda(c)| \le C_l^\lambda(1) = \binom{l + d - 2}{l}`, the terms are bounded
by :math:`B_l(t) = \frac{2l+d-1}{d-1}\binom{l+d-2}{l} e^{-l(l+d-1)t}`, decreasing in :math:`t`.
:func:`series_plan` picks

* :math:`T_d`, the smallest time (to 1e-3 relative, rounded up) with
  :math:`\sum_{l\ge1} B_l(T_d) \le` :data:`SERIES_MASS` :math:`= 3/4`. For :math:`t \ge T_d`,
  :math:`1 + S \ge 1/4`, so the rounding error of the sum is at most
  :math:`(1 + 3/4)/(1/4) = 7` times that of its largest term: a relative error of the density
  of a few dozen unit roundoffs (:math:`L` terms of the recurrence);
* :math:`L`, the number of terms after which :math:`\sum_{l > L} B_l(T_d) < 10^{-18}`.

Below :math:`T_d` the series cancels and this module does not apply (``HypersphereHeatKernel``
rejects such times for :math:`d \ge 3`; without validation they give ``nan``).
:math:`T_3 \approx 0.60`, :math:`T_9 \approx 0.31`, :math:`T_{64} \approx 0.074`.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from ._quadrature import gauss_legendre

__all__ = [
    "KL_NODES",
    "SERIES_MASS",
    "heat_kl_to_uniform",
    "heat_log_series",
    "series_plan",
]

#: Bound on :math:`\sum_{l \ge 1}|{\rm term}_l|` at the smallest supported time.
SERIES_MASS = 0.75
#: Gauss-Legendre nodes in :math:`\theta` of the KL integral.
KL_NODES = 96


def _log_bound(n: int, d: int, t: float) -> float:
    r""":math:`\log B_n(t)`."""
    return (
        math.log((2 * n + d - 1) / (d - 1))
        + math.lgamma(n + d - 1)
        - math.lgamma(n + 1)
        - math.lgamma(d - 1)
        - n * (n + d - 1) * t
    )


def _mass(d: int, t: float, start: int = 1) -> float:
    r""":math:`\sum_{n \ge start} B_n(t)`, with the tail bounded geometrically."""
    total, n = 0.0, start
    while True:
        term = math.exp(_log_bound(n, d, t))
        total += term
        # the ratio B_{n+1}/B_n decreases in n; once below 1/2 the rest is below 2 B_{n+1}
        nxt = math.exp(_log_bound(n + 1, d, t))
        if nxt < 0.5 * term and nxt < 1e-30:
            return total + 2 * nxt
        n += 1


@functools.lru_cache(maxsize=128)
def series_plan(d: int) -> tuple[float, int]:
    r"""``(T_d, L)``: the smallest supported time and the number of terms (module docstring)."""
    if d < 3:
        raise ValueError(f"the Gegenbauer series is used for d >= 3, got d = {d}")
    lo, hi = 1e-3, 10.0
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _mass(d, mid) > SERIES_MASS else (lo, mid)
    t_min = hi
    terms = 1
    while _mass(d, t_min, start=terms + 1) >= 1e-18:
        terms += 1
    return t_min, terms


def heat_log_series(y: Tensor, time: Tensor, d: int) -> Tensor:
    r""":math:`\log(|S^d| p_t)` at :math:`c = 1 - y`, for :math:`t \ge T_d` (float64 inside).

    Parameters
    ----------
    y : Tensor, shape=[...]
        :math:`1 - \cos\theta \in [0, 2]`.
    time : Tensor, shape=[...]
        Times :math:`t \ge T_d`, broadcastable with ``y``.
    d : int
        Sphere dimension, at least 3.

    Returns
    -------
    Tensor, shape=broadcast(y, time), dtype of ``y``
    """
    dtype = y.dtype
    _, terms = series_plan(d)
    c = 1.0 - y.to(torch.float64)
    t = time.to(torch.float64)
    lam = (d - 1) / 2.0
    prev, cur = torch.ones_like(c), 2.0 * lam * c  # C_0, C_1
    shape = torch.broadcast_shapes(c.shape, t.shape)
    total = torch.zeros(shape, dtype=torch.float64, device=c.device)
    for n in range(1, terms + 1):
        if n > 1:
            prev, cur = cur, (2.0 * (n + lam - 1) * c * cur - (n + 2 * lam - 2) * prev) / n
        total = total + (2 * n + d - 1) / (d - 1) * torch.exp(-n * (n + d - 1) * t) * cur
    # below T_d the series is not certified: nan rather than an unbounded error (reachable
    # only without validation)
    supported = t >= series_plan(d)[0] * (1.0 - 1e-6)
    return torch.where(supported, torch.log1p(total), torch.nan).to(dtype)


def _excess(s: Tensor) -> Tensor:
    r""":math:`(1 + s)\log(1 + s) - s \ge 0`, by its series :math:`\sum_{k\ge2}
    (-1)^k s^k/(k(k-1))` for :math:`|s| < 10^{-3}` (6 terms, error below :math:`10^{-18}
    s^2`)."""
    small = s.clamp(-1e-3, 1e-3)
    inner = 1 / 12 - small * (1 / 20 - small / 30)
    series = small * small * (0.5 - small * (1 / 6 - small * inner))
    direct = (1.0 + s) * torch.log1p(s) - s
    return torch.where(s.abs() < 1e-3, series, direct)


def heat_kl_to_uniform(time: Tensor, d: int) -> Tensor:
    r"""Exact :math:`\mathrm{KL}(p_t \,\|\, \mathrm{uniform}) = E\log(|S^d|p_t)`, :math:`t \ge T_d`.

    .. math::

        \mathrm{KL} = \frac{|S^{d-1}|}{|S^d|}\int_0^\pi \sin^{d-1}\theta\,
            \big[(1 + S)\log(1 + S) - S\big]\, d\theta

    (the :math:`S` term integrates to 0 by orthogonality; subtracting it leaves an integrand
    :math:`\approx S^2/2 \ge 0`, so no cancellation at large :math:`t`), by
    :data:`KL_NODES`-point Gauss-Legendre quadrature: the integrand is entire in
    :math:`\theta`, a trigonometric polynomial of degree below :math:`d + 2L` times an
    analytic function, and the rule is checked against mpmath in the tests.

    Returns
    -------
    Tensor, shape=time.shape, dtype of ``time``
    """
    dtype = time.dtype
    t = time.to(torch.float64).unsqueeze(-1)
    nodes, weights = gauss_legendre(KL_NODES, torch.float64, time.device)
    theta = 0.5 * math.pi * (nodes + 1.0)
    y = 2.0 * torch.sin(theta / 2) ** 2
    s = torch.expm1(heat_log_series(y, t, d))
    log_ratio = math.lgamma((d + 1) / 2) - math.lgamma(d / 2) - 0.5 * math.log(math.pi)
    jacobian = 0.5 * math.pi * torch.sin(theta) ** (d - 1)
    kl = math.exp(log_ratio) * (weights * jacobian * _excess(s)).sum(-1)
    return kl.clamp(min=0.0).to(dtype)
