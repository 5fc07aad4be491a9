"""mpmath references for the hyperspherical families (von Mises-Fisher, Power Spherical, heat
kernel on S^d) and their KL divergences to the uniform distribution, at 40 digits."""

from __future__ import annotations

import functools

import mpmath as mp

__all__ = [
    "heat_kl",
    "heat_log_prob",
    "log_sphere_volume",
    "power_spherical_kl",
    "power_spherical_log_prob",
    "vmf_kl",
    "vmf_log_prob",
    "vmf_mean",
]

DPS = 40


def log_sphere_volume(d: int) -> mp.mpf:
    with mp.workdps(DPS):
        return mp.log(2) + mp.mpf(d + 1) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(d + 1) / 2)


def _log_hyp(kappa, d: int) -> mp.mpf:
    """log 0F1(; (d+1)/2; kappa^2/4) = log(Gamma(nu+1) (2/kappa)^nu I_nu(kappa))."""
    nu = mp.mpf(d - 1) / 2
    k = mp.mpf(kappa)
    return mp.loggamma(nu + 1) + nu * mp.log(2 / k) + mp.log(mp.besseli(nu, k))


def vmf_mean(kappa, d: int) -> mp.mpf:
    """A_d(kappa) = I_{(d+1)/2} / I_{(d-1)/2}."""
    with mp.workdps(DPS):
        nu, k = mp.mpf(d - 1) / 2, mp.mpf(kappa)
        return mp.besseli(nu + 1, k) / mp.besseli(nu, k)


def vmf_log_prob(chordal_sq, kappa, d: int) -> mp.mpf:
    """log density at squared chordal distance |x - mu|^2 from the location."""
    with mp.workdps(DPS):
        k = mp.mpf(kappa)
        return -k * mp.mpf(chordal_sq) / 2 - (_log_hyp(k, d) - k) - log_sphere_volume(d)


def vmf_kl(kappa, d: int) -> mp.mpf:
    with mp.workdps(DPS):
        k = mp.mpf(kappa)
        return k * vmf_mean(k, d) - _log_hyp(k, d)


def _ps_log_normalizer(kappa, d: int) -> mp.mpf:
    beta = mp.mpf(d) / 2
    alpha = beta + mp.mpf(kappa)
    return -(
        (alpha + beta) * mp.log(2)
        + beta * mp.log(mp.pi)
        + mp.loggamma(alpha)
        - mp.loggamma(alpha + beta)
    )


def power_spherical_log_prob(chordal_sq, kappa, d: int) -> mp.mpf:
    with mp.workdps(DPS):
        cos = 1 - mp.mpf(chordal_sq) / 2
        return _ps_log_normalizer(kappa, d) + mp.mpf(kappa) * mp.log(1 + cos)


def power_spherical_kl(kappa, d: int) -> mp.mpf:
    with mp.workdps(DPS):
        beta = mp.mpf(d) / 2
        k = mp.mpf(kappa)
        alpha = beta + k
        entropy = -_ps_log_normalizer(k, d) - k * (
            mp.log(2) + mp.digamma(alpha) - mp.digamma(alpha + beta)
        )
        return log_sphere_volume(d) - entropy


@functools.lru_cache(maxsize=4096)
def _gegenbauer_coefficients(n: int, lam2: int, dps: int) -> tuple:
    """Coefficients of C_n^lam in powers (2x)^(n - 2k), lam = lam2 / 2 (DLMF 18.5.10)."""
    with mp.workdps(dps):
        lam = mp.mpf(lam2) / 2
        return tuple(
            (-1) ** k
            * mp.gamma(n - k + lam)
            / (mp.gamma(lam) * mp.factorial(k) * mp.factorial(n - 2 * k))
            for k in range(n // 2 + 1)
        )


def _gegenbauer(n: int, lam, x) -> mp.mpf:
    """C_n^lam(x) by the explicit sum, at the working precision."""
    coefficients = _gegenbauer_coefficients(n, int(2 * lam), mp.mp.dps)
    return mp.fsum(c * (2 * x) ** (n - 2 * k) for k, c in enumerate(coefficients))


def _heat_series(cos, time, d: int, terms: int = 40) -> mp.mpf:
    """|S^d| p_t(cos) by the Gegenbauer series (d >= 3)."""
    lam = mp.mpf(d - 1) / 2
    total = mp.mpf(0)
    for n in range(terms):
        total += (
            mp.mpf(2 * n + d - 1)
            / (d - 1)
            * mp.exp(-n * (n + d - 1) * mp.mpf(time))
            * _gegenbauer(n, lam, cos)
        )
    return total


def heat_log_prob(chordal_sq, time, d: int) -> mp.mpf:
    with mp.workdps(DPS):
        cos = 1 - mp.mpf(chordal_sq) / 2
        return mp.log(_heat_series(cos, time, d)) - log_sphere_volume(d)


def heat_kl(time, d: int) -> mp.mpf:
    """E log(|S^d| p) by mpmath quadrature of (1 + S) log(1 + S) - S (the S term integrates to
    0; leaving it out avoids a cancellation at large times), at 25 digits."""
    with mp.workdps(25):
        ratio = mp.exp(
            mp.loggamma(mp.mpf(d + 1) / 2) - mp.loggamma(mp.mpf(d) / 2) - mp.log(mp.pi) / 2
        )

        def integrand(theta):
            s = _heat_series(mp.cos(theta), time, d, terms=20) - 1
            return mp.sin(theta) ** (d - 1) * ((1 + s) * mp.log1p(s) - s)

        return ratio * mp.quad(integrand, [0, mp.pi])
