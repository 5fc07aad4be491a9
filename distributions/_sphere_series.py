r"""Exact evaluation of the heat kernel on the unit sphere :math:`S^2` and of its KL to uniform.

Convention: :math:`\partial_t p = \Delta p` (diffusion coefficient 1); Brownian motion with
generator :math:`\Delta/2` at time :math:`s` is the kernel at :math:`t = s/2`. Densities are with
respect to the area measure (total :math:`4\pi`) and depend on the polar angle
:math:`\theta \in [0, \pi]` from the location only.

Two representations are used, chosen per element at :data:`SWITCH_TIME`:

* for :math:`t > 1/2`, the Legendre series

  .. math:: p_t(\theta) = \frac{1}{4\pi}\sum_{l \ge 0} (2l+1)\, e^{-l(l+1)t} P_l(\cos\theta),

  truncated after :data:`LEGENDRE_TERMS` terms (:func:`_log_legendre`);
* for :math:`t \le 1/2`, the exact image representation (the series cannot converge there in
  floating point: at :math:`t = 0.05` it needs 40 terms and cancels 20 digits at the antipode)

  .. math::

      p_t(\theta) = \frac{\sqrt2\, e^{t/4}}{(4\pi t)^{3/2}} \sum_{k \in \mathbb Z} (-1)^k
          \int_\theta^\pi \frac{(\varphi + 2\pi k)\, e^{-(\varphi + 2\pi k)^2/4t}}
          {\sqrt{\cos\theta - \cos\varphi}}\, d\varphi,

  evaluated by Gauss-Legendre quadrature after the substitution
  :math:`\cos(\varphi/2) = \cos(\theta/2)\cos w`, :math:`w \in [0, \pi/2]`, which removes the
  square-root singularities at both ends (:func:`_log_images`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from . import _sphere_table
from ._chunks import by_chunks, chunk_size
from ._quadrature import gauss_legendre
from ._regimes import by_time_regime
from .angles import PI

__all__ = [
    "IMAGE_NODES",
    "LEGENDRE_TERMS",
    "LEGENDRE_TERMS_32",
    "SWITCH_TIME",
    "image_residual",
    "sphere_angle",
    "sphere_kl_to_uniform",
    "sphere_log_density",
    "sphere_log_prob",
]

#: Time at and below which the image representation is used; the Legendre series above.
SWITCH_TIME = 0.5
#: Terms ``l = 1..L`` of the Legendre series beyond ``l = 0`` (truncation bound in
#: :func:`_log_legendre`).
LEGENDRE_TERMS = 9
#: The same in float32 (and narrower): for ``L = 6`` and :math:`t \ge 1/2` the dropped terms
#: sum to below :math:`15 e^{-28} + 17 e^{-36} + \dots < 1.1 \cdot 10^{-11}`, a relative error
#: below :math:`8.5 \cdot 10^{-11}` against :math:`1 + f \ge 0.13`, under a thousandth of
#: float32's unit roundoff.
LEGENDRE_TERMS_32 = 6
#: Gauss-Legendre nodes of the image integral.
IMAGE_NODES = 28
#: The image integral is cut where :math:`(\varphi^2 - \theta^2)/4t` exceeds this
#: (the neglected tail is below :math:`e^{-50} \approx 2 \cdot 10^{-22}` of the integrand's peak).
_IMAGE_CUT = 50.0
#: Images ``k`` kept, with their sign :math:`(-1)^k`.
_IMAGES = ((0, 1.0), (-1, -1.0), (1, -1.0), (-2, 1.0))
#: At and below this time the images ``k = 1, -2`` are below :math:`e^{-3\pi^2/4t} < 10^{-21}`
#: relative and are skipped (on the CPU, when every element of the call is this small).
_TWO_IMAGES_TIME = 0.15
#: Elements per chunk of the CPU evaluation of the image integral (its temporaries have
#: ``IMAGE_NODES`` entries per element): small enough to stay in cache.
_CPU_CHUNK = 1 << 12
#: From this many elements an accelerator, too, evaluates each regime on its own elements only
#: (:func:`_by_regime`): the work saved (the image quadrature has ``IMAGE_NODES`` terms per
#: element) outweighs one host synchronisation.
_MASKED_SIZE = 1 << 16

_LOG_4PI = math.log(4.0 * PI)
_LOG_2 = math.log(2.0)


def sphere_angle(value: Tensor, loc: Tensor) -> Tensor:
    r"""Polar angle :math:`\theta = \angle(x, \mu) \in [0, \pi]` between vectors of :math:`R^3`.

    .. math:: \theta = \operatorname{atan2}(\lVert x \times \mu \rVert,\ x \cdot \mu)

    is accurate to rounding for every angle (``acos`` of the dot product loses half the digits
    near 0 and :math:`\pi`) and does not depend on the norms of ``value`` and ``loc``: a value off
    the sphere is read as its radial projection. The norm is floored at the smallest normal
    number so that the gradient is finite (zero) where the cross product vanishes.

    Parameters
    ----------
    value, loc : Tensor, shape=[..., 3]
        Broadcastable vectors.

    Returns
    -------
    Tensor, shape=broadcast(value, loc).shape[:-1]
    """
    cross = torch.linalg.cross(*torch.broadcast_tensors(value, loc), dim=-1)
    tiny = torch.finfo(cross.dtype).tiny
    sine = torch.sqrt((cross * cross).sum(-1).clamp(min=tiny))
    return torch.atan2(sine, (value * loc).sum(-1))


def _legendre_part(c: Tensor, time: Tensor, terms: int = LEGENDRE_TERMS) -> Tensor:
    r""":math:`f = 4\pi p - 1 = \sum_{l=1}^{L} (2l+1) e^{-l(l+1)t} P_l(c)`, :math:`c = \cos\theta`.

    :math:`P_l` from Bonnet's recurrence, :math:`e^{-l(l+1)t}` built by
    :math:`e^{-(l+1)(l+2)t} = e^{-l(l+1)t} e^{-2(l+1)t}`: one ``exp`` per element.
    """
    q2 = torch.exp(-2.0 * time)
    decay = q2  # e^{-l(l+1)t} for l = 1
    step = q2 * q2  # e^{-2(l+1)t} for l = 1
    p_prev, p_cur = torch.ones_like(c), c
    total = 3.0 * decay * p_cur
    for n in range(1, terms):  # P_{n+1} from P_n, P_{n-1}
        p_prev, p_cur = p_cur, ((2 * n + 1) * c * p_cur - n * p_prev) / (n + 1)
        decay = decay * step
        step = step * q2
        total = total + (2 * n + 3) * decay * p_cur
    return total


def _log_legendre(theta: Tensor, time: Tensor) -> Tensor:
    r"""Log density by the Legendre series, :math:`\log p = \log(1 + f) - \log 4\pi`, large time.

    With :math:`f` from :func:`_legendre_part`. Truncation bound: :math:`|P_l| \le 1`, so the
    terms :math:`l > L` sum to at most :math:`\sum_{l > L}(2l+1)e^{-l(l+1)t}`; for ``L = 9`` and
    :math:`t \ge 1/2` this is below :math:`23 e^{-55} < 3 \cdot 10^{-23}`, against
    :math:`1 + f = 4\pi p \ge 0.13` (the antipode at :math:`t = 1/2`), a relative error below
    :math:`2.4 \cdot 10^{-22}` (float32: ``L =`` :data:`LEGENDRE_TERMS_32`, see there). There
    :math:`1 + f` is a sum of terms of size at most 2.4, so
    rounding is at most 20 unit roundoffs relative, and less for larger times.
    """
    terms = LEGENDRE_TERMS if time.dtype == torch.float64 else LEGENDRE_TERMS_32
    return torch.log1p(_legendre_part(torch.cos(theta), time, terms)) - _LOG_4PI


def _image_cutoff(theta: Tensor, time: Tensor) -> Tensor:
    r"""Upper end :math:`W` of the image integral in :math:`w`: where
    :math:`\varphi^2 - \theta^2 = 4t \cdot 50`, or :math:`\pi/2` (the whole integral).

    From :math:`\sin^2(\varphi/2) - \sin^2(\theta/2) = \cos^2(\theta/2)\sin^2 w
    = \sin\frac{\varphi-\theta}{2}\sin\frac{\varphi+\theta}{2}`, without cancellation. Only the
    quadrature's domain: it carries no gradient.
    """
    spread = (4.0 * _IMAGE_CUT) * time
    phi_max = torch.sqrt(theta * theta + spread)
    # phi_max - theta without cancellation (it can be far below theta's rounding)
    half_gap = (0.5 * spread / (phi_max + theta)).clamp(max=PI)
    product = torch.sin(half_gap) * torch.sin((0.5 * (phi_max + theta)).clamp(max=PI))
    phi_max = phi_max.clamp(max=PI)
    cos_half = torch.cos(0.5 * theta)
    ratio = torch.sqrt(product.clamp(min=0.0)) / cos_half.clamp(min=torch.finfo(theta.dtype).tiny)
    ratio = torch.where(phi_max >= PI, torch.ones_like(ratio), ratio.clamp(max=1.0))
    return torch.asin(ratio).detach()


def _log_images(theta: Tensor, time: Tensor, nodes: int = IMAGE_NODES) -> Tensor:
    r"""Log density by the image representation, for small times (:math:`t \le 1/2`).

    With :math:`\cos(\varphi/2) = \cos(\theta/2)\cos w`, one has
    :math:`d\varphi / \sqrt{\cos\theta - \cos\varphi} = \sqrt2\, dw / \sin(\varphi/2)` and

    .. math::

        p_t(\theta) = \frac{2 e^{t/4} e^{-\theta^2/4t}}{(4\pi t)^{3/2}}
            \sum_k (-1)^k \int_0^{\pi/2} \frac{\varphi_k}{\sin(\varphi/2)}
            e^{-(\varphi_k^2 - \theta^2)/4t}\, dw, \qquad \varphi_k = \varphi + 2\pi k,

    a smooth integrand. :math:`\sin^2(\varphi/2) = \sin^2(\theta/2) + \cos^2(\theta/2)\sin^2 w`
    (no cancellation), :math:`\varphi = 2\operatorname{atan2}(\sin(\varphi/2),
    \cos(\theta/2)\cos w)`, and the gap :math:`\varphi - \theta`, which enters the exponent
    :math:`\varphi_k^2 - \theta^2 = (\varphi - \theta + 2\pi k)(\varphi + \theta + 2\pi k)`
    and can lie far below the rounding of :math:`\theta` at small :math:`t`, comes from
    :math:`\sin\frac{\varphi - \theta}{2} = \cos\frac{\theta}{2}\sin^2 w \,/\,
    (\sin\frac{\varphi}{2} + \sin\frac{\theta}{2}\cos w)`, again without cancellation.

    Every exponent is :math:`\le 0` (:math:`|\varphi_k| \ge \theta`), so nothing overflows as
    :math:`t \to 0`. The images :math:`k = 0, -1` are positive, :math:`k = 1, -2` negative and
    at most :math:`e^{-3\pi^2/4t} < 4 \cdot 10^{-7}` of them for :math:`t \le 1/2` (no
    cancellation), below :math:`10^{-21}` for :math:`t \le 0.15`, where they are skipped on the
    CPU and in large batches; the omitted images :math:`k = 2` and :math:`k = -3, 3, \dots`
    contribute about :math:`e^{-4\pi^2/t}` relative (:math:`k = 2` against :math:`k = 0`; below
    :math:`10^{-30}` for :math:`t \le 1/2`). The
    integral is cut at :func:`_image_cutoff` and computed by ``nodes``-point Gauss-Legendre
    (28 nodes: 20 miss by ~1e-13 at tiny times); measured against mpmath
    (``tests/distributions/test_sphere.py``) the result is exact to 4 unit roundoffs. Large
    inputs are processed in chunks (:data:`_CPU_CHUNK` elements on the CPU,
    :data:`distributions._chunks.ACCELERATOR_CHUNK` elsewhere; same result).
    """
    theta, time = torch.broadcast_tensors(theta, time)
    log_prefactor = _LOG_2 + 0.25 * time - 1.5 * (_LOG_4PI + torch.log(time))
    return -0.25 * theta * theta / time + log_prefactor + _log_image_integral(theta, time, nodes)


def image_residual(theta: Tensor, time: Tensor, nodes: int = IMAGE_NODES) -> Tensor:
    r"""The smooth part :math:`R = \log p_t(\theta) + \theta^2/4t + \log(4\pi t)` of the log
    density, by the image representation (:func:`_log_images`), for :math:`t \le 1/2`.

    Computed without forming :math:`\log p` (whose size :math:`\theta^2/4t` would swamp
    :math:`R` at small times): :math:`R = \log 2 + t/4 - \tfrac12\log(4\pi t) + \log I`, with
    :math:`I` the image integral. :math:`R \to \tfrac12\log(\theta/\sin\theta)` as
    :math:`t \to 0` (van Vleck) away from the antipode. Used to build the float32 table
    (:mod:`distributions._sphere_table`).

    Parameters
    ----------
    theta, time : Tensor, shape=[...]
        Broadcastable polar angles in :math:`[0, \pi]` and times in :math:`(0, 1/2]`.
    nodes : int
        Gauss-Legendre nodes of the image integral.

    Returns
    -------
    Tensor, shape=broadcast(theta, time)
    """
    theta, time = torch.broadcast_tensors(theta, time)
    log_prefactor = _LOG_2 + 0.25 * time - 0.5 * (_LOG_4PI + torch.log(time))
    return log_prefactor + _log_image_integral(theta, time, nodes)


def _log_image_integral(theta: Tensor, time: Tensor, nodes: int = IMAGE_NODES) -> Tensor:
    r""":math:`\log I`, the image integral of :func:`_log_images` (broadcast inputs), chunked
    (:func:`distributions._chunks.chunk_size`)."""
    chunk = chunk_size(theta.device, _CPU_CHUNK)
    if theta.numel() > chunk:
        return by_chunks(lambda a, b: _log_image_integral(a, b, nodes), theta, time, chunk)
    images = _IMAGES
    synchronising = theta.device.type == "cpu" or theta.numel() >= _MASKED_SIZE
    if synchronising and bool((time <= _TWO_IMAGES_TIME).all()):
        images = _IMAGES[:2]
    theta_, time_ = theta.unsqueeze(-1), time.unsqueeze(-1)
    x, weights = gauss_legendre(nodes, theta.dtype, theta.device)
    half_width = 0.5 * _image_cutoff(theta, time).unsqueeze(-1)
    w = half_width * (1.0 + x)
    # theta = pi rounded up (float32's pi exceeds pi) must not give cos(theta/2) < 0
    sin_half, cos_half = torch.sin(0.5 * theta_), torch.cos(0.5 * theta_).clamp(min=0.0)
    sin_w, cos_w = torch.sin(w), torch.cos(w)
    sin_half_phi = torch.hypot(sin_half, cos_half * sin_w)
    phi = 2.0 * torch.atan2(sin_half_phi, cos_half * cos_w)
    # gap = phi - theta from sin(gap/2) = cos(theta/2) sin^2 w / (sin(phi/2) + sin(theta/2) cos w)
    ratio = cos_half * sin_w * sin_w / (sin_half_phi + sin_half * cos_w)
    gap = 2.0 * torch.asin(ratio.clamp(max=1.0))
    scale = -0.25 / time_
    total = torch.zeros_like(phi)
    for k, sign in images:
        shift = 2.0 * PI * k
        phi_k = phi + shift
        # phi_k^2 - theta^2 = (gap + shift) (2 theta + gap + shift) >= 0; the clamp only
        # removes rounding at the antipode, where the images k = 0, -1 meet
        exponent = (scale * (gap + shift) * (2.0 * theta_ + gap + shift)).clamp(max=0.0)
        total = total + sign * phi_k * torch.exp(exponent)
    integral = (half_width * weights * total / sin_half_phi).sum(-1)
    return torch.log(integral)


def sphere_log_density(theta: Tensor, time: Tensor) -> Tensor:
    r"""Exact log density :math:`\log p_t(\theta)` of the heat kernel on :math:`S^2`, per element.

    With respect to the area measure, :math:`\partial_t p = \Delta p`. Elements with
    ``time <= 0.5`` use :func:`_log_images`, the others :func:`_log_legendre`. On the CPU each
    branch is evaluated on its own elements only; elsewhere both are evaluated and combined by
    ``torch.where`` with a safe time in the unused branch, so that neither gives ``nan`` in values
    or gradients.

    Parameters
    ----------
    theta : Tensor, shape=[...]
        Polar angle from the location, in :math:`[0, \pi]`.
    time : Tensor, shape=[...]
        Positive diffusion time, broadcastable with ``theta``.

    Returns
    -------
    Tensor, shape=broadcast(theta, time)
    """
    if theta.is_floating_point() and _sphere_table.uses_table(theta.dtype):
        return _by_regime(theta, time, SWITCH_TIME, _log_small_time_single, _log_legendre)
    return _by_regime(theta, time, SWITCH_TIME, _log_images, _log_legendre)


def _log_small_time_single(theta: Tensor, time: Tensor) -> Tensor:
    """Single precision, ``time <= 0.5``: the table from ``TABLE_MIN_TIME`` on, the images below."""
    table = _sphere_table.table_log_density
    return _by_regime(theta, time, _sphere_table.TABLE_MIN_TIME, _log_images, table)


def sphere_log_prob(value: Tensor, loc: Tensor, time: Tensor) -> Tensor:
    r"""Exact :math:`\log p_t(\mathrm{value} \mid \mathrm{loc})` on :math:`S^2`.

    Parameters
    ----------
    value, loc : Tensor, shape=[..., 3]
        Points and locations (read as their radial projections onto the sphere).
    time : Tensor, shape=[...]
        Positive times, broadcastable with ``value.shape[:-1]`` and ``loc.shape[:-1]``.

    Returns
    -------
    Tensor, shape=broadcast of the batch shapes
    """
    return sphere_log_density(sphere_angle(value, loc), time)


def _by_regime(
    x: Tensor,
    time: Tensor,
    switch: float,
    below: Callable[[Tensor, Tensor], Tensor],
    above: Callable[[Tensor, Tensor], Tensor],
    masked: bool | None = None,
) -> Tensor:
    """``below(x, t)`` where ``t <= switch``, else ``above(x, t)``: elementwise, gradient-safe.

    ``masked`` (default: on the CPU, and on any device from :data:`_MASKED_SIZE` elements)
    evaluates each branch on its own elements only (fewer operations; the indexing
    synchronises with the host); otherwise both branches run on every element, each fed a safe
    time where it is not used, and ``torch.where`` combines them (no host synchronisation: the
    path of small accelerator batches, where a synchronisation would cost more than the work).
    Both give the same values and gradients.
    """
    x, time = torch.broadcast_tensors(x, time)
    large = time > switch
    if masked is None:
        masked = x.device.type == "cpu" or x.numel() >= _MASKED_SIZE
    if not masked:
        safe = torch.full_like(time, switch)
        return torch.where(
            large,
            above(x, torch.where(large, time, 2.0 * safe)),
            below(x, torch.where(large, safe, time)),
        )
    shape = x.shape
    x, time, large = x.reshape(-1), time.reshape(-1), large.reshape(-1)
    count = int(large.sum())
    if count == 0:
        return below(x, time).reshape(shape)
    if count == x.numel():
        return above(x, time).reshape(shape)
    out = torch.empty_like(x)
    (index,) = large.nonzero(as_tuple=True)
    out = out.index_put((index,), above(x[index], time[index]))
    (index,) = (~large).nonzero(as_tuple=True)
    out = out.index_put((index,), below(x[index], time[index]))
    return out.reshape(shape)


# ---------------------------------------------------------------------------------------------
# KL divergence to the uniform distribution (and so the entropy, log 4 pi - KL).

#: At and below this time the KL is its small-time expansion (error bound in
#: :func:`_kl_expansion`).
_KL_EXPANSION_TIME = 1e-4
#: At and above this time the KL is the series in the Legendre part (:func:`_kl_series`).
_KL_SERIES_TIME = 1.5
#: Gauss-Legendre nodes over the polar angle (middle regime) and over cos(theta) (large times).
_KL_NODES = 64
_KL_SERIES_NODES = 32
#: Taylor terms of g(f) = (1 + f) log(1 + f) - f.
_KL_TAYLOR_TERMS = 20


def _kl_expansion(time: Tensor) -> Tensor:
    r"""Small-time expansion :math:`\mathrm{KL} = -1 - \log t + t + t^2/18 + 4t^3/81 + O(t^4)`.

    The leading terms are the KL of the planar normal :math:`N(0, 2t I_2)` against the uniform
    density :math:`1/4\pi` (:math:`\log 4\pi - \log(4\pi e t)`). The curvature corrections
    were identified from :func:`_kl_quadrature` (``(KL - expansion) / t^k`` for
    :math:`t \in [10^{-4}, 10^{-2}]`: the :math:`t^2` and :math:`t^3` coefficients agree with
    1/18 and 4/81 to four digits, and the remainder is about :math:`0.06\, t^4`), so for
    :math:`t \le 10^{-4}` the remainder is below :math:`10^{-17}`, under a unit roundoff of the
    KL (which exceeds 8 there). ``tests/distributions/test_sphere.py`` checks the agreement.
    """
    return -1.0 - torch.log(time) + time * (1.0 + time * (1.0 / 18.0 + time * (4.0 / 81.0)))


def _kl_quadrature(time: Tensor) -> Tensor:
    r""":math:`\mathrm{KL} = \frac12\int_0^\Theta \sin\theta\,[4\pi p\log(4\pi p) - (4\pi p - 1)]\,
    d\theta` by Gauss-Legendre (:func:`_entropy_integrand`).

    :math:`\Theta = \min(\pi, \sqrt{200 t})`: beyond it :math:`p` is below :math:`e^{-50}` of its
    peak, the integrand is :math:`\sin\theta` to within :math:`10^{-19}` and its integral,
    :math:`(1 + \cos\Theta)/2`, is added exactly; on
    :math:`[0, \Theta]` the integrand is, in :math:`\theta / \sqrt t`, close to the same smooth
    function for every small time, so a fixed rule of 64 nodes is exact to about 15 unit
    roundoffs (measured against mpmath from :math:`t = 0.02`, and against the expansion below)
    from :math:`t = 10^{-4}` to :math:`1.5`.
    """
    time_ = time.unsqueeze(-1)
    x, weights = gauss_legendre(_KL_NODES, time.dtype, time.device)
    half = 0.5 * torch.sqrt((4.0 * _IMAGE_CUT) * time_).clamp(max=PI).detach()
    theta = half * (1.0 + x)
    y = sphere_log_density(theta, time_) + _LOG_4PI
    tail = torch.cos(half.squeeze(-1)) ** 2  # (1 + cos Theta) / 2: the integrand is sin/2 there
    return 0.5 * (half * weights * torch.sin(theta) * _entropy_integrand(y)).sum(-1) + tail


def _entropy_integrand(y: Tensor) -> Tensor:
    r""":math:`e^y y - (e^y - 1) = \sum_{n \ge 2} \frac{n-1}{n!} y^n \ge 0`, :math:`e^y = 4\pi p`.

    Subtracting :math:`4\pi p - 1`, whose integral is zero, makes the integrand non-negative, so
    the sum has no cancellation; for :math:`|y| < 1` the series (20 terms, remainder below
    :math:`10^{-19}` relative) avoids the cancellation inside the direct formula.
    """
    small = y.abs() < 1.0
    z = torch.where(small, y, torch.zeros_like(y))
    poly = torch.zeros_like(z)
    for n in range(_KL_TAYLOR_TERMS + 1, 1, -1):
        poly = poly * z + (n - 1) / math.factorial(n)
    series = z * z * poly
    w = torch.where(small, torch.ones_like(y), y)
    return torch.where(small, series, torch.exp(w) * w - torch.expm1(w))


def _kl_series(time: Tensor) -> Tensor:
    r"""KL for :math:`t \ge 1.5` as the sphere mean of :math:`g(f) = (1+f)\log(1+f) - f`.

    Since :math:`\int f\, dA = 0`, :math:`\mathrm{KL} = \frac12\int_{-1}^{1} g(f(c))\, dc`, and
    :math:`g(f) = \sum_{n\ge2} (-1)^n f^n/(n(n-1))` keeps relative accuracy as the KL
    (:math:`\approx \tfrac32 e^{-4t}`) goes to zero, where the direct formula cancels. For
    :math:`t \ge 1.5`, :math:`|f| \le 3e^{-3} + 5e^{-9} < 0.15` and 19 terms leave a relative error
    below :math:`10^{-18}`; :math:`g(f(c))` is analytic in :math:`c` with rapidly decaying
    Legendre coefficients, and 32 Gauss-Legendre nodes integrate it to rounding.
    """
    c, weights = gauss_legendre(_KL_SERIES_NODES, time.dtype, time.device)
    f = _legendre_part(c, time.unsqueeze(-1))
    poly = torch.zeros_like(f)
    for j in range(_KL_TAYLOR_TERMS - 2, -1, -1):
        poly = poly * f + (-1.0) ** j / ((j + 2) * (j + 1))
    return 0.5 * (weights * f * f * poly).sum(-1)


#: Panels (equal in log t) and Chebyshev terms per panel of the interpolant of the middle regime.
_KL_PANELS = 4
_KL_CHEBYSHEV_TERMS = 40
_LOG_T_LO = math.log(_KL_EXPANSION_TIME)
_PANEL_WIDTH = (math.log(_KL_SERIES_TIME) - _LOG_T_LO) / _KL_PANELS


@functools.lru_cache(maxsize=16)
def _kl_chebyshev_coefficients(dtype: torch.dtype, device: torch.device) -> Tensor:
    r"""Chebyshev coefficients of :math:`\log \mathrm{KL}` in :math:`\log t`, per panel.

    Interpolation of :func:`_kl_quadrature` (computed once, in float64 on the CPU) at the 40
    Chebyshev points of each of 4 equal panels of :math:`\log t \in [\log 10^{-4}, \log 1.5]`.
    The discrete cosine transform reduces :math:`j(2k+1)` modulo :math:`4N` before taking
    cosines, so the coefficients carry no argument-rounding noise.

    Returns
    -------
    Tensor, shape=[4, 40]
    """
    n = _KL_CHEBYSHEV_TERMS
    k = torch.arange(n, dtype=torch.float64)
    x = torch.cos(PI * (k + 0.5) / n)
    mids = _LOG_T_LO + _PANEL_WIDTH * (torch.arange(_KL_PANELS, dtype=torch.float64) + 0.5)
    log_t = mids.unsqueeze(-1) + 0.5 * _PANEL_WIDTH * x
    values = torch.log(_kl_quadrature(torch.exp(log_t)))
    index = torch.arange(n)
    phase = (index[:, None] * (2 * index[None, :] + 1)) % (4 * n)
    basis = torch.cos(PI * phase.double() / (2 * n))
    coefficients = (2.0 / n) * (values.unsqueeze(-2) * basis).sum(-1)
    coefficients[:, 0] = coefficients[:, 0] / 2
    return coefficients.to(dtype=dtype, device=device)


def _kl_chebyshev(time: Tensor) -> Tensor:
    r"""KL for :math:`10^{-4} < t < 1.5` from the piecewise Chebyshev interpolant of its log.

    :math:`\log\mathrm{KL}` is analytic in :math:`\log t` (the kernel is analytic for
    :math:`\operatorname{Re} t > 0` and the KL is positive), so on each panel of width 2.4 its
    Chebyshev coefficients decay geometrically; the absolute error in :math:`\log\mathrm{KL}`
    is the relative error of the KL, measured below :math:`10^{-15}` against
    :func:`_kl_quadrature` (``tests/distributions/test_sphere.py``), at about a hundredth of its
    cost. ``x`` is kept a unit roundoff inside :math:`[-1, 1]` so that :math:`\arccos` has a
    finite derivative.
    """
    coefficients = _kl_chebyshev_coefficients(time.dtype, time.device)
    position = (torch.log(time) - _LOG_T_LO) / _PANEL_WIDTH
    panel = position.detach().floor().clamp(0, _KL_PANELS - 1)
    eps = torch.finfo(time.dtype).eps
    x = (2.0 * (position - panel) - 1.0).clamp(-1.0 + eps, 1.0 - eps)
    orders = torch.arange(_KL_CHEBYSHEV_TERMS, dtype=time.dtype, device=time.device)
    rows = coefficients[panel.long()]
    # A row sum, not a matrix product: BLAS would sum in a batch-size-dependent order.
    return torch.exp((torch.cos(torch.acos(x).unsqueeze(-1) * orders) * rows).sum(-1))


def sphere_kl_to_uniform(time: Tensor) -> Tensor:
    r"""Exact :math:`\mathrm{KL}(p_t \,\|\, \mathrm{Uniform}(S^2)) = \log 4\pi - H(p_t)`.

    Three regimes, chosen per element with safe times fed to the others (so gradients stay
    finite): the expansion :func:`_kl_expansion` for :math:`t \le 10^{-4}`, quadrature over the
    polar angle (:func:`_kl_quadrature`) up to :math:`t < 1.5`, evaluated through its
    piecewise Chebyshev interpolant :func:`_kl_chebyshev`, and the series :func:`_kl_series`
    above.

    Parameters
    ----------
    time : Tensor, shape=[...]
        Positive diffusion time (:math:`\partial_t p = \Delta p`).

    Returns
    -------
    Tensor, shape=[...]
        The KL divergence, non-negative.
    """
    return by_time_regime(
        time, _KL_EXPANSION_TIME, _KL_SERIES_TIME, 0.5, _kl_expansion, _kl_chebyshev, _kl_series
    )


# The table is fitted to the image representation: hand it the exact residual (the table
# module does not import this one).
_sphere_table.set_exact_residual(image_residual)
