"""Accuracy of the heat kernels against high-precision (mpmath) references.

Measured on the grids below (float64, ``eps = 2**-52``): ``log_prob`` is within 2.5 eps of
``max(1, |log p|)`` when ``loc = 0`` and within 11 eps otherwise (the rounding of
``value - loc``, see below); the KL to the uniform distribution within 4 eps relative; the KL
between two heat kernels within 11 eps of ``max(1, KL)``. The assertions use the
thresholds of the specification (``1e-12``, ``1e-13``, ``1e-10``), far above what is measured
but far below any real defect (a dropped winding or Fourier term, a wrong regime switch, the
thesis's missing factor 2 are all visible at the 1e-3 level or above).
"""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch
from torch.distributions import kl_divergence

from distributions import CircleHeatKernel, CircleUniform, TorusHeatKernel, reference
from distributions.angles import wrap_angle

F64 = torch.float64
EPS64 = torch.finfo(torch.float64).eps
EPS32 = torch.finfo(torch.float32).eps

#: Times from 1e-8 to 1e4, with both sides of the series switch at 1.5 and the KL switches.
TIMES = [
    1e-8,
    1e-6,
    1e-4,
    1e-3,
    1e-2,
    0.06,
    0.1,
    0.5,
    0.6,
    0.75,
    0.9,
    1.0,
    math.nextafter(1.5, 0.0),
    1.5,
    math.nextafter(1.5, 2.0),
    1.5 - 1e-9,
    1.5 + 1e-9,
    2.0,
    2.5,
    5.0,
    10.0,
    100.0,
    1e3,
    1e4,
]
#: Offsets from the location: the peak, tiny offsets, generic angles, the antipode from both sides.
OFFSETS = [
    0.0,
    1e-300,
    -1e-12,
    1e-6,
    0.3,
    -1.0,
    2.0,
    -3.0,
    math.pi - 1e-9,
    -math.pi + 1e-12,
    math.pi,
    -math.pi,
]
LOCS = [0.0, 1.0, -2.5, 3.1]


def _reference_log_prob(value: float, loc: float, time: float) -> float:
    """The mpmath log density at the exact float64 ``value - loc``."""
    with mp.workdps(reference.DPS):
        theta = mp.mpf(value) - mp.mpf(loc)
        return float(reference.circle_log_density(theta, time))


def _grid() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattened ``(value, loc, time)`` with values ``wrap(loc + offset)`` in float64."""
    loc, time, off = torch.meshgrid(
        torch.tensor(LOCS, dtype=F64),
        torch.tensor(TIMES, dtype=F64),
        torch.tensor(OFFSETS, dtype=F64),
        indexing="ij",
    )
    value = wrap_angle(loc + off)
    return value.reshape(-1), loc.reshape(-1), time.reshape(-1)


def _scaled_errors(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """``|actual - expected| / max(1, |expected|)``."""
    return (actual - expected).abs() / expected.abs().clamp(min=1.0)


@pytest.fixture(scope="module")
def circle_grid():
    value, loc, time = _grid()
    expected = torch.tensor(
        [
            _reference_log_prob(v, m, t)
            for v, m, t in zip(value.tolist(), loc.tolist(), time.tolist(), strict=True)
        ],
        dtype=F64,
    )
    return value, loc, time, expected


# ---------------------------------------------------------------------------------------------
# log_prob


def test_circle_log_prob_float64_against_mpmath(circle_grid):
    value, loc, time, expected = circle_grid
    actual = CircleHeatKernel(loc, time, validate_args=True).log_prob(value)
    errors = _scaled_errors(actual, expected)
    worst = int(errors.argmax())
    # Measured: 2.5 eps at loc = 0, 11 eps overall. The specification's threshold is 1e-12
    # (~4500 eps).
    assert errors.max() <= 1e-12, (
        f"worst error {errors.max() / EPS64:.1f} eps at value={value[worst].item()!r}, "
        f"loc={loc[worst].item()!r}, time={time[worst].item()!r}"
    )
    # Regression guards on the measured accuracy. With loc = 0 the angle reaches the series
    # exactly and the error is ~2.5 eps. Otherwise ``value - loc`` (|.| up to ~6) and the float64
    # 2 pi of the wrap are rounded (~7e-16 absolute), which the log density amplifies by its
    # condition number 2 |value - loc| / |theta|: measured 11 eps at value = -2.88, loc = 3.1
    # (theta = 0.3). That is the conditioning of the problem, not of the series.
    at_zero = loc == 0
    assert errors[at_zero].max() <= 4 * EPS64, f"{errors[at_zero].max() / EPS64:.1f} eps"
    assert errors.max() <= 32 * EPS64, f"{errors.max() / EPS64:.1f} eps"


def test_circle_log_prob_extreme_values_are_finite(circle_grid):
    value, loc, time, _ = circle_grid
    lp = CircleHeatKernel(loc, time).log_prob(value)
    assert torch.isfinite(lp).all()
    # At t = 1e-8 the antipode is exp(-pi^2 / 4e-8) away: log p ~ -2.5e8, not -inf.
    assert lp.min() < -2e8


def test_torus_log_prob_float64_is_sum_of_exact_factors():
    value, loc, time = _grid()
    # Three factors per point with different times and offsets (rolled grids).
    n = 3
    values = torch.stack([value.roll(7 * k) for k in range(n)], dim=-1)
    locs = torch.stack([loc.roll(7 * k) for k in range(n)], dim=-1)
    times = torch.stack([time.roll(11 * k) for k in range(n)], dim=-1)
    keep = torch.arange(0, len(value), 5)  # a fifth of the grid keeps the reference cheap
    values, locs, times = values[keep], locs[keep], times[keep]
    expected = torch.tensor(
        [
            sum(_reference_log_prob(v, m, t) for v, m, t in zip(vs, ms, ts, strict=True))
            for vs, ms, ts in zip(values.tolist(), locs.tolist(), times.tolist(), strict=True)
        ],
        dtype=F64,
    )
    actual = TorusHeatKernel(locs, times, validate_args=True).log_prob(values)
    assert actual.shape == (len(keep),)
    errors = _scaled_errors(actual, expected)
    assert errors.max() <= 1e-12, f"{errors.max() / EPS64:.1f} eps"
    assert errors.max() <= 32 * EPS64, f"{errors.max() / EPS64:.1f} eps"


def test_circle_log_prob_float32_matches_float64():
    """float32 is within a few float32 eps of float64 at the same (float32) inputs.

    Two parts: the series themselves (measured 1.1 eps32 of ``max(1, |log p|)`` at loc = 0,
    asserted 4 eps32), and the rounding of ``wrap(value - loc)`` in float32 (``value - loc``
    and float32's 2 pi carry ~2e-7 absolute error at |value - loc| ~ 6), propagated by the
    slope ``|d log p / d theta|``: measured 18 eps32 of ``max(1, |log p|)`` at value = -2.88,
    loc = 3.1, t = 0.01, half of the bound ``eps32 |value - loc| |d log p / d theta|``
    allowed for it.
    """
    value, loc, time = _grid()
    # Values close to pi round up to float32(pi): wrap them again, in float32.
    value32, loc32, time32 = wrap_angle(value.float()), loc.float(), time.float()
    lp32 = CircleHeatKernel(loc32, time32, validate_args=True).log_prob(value32)
    assert lp32.dtype == torch.float32
    assert torch.isfinite(lp32).all()
    # float32(-pi) lies just below float64's -pi: evaluate without validation in float64.
    value64 = value32.double().requires_grad_()
    lp64 = CircleHeatKernel(loc32.double(), time32.double(), validate_args=False).log_prob(value64)
    (slope,) = torch.autograd.grad(lp64.sum(), value64)
    lp64 = lp64.detach()
    errors = _scaled_errors(lp32.double(), lp64)
    at_zero = loc32 == 0
    assert errors[at_zero].max() <= 4 * EPS32, f"{errors[at_zero].max() / EPS32:.2f} eps32"
    propagated = EPS32 * (value64.detach() - loc32.double()).abs() * slope.abs()
    allowed = 4 * EPS32 * lp64.abs().clamp(min=1.0) + propagated
    excess = (lp32.double() - lp64).abs() / allowed
    assert excess.max() <= 1.0, f"{excess.max():.2f} of the allowed error"


# ---------------------------------------------------------------------------------------------
# Entropy and KL to the uniform distribution

#: Both sides of the regime switches at 0.06 and 2.5 (0.1: the Gaussian form would be off by
#: 1e-10 there), the hard trapezoid point 0.19, large t.
KL_TIMES = [1e-8, 1e-3, 0.03, 0.059, 0.061, 0.1, 0.19, 0.5, 1.5, 2.49, 2.51, 5.0, 20.0, 50.0, 100.0]


def _kl_to_uniform_reference(time: float) -> mp.mpf:
    """KL to uniform in mpmath, with relative accuracy for every ``time``.

    An independent check of ``distributions.reference``: adaptive ``quad`` stops on an
    *absolute* error of ``10**-40``, so for ``KL ~ exp(-2t) < 1e-40`` it would lose relative
    accuracy (1e-6 at t = 50). For ``time >= 2`` this uses the Fourier sum
    ``f = 2 pi p - 1`` directly (no cancellation), ``KL = (1/2pi) int (1+f) log(1+f) - f``, with
    the integrand scaled by ``exp(2t)`` and the working precision raised by the number of
    digits that ``(1+f) log(1+f) - f ~ f^2/2`` cancels.
    """
    if time < 2:
        return reference.circle_kl_to_uniform(time)
    digits = 40 + int(2 * time / math.log(10))
    with mp.workdps(digits):
        t = mp.mpf(time)
        modes = range(1, int(mp.sqrt(digits * mp.log(10) / t)) + 3)
        scale = mp.exp(2 * t)

        def integrand(theta):
            f = 2 * mp.fsum(mp.exp(-(m**2) * t) * mp.cos(m * theta) for m in modes)
            return scale * ((1 + f) * mp.log1p(f) - f)

        return mp.quad(integrand, [-mp.pi, 0, mp.pi]) / (2 * mp.pi * scale)


def test_kl_reference_is_consistent():
    """The two mpmath references agree where both are accurate."""
    for time in (2.0, 5.0, 20.0):
        a, b = reference.circle_kl_to_uniform(time), _kl_to_uniform_reference(time)
        assert abs(a - b) <= 1e-25 * abs(a)
    # ... and for large t the KL is exp(-2t) (1 + exp(-2t)/2) to within exp(-8t).
    t = 50.0
    with mp.workdps(60):
        x = mp.exp(-2 * mp.mpf(t))
        assert abs(_kl_to_uniform_reference(t) / (x * (1 + x / 2)) - 1) < 1e-30


@pytest.fixture(scope="module")
def kl_reference():
    return torch.tensor([float(_kl_to_uniform_reference(t)) for t in KL_TIMES], dtype=F64)


def test_kl_to_uniform_relative_accuracy(kl_reference):
    time = torch.tensor(KL_TIMES, dtype=F64)
    kl = kl_divergence(CircleHeatKernel(torch.zeros_like(time), time), CircleUniform())
    rel = (kl - kl_reference).abs() / kl_reference
    worst = int(rel.argmax())
    # Measured: at most 3.3 eps (t = 0.1).
    assert rel.max() <= 1e-13, f"relative error {rel.max():.2e} at t={KL_TIMES[worst]}"
    assert (kl > 0).all()


def test_entropy_against_mpmath(kl_reference):
    time = torch.tensor(KL_TIMES, dtype=F64)
    entropy = CircleHeatKernel(torch.full_like(time, 0.7), time).entropy()
    expected = math.log(2 * math.pi) - kl_reference
    assert _scaled_errors(entropy, expected).max() <= 1e-14
    # The Gaussian limit: H = log(4 pi e t) / 2 at t = 1e-8 is negative.
    assert entropy[0] < -7


def test_kl_to_uniform_at_extreme_times():
    time = torch.tensor([1e-300, 1e-8, 300.0, 1e4], dtype=F64)
    kl = kl_divergence(CircleHeatKernel(torch.zeros_like(time), time), CircleUniform())
    # Gaussian value at 1e-300; exp(-600) at t = 300 (still a normal float64); 0 at t = 1e4.
    expected = [
        math.log(2 * math.pi) - 0.5 * math.log(4 * math.pi * math.e * 1e-300),
        math.log(2 * math.pi) - 0.5 * math.log(4 * math.pi * math.e * 1e-8),
        math.exp(-600.0),
        0.0,
    ]
    for actual, value in zip(kl.tolist(), expected, strict=True):
        assert actual == pytest.approx(value, rel=1e-14, abs=0.0)


def test_kl_to_uniform_float32():
    """float32 KL within 8 eps32 relative wherever the KL is a normal float32 (t < ~40).

    Measured: 1.4 eps32. (Beyond t ~ 44 the KL, ~exp(-2t), is subnormal in float32.)
    """
    time = torch.tensor([t for t in KL_TIMES if t < 40])
    kl32 = kl_divergence(CircleHeatKernel(torch.zeros_like(time), time), CircleUniform())
    assert kl32.dtype == torch.float32
    kl64 = kl_divergence(
        CircleHeatKernel(torch.zeros_like(time, dtype=F64), time.double()), CircleUniform()
    )
    rel = (kl32.double() - kl64).abs() / kl64
    assert rel.max() <= 8 * EPS32, f"{rel.max() / EPS32:.1f} eps32"


# ---------------------------------------------------------------------------------------------
# KL between two heat kernels

#: (loc1, time1, loc2, time2): hard cases for the graded quadrature.
HARD_KL_CASES = [
    # two tiny times, KL ~ 6e6 (peak of q far outside p)
    (0.0, 1e-8, 0.5, 1e-8),
    # both at t = 1e-8, q centred on p's antipode: KL ~ 2.5e8
    (0.0, 1e-8, math.pi, 1e-8),
    # p's peak sits on the near-kink of log q at q's antipode (width ~ t / pi)
    (0.0, 1e-3, math.pi - 1e-6, 1e-3),
    # p almost uniform, q concentrated: KL ~ 818
    (1.0, 1e4, -1.0, 1e-3),
    # p concentrated on q's antipode, q at moderate time
    (0.3, 1e-8, 0.3 + math.pi, 1.0),
    # both sides of the series switch at 1.5
    (0.0, 1.5, 0.4, 1.5 + 1e-9),
    # moderate times at the antipode
    (0.2, 0.5, 0.2 + math.pi, 0.5),
    # tiny versus moderate-large time, locations not wrapped
    (2.0, 1e-4, -2.5, 5.0),
]


@pytest.mark.parametrize(
    "case", HARD_KL_CASES, ids=lambda c: "loc1={}-t1={}-loc2={}-t2={}".format(*c)
)
def test_kl_heat_heat_against_mpmath(case):
    expected = float(reference.circle_kl(*case))
    loc1, time1, loc2, time2 = (torch.tensor(x, dtype=F64) for x in case)
    kl = kl_divergence(CircleHeatKernel(loc1, time1), CircleHeatKernel(loc2, time2))
    # Measured: within 2.4e-15 of max(1, KL) on these cases and the slow grid.
    assert abs(kl.item() - expected) <= 1e-10 * max(1.0, expected), (kl.item(), expected)


@pytest.mark.parametrize(
    ("loc", "time"),
    [(0.0, 1e-8), (2.0, 1e-3), (-3.0, 0.7), (1.0, 1.5), (3.1, 2.49), (0.5, 50.0), (-1.0, 1e4)],
)
def test_kl_heat_heat_equal_parameters_is_zero(loc, time):
    p = CircleHeatKernel(torch.tensor(loc, dtype=F64), torch.tensor(time, dtype=F64))
    q = CircleHeatKernel(torch.tensor(loc, dtype=F64), torch.tensor(time, dtype=F64))
    assert abs(kl_divergence(p, q).item()) <= 1e-15
    # The same kernel with its location shifted by a full turn.
    r = CircleHeatKernel(torch.tensor(loc + 2 * math.pi, dtype=F64), torch.tensor(time, dtype=F64))
    assert abs(kl_divergence(p, r).item()) <= 1e-15


def _slow_kl_cases() -> list[tuple[float, float, float, float]]:
    """32 cases: times spread over [1e-8, 1e4] and offsets including the antipode."""
    times = [1e-8, 1e-5, 1e-2, 0.2, 1.4, 1.6, 4.0, 30.0, 1e3, 1e4]
    offsets = [0.0, 1e-7, 1.3, -2.9, math.pi]
    cases = []
    for i in range(32):
        t1 = times[i % len(times)]
        t2 = times[(3 * i + 1) % len(times)]
        d = offsets[i % len(offsets)]
        loc1 = -3.0 + 0.37 * i
        cases.append((loc1, t1, loc1 + d, t2))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("case", _slow_kl_cases())
def test_kl_heat_heat_against_mpmath_grid(case):
    expected = float(reference.circle_kl(*case))
    loc1, time1, loc2, time2 = (torch.tensor(x, dtype=F64) for x in case)
    kl = kl_divergence(CircleHeatKernel(loc1, time1), CircleHeatKernel(loc2, time2))
    assert abs(kl.item() - expected) <= 1e-10 * max(1.0, expected), (kl.item(), expected)


# ---------------------------------------------------------------------------------------------
# The thesis's Eq. 7.5


def _thesis_eq_7_5(theta: torch.Tensor, time: float, modes: int = 60) -> torch.Tensor:
    r"""The thesis's density :math:`\frac{1}{2\pi}\sum_{m\ge0} \cos(m\theta) e^{-m^2 t}`."""
    m = torch.arange(modes, dtype=theta.dtype)
    terms = torch.cos(m * theta.unsqueeze(-1)) * torch.exp(-(m**2) * time)
    return terms.sum(-1) / (2 * math.pi)


@pytest.mark.parametrize("time", [0.3, 1.0, 2.0, 5.0])
def test_thesis_eq_7_5_is_half_uniform_half_heat_kernel(time):
    """Eq. 7.5 drops the factor 2 on the m >= 1 terms: it is (uniform + heat kernel) / 2.

    Ours must be the heat kernel (it matches the winding-sum reference), hence differ from
    Eq. 7.5 by exactly the deviation of Eq. 7.5 from the uniform density; a ``log_prob``
    built from Eq. 7.5 fails every assertion below.
    """
    theta = torch.linspace(-math.pi, math.pi, 201, dtype=F64)[:-1]
    thesis = _thesis_eq_7_5(theta, time)
    ours = CircleHeatKernel(torch.tensor(0.0, dtype=F64), torch.tensor(time, dtype=F64))
    p = ours.log_prob(theta).exp()
    uniform = 1 / (2 * math.pi)
    # The identity: Eq. 7.5 = (uniform + heat kernel) / 2.
    assert torch.allclose(thesis, 0.5 * (uniform + p), rtol=0, atol=1e-14)
    # Ours departs from the uniform density twice as much as Eq. 7.5 does.
    ratio = (p - uniform) / (thesis - uniform)
    big = (thesis - uniform).abs() > 1e-6
    assert torch.allclose(ratio[big], torch.full_like(ratio[big], 2.0), rtol=1e-8)
    # The peak: the heat kernel's is the reference value, Eq. 7.5's is far below it.
    peak = float(reference.circle_density(0.0, time))
    assert p[100].item() == pytest.approx(peak, rel=1e-14)
    assert thesis[100].item() < peak - 0.25 * (peak - uniform)


def test_thesis_eq_7_5_is_not_the_heat_kernel():
    """Eq. 7.5 has mean resultant length exp(-t) / 2 (not exp(-t)) and no delta limit."""
    # Periodic trapezoid rule (exact for trigonometric polynomials of degree < nodes).
    theta = torch.linspace(-math.pi, math.pi, 513, dtype=F64)[:-1]
    for time in (1e-2, 0.5, 2.0):
        thesis = _thesis_eq_7_5(theta, time, modes=200)
        p = CircleHeatKernel(torch.tensor(0.0, dtype=F64), torch.tensor(time, dtype=F64))
        dens = p.log_prob(theta).exp()
        mean = 2 * math.pi / len(theta)
        assert (thesis * mean).sum().item() == pytest.approx(1.0, abs=1e-12)
        assert (thesis * torch.cos(theta) * mean).sum().item() == pytest.approx(
            0.5 * math.exp(-time), rel=1e-10
        )
        assert (dens * torch.cos(theta) * mean).sum().item() == pytest.approx(
            math.exp(-time), rel=1e-10
        )
    # As t -> 0 Eq. 7.5 keeps half its mass spread uniformly: its density at the antipode
    # stays at 1/(4 pi), while the heat kernel's vanishes.
    antipode = torch.tensor([-math.pi], dtype=F64)
    thesis = _thesis_eq_7_5(antipode, 1e-2, modes=200)
    assert thesis.item() == pytest.approx(1 / (4 * math.pi), rel=1e-10)
    p = CircleHeatKernel(torch.tensor(0.0, dtype=F64), torch.tensor(1e-2, dtype=F64))
    assert p.log_prob(antipode).item() < -200


# ---------------------------------------------------------------------------------------------
# The evaluation forms of the series (issue 14): nested Fourier sum, shared exp, exponent floor


def _series_reference(theta: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    with mp.workdps(reference.DPS):
        values = [
            float(reference.circle_log_density(mp.mpf(a), t))
            for a, t in zip(theta.tolist(), time.tolist(), strict=True)
        ]
    return torch.tensor(values, dtype=F64)


def test_nested_fourier_sum_against_mpmath():
    """The nested (Horner, signed-Chebyshev) Fourier sum is within 2 eps of mpmath for t >= 1.5.

    Measured: 1.0 eps. A sign slip in the signed recurrence, or dropping modes, is visible:
    without the last two modes the error at t = 1.5 is ~7e-11.
    """
    from distributions._series import FOURIER_TERMS, _log_fourier

    time, theta = torch.meshgrid(
        torch.tensor([1.5, 1.7, 2.0, 3.0, 5.0, 10.0, 40.0], dtype=F64),
        torch.linspace(-math.pi, math.pi, 25, dtype=F64),
        indexing="ij",
    )
    theta, time = theta.reshape(-1), time.reshape(-1)
    expected = _series_reference(theta, time)
    errors = _scaled_errors(_log_fourier(theta, time, FOURIER_TERMS), expected)
    assert errors.max() <= 2 * EPS64, f"{errors.max() / EPS64:.2f} eps"
    short = _scaled_errors(_log_fourier(theta, time, FOURIER_TERMS - 2), expected)
    assert short.max() > 1e-12


def test_blended_series_against_mpmath_both_dtypes():
    """The blended evaluation (one shared exp, lerp by a 0/1 weight) on mixed times.

    Both series in one call, times across the switch and the exponent floor; angles from the
    location at 0 (no rounding of ``value - loc``). Measured: 1.5 eps (float64), 1.4 eps32.
    """
    from distributions._series import circle_log_density, circle_log_density_where

    g = torch.Generator().manual_seed(14)
    n = 300
    log_t = torch.empty(n, dtype=F64).uniform_(math.log(1e-6), math.log(50.0), generator=g)
    time = log_t.exp()
    time[:30] = torch.linspace(1.4, 1.6, 30, dtype=F64)  # around the float64 switch
    time[30:60] = torch.linspace(0.9, 1.1, 30, dtype=F64)  # around the float32 switch
    theta = (2 * torch.rand(n, generator=g, dtype=F64) - 1) * math.pi
    theta[60:70] = -math.pi
    for dtype, eps in ((F64, EPS64), (torch.float32, EPS32)):
        th, t = theta.to(dtype), time.to(dtype)
        expected = _series_reference(th.double(), t.double())
        for path in (circle_log_density, circle_log_density_where):
            errors = _scaled_errors(path(th, t).double(), expected)
            assert errors.max() <= 3 * eps, f"{dtype} {path.__name__}: {errors.max() / eps:.2f}"
