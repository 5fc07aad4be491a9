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
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._quadrature import graded_breakpoints, panel_quadrature
from ._series import circle_log_density
from .angles import PI, wrap_angle

__all__ = ["circle_kl"]

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
