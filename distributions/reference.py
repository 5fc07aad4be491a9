r"""High-precision mpmath references for the circle heat kernel; needs mpmath (the ``dev`` extra).

Slow, scalar and independent of the tensor code: these are the ground truth of the accuracy
tests and of the benchmarks (``manifold_vae.bench``). Convention as everywhere in the package:
:math:`\partial_t p = \partial_\theta^2 p`, so the kernel at time ``time`` is a wrapped normal
with variance ``2 * time``. Arguments are Python floats (converted exactly to mpmath numbers);
results are ``mpmath.mpf``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

try:
    import mpmath as mp
except ImportError as error:  # pragma: no cover - exercised only without the dev extra
    raise ImportError(
        "distributions.reference needs mpmath: pip install 'manifold-vae[dev]'"
    ) from error

__all__ = [
    "DPS",
    "circle_density",
    "circle_kl",
    "circle_kl_to_uniform",
    "circle_log_density",
    "sphere_angle",
    "sphere_density",
    "sphere_kl_to_uniform",
    "sphere_log_density",
]

#: Decimal digits of the density references.
DPS = 50
#: Significant digits kept by the KL-to-uniform reference at every time.
_KL_DIGITS = 40
#: Trapezoid nodes of the large-time KL-to-uniform reference (error bound in its docstring).
_KL_NODES = 128


def circle_density(theta: float, time: float) -> mp.mpf:
    """Unit-circle heat kernel at angle ``theta`` from the location, in ``DPS`` digits.

    The winding sum (all terms positive) for ``time <= 2``, else the Fourier sum; both are
    summed far past the point where their terms drop below ``10**-DPS`` relative.
    """
    with mp.workdps(DPS):
        th, t = mp.mpf(theta), mp.mpf(time)
        th = th - 2 * mp.pi * mp.nint(th / (2 * mp.pi))
        if t <= 2:
            kmax = int(mp.ceil(mp.sqrt(40 * t))) + 3
            s = mp.fsum(
                mp.exp(-((th + 2 * mp.pi * k) ** 2) / (4 * t)) for k in range(-kmax, kmax + 1)
            )
            return s / mp.sqrt(4 * mp.pi * t)
        mmax = int(mp.ceil(mp.sqrt(120 / t))) + 3
        s = 1 + 2 * mp.fsum(mp.exp(-(m**2) * t) * mp.cos(m * th) for m in range(1, mmax + 1))
        return s / (2 * mp.pi)


def circle_log_density(theta: float, time: float) -> mp.mpf:
    """Log of :func:`circle_density`."""
    with mp.workdps(DPS):
        return mp.log(circle_density(theta, time))


def circle_kl_to_uniform(time: float) -> mp.mpf:
    r"""KL of the circle kernel to the uniform distribution, to 40 significant digits.

    * ``time < 0.05``: the Gaussian value; the wrapping correction is below 1e-30 there.
    * ``0.05 <= time < 2``: adaptive quadrature of ``p log(2 pi p) - (p - 1/2pi)`` (the
      subtracted term integrates to zero).
    * ``time >= 2``: :func:`_kl_to_uniform_large_time`, which keeps relative accuracy however
      small the KL (about ``exp(-2 time)``) becomes.
    """
    with mp.workdps(_KL_DIGITS):
        if time < 0.05:
            return mp.log(2 * mp.pi) - mp.log(4 * mp.pi * mp.e * time) / 2
        if time >= 2:
            return _kl_to_uniform_large_time(time)

        def integrand(th):
            p = circle_density(th, time)
            x = 2 * mp.pi * p - 1
            return ((1 + x) * mp.log1p(x) - x) / (2 * mp.pi)

        width = mp.sqrt(2 * time)
        points = sorted(
            {
                -mp.pi,
                mp.pi,
                mp.mpf(0),
                *[s * k * width for k in (1, 3, 6) for s in (-1, 1) if k * width < mp.pi],
            }
        )
        return mp.quad(integrand, points)


def _kl_to_uniform_large_time(time: float) -> mp.mpf:
    r"""KL to uniform for ``time >= 2``, as the circle mean of :math:`g(f) = (1+f)\log(1+f) - f`.

    Here :math:`2\pi p = 1 + f` with :math:`f = 2\sum_{m\ge1} e^{-m^2 t}\cos m\theta`, and
    :math:`\int f = 0`. Since :math:`f \approx 2e^{-t}` and :math:`g \approx f^2/2`, working with
    :math:`40 + 2t/\ln 10` digits keeps 40 significant digits of the KL. For :math:`t \ge 2`,
    :math:`g \circ f` is analytic in the strip :math:`|\operatorname{Im}\theta| < t/2` (there
    :math:`|f| \le 2\sum_m e^{-t(m^2 - m/2)} < 0.75`) and bounded by about :math:`4e^{-t}`, so the
    periodic trapezoid rule on :math:`N = 128` nodes has relative error below
    :math:`16\pi e^{-(N/2 - 1)t} < 10^{-52}`.
    """
    dps = _KL_DIGITS + math.ceil(2 * time / math.log(10)) + 5
    with mp.workdps(dps):
        t = mp.mpf(time)
        mmax = math.ceil(math.sqrt(dps * math.log(10) / time + 1)) + 2
        total = mp.mpf(0)
        for j in range(_KL_NODES):
            th = -mp.pi + 2 * mp.pi * j / _KL_NODES
            f = 2 * mp.fsum(mp.exp(-(m**2) * t) * mp.cos(m * th) for m in range(1, mmax + 1))
            total += (1 + f) * mp.log1p(f) - f
        kl = total / _KL_NODES
    with mp.workdps(_KL_DIGITS):
        return +kl  # rounded to the 40 significant digits it has


def circle_kl(loc1: float, time1: float, loc2: float, time2: float) -> mp.mpf:
    """KL between two circle kernels, by adaptive quadrature split at the features."""
    with mp.workdps(30):
        d = mp.mpf(loc2) - mp.mpf(loc1)

        def integrand(phi):
            p1 = circle_density(phi, time1)
            if p1 == 0:
                return mp.mpf(0)
            return p1 * (mp.log(p1) - mp.log(circle_density(phi - d, time2)))

        anti = d + mp.pi
        anti = anti - 2 * mp.pi * mp.nint(anti / (2 * mp.pi))
        pts = {-mp.pi, mp.pi, mp.mpf(0), anti}
        for scale in (mp.sqrt(2 * time1), mp.mpf(time2)):
            for k in (0.25, 1, 4, 16):
                for c in (mp.mpf(0), anti):
                    for s in (-1, 1):
                        x = c + s * k * scale
                        if -mp.pi < x < mp.pi:
                            pts.add(x)
        return mp.quad(integrand, sorted(pts))


# ---------------------------------------------------------------------------------------------
# The sphere S^2 (density with respect to area, time t with dp/dt = Laplace p)

#: Below this time the sphere references use the image integral, above it the Legendre series.
SPHERE_SERIES_TIME = 0.02
#: Decimal digits of the image-integral reference (adaptive quadrature is slow at ``DPS``).
SPHERE_IMAGE_DPS = 25


def _sphere_legendre(theta: mp.mpf, t: mp.mpf) -> mp.mpf:
    r"""``(1/4pi) sum_l (2l+1) exp(-l(l+1)t) P_l(cos theta)``, summed to ``10**-(DPS + 10)``.

    The working precision is raised by the digits that cancel at the antipode (the largest
    term is about :math:`1/t`, the sum about :math:`e^{-\pi^2/4t}`).
    """
    lost = int(mp.ceil(mp.pi**2 / (4 * t) / mp.log(10))) + 10
    with mp.workdps(DPS + lost):
        t = mp.mpf(t)
        c = mp.cos(theta)
        bound = (DPS + lost + 10) * mp.log(10) / t
        lmax = int(mp.sqrt(bound)) + 10
        p_prev, p_cur = mp.mpf(1), c
        total = 1 + 3 * mp.exp(-2 * t) * c
        for n in range(1, lmax):  # P_{n+1} from P_n, P_{n-1}
            p_prev, p_cur = p_cur, ((2 * n + 1) * c * p_cur - n * p_prev) / (n + 1)
            total += (2 * n + 3) * mp.exp(-(n + 1) * (n + 2) * t) * p_cur
        return total / (4 * mp.pi)


def _sphere_images(theta: mp.mpf, t: mp.mpf) -> mp.mpf:
    r"""The exact image integral of the kernel (any ``t``; used for small ``t``).

    .. math::

        p_t(\theta) = \frac{2 e^{t/4}}{(4\pi t)^{3/2}} \sum_{k=-3}^{3} (-1)^k
            \int_0^{\pi/2} \frac{\varphi + 2\pi k}{\sin(\varphi/2)}
            e^{-(\varphi + 2\pi k)^2/4t}\, dw,
        \qquad \cos\frac{\varphi}{2} = \cos\frac{\theta}{2}\cos w,

    by adaptive (tanh-sinh) quadrature split at multiples of :math:`\sqrt t` from both ends
    (the image :math:`k = -1` peaks at :math:`w = \pi/2` near the antipode); the images
    :math:`|k| > 3` are below :math:`e^{-6\pi^2/t}` relative.
    """
    s, c = mp.sin(theta / 2), mp.cos(theta / 2)

    def integrand(w):
        sin_half = mp.sqrt(s**2 + (c * mp.sin(w)) ** 2)
        phi = 2 * mp.atan2(sin_half, c * mp.cos(w))
        total = mp.fsum(
            (-1) ** k
            * (phi + 2 * mp.pi * k)
            * mp.exp(-((phi + 2 * mp.pi * k) ** 2 - theta**2) / (4 * t))
            for k in range(-3, 4)
        )  # e^{-theta^2/4t} factored out: mp.quad's error estimate is absolute
        return total / sin_half

    root, end = mp.sqrt(t), mp.pi / 2
    steps = [k * root for k in (0.5, 2, 8) if k * root < end]
    points = sorted({mp.mpf(0), end, *steps, *[end - x for x in steps]})
    integral = mp.quad(integrand, points)
    scale = mp.exp(t / 4 - theta**2 / (4 * t)) * (4 * mp.pi * t) ** (-mp.mpf(3) / 2)
    return 2 * scale * integral


def sphere_angle(value: Sequence[float], loc: Sequence[float]) -> mp.mpf:
    r"""The angle :math:`\operatorname{atan2}(\lVert v \times m\rVert, v \cdot m)` between two
    vectors of :math:`R^3` given as floats (taken exactly), at ``DPS`` digits.

    The exact polar angle of a float value from a float location, so that an accuracy test
    measures the evaluation and not the rounding of its inputs.
    """
    with mp.workdps(DPS):
        v = [mp.mpf(float(x)) for x in value]
        m = [mp.mpf(float(x)) for x in loc]
        cross = [v[1] * m[2] - v[2] * m[1], v[2] * m[0] - v[0] * m[2], v[0] * m[1] - v[1] * m[0]]
        return mp.atan2(
            mp.sqrt(mp.fsum(c * c for c in cross)),
            mp.fsum(a * b for a, b in zip(v, m, strict=True)),
        )


def sphere_density(theta: float, time: float, method: str | None = None) -> mp.mpf:
    """Heat kernel on the unit sphere at polar angle ``theta`` in ``[0, pi]``.

    The Legendre series (``DPS`` digits) for ``time >= 0.02`` and the image integral
    (``SPHERE_IMAGE_DPS`` digits) below, unless ``method``
    (``"legendre"`` or ``"images"``) asks for one (both are exact; tests check that they agree).
    """
    if method is None:
        method = "legendre" if time >= SPHERE_SERIES_TIME else "images"
    with mp.workdps(DPS):
        th, t = mp.mpf(theta), mp.mpf(time)
        if method == "legendre":
            return +_sphere_legendre(th, t)
        if method == "images":
            with mp.workdps(SPHERE_IMAGE_DPS):
                return _sphere_images(th, t)
        raise ValueError(f"method must be 'legendre' or 'images', got {method!r}")


def sphere_log_density(theta: float, time: float, method: str | None = None) -> mp.mpf:
    """Log of :func:`sphere_density`."""
    with mp.workdps(DPS):
        return mp.log(sphere_density(theta, time, method))


def sphere_kl_to_uniform(time: float) -> mp.mpf:
    r"""KL of the sphere kernel to the uniform distribution, to about 30 digits.

    :math:`2\pi\int_0^\pi \sin\theta\,[p\log(4\pi p) - (p - 1/4\pi)]\,d\theta` (the
    subtracted term integrates to zero and keeps the integrand small for large ``time``), by
    adaptive quadrature split at multiples of :math:`\sqrt{2t}` and cut at
    :math:`\Theta = \min(\pi, 20\sqrt{2t})`; beyond the cut :math:`p < e^{-200}` of its peak, so
    the integrand is :math:`\sin\theta / 2` there and the tail :math:`(1 + \cos\Theta)/2` is
    added exactly. Slow for ``time < 0.02`` (nested
    quadrature): tens of seconds per value.
    """
    with mp.workdps(30):

        def integrand(th):
            q = 4 * mp.pi * sphere_density(th, time)
            return mp.sin(th) * (q * mp.log(q) - q + 1) / 2

        width = mp.sqrt(2 * mp.mpf(time))
        end = min(mp.pi, 20 * width)  # beyond, p < e^{-200} of its peak
        points = sorted(
            {mp.mpf(0), end, *[k * width for k in (0.5, 1, 2, 4, 8, 16) if k * width < end]}
        )
        return mp.quad(integrand, points) + (1 + mp.cos(end)) / 2
