r"""A conformance kit: run the checks this package runs on its own manifolds and distributions.

Usable without pytest::

    from manifold_vae.testing import check_manifold
    report = check_manifold(MyManifold())       # raises AssertionError naming the failed checks
    print(report)                               # one line per named check

and with pytest, one test per named check::

    from manifold_vae.testing import manifold_checks, parametrize_checks

    @parametrize_checks(manifold_checks(MyManifold()))
    def test_my_manifold(check):
        check()

The statistical checks use fixed seeds (in a forked RNG: the global one is left alone) and
two-sided z-tests at :data:`Z_THRESHOLD` standard errors, a failure rate of about
:math:`6 \times 10^{-8}` per comparison for a correct implementation (the Monte Carlo errors
are averages of bounded or light-tailed terms, so the normal approximation applies).

Importance sampling uses the *defensive mixture* :math:`m = \tfrac12 (r + q)` of a reference
distribution :math:`r` (the uniform prior on a compact manifold, a wide heat kernel otherwise)
and the distribution :math:`q` under test, so the weights :math:`q / m \le 2` are bounded even
for very concentrated :math:`q`: :math:`E_m[q/m] = 1` checks normalisation,
:math:`E_m[f q / m] = E_q[f]` is compared with the sample mean of :math:`f` (goodness of fit),
and its gradient in the parameters with the pathwise gradient of ``rsample``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, kl_divergence

from .manifolds import LatentManifold, PointDistribution, manifold_from_spec, registered_manifolds

__all__ = [
    "REPARAMETERIZE_TOL",
    "Z_THRESHOLD",
    "Check",
    "ConformanceReport",
    "check_distribution",
    "check_manifold",
    "distribution_checks",
    "hypothesis_check",
    "manifold_checks",
    "parametrize_checks",
]

#: Standard errors allowed in every Monte Carlo comparison (two-sided p about 6e-8).
Z_THRESHOLD = 5.4

#: A check: a function that returns a short message on success and raises AssertionError.
CheckFunction = Callable[[], str]


@dataclass
class Check:
    """The outcome of one named check."""

    name: str
    passed: bool
    message: str


@dataclass
class ConformanceReport:
    """Outcomes of all checks on one subject; ``str`` gives one line per check."""

    subject: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def raise_if_failed(self) -> None:
        """Raise ``AssertionError`` listing every failed check and why."""
        if not self.passed:
            lines = [f"  {c.name}: {c.message}" for c in self.failures]
            raise AssertionError(
                f"{self.subject} failed {len(lines)} conformance check(s):\n" + "\n".join(lines)
            )

    def __str__(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        rows = [
            f"{'ok  ' if c.passed else 'FAIL'} {c.name:<{width}}  {c.message}" for c in self.checks
        ]
        return "\n".join([f"conformance of {self.subject}:", *rows])


def _run(subject: str, checks: Mapping[str, CheckFunction], raise_on_failure: bool) -> Any:
    report = ConformanceReport(subject)
    for name, check in checks.items():
        try:
            report.checks.append(Check(name, True, check()))
        except AssertionError as error:
            report.checks.append(Check(name, False, str(error)))
        except Exception as error:  # any error is a failed check
            report.checks.append(Check(name, False, f"raised {type(error).__name__}: {error}"))
    if raise_on_failure:
        report.raise_if_failed()
    return report


def parametrize_checks(checks: Mapping[str, CheckFunction]) -> Any:
    """``pytest.mark.parametrize("check", ...)`` with one case per named check."""
    import pytest

    return pytest.mark.parametrize("check", list(checks.values()), ids=list(checks))


# --- statistics ------------------------------------------------------------------------------
def _seeded(seed: int, fn: Callable[[], str]) -> Callable[[], str]:
    def run() -> str:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return fn()

    return run


def _z_compare(name: str, estimate: Tensor, expected: Tensor, se: Tensor, atol: float) -> float:
    """Assert ``|estimate - expected| <= Z_THRESHOLD * se + atol`` elementwise; the worst z."""
    diff = (estimate - expected).abs()
    bound = Z_THRESHOLD * se + atol
    bad = ~(diff <= bound)
    if bool(bad.any()):
        i = int(bad.flatten().nonzero()[0])
        got, want = estimate.flatten()[i].item(), expected.flatten()[i].item()
        raise AssertionError(
            f"{name}: estimate {got:.6g} vs {want:.6g} (difference "
            f"{diff.flatten()[i].item():.3g}, allowed {bound.flatten()[i].item():.3g} = "
            f"{Z_THRESHOLD} standard errors + {atol:g}) at element {i}"
        )
    return float((diff / se.clamp_min(1e-300)).max()) if diff.numel() else 0.0


def _mean_se(values: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard error along the first axis."""
    n = values.shape[0]
    return values.mean(0), values.std(0) / math.sqrt(n)


def _functions(value: Tensor, event_dims: int) -> Tensor:
    """Test functions of values: each event component, its square, sin and cos; ``(..., k)``."""
    flat = value.flatten(value.ndim - event_dims) if event_dims else value.unsqueeze(-1)
    return torch.cat([flat, flat**2, torch.sin(flat), torch.cos(flat)], dim=-1)


@dataclass
class _Mixture:
    """Defensive mixture ``(r + q) / 2`` of a reference ``r`` and the tested ``q``."""

    q: Distribution
    r: Distribution

    def sample(self, n: int) -> Tensor:
        half = n // 2
        a = self.r.sample(torch.Size([half]))
        b = self.q.sample(torch.Size([n - half]))
        return torch.cat([a, b])

    def log_prob(self, value: Tensor) -> Tensor:
        lq, lr = self.q.log_prob(value), self.r.log_prob(value)
        return torch.logaddexp(lq, lr) - math.log(2.0)


def _broadcast_reference(r: Distribution, q: Distribution) -> Distribution:
    return r.expand(q.batch_shape) if r.batch_shape != q.batch_shape else r


def _normalisation(q: Distribution, r: Distribution, n: int) -> str:
    m = _Mixture(q, _broadcast_reference(r, q))
    with torch.no_grad():
        x = m.sample(n)
        w = (q.log_prob(x) - m.log_prob(x)).exp()
    mean, se = _mean_se(w)
    z = _z_compare("integral of the density", mean, torch.ones_like(mean), se, 1e-6)
    return f"integral 1 within {z:.2f} standard errors ({n} mixture draws)"


def _goodness_of_fit(q: Distribution, r: Distribution, n: int) -> str:
    """Sample means of test functions against their importance-sampled expectations."""
    m = _Mixture(q, _broadcast_reference(r, q))
    event_dims = len(q.event_shape)
    with torch.no_grad():
        x = m.sample(n)
        w = (q.log_prob(x) - m.log_prob(x)).exp().unsqueeze(-1)
        f_is, se_is = _mean_se(_functions(x, event_dims) * w)
        y = q.sample(torch.Size([n]))
        f_s, se_s = _mean_se(_functions(y, event_dims))
    se = (se_is**2 + se_s**2).sqrt()
    z = _z_compare("E[f] from samples vs from the density", f_s, f_is, se, 1e-9)
    return f"{f_s.numel()} moments agree within {z:.2f} standard errors"


def _pathwise_gradients(
    rebuild: Callable[[dict[str, Tensor]], Distribution],
    params: dict[str, Tensor],
    r: Distribution,
    n: int,
    chunks: int = 16,
) -> str:
    r"""Pathwise gradient of :math:`E_q[f]` (``rsample``) against the importance-sampled one."""

    def f(value: Tensor, event_dims: int) -> Tensor:
        flat = value.flatten(value.ndim - event_dims) if event_dims else value.unsqueeze(-1)
        shift = torch.linspace(0.3, 1.1, flat.shape[-1], dtype=flat.dtype, device=flat.device)
        return torch.sin(flat + shift).sum(-1) + torch.cos(2.0 * flat).sum(-1)

    names = sorted(params)
    leaves = {k: params[k].detach().clone().requires_grad_(True) for k in names}
    pathwise, weighted = [], []
    for _ in range(chunks):
        q = rebuild(leaves)
        event_dims = len(q.event_shape)
        y = q.rsample(torch.Size([n // chunks]))
        grads = torch.autograd.grad(f(y, event_dims).mean(0).sum(), [leaves[k] for k in names])
        pathwise.append(torch.cat([g.flatten() for g in grads]))
        with torch.no_grad():
            m = _Mixture(q, _broadcast_reference(r, q))
            x = m.sample(n // chunks)
            log_m = m.log_prob(x)
        w = (q.log_prob(x) - log_m).exp()
        grads = torch.autograd.grad(
            (f(x, event_dims) * w).mean(0).sum(), [leaves[k] for k in names], allow_unused=True
        )
        grads = [
            torch.zeros_like(leaves[k]) if g is None else g
            for k, g in zip(names, grads, strict=True)
        ]
        weighted.append(torch.cat([g.flatten() for g in grads]))
    a, se_a = _mean_se(torch.stack(pathwise))
    b, se_b = _mean_se(torch.stack(weighted))
    if not bool(torch.isfinite(a).all()):
        raise AssertionError(f"pathwise gradients are not finite: {a}")
    se = (se_a**2 + se_b**2).sqrt()
    z = _z_compare("pathwise vs importance-sampled gradient", a, b, se, 1e-7)
    return f"gradients in {', '.join(names)} agree within {z:.2f} standard errors"


def _kl_against_monte_carlo(q: Distribution, p: Distribution, n: int) -> str:
    p = _broadcast_reference(p, q)
    try:
        exact = kl_divergence(q, p)
    except NotImplementedError:
        return f"no KL registered for ({type(q).__name__}, {type(p).__name__}): skipped"
    with torch.no_grad():
        x = q.sample(torch.Size([n]))
        mean, se = _mean_se(q.log_prob(x) - p.log_prob(x))
    if not bool(torch.isfinite(exact).all()) or bool((exact < -1e-6).any()):
        raise AssertionError(f"KL must be finite and >= 0, got {exact}")
    z = _z_compare("exact KL vs Monte Carlo", exact.detach(), mean, se, 1e-6)
    return f"exact KL within {z:.2f} standard errors of the Monte Carlo estimate"


def _shapes(d: Distribution, dtype: torch.dtype) -> str:
    sample = d.sample(torch.Size([5]))
    expected = (5, *d.batch_shape, *d.event_shape)
    assert tuple(sample.shape) == expected, f"sample shape {tuple(sample.shape)} != {expected}"
    assert sample.dtype == dtype, f"sample dtype {sample.dtype} != {dtype}"
    log_p = d.log_prob(sample)
    assert tuple(log_p.shape) == (5, *d.batch_shape), f"log_prob shape {tuple(log_p.shape)}"
    assert bool(torch.isfinite(log_p).all()), f"log_prob not finite at its samples: {log_p}"
    bigger = d.expand(torch.Size([2, *d.batch_shape]))
    assert tuple(bigger.sample().shape) == (2, *d.batch_shape, *d.event_shape), "expand"
    assert bool(d.support.check(sample).all()), f"samples outside the support {d.support}"
    return f"batch {tuple(d.batch_shape)}, event {tuple(d.event_shape)}, {dtype}"


# --- distributions ---------------------------------------------------------------------------
def distribution_checks(
    make: Callable[[torch.dtype], Distribution],
    reference: Callable[[torch.dtype], Distribution],
    *,
    bad_params: Iterable[Callable[[torch.dtype, bool | None], Distribution]] = (),
    bad_values: Callable[[torch.dtype], list[Tensor]] = lambda dtype: [],
    extreme: Iterable[Callable[[torch.dtype], Distribution]] = (),
    differentiable: bool = True,
    samples: int = 4000,
    seed: int = 0,
) -> dict[str, CheckFunction]:
    r"""Named checks of a distribution family: shapes, support, normalisation, fit, KL, ...

    Parameters
    ----------
    make : callable(dtype) -> Distribution
        Builds the distribution under test (with ``validate_args=True``).
    reference : callable(dtype) -> Distribution
        A distribution on the same support with an independent sampler and density with
        respect to the same measure (the uniform distribution on a compact space); used for
        importance sampling and as the ``p`` of :math:`\mathrm{KL}(q \| p)` when registered.
    bad_params : callables(dtype, validate_args)
        Constructor calls that must raise ``ValueError`` under validation and not without.
    bad_values : callable(dtype) -> list of Tensor
        Values outside the support (or of the wrong event shape): ``log_prob`` must raise
        ``ValueError`` under validation.
    extreme : callables(dtype)
        Distributions at extreme parameters: samples and ``log_prob`` must stay finite.
    differentiable : bool
        Whether to check the pathwise gradients of ``rsample`` (when ``has_rsample``).
    samples : int
        Monte Carlo sample size of each statistical check.
    seed : int
        Seed of each check (in a forked RNG).

    Returns
    -------
    dict of str to callable
        Each returns a message and raises ``AssertionError`` on failure.
    """
    dtypes = (torch.float32, torch.float64)
    checks: dict[str, CheckFunction] = {}

    def shapes() -> str:
        return "; ".join(_shapes(make(dtype), dtype) for dtype in dtypes)

    def support() -> str:
        count = 0
        for dtype in dtypes:
            d = make(dtype)
            for value in bad_values(dtype):
                try:
                    d.log_prob(value)
                except ValueError:
                    count += 1
                    continue
                raise AssertionError(f"log_prob accepted the invalid value {value} ({dtype})")
        return f"{count} invalid values rejected"

    def normalisation() -> str:
        return _normalisation(make(torch.float64), reference(torch.float64), samples)

    def goodness_of_fit() -> str:
        return _goodness_of_fit(make(torch.float64), reference(torch.float64), samples)

    def gradients() -> str:
        d = make(torch.float64)
        if not d.has_rsample or not differentiable:
            return "no rsample or no differentiable parameters: skipped"
        params = {
            k: getattr(d, k)
            for k in d.arg_constraints
            if torch.is_tensor(getattr(d, k, None)) and getattr(d, k).is_floating_point()
        }
        cls = type(d)

        def rebuild(values: dict[str, Tensor]) -> Distribution:
            return cls(**values, validate_args=False)

        return _pathwise_gradients(rebuild, params, reference(torch.float64), samples)

    def kl() -> str:
        return _kl_against_monte_carlo(make(torch.float64), reference(torch.float64), samples)

    def validation() -> str:
        count = 0
        for make_bad in bad_params:
            for dtype in dtypes:
                try:
                    make_bad(dtype, True)
                except ValueError:
                    make_bad(dtype, False)  # must not raise without validation
                    count += 1
                    continue
                raise AssertionError(f"invalid parameters accepted under validation ({dtype})")
        return f"{count} invalid parameter sets rejected"

    def extremes() -> str:
        count = 0
        for make_extreme in extreme:
            for dtype in dtypes:
                d = make_extreme(dtype)
                x = d.sample(torch.Size([64]))
                assert bool(torch.isfinite(x).all()), f"non-finite samples at {d}"
                assert bool(torch.isfinite(d.log_prob(x)).all()), f"non-finite log_prob at {d}"
                count += 1
        return f"{count} extreme parameterisations finite"

    for name, fn in [
        ("shapes", shapes),
        ("support", support),
        ("normalisation", normalisation),
        ("goodness-of-fit", goodness_of_fit),
        ("gradients", gradients),
        ("kl", kl),
        ("validation", validation),
        ("extreme-parameters", extremes),
    ]:
        checks[name] = _seeded(seed, fn)
    return checks


def check_distribution(
    make: Callable[[torch.dtype], Distribution],
    reference: Callable[[torch.dtype], Distribution],
    *,
    raise_on_failure: bool = True,
    **options: Any,
) -> ConformanceReport:
    """Run :func:`distribution_checks`; raise ``AssertionError`` naming any failure."""
    subject = type(make(torch.float64)).__name__
    checks = distribution_checks(make, reference, **options)
    return _run(subject, checks, raise_on_failure)


def hypothesis_check(strategy: Any) -> Callable[[], None]:
    """A hypothesis test: every distribution ``strategy`` draws has consistent shapes, samples
    in its support and finite ``log_prob`` at them (e.g. with the strategies of
    :mod:`distributions.testing`). Call it, or collect it with pytest."""
    from hypothesis import given

    @given(strategy)
    def test(d: Distribution) -> None:
        dtype = d.sample().dtype
        _shapes(d, dtype)

    return test


# --- manifolds -------------------------------------------------------------------------------
def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# --- declared capabilities -------------------------------------------------------------------
#: Relative tolerance of the exact (non-statistical) capability checks.
_EXACT = 1e-9
#: Relative tolerance of the small-time comparison of spreads on embedded coordinates.
_LOOSE = 0.05


def _probe_coordinates(m: LatentManifold, n: int = 16) -> Tensor:
    """``n`` float64 prior draws (fixed seed): where the declarations are checked."""
    return m.sample_prior(n, torch.Generator().manual_seed(0), torch.float64)


def _pulled_back_metric(m: LatentManifold, coords: Tensor) -> Tensor:
    r""":math:`g = J^\top J`, ``(n, dim, dim)``, for coordinates ``(n, dim)``.

    The metric of the isometric embedding (which the ``geometry`` check asks for). :math:`J` by
    reverse mode, one pass per ambient coordinate (rows of ``to_point`` are independent, so the
    Jacobian of their sum over the batch holds every row's).
    """
    with torch.enable_grad():
        jac = torch.autograd.functional.jacobian(lambda c: m.to_point(c).sum(0), coords)
    jac = jac.movedim(1, 0)  # (n, ambient_dim, dim)
    return jac.transpose(-1, -2) @ jac


def _valid_radius(r: Any) -> bool:
    number = isinstance(r, (int, float)) and not isinstance(r, bool)
    return r is None or (number and math.isfinite(r) and r > 0)


def _check_angle_radii(m: LatentManifold) -> str:
    r"""``angle_radii``: each declared angle is :math:`2\pi`-periodic with metric :math:`r_i^2`.

    At 16 prior draws, to :data:`_EXACT` relative: ``to_point`` unchanged when angle coordinate
    :math:`i` moves by :math:`2\pi`; the pulled-back metric :math:`g = J^\top J` has
    :math:`g_{ii} = r_i^2` and :math:`g_{ij} = 0` (:math:`j \ne i`); when every coordinate is
    an angle, ``volume`` :math:`= \prod_i 2\pi r_i`.
    """
    radii = tuple(m.angle_radii)
    assert len(radii) == m.dim, f"angle_radii has {len(radii)} entries for dim {m.dim}"
    assert all(map(_valid_radius, radii)), f"angle_radii must be None or > 0, got {radii}"
    angles = [i for i, r in enumerate(radii) if r is not None]
    if not angles:
        return "no angle coordinate declared"
    z = _probe_coordinates(m)
    x = m.to_point(z)
    for i in angles:
        shifted = z.clone()
        shifted[:, i] += 2.0 * math.pi
        assert torch.allclose(m.to_point(shifted), x, rtol=_EXACT, atol=_EXACT), (
            f"angle_radii declares coordinate {i} an angle, but to_point is not 2 pi-periodic in it"
        )
    g = _pulled_back_metric(m, z)
    for i in angles:
        r2 = radii[i] ** 2
        along, across = g[:, i, i], torch.cat([g[:, i, :i], g[:, i, i + 1 :]], dim=-1)
        assert torch.allclose(along, torch.full_like(along, r2), rtol=_EXACT, atol=0.0), (
            f"angle_radii declares radius {radii[i]:.6g} for coordinate {i}, but the metric "
            f"along it is {along.tolist()[0]:.6g}, not radius^2 = {r2:.6g}"
        )
        assert bool((across.abs() <= _EXACT * r2).all()), (
            f"angle coordinate {i} is not orthogonal to the other coordinates (metric row "
            f"{g[0, i].tolist()})"
        )
    if len(angles) < m.dim:
        return f"radii {radii}: each angle 2 pi-periodic with metric r_i^2"
    volume = math.prod(2.0 * math.pi * r for r in radii)
    assert math.isclose(m.volume, volume, rel_tol=_EXACT), (
        f"every coordinate is declared an angle, but volume {m.volume:.6g} != prod 2 pi r_i = "
        f"{volume:.6g}"
    )
    return f"radii {radii}: 2 pi-periodic, metric diag(r_i^2), volume prod 2 pi r_i"


def _check_vector_space(m: LatentManifold) -> str:
    r"""``is_vector_space``: identity embedding, flat metric, every vector a point, :math:`N(0, I)`.

    At 16 prior draws and 16 wide normal vectors (scale 10), to :data:`_EXACT` relative.
    """
    if not m.is_vector_space:
        return "not declared"
    assert all(r is None for r in m.angle_radii), "a vector space declares no angle coordinate"
    assert m.ambient_dim == m.dim == m.intrinsic_dim, (
        f"a vector space has dim == ambient_dim == intrinsic_dim, got {m.dim}, "
        f"{m.ambient_dim}, {m.intrinsic_dim}"
    )
    assert math.isinf(m.volume), f"a vector space has infinite volume, got {m.volume}"
    g = torch.Generator().manual_seed(1)
    z = torch.cat([_probe_coordinates(m), 10.0 * torch.randn(16, m.dim, generator=g).double()])
    assert torch.allclose(m.to_point(z), z, rtol=_EXACT, atol=0.0), "to_point is not the identity"
    assert torch.allclose(m.to_coordinates(z), z, rtol=_EXACT, atol=0.0), (
        "to_coordinates is not the identity"
    )
    assert bool(m.point_support().check(z).all()), "some vectors are not points"
    a, b = z[:16], z[16:]
    flat = (a - b).norm(dim=-1)
    assert torch.allclose(m.distance(a, b), flat, rtol=_EXACT, atol=0.0), (
        "the metric is not flat: distance(a, b) != |a - b|"
    )
    standard = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_p = m.prior(dtype=torch.float64).log_prob(z)
    assert torch.allclose(log_p, standard, rtol=_EXACT, atol=_EXACT), "the prior is not N(0, I)"
    return "identity embedding, flat metric, all of R^d, prior N(0, I)"


def _spread_shapes(m: LatentManifold) -> None:
    for dtype in (torch.float32, torch.float64):
        q = m.posterior(torch.randn(5, 3, m.posterior_params, dtype=dtype))
        s = m.posterior_spread(q)
        assert tuple(s.shape) == (5, 3, m.dim), f"posterior_spread shape {tuple(s.shape)}"
        assert s.dtype == dtype, f"posterior_spread dtype {s.dtype} != {dtype}"
        assert bool((torch.isfinite(s) & (s > 0)).all()), f"spread not finite positive: {s}"


def _chart_spread(m: LatentManifold, samples: int) -> float:
    r"""Posteriors at random raw outputs, per coordinate, exact in law.

    Angle coordinates: :math:`E\cos(z_i - \mu_i) = e^{-s_i^2/2}` (circular standard deviation;
    exact for a wrapped normal of standard deviation :math:`s_i`); other coordinates:
    :math:`\operatorname{Var} z_i = s_i^2`.
    """
    q = m.posterior(torch.randn(4, m.posterior_params, dtype=torch.float64))
    s, loc = m.posterior_spread(q), m.posterior_location(q)
    with torch.no_grad():
        z = q.sample(torch.Size([samples]))
    angle = torch.tensor([r is not None for r in m.angle_radii])
    centred = z - z.mean(0)
    stat = torch.where(angle, torch.cos(z - loc), centred**2 * samples / (samples - 1))
    expected = torch.where(angle, torch.exp(-0.5 * s**2), s**2)
    mean, se = _mean_se(stat)
    return _z_compare("posterior_spread vs the posterior's samples", mean, expected, se, 1e-9)


def _embedded_spread(m: LatentManifold, samples: int, time: float = 1e-3) -> float:
    r"""Heat kernels at a small intrinsic time :math:`t`, where :math:`E\,d(x, y)^2 \approx
    n\,\overline{(s_i r_i)^2}` (intrinsic dimension :math:`n`; :math:`r_i` the radius of an angle
    coordinate, 1 otherwise), to :data:`_LOOSE` relative plus Monte Carlo error."""
    loc = m.to_coordinates(m.to_point(_probe_coordinates(m, 4)))
    q = m.coordinate_heat_kernel(loc, torch.full((4,), time, dtype=torch.float64))
    scale = torch.tensor([1.0 if r is None else r for r in m.angle_radii], dtype=torch.float64)
    expected = m.intrinsic_dim * (m.posterior_spread(q) * scale).square().mean(-1)
    with torch.no_grad():
        y = q.sample(torch.Size([samples]))
    mean, se = _mean_se(m.distance(m.to_point(y), m.to_point(loc)) ** 2)
    name = "posterior_spread of a heat kernel vs E d^2 of its samples"
    return _z_compare(name, mean, expected, se, _LOOSE * float(expected.max()))


def _check_posterior_spread(m: LatentManifold, samples: int) -> str:
    """``posterior_spread``: shape ``(*batch, dim)``, finite, positive, and what samples show.

    Chart coordinates (``dim == intrinsic_dim``): :func:`_chart_spread`; embedded ones (the
    sphere's unit vectors): :func:`_embedded_spread`.
    """
    if not m.has_posterior_spread:
        return "not declared"
    _spread_shapes(m)
    if m.dim == m.intrinsic_dim:
        z = _chart_spread(m, samples)
        return f"(*batch, dim), positive; per-coordinate spread of samples within {z:.2f} se"
    z = _embedded_spread(m, samples)
    return f"(*batch, dim), positive; small-time E d^2 within {z:.2f} se (+5%)"


#: Rounding tolerance of the ``reparameterize`` check (float64): agreement with ``rsample`` to
#: ``REPARAMETERIZE_TOL * (1 + |value|)`` per entry, of the coordinates or of the embedded
#: points (so that an angle wrapped to ``-pi`` by one and ``pi`` by the other agrees), allows
#: another but equally exact wrapping (``torch.remainder``: differences of about 2e-16).
REPARAMETERIZE_TOL = 1e-12


def _largest_difference(a: Tensor, b: Tensor) -> tuple[float, bool]:
    """The largest ``|a - b|`` and whether every entry is within the rounding tolerance."""
    if a.shape != b.shape:
        return math.inf, False
    difference = (a - b).abs()
    ok = bool((difference <= REPARAMETERIZE_TOL * (1 + b.abs())).all())
    return float(difference.max()) if difference.numel() else 0.0, ok


def _compare_reparameterized(m: LatentManifold, z: Tensor, expected: Tensor) -> str:
    """Assert that ``reparameterize``'s ``z`` is ``rsample``'s ``expected`` up to rounding."""
    coordinates, same = _largest_difference(z, expected)
    if same:
        return f"reproduces rsample: largest coordinate difference {coordinates:.3g}"
    points, same = _largest_difference(m.to_point(z), m.to_point(expected))
    assert same, (
        f"reparameterize(noise) != rsample with that noise: largest difference "
        f"{coordinates:.3g} in coordinates, {points:.3g} in embedded points (tolerance "
        f"{REPARAMETERIZE_TOL:g} * (1 + |value|))"
    )
    return f"reproduces rsample: largest difference {points:.3g} in embedded points"


def manifold_checks(
    manifold: LatentManifold, *, samples: int = 4000, seed: int = 0
) -> dict[str, CheckFunction]:
    r"""Named checks of a :class:`~manifold_vae.manifolds.LatentManifold`.

    ``attributes``, ``spec`` (registered and rebuilt by name), ``coordinates`` (round trip,
    support), ``geometry`` (``exp``, ``distance``, ``to_tangent``), ``prior`` (shapes, dtypes,
    uniform with density ``1 / volume`` on compact manifolds, normalised), ``prior-sampler``
    (``sample_prior`` with a private generator), ``heat-kernel`` (normalised over the
    Riemannian volume, sampler against density), ``time-convention``
    (:math:`E\,d(x, y)^2 = 2 n t + O(t^2)`: :math:`\partial_t p = \Delta p`),
    ``posterior`` (shapes, support, gradients to every raw output, KL), ``kl`` (against a Monte
    Carlo estimate), ``reparameterize`` (the contract, or the documented
    ``NotImplementedError``), ``validation`` (wrong raw sizes raise ``ValueError``),
    ``extreme-parameters`` (very large and very negative raw outputs stay finite), and the
    declared capabilities that plots, evaluation and harmonic spectra dispatch on:
    ``angle-radii`` (each declared angle coordinate makes ``to_point`` :math:`2\pi`-periodic
    with metric :math:`r_i^2` along it, orthogonal to the others; ``volume`` :math:`=
    \prod_i 2\pi r_i` when all coordinates are angles), ``vector-space`` (a declared vector
    space has the identity embedding, the flat metric, every vector as a point and the prior
    :math:`N(0, I)`) and ``posterior-spread`` (shape ``(*batch, dim)``, finite, positive, and
    the spread of the posterior's samples: per coordinate, the circular standard deviation
    :math:`E\cos(z_i - \mu_i) = e^{-s_i^2/2}` of an angle, the standard deviation of any other
    coordinate; on embedded coordinates :math:`E\,d^2 \approx n\,\overline{(s_i r_i)^2}` of a
    heat kernel at a small time, to 5%). A capability that is not declared passes (``not
    declared``): the code that needs it raises ``ValueError`` naming it.

    Parameters
    ----------
    manifold : LatentManifold
        The manifold under test.
    samples : int
        Monte Carlo sample size of each statistical check.
    seed : int
        Seed of each check (in a forked RNG).
    """
    m = manifold
    dtypes = (torch.float32, torch.float64)
    compact = math.isfinite(m.volume)

    def coords(n: int, dtype: torch.dtype = torch.float64, seed_: int = 0) -> Tensor:
        return m.sample_prior(n, torch.Generator().manual_seed(seed_), dtype)

    def wide_reference(loc: Tensor) -> Distribution:
        if compact:
            return m.prior(dtype=loc.dtype)
        return m.coordinate_heat_kernel(loc, torch.tensor(4.0, dtype=loc.dtype))

    def attributes() -> str:
        for key in ("dim", "ambient_dim", "posterior_params", "intrinsic_dim"):
            assert _positive_int(getattr(m, key, None)), f"{key} must be a positive integer"
        assert m.intrinsic_dim <= m.dim, "intrinsic_dim must not exceed dim"
        assert m.volume > 0, f"volume must be positive, got {m.volume}"
        return f"dim {m.dim}, intrinsic {m.intrinsic_dim}, ambient {m.ambient_dim}"

    def spec() -> str:
        name = getattr(type(m), "name", None)
        assert registered_manifolds().get(name) is type(m), (
            f"{type(m).__name__} is not registered: decorate it with @register_manifold"
        )
        rebuilt = manifold_from_spec(json.loads(json.dumps(m.spec())))
        assert rebuilt == m and repr(rebuilt) == repr(m), f"spec rebuilds {rebuilt!r}"
        return f"rebuilt from {m.spec()}"

    def coordinates() -> str:
        for dtype in dtypes:
            z = coords(50, dtype)
            assert tuple(z.shape) == (50, m.dim) and z.dtype == dtype, "sample_prior shape/dtype"
            x = m.to_point(z)
            assert tuple(x.shape) == (50, m.ambient_dim), f"to_point shape {tuple(x.shape)}"
            assert bool(m.point_support().check(x).all()), "to_point leaves the point support"
            back = m.to_point(m.to_coordinates(x))
            tol = 1e-5 if dtype == torch.float32 else 1e-10
            assert bool(((back - x).abs() <= tol * (1 + x.abs())).all()), "coordinate round trip"
        return "round trip and support in float32 and float64"

    def geometry() -> str:
        x = m.to_point(coords(40))
        v = m.to_tangent(1e-3 * torch.randn(40, m.ambient_dim, dtype=torch.float64), x)
        y = m.exp(v, x)
        assert bool(m.point_support().check(y).all()), "exp leaves the manifold"
        d = m.distance(x, y)
        assert bool(((d - v.norm(dim=-1)).abs() <= 1e-6 * (1e-3 + v.norm(dim=-1))).all()), (
            "distance(x, exp_x(v)) != |v| for small tangent v"
        )
        assert bool((m.distance(x, x).abs() <= 1e-6).all()), "distance(x, x) != 0"
        assert bool(((m.exp(torch.zeros_like(x), x) - x).abs() <= 1e-12).all()), "exp_x(0) != x"
        return "exp, to_tangent and distance consistent"

    def prior() -> str:
        for dtype in dtypes:
            p = m.prior(dtype=dtype)
            assert tuple(p.event_shape) == (m.dim,) and tuple(p.batch_shape) == (), "prior shapes"
            _shapes(p, dtype)
        p = m.prior(dtype=torch.float64)
        if compact:
            z = coords(200)
            on_points = PointDistribution(m, p).log_prob(m.to_point(z))
            expected = torch.full_like(on_points, -math.log(m.volume))
            assert bool(((on_points - expected).abs() <= 1e-9).all()), (
                f"the prior on a compact manifold must be uniform, density 1 / {m.volume:.6g}"
            )
            return "uniform with density 1 / volume"
        loc = m.to_coordinates(m.to_point(coords(1)[0]))
        return _normalisation(p, wide_reference(loc), samples)

    def prior_sampler() -> str:
        a = coords(500, seed_=3)
        assert torch.equal(a, coords(500, seed_=3)), "sample_prior is not reproducible"
        p = m.prior(dtype=torch.float64)
        # moments of the points (each coordinate, its square, sin and cos), not only the mean
        mean_a, se_a = _mean_se(_functions(m.to_point(a), 1))
        with torch.no_grad():
            b = p.sample(torch.Size([samples]))
        mean_b, se_b = _mean_se(_functions(m.to_point(b), 1))
        se = (se_a**2 + se_b**2).sqrt()
        z = _z_compare("sample_prior vs prior.sample", mean_a, mean_b, se, 1e-9)
        return f"private-generator draws match the prior within {z:.2f} standard errors"

    def heat_kernel() -> str:
        loc = m.to_coordinates(m.to_point(coords(1, seed_=5)[0]))
        messages = []
        for time in (0.05, 0.5):
            q = m.coordinate_heat_kernel(loc, torch.tensor(time, dtype=torch.float64))
            messages.append(_normalisation(q, wide_reference(loc), samples))
            messages.append(_goodness_of_fit(q, wide_reference(loc), samples))
        return "; ".join(messages)

    def time_convention() -> str:
        loc = m.to_point(coords(1, seed_=6)[0])
        t = 1e-3
        kernel = m.heat_kernel(loc, t)
        with torch.no_grad():
            y = kernel.sample(torch.Size([samples]))
        d2 = m.distance(y, loc) ** 2
        mean, se = _mean_se(d2)
        expected = torch.tensor(2.0 * m.intrinsic_dim * t, dtype=mean.dtype)
        z = _z_compare("E d(x, y)^2 at t = 1e-3 vs 2 n t", mean, expected, se, 0.02 * expected)
        return f"E d^2 = {mean.item():.4g} ~ 2 n t = {expected.item():.4g} (z {z:.2f})"

    def posterior() -> str:
        for dtype in dtypes:
            raw = torch.randn(5, 3, m.posterior_params, dtype=dtype, requires_grad=True)
            q = m.posterior(raw)
            assert tuple(q.batch_shape) == (5, 3) and tuple(q.event_shape) == (m.dim,), (
                "posterior shapes"
            )
            assert q.has_rsample, "the posterior needs rsample (reparameterised sampling)"
            z = q.rsample(torch.Size([2]))
            assert tuple(z.shape) == (2, 5, 3, m.dim) and z.dtype == dtype, "rsample shape"
            assert bool(q.support.check(z).all()), "posterior samples outside its support"
            loc = m.posterior_location(q)
            assert tuple(loc.shape) == (5, 3, m.dim), "posterior_location shape"
            assert bool(torch.isfinite(q.log_prob(z)).all()), "posterior log_prob not finite"
            weights = torch.linspace(0.5, 1.5, m.ambient_dim, dtype=dtype)
            (grad,) = torch.autograd.grad((m.to_point(z) * weights).sum(), raw)
            assert bool(torch.isfinite(grad).all()), "non-finite gradients to the raw outputs"
            reached = (grad != 0).flatten(0, -2).any(0)
            assert bool(reached.all()), f"some raw output gets no gradient: {reached.tolist()}"
        return "shapes, support, finite log_prob and gradients in float32 and float64"

    def kl() -> str:
        raw = torch.randn(4, m.posterior_params, dtype=torch.float64)
        q = m.posterior(raw)
        return _kl_against_monte_carlo(q, m.prior(dtype=torch.float64), samples)

    def reparameterize() -> str:
        raw = torch.randn(3, m.posterior_params, dtype=torch.float64)
        q = m.posterior(raw)
        generator = torch.Generator().manual_seed(11)
        noise = torch.randn((2, 3, m.dim), generator=generator, dtype=torch.float64)
        try:
            z = m.reparameterize(q, noise)
        except NotImplementedError as error:
            assert "reparameterize" in str(error), "the NotImplementedError must say what"
            return "not implemented: fit works, fit_ensemble does not"
        torch.manual_seed(11)
        expected = q.rsample(torch.Size([2]))
        return _compare_reparameterized(m, z, expected)

    def validation() -> str:
        for change in (-1, 1):
            try:
                m.posterior(torch.zeros(4, m.posterior_params + change))
            except ValueError:
                continue
            raise AssertionError(
                f"posterior accepted raw outputs of size {m.posterior_params + change}"
            )
        return "wrong raw sizes raise ValueError"

    def extremes() -> str:
        count = 0
        for dtype in dtypes:
            for value in (-1e30, -1e4, -30.0, 30.0, 1e4):
                raw = torch.full((4, m.posterior_params), value, dtype=dtype)
                raw[:, 0] = 1.0
                q = m.posterior(raw)
                z = q.rsample()
                assert bool(torch.isfinite(z).all()), f"non-finite samples at raw {value}"
                assert bool(torch.isfinite(q.log_prob(z)).all()), f"log_prob at raw {value}"
                try:
                    kl_value = kl_divergence(q, m.prior(dtype=dtype).expand(q.batch_shape))
                except NotImplementedError:
                    kl_value = torch.zeros(())
                # a KL may overflow to +inf when its true value does (e.g. a location of
                # -1e30 against N(0, 1) in float32), but never be nan or negative
                ok = ~torch.isnan(kl_value) & (kl_value >= -1e-6)
                assert bool(ok.all()), f"KL nan or negative at raw {value}: {kl_value}"
                count += 1
        return f"{count} extreme raw outputs: finite samples and log_prob, KL >= 0"

    named = [
        ("attributes", attributes),
        ("spec", spec),
        ("coordinates", coordinates),
        ("geometry", geometry),
        ("prior", prior),
        ("prior-sampler", prior_sampler),
        ("heat-kernel", heat_kernel),
        ("time-convention", time_convention),
        ("posterior", posterior),
        ("kl", kl),
        ("reparameterize", reparameterize),
        ("validation", validation),
        ("extreme-parameters", extremes),
        ("angle-radii", lambda: _check_angle_radii(m)),
        ("vector-space", lambda: _check_vector_space(m)),
        ("posterior-spread", lambda: _check_posterior_spread(m, samples)),
    ]
    return {name: _seeded(seed, fn) for name, fn in named}


def check_manifold(
    manifold: LatentManifold, *, raise_on_failure: bool = True, **options: Any
) -> ConformanceReport:
    """Run :func:`manifold_checks`; raise ``AssertionError`` naming any failure."""
    return _run(repr(manifold), manifold_checks(manifold, **options), raise_on_failure)
