r"""Stable modified Bessel functions :math:`I_\nu` for the von Mises-Fisher normaliser.

For the order :math:`\nu \ge 0` (a Python number, ``(d - 1)/2`` on :math:`S^d`) and
:math:`\kappa > 0`, :func:`bessel_parts` returns

* :math:`g(\kappa) = \log\big(\Gamma(\nu+1)\,(2/\kappa)^\nu I_\nu(\kappa)\big)
  = \log {}_0F_1(;\nu+1;\kappa^2/4) \ge 0`, and :math:`g(\kappa) - \kappa`;
* the ratio :math:`R_\nu(\kappa) = I_{\nu+1}(\kappa)/I_\nu(\kappa)` and its complement
  :math:`1 - R_\nu(\kappa)`, each without cancellation.

Two regimes, switched at :math:`K(\nu) = \max(30, \nu^2)`:

* :math:`\kappa \le K`: the positive series
  :math:`{}_0F_1(;\nu+1;z) = \sum_k z^k / (k!\,(\nu+1)_k)`, summed in log space over a window
  of :math:`\lceil 7\sqrt\kappa\,\rceil + 20` terms on each side of its largest term (the
  log terms are concave in :math:`k`, so the neglected tails are bounded by geometric series;
  the window keeps every
  term within :math:`e^{-45}` of the largest). No cancellation: relative error a few
  hundred unit roundoffs at worst.
* :math:`\kappa > K`: Hankel's expansion
  :math:`I_\nu(\kappa) = \frac{e^\kappa}{\sqrt{2\pi\kappa}} \sum_{k} (-1)^k a_k(\nu)\kappa^{-k}`,
  :math:`a_k(\nu) = \prod_{j=1}^k (4\nu^2 - (2j-1)^2) / (k!\, 8^k)` (DLMF 10.40.1), with
  :data:`HANKEL_TERMS` terms: for :math:`\kappa \ge \max(30, \nu^2)` the ratio of successive
  terms is below :math:`1/2` and falls like :math:`1/k`, so the truncation error is below
  :math:`10^{-20}`; the exponentially small second exponential :math:`e^{-\kappa}` is below
  :math:`e^{-60}`. The complement :math:`1 - R_\nu` uses the exact coefficient differences
  :math:`a_k(\nu) - a_k(\nu+1)` (rationals computed once), so it keeps full relative
  precision at :math:`\kappa = 10^8`.

Everything is computed in float64 and cast back; gradients flow by autograd through both
regimes (each regime sees its input clamped to its own range, so the unused branch of
``torch.where`` never produces ``nan``).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["HANKEL_TERMS", "BesselParts", "bessel_parts", "switch_point"]

#: Terms of Hankel's expansion.
HANKEL_TERMS = 24
#: Window of the log-space series: terms on each side of the largest,
#: ``ceil(7 sqrt(kappa)) + 20`` for the largest kappa of the call: at least 9.5 standard
#: deviations of the (log-concave) terms, whose variance is below ``kappa / 2``.
_HALF_WIDTH_SCALE = 7.0


def switch_point(nu: float) -> float:
    r""":math:`K(\nu) = \max(30, \nu^2)`: the series below, Hankel's expansion above."""
    return max(30.0, nu * nu)


class BesselParts(NamedTuple):
    """What the vMF family needs of :math:`I_\\nu` (see the module docstring)."""

    log_hyp: Tensor  # g(kappa) = log 0F1(; nu + 1; kappa^2 / 4)
    log_hyp_minus_kappa: Tensor  # g(kappa) - kappa
    ratio: Tensor  # I_{nu+1} / I_nu
    ratio_complement: Tensor  # 1 - I_{nu+1} / I_nu


@functools.lru_cache(maxsize=256)
def _hankel_coefficients(nu: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    r"""Signed Hankel coefficients :math:`(-1)^k a_k(\nu)` and
    :math:`(-1)^k (a_k(\nu) - a_k(\nu + 1))`, exact rationals rounded once."""
    four_nu2 = Fraction(4) * Fraction(nu) ** 2
    four_nu12 = Fraction(4) * (Fraction(nu) + 1) ** 2
    a, b = Fraction(1), Fraction(1)
    first, diff = [1.0], [0.0]
    for k in range(1, HANKEL_TERMS):
        a *= (four_nu2 - (2 * k - 1) ** 2) / (8 * k)
        b *= (four_nu12 - (2 * k - 1) ** 2) / (8 * k)
        sign = -1 if k % 2 else 1
        first.append(float(sign * a))
        diff.append(float(sign * (a - b)))
    return tuple(first), tuple(diff)


def _horner(coefficients: tuple[float, ...], x: Tensor) -> Tensor:
    out = torch.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        out = out * x + c
    return out


def _log_series(nu: float, kappa: Tensor, half_width: int) -> Tensor:
    r""":math:`\log {}_0F_1(;\nu+1;\kappa^2/4)` by the windowed log-space sum (``kappa > 0``)."""
    peak = ((torch.sqrt(nu * nu + kappa * kappa) - nu) / 2).detach()
    start = (peak.floor() - half_width).clamp(min=0.0)
    k = start.unsqueeze(-1) + torch.arange(
        2 * half_width + 1, dtype=kappa.dtype, device=kappa.device
    )
    log_z = 2.0 * torch.log(kappa / 2).unsqueeze(-1)
    # the k = 0 term is exactly 0: both lgamma(nu + 1) are torch's
    log_pochhammer = torch.lgamma(k + nu + 1) - torch.lgamma(torch.full_like(k, nu + 1))
    terms = k * log_z - torch.lgamma(k + 1) - log_pochhammer
    top = terms.max(-1, keepdim=True).values
    is_top = terms == top.detach()
    scaled = torch.exp(terms - top)
    # m + log(sum) = m + log1p(rest): the largest term contributes exactly 1 and is left out of
    # ``rest``, so that 1 + tiny keeps the tiny part (g ~ kappa^2 / 4(nu + 1) at small kappa)
    rest = torch.where(is_top, torch.zeros_like(scaled), scaled).sum(-1)
    rest = rest + (is_top.sum(-1) - 1).to(rest.dtype)
    return top.squeeze(-1) + torch.log1p(rest)


def bessel_parts(nu: float, kappa: Tensor) -> BesselParts:
    r"""Stable :math:`g`, :math:`g - \kappa`, :math:`R_\nu`, :math:`1 - R_\nu` at ``kappa``.

    Parameters
    ----------
    nu : float
        Order :math:`\nu \ge 0`.
    kappa : Tensor, shape=[...]
        Positive finite concentrations (any float dtype; computed in float64).

    Returns
    -------
    BesselParts
        Four tensors of the shape and dtype of ``kappa``.
    """
    dtype = kappa.dtype
    x = kappa.to(torch.float64)
    switch = switch_point(nu)
    low = torch.minimum(x, torch.full_like(x, switch))
    # the window only needs to cover the largest concentration of the call (one host sync)
    # (invalid concentrations, possible without validation, give nan, never an exception)
    widest = float(low.detach().nan_to_num(0.0).clamp(min=0.0).max()) if low.numel() else 0.0
    half_width = math.ceil(_HALF_WIDTH_SCALE * math.sqrt(widest)) + 20
    high = torch.maximum(x, torch.full_like(x, switch))
    # series regime
    g_nu = _log_series(nu, low, half_width)
    g_next = _log_series(nu + 1.0, low, half_width)
    log_r = torch.log(low / (2.0 * (nu + 1.0))) + g_next - g_nu
    series = (g_nu, g_nu - low, torch.exp(log_r), -torch.expm1(log_r))
    # Hankel regime
    first, diff = _hankel_coefficients(float(nu))
    inv = 1.0 / high
    s_nu = _horner(first, inv)
    complement = _horner(diff, inv) / s_nu
    g_minus = (
        torch.log(s_nu)
        - 0.5 * torch.log(2.0 * math.pi * high)
        - nu * torch.log(high / 2.0)
        + math.lgamma(nu + 1.0)
    )
    hankel = (g_minus + high, g_minus, 1.0 - complement, complement)
    use_series = x <= switch
    parts = (torch.where(use_series, s, h).to(dtype) for s, h in zip(series, hankel, strict=True))
    return BesselParts(*parts)
