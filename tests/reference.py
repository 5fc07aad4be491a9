"""High-precision (mpmath) references for the heat kernels, used by the accuracy tests."""

from __future__ import annotations

import mpmath as mp

DPS = 50


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
            s = mp.fsum(mp.exp(-((th + 2 * mp.pi * k) ** 2) / (4 * t)) for k in range(-kmax, kmax + 1))
            return s / mp.sqrt(4 * mp.pi * t)
        mmax = int(mp.ceil(mp.sqrt(120 / t))) + 3
        s = 1 + 2 * mp.fsum(mp.exp(-(m**2) * t) * mp.cos(m * th) for m in range(1, mmax + 1))
        return s / (2 * mp.pi)


def circle_log_density(theta: float, time: float) -> mp.mpf:
    """Log of :func:`circle_density`."""
    with mp.workdps(DPS):
        return mp.log(circle_density(theta, time))


def circle_kl_to_uniform(time: float) -> mp.mpf:
    """KL of the circle kernel to the uniform distribution, by adaptive quadrature.

    The integrand is written as ``p log(2 pi p) - (p - 1/2pi)`` (the subtracted term integrates
    to zero), which for large times is of the size of the KL itself, so no digits cancel.
    """
    with mp.workdps(40):
        if time < 0.05:
            # Gaussian value; the wrapping correction is below 1e-30 here.
            return mp.log(2 * mp.pi) - mp.log(4 * mp.pi * mp.e * time) / 2

        def integrand(th):
            p = circle_density(th, time)
            x = 2 * mp.pi * p - 1
            return ((1 + x) * mp.log1p(x) - x) / (2 * mp.pi)

        width = mp.sqrt(2 * time)
        points = sorted({-mp.pi, mp.pi, mp.mpf(0), *[s * k * width for k in (1, 3, 6)
                                                     for s in (-1, 1) if k * width < mp.pi]})
        return mp.quad(integrand, points)


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
