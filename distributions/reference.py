r"""High-precision mpmath references for the circle heat kernel; needs mpmath (the ``dev`` extra).

Slow, scalar and independent of the tensor code: these are the ground truth of the accuracy
tests and of :mod:`distributions.benchmark`. Convention as everywhere in the package:
:math:`\partial_t p = \partial_\theta^2 p`, so the kernel at time ``time`` is a wrapped normal
with variance ``2 * time``. Arguments are Python floats (converted exactly to mpmath numbers);
results are ``mpmath.mpf``.
"""

from __future__ import annotations

import math

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
