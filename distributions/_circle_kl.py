r"""KL divergence between two heat kernels on the unit circle.

.. math::

    \mathrm{KL}(p_{\mu_1,t_1} \,\|\, p_{\mu_2,t_2})
        = \int_{-\pi}^{\pi} p_{t_1}(\varphi)\big[\log p_{t_1}(\varphi)
          - \log p_{t_2}(\varphi - \delta)\big]\,d\varphi,
    \qquad \delta = \mu_2 - \mu_1,

in the angle :math:`\varphi = \theta - \mu_1` from the first location. There is no closed form.
The integrand is analytic on the circle but has features of three widths: the peak of
:math:`p_{t_1}` at :math:`\varphi = 0` (width :math:`\sqrt{2t_1}`), and the near-kinks of the
two log densities at their antipodes :math:`\varphi = \pm\pi` and
:math:`\varphi = \delta + \pi` (width :math:`\sim t / \pi`: a log-sum of two Gaussian images).
A composite Gauss-Legendre rule on panels graded geometrically towards these three points
(:func:`distributions._quadrature.graded_breakpoints`) resolves every width from
:math:`\pi 2^{-48}` up to :math:`\pi` with the same fixed cost, and the pointwise difference of
exact log densities has no cancellation. Measured against mpmath over
:math:`t_1, t_2 \in [10^{-8}, 10^4]` and all offsets the error is below
:math:`10^{-13} \max(1, \mathrm{KL})` (see ``tests/distributions/test_kl.py``).

The KL of a heat kernel to the uniform distribution depends on :math:`t` only;
:func:`circle_kl_to_uniform_table` evaluates it in a few fused operations per element (the hot
path of a circle or torus VAE's training step) from a piecewise-polynomial table fitted once
to the exact evaluators of :mod:`distributions._series`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor

from ._quadrature import graded_breakpoints, panel_quadrature
from ._series import (
    _KL_GAUSSIAN_TIME,
    _KL_SERIES_TIME,
    _kl_series,
    _kl_trapezoid,
    circle_log_density,
)
from .angles import LOG_2PI, PI, wrap_angle

__all__ = ["KL_TABLE", "KLTable", "circle_kl", "circle_kl_to_uniform_table"]

#: Halvings of the graded mesh: the finest panel is pi 2^-48 ~ 1e-14.
_LEVELS = 48
#: Gauss-Legendre nodes per panel.
_NODES = 16


def circle_kl(loc1: Tensor, time1: Tensor, loc2: Tensor, time2: Tensor) -> Tensor:
    r"""KL divergence between circle heat kernels, elementwise over broadcast parameters.

    Parameters
    ----------
    loc1, time1 : Tensor, shape=[...]
        Location (any real angle) and positive time of the first kernel.
    loc2, time2 : Tensor, shape=[...]
        Those of the second kernel, broadcastable with the first.

    Returns
    -------
    Tensor, shape=broadcast of the inputs
        :math:`\mathrm{KL}(p_1 \| p_2) \ge 0`.
    """
    loc1, time1, loc2, time2 = torch.broadcast_tensors(loc1, time1, loc2, time2)
    delta = wrap_angle(loc2 - loc1)
    anti2 = wrap_angle(delta + PI)
    zero = torch.zeros_like(delta)
    centers = torch.stack([zero, zero - PI, zero + PI, anti2], dim=-1)
    x, w = panel_quadrature(graded_breakpoints(centers, _LEVELS), _NODES)
    log_p1 = circle_log_density(x, time1.unsqueeze(-1))
    log_p2 = circle_log_density(wrap_angle(x - delta.unsqueeze(-1)), time2.unsqueeze(-1))
    return (w * torch.exp(log_p1) * (log_p1 - log_p2)).sum(-1)


# ---------------------------------------------------------------------------------------------
# KL to the uniform distribution: a piecewise-polynomial table in log t.


class KLTable:
    r"""Layout of the table of :math:`h(t) = \mathrm{KL}(p_t \| u)\, e^{2t}` in :math:`s = \log t`.

    The range :math:`s \in [\log t_0, \log t_1]` (:math:`t_0 = 0.06`, the end of the Gaussian
    regime, :math:`t_1 = 20`) is cut into ``segments`` panels of equal width :math:`w`; on
    panel :math:`k` (centre :math:`c_k`) :math:`h` is the degree-``degree`` polynomial
    interpolating it at the Chebyshev points, written in monomials of the local coordinate
    :math:`x = (s - c_k)/w \in [-\tfrac12, \tfrac12]`.

    Parameters
    ----------
    segments, degree : int
        Number of panels and polynomial degree.
    start, end : float
        Times :math:`t_0 < t_1` covered.
    """

    def __init__(self, segments: int, degree: int, start: float, end: float) -> None:
        self.segments, self.degree = segments, degree
        self.start, self.end = start, end
        self.log_start = math.log(start)
        self.width = (math.log(end) - self.log_start) / segments

    def nodes(self) -> Tensor:
        """Times of the Chebyshev points of every panel, float64, shape ``(segments, degree+1)``."""
        n = self.degree + 1
        z = torch.cos(PI * (torch.arange(n, dtype=torch.float64) + 0.5) / n)
        centres = self.log_start + (torch.arange(self.segments, dtype=torch.float64) + 0.5) * (
            self.width
        )
        return torch.exp(centres[:, None] + 0.5 * self.width * z)

    def fit(self, values: Tensor) -> Tensor:
        r"""Monomial coefficients in :math:`x` of values ``(segments, degree+1)`` at :meth:`nodes`.

        Chebyshev coefficients by the discrete cosine transform (the integer :math:`m(2j+1)`
        reduced modulo :math:`4n` before the cosine), converted to monomials of
        :math:`z = 2x` with the integer coefficients of :math:`T_m`, then scaled by
        :math:`2^k`. All in float64.

        Returns
        -------
        Tensor, shape=[segments, degree + 1]
            Coefficient of :math:`x^k` in column ``k``.
        """
        n = self.degree + 1
        m = torch.arange(n)
        phase = (m[:, None] * (2 * m[None, :] + 1)) % (4 * n)
        cosines = torch.cos(PI * phase.double() / (2 * n))  # (m, j)
        chebyshev = (2.0 / n) * (values[:, None, :] * cosines).sum(-1)  # (segments, m)
        chebyshev[:, 0] /= 2
        monomial = torch.zeros(n, n, dtype=torch.float64)  # row m: coefficients of T_m(z)
        monomial[0, 0] = 1.0
        if n > 1:
            monomial[1, 1] = 1.0
        for order in range(2, n):
            monomial[order, 1:] = 2.0 * monomial[order - 1, :-1]
            monomial[order] -= monomial[order - 2]
        return (chebyshev @ monomial) * 2.0 ** torch.arange(n, dtype=torch.float64)


#: The table used: 48 panels of width 0.12 in log t, degree 9.
KL_TABLE = KLTable(segments=48, degree=9, start=_KL_GAUSSIAN_TIME, end=20.0)


def _exact_scaled_kl(time: Tensor) -> Tensor:
    r""":math:`h(t) = \mathrm{KL}(t)\,e^{2t}` from the exact evaluators, for :math:`t > 0.06`.

    The periodic trapezoid rule on 256 nodes below :math:`t = 2.5`, the series in the Fourier
    part above (:mod:`distributions._series`); float64.
    """
    safe_small = time.clamp(max=_KL_SERIES_TIME)
    safe_large = time.clamp(min=_KL_SERIES_TIME)
    kl = torch.where(time < _KL_SERIES_TIME, _kl_trapezoid(safe_small), _kl_series(safe_large))
    return kl * torch.exp(2.0 * time)


class _Table(NamedTuple):
    """:data:`KL_TABLE` on one dtype and device, with its constants as 0-dim tensors."""

    #: ``(segments, 2, degree + 1)``: row 0 :math:`h`, row 1 :math:`dh/ds`, in powers of x.
    coefficients: Tensor
    #: ``(degree + 1,)``: the exponents.
    orders: Tensor
    #: :math:`y = a s + b`: the panel coordinate, panel k centred at y = k.
    offset: Tensor
    #: The Gaussian value is ``log_2pi - half * (log_4pi_e + s)``, its slope ``minus_half / t``.
    log_4pi_e: Tensor
    log_2pi: Tensor
    half: Tensor
    minus_half: Tensor
    minus_two: Tensor


@functools.lru_cache(maxsize=16)
def _kl_table(dtype: torch.dtype, device: torch.device) -> _Table:
    r"""The coefficients of :data:`KL_TABLE` and of its derivative, cast and cached.

    Row 1 of the coefficients is :math:`dh/ds`: the derivative in :math:`x` over the panel
    width, padded with a zero. Fitted in float64 on the CPU.
    """
    values = KL_TABLE.fit(_exact_scaled_kl(KL_TABLE.nodes()))
    orders = torch.arange(KL_TABLE.degree + 1, dtype=torch.float64)
    slopes = torch.zeros_like(values)
    slopes[:, :-1] = values[:, 1:] * orders[1:] / KL_TABLE.width
    coefficients = torch.stack([values, slopes], dim=1)

    def constant(value: float) -> Tensor:
        return torch.tensor(value, dtype=dtype, device=device)

    return _Table(
        coefficients.to(dtype=dtype, device=device),
        orders.to(dtype=dtype, device=device),
        constant(-KL_TABLE.log_start / KL_TABLE.width - 0.5),
        constant(math.log(4.0 * PI * math.e)),
        constant(LOG_2PI),
        constant(0.5),
        constant(-0.5),
        constant(-2.0),
    )


def _kl_and_slope(time: Tensor) -> tuple[Tensor, Tensor]:
    r"""The tabulated KL and its derivative :math:`d\mathrm{KL}/dt`, in differentiable ops.

    With :math:`s = \log t`, :math:`y = (s - \log t_0)/w - \tfrac12` the panel coordinate
    (panel :math:`k` centred at :math:`y = k`, clamped to the table) and
    :math:`x = y - \operatorname{round}(y)`:

    .. math::

        \mathrm{KL} = e^{-2t} h, \qquad
        \frac{d\mathrm{KL}}{dt} = e^{-2t}\Big(\frac{1}{t}\frac{dh}{ds} - 2h\Big)

    for :math:`t > 0.06`, and the Gaussian value :math:`\log 2\pi - \tfrac12\log(4\pi e t)`
    with slope :math:`-1/2t` below. Beyond the centre of the last panel (:math:`t > 19.1`)
    :math:`h` is held at its value there (1 to rounding) and :math:`dh/ds` too: the slope is
    off by :math:`e^{-2t}\,|dh/ds| / t < 10^{-18}\,\mathrm{KL}`. Few operations, with
    constants as tensors (no scalar wrapping): this is the training step's hot path.
    """
    table = _kl_table(time.dtype, time.device)
    segments = KL_TABLE.segments
    log_time = torch.log(time)
    y = torch.add(table.offset, log_time, alpha=1.0 / KL_TABLE.width).clamp(-0.5, segments - 1)
    centre = torch.round(y)
    index = centre.long().clamp(0, segments - 1).reshape(-1)  # clamp: a nan time
    rows = table.coefficients.index_select(0, index).view(*time.shape, 2, -1)
    powers = (y - centre).unsqueeze(-1).pow(table.orders).unsqueeze(-2)
    scaled, scaled_slope = (rows * powers).sum(-1).unbind(-1)
    decay = torch.exp(time * table.minus_two)
    small = time <= KL_TABLE.start
    gaussian = table.log_2pi - table.half * (table.log_4pi_e + log_time)
    kl = torch.where(small, gaussian, scaled * decay)
    slope_mid = torch.add(scaled_slope / time, scaled, alpha=-2.0) * decay
    slope = torch.where(small, table.minus_half / time, slope_mid)
    return kl, slope


class _TabulatedKL(torch.autograd.Function):
    """``(KL, dKL/dt)`` with a one-multiplication backward (the slope is computed forward).

    The old-style ``forward(ctx, ...)``: an ``apply`` costs a third of the new style's. Under
    functorch transforms (``vmap``, ``torch.func.grad``) the plain ops run instead.
    """

    @staticmethod
    def forward(ctx, time: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        kl, slope = _kl_and_slope(time)
        ctx.mark_non_differentiable(slope)
        ctx.save_for_backward(time, slope)
        ctx.save_for_forward(slope)
        return kl, slope

    @staticmethod
    def backward(ctx, grad_kl: Tensor, grad_slope: Tensor) -> Tensor:  # type: ignore[override]
        time, slope = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the slope as a function of time
            slope = _kl_and_slope(time)[1]
        return grad_kl * slope

    @staticmethod
    def jvp(ctx, time_dot: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (slope,) = ctx.saved_tensors
        return time_dot * slope, None


def circle_kl_to_uniform_table(time: Tensor) -> Tensor:
    r""":math:`\mathrm{KL}(p_t \| \mathrm{Uniform}(S^1)) = \log 2\pi - H(p_t)` from a table.

    The same function as :func:`distributions._series.circle_kl_to_uniform`, at a fraction of the
    cost (some twenty elementwise operations forward, with the derivative, and one
    multiplication backward):

    * :math:`t \le 0.06`: the Gaussian value :math:`\log 2\pi - \tfrac12\log(4\pi e t)` (error
      below 3e-17, see :func:`~distributions._series.circle_kl_to_uniform`), the same
      expression;
    * :math:`t > 0.06`: :math:`\mathrm{KL} = e^{-2t} h(t)` with :math:`h` from the
      piecewise-polynomial table :data:`KL_TABLE` in :math:`\log t`. For :math:`t \ge 19.1`
      (the centre of the last panel) the table gives :math:`h = 1`: the true
      :math:`h(t) = 1 + e^{-2t}/2 + O(e^{-4t})` differs from 1 by less than 2e-17 there.

    Error of the interpolation: :math:`h` is analytic in :math:`s = \log t` in a strip of
    half-width about 1.8 around the real axis (the 48-term Chebyshev series of
    :func:`distributions._series._kl_chebyshev` on a panel of half-width 1.86 converges like
    :math:`2.4^{-n}`), so on panels of half-width 0.06 the degree-9 interpolant's error is of
    order :math:`(0.06/1.8)^{10} \approx 2 \cdot 10^{-15}` relative at worst and far smaller in
    practice; the table's error is that of the exact values it was fitted to. Measured against
    mpmath on 300 times in :math:`[0.05, 30]`: at most 10.4 eps in float64 (the evaluators
    fitted: 12.4 eps), 1.6 eps32 in float32 (``tests/distributions/test_kl.py``).

    Gradients: the derivative of the interpolant, computed in the forward pass (a custom
    autograd function whose backward is one multiplication); higher derivatives
    (``create_graph=True``), forward-mode AD and the functorch transforms (``vmap``,
    ``torch.func.grad``, where the same operations run under plain autograd) are supported.

    Parameters
    ----------
    time : Tensor, shape=[...]
        Positive diffusion time (float32 or float64).

    Returns
    -------
    Tensor, shape=time.shape
        The KL divergence, non-negative.
    """
    if torch._C._are_functorch_transforms_active():
        return _kl_and_slope(time)[0]
    return _TabulatedKL.apply(time)[0]
