"""The latent-manifold protocol: geometry against geomstats, priors, posteriors, heat kernels.

Generic tests loop over ``registry.MANIFOLDS``; a user-defined manifold (a circle of radius 2
written against the public protocol only) checks that the protocol is enough for the VAE.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pyro.distributions as dist
import pytest
import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, kl_divergence

from distributions import CircleHeatKernel, TorusHeatKernel
from manifold_vae.datasets import sinusoids
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import (
    Circle,
    CliffordTorus,
    Euclidean,
    FixedTime,
    FlatTorus,
    LatentManifold,
    PointDistribution,
    Product,
    Sphere,
    base,
    manifold_from_spec,
    register_manifold,
    registered_manifolds,
)
from manifold_vae.vae import VAE

from .registry import (
    ALL_MANIFOLDS,
    MANIFOLDS,
    ScaledCircle,
    coordinate_grid,
    default_dtype,
    ids,
    is_compact,
    radius,
    random_coordinates,
)

GRID = {1: 512, 2: 160, 3: 40}  # grid points per dimension, by intrinsic dimension


@pytest.fixture
def isolated_registry(monkeypatch):
    """A private copy of the manifold registry, so that test registrations do not leak."""
    monkeypatch.setattr(base.MANIFOLDS, "_entries", base.MANIFOLDS.as_dict())


ALL = [*MANIFOLDS, ScaledCircle()]
parametrize_manifolds = pytest.mark.parametrize("m", MANIFOLDS, ids=ids(MANIFOLDS))
parametrize_all = pytest.mark.parametrize("m", ALL, ids=ids(ALL))
COMPACT = [m for m in ALL if is_compact(m)]
parametrize_compact = pytest.mark.parametrize("m", COMPACT, ids=ids(COMPACT))

# geomstats 2.8's ProductManifold passes a tensor to numpy.array(copy=False)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _angle_difference(a: Tensor, b: Tensor) -> Tensor:
    return torch.remainder(a - b + math.pi, 2.0 * math.pi) - math.pi


# --- the registry ----------------------------------------------------------------------------
def test_every_registered_manifold_has_an_instance_in_the_registry():
    listed = {type(m) for m in ALL_MANIFOLDS}
    missing = [name for name, cls in registered_manifolds().items() if cls not in listed]
    assert not missing, (
        f"registered manifolds missing from tests/manifold_vae/registry.py: {missing}"
    )


@parametrize_manifolds
def test_spec_round_trip(m):
    spec = json.loads(json.dumps(m.spec()))
    rebuilt = manifold_from_spec(spec)
    assert type(rebuilt) is type(m) and rebuilt == m and repr(rebuilt) == repr(m)
    assert (rebuilt.dim, rebuilt.ambient_dim, rebuilt.posterior_params) == (
        m.dim,
        m.ambient_dim,
        m.posterior_params,
    )


def test_specs_distinguish_parameters():
    assert FlatTorus(2) != FlatTorus(3) and Euclidean(1) != Euclidean(2)
    assert manifold_from_spec(FlatTorus(3).spec()).dim == 3
    assert Circle() != FlatTorus(1) and FlatTorus(2) != CliffordTorus()


@pytest.mark.parametrize("spec", [{"name": "no-such-manifold"}, {}, None, "circle"])
def test_unknown_spec_raises(spec):
    with pytest.raises(ValueError, match="unknown manifold spec"):
        manifold_from_spec(spec)


def test_register_rejects_a_duplicate_name(isolated_registry):
    class OtherCircle(ScaledCircle):
        name = "circle"

    with pytest.raises(ValueError, match="'circle' is already registered"):
        register_manifold(OtherCircle)
    assert registered_manifolds()["circle"] is Circle


@pytest.mark.parametrize(
    "attributes", [{}, {"name": ""}, {"name": 3}], ids=["none", "empty", "int"]
)
def test_register_rejects_a_missing_name(isolated_registry, attributes):
    cls = type("Nameless", (LatentManifold,), attributes)
    with pytest.raises(ValueError, match="Nameless needs a non-empty class attribute 'name'"):
        register_manifold(cls)


def test_register_is_idempotent_and_enables_specs(isolated_registry):
    assert register_manifold(ScaledCircle) is ScaledCircle
    assert register_manifold(ScaledCircle) is ScaledCircle
    assert manifold_from_spec(ScaledCircle(3.0).spec()) == ScaledCircle(3.0)


@pytest.mark.parametrize(
    "make",
    [lambda: Euclidean(0), lambda: Euclidean(True), lambda: FlatTorus(0), lambda: FlatTorus(2.0)],
)
def test_bad_constructor_arguments_raise(make):
    with pytest.raises(ValueError, match="positive integer"):
        make()


# --- coordinates and points ------------------------------------------------------------------
@parametrize_all
def test_coordinates_round_trip(m):
    coords = random_coordinates(m, (7, 3), _generator())
    point = m.to_point(coords)
    assert point.shape == (7, 3, m.ambient_dim)
    torch.testing.assert_close(m.to_coordinates(point), coords, rtol=0, atol=1e-12)
    torch.testing.assert_close(m.to_point(m.to_coordinates(point)), point, rtol=0, atol=1e-12)


@parametrize_all
def test_to_point_lands_in_the_support_and_on_the_geomstats_manifold(m):
    coords = random_coordinates(m, (50,), _generator(1))
    point = m.to_point(coords)
    assert m.point_support().check(point).all()
    assert m.point_support().check(point.float()).all()
    with default_dtype(torch.float64):
        # geomstats represents each circle factor by unit vectors
        assert m.space.belongs(point.double() / radius(m)).all()
    if is_compact(m):  # points off the circles are not in the support
        assert not m.point_support().check(1.1 * point).any()


@parametrize_compact
def test_to_coordinates_projects_ambient_vectors(m):
    coords = random_coordinates(m, (20,), _generator(2))
    scaled = m.to_point(coords) * 3.7  # off the manifold, same directions
    torch.testing.assert_close(m.to_coordinates(scaled), coords, rtol=0, atol=1e-12)


@parametrize_all
def test_intrinsic_dimension_matches_geomstats(m):
    assert m.dim == m.space.dim
    assert m.to_point(torch.zeros(m.dim)).shape == (m.ambient_dim,)


@pytest.mark.parametrize(
    ("m", "volume"),
    [
        (Circle(), 2 * math.pi),
        (FlatTorus(2), (2 * math.pi) ** 2),
        (FlatTorus(3), (2 * math.pi) ** 3),
        (CliffordTorus(), 2 * math.pi**2),
        (Euclidean(1), math.inf),
        (Euclidean(2), math.inf),
        (ScaledCircle(2.0), 4 * math.pi),
    ],
    ids=repr,
)
def test_volume(m, volume):
    assert m.volume == pytest.approx(volume, rel=1e-14)
    if is_compact(m):  # the volume is the integral of sqrt(det g) over the coordinates
        coords, cell = coordinate_grid(m, GRID[m.dim])
        total = m.log_volume_density(coords).exp().sum() * cell
        assert total.item() == pytest.approx(volume, rel=1e-12)


def test_clifford_torus_lies_on_the_unit_three_sphere():
    m = CliffordTorus()
    point = m.to_point(random_coordinates(m, (100,), _generator(3)))
    torch.testing.assert_close(point.norm(dim=-1), torch.ones(100, dtype=torch.float64))
    torch.testing.assert_close(
        point[..., :2].norm(dim=-1), torch.full((100,), 0.5**0.5, dtype=torch.float64)
    )


@parametrize_all
def test_geomstats_distance_agrees_with_the_metric(m):
    """Circle products: ``dist = sqrt(sum_i (r * angle difference_i)^2)``; R^d: Euclidean."""
    a = random_coordinates(m, (40,), _generator(4))
    b = random_coordinates(m, (40,), _generator(5))
    if is_compact(m):
        expected = (radius(m) * _angle_difference(a, b)).pow(2).sum(-1).sqrt()
    else:
        expected = (a - b).norm(dim=-1)
    r = radius(m)
    with default_dtype(torch.float64):
        distance = m.space.metric.dist(m.to_point(a) / r, m.to_point(b) / r)
    torch.testing.assert_close(distance, expected, rtol=1e-6, atol=1e-6)


def test_clifford_distance_uses_radius_one_over_sqrt2():
    """Quarter turn in one factor: arc length (pi/2)/sqrt2 (a unit circle would give pi/2)."""
    m = CliffordTorus()
    a = torch.zeros(2, dtype=torch.float64)
    b = torch.tensor([math.pi / 2, 0.0], dtype=torch.float64)
    r = radius(m)
    with default_dtype(torch.float64):
        distance = m.space.metric.dist(m.to_point(a) / r, m.to_point(b) / r)
    assert distance.item() == pytest.approx(math.pi / 2 / math.sqrt(2), rel=1e-7)


@parametrize_all
def test_geomstats_access_keeps_the_default_dtype(m):
    for dtype in (torch.float32, torch.float64):
        with default_dtype(dtype):
            fresh = manifold_from_spec(m.spec()) if type(m) is not ScaledCircle else ScaledCircle()
            fresh.space.belongs(fresh.to_point(torch.zeros(m.dim)) / radius(m))
            assert torch.get_default_dtype() == dtype


def test_first_geomstats_use_through_space_keeps_the_default_dtype():
    """In a fresh interpreter, where ``.space`` is what imports geomstats."""
    code = (
        "import torch, sys\n"
        "from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean, FlatTorus\n"
        "assert 'geomstats' not in sys.modules\n"
        "for m in [Circle(), FlatTorus(3), CliffordTorus(), Euclidean(2)]:\n"
        "    m.space.dim\n"
        "    assert torch.get_default_dtype() == torch.float32, (m, torch.get_default_dtype())\n"
        "assert 'geomstats' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# --- prior -----------------------------------------------------------------------------------
@parametrize_all
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prior_shapes_and_dtype(m, dtype):
    prior = m.prior(dtype=dtype)
    assert prior.event_shape == (m.dim,) and prior.batch_shape == ()
    sample = prior.sample(torch.Size([1000]))
    assert sample.shape == (1000, m.dim) and sample.dtype == dtype
    assert prior.support.check(sample).all()
    assert prior.log_prob(sample).shape == (1000,)
    assert prior.expand(torch.Size([4, 3])).sample().shape == (4, 3, m.dim)


@parametrize_all
def test_prior_log_prob_is_normalised(m):
    prior = m.prior(dtype=torch.float64)
    coords, cell = coordinate_grid(m, GRID[m.dim])
    total = prior.log_prob(coords).exp().sum() * cell
    assert total.item() == pytest.approx(1.0, abs=1e-10)
    if is_compact(m):
        # uniform: density (2 pi)^-n in the angles, 1 / volume w.r.t. the Riemannian volume
        uniform = torch.full_like(coords[:, 0], -m.dim * math.log(2 * math.pi))
        torch.testing.assert_close(prior.log_prob(coords), uniform)
        on_points = PointDistribution(m, prior).log_prob(m.to_point(coords[:10]))
        torch.testing.assert_close(on_points, torch.full_like(uniform[:10], -math.log(m.volume)))
    else:
        torch.testing.assert_close(
            prior.log_prob(coords), dist.Normal(0.0, 1.0).log_prob(coords).sum(-1)
        )


@parametrize_all
def test_prior_samples_have_the_right_moments(m):
    torch.manual_seed(1)
    sample = m.prior(dtype=torch.float64).sample(torch.Size([40000]))
    if is_compact(m):  # uniform angles: E cos = E sin = 0, E theta^2 = pi^2 / 3
        for moment in (sample.cos().mean(0), sample.sin().mean(0)):
            assert moment.abs().max() < 5 * (0.5 / 40000) ** 0.5
        assert (sample.pow(2).mean(0) - math.pi**2 / 3).abs().max() < 0.05
    else:
        assert sample.mean(0).abs().max() < 5 / 40000**0.5
        assert (sample.var(0) - 1).abs().max() < 0.05


# --- posterior -------------------------------------------------------------------------------
def _spread(posterior: Distribution) -> Tensor:
    """The positive scale parameters of a posterior: times on circles, std on R^d."""
    if isinstance(posterior, TorusHeatKernel):
        return posterior.time
    assert isinstance(posterior, Independent)
    return posterior.base_dist.scale


@parametrize_all
def test_posterior_shapes(m):
    raw = torch.randn(5, 3, m.posterior_params)
    posterior = m.posterior(raw)
    assert posterior.batch_shape == (5, 3) and posterior.event_shape == (m.dim,)
    assert posterior.has_rsample
    z = posterior.rsample(torch.Size([2]))
    assert z.shape == (2, 5, 3, m.dim)
    assert posterior.log_prob(z).shape == (2, 5, 3)
    assert m.posterior_location(posterior).shape == (5, 3, m.dim)
    assert _spread(posterior).shape == (5, 3, m.dim)
    kl = kl_divergence(posterior, m.prior().expand(posterior.batch_shape))
    assert kl.shape == (5, 3) and (kl >= 0).all()


@parametrize_manifolds
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("batch", [(7,), (3, 5)], ids=["batch-N", "batch-MxN"])
def test_reparameterize_reproduces_rsample_bitwise(m, dtype, batch):
    """The contract: rsample from a seeded RNG == reparameterize(noise drawn alike)."""
    raw = torch.randn(*batch, m.posterior_params, dtype=dtype, generator=_generator(4))
    raw.requires_grad_(True)
    posterior = m.posterior(raw)
    sample_shape = torch.Size([2])
    torch.manual_seed(11)
    expected = posterior.rsample(sample_shape)
    generator = torch.Generator().manual_seed(11)
    noise = torch.randn(sample_shape + batch + (m.dim,), generator=generator, dtype=dtype)
    z = m.reparameterize(posterior, noise)
    assert z.shape == expected.shape and z.dtype == dtype
    assert torch.equal(z, expected)
    (grad,) = torch.autograd.grad(z.sin().sum(), raw, retain_graph=True)
    (expected_grad,) = torch.autograd.grad(expected.sin().sum(), raw)
    assert torch.equal(grad, expected_grad) and grad.abs().sum() > 0


def test_reparameterize_is_optional_and_says_what_to_implement():
    m = ScaledCircle()
    posterior = m.posterior(torch.randn(4, 3))
    with pytest.raises(NotImplementedError, match=r"reparameterize\(posterior, noise\)"):
        m.reparameterize(posterior, torch.randn(4, 1))


@parametrize_all
@pytest.mark.parametrize("size_change", [-1, 1])
def test_posterior_rejects_a_wrong_raw_size(m, size_change):
    with pytest.raises(ValueError, match="last dimension"):
        m.posterior(torch.zeros(4, m.posterior_params + size_change))


@parametrize_all
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value", [-30.0, -1e4, -1e30])
def test_posterior_spread_is_positive_for_very_negative_raw(m, dtype, value):
    raw = torch.full((4, m.posterior_params), value, dtype=dtype)
    raw[:, 0] = 1.0  # a well-defined location on circles
    posterior = m.posterior(raw)
    assert (_spread(posterior) > 0).all()
    assert torch.isfinite(posterior.rsample()).all()


@parametrize_all
def test_gradients_flow_from_posterior_samples_to_raw(m):
    raw = torch.randn(6, m.posterior_params, dtype=torch.float64, generator=_generator(6))
    raw.requires_grad_(True)
    z = m.posterior(raw).rsample()
    (m.to_point(z) * torch.linspace(0.5, 1.5, m.ambient_dim).double()).sum().backward()
    assert torch.isfinite(raw.grad).all()
    assert (raw.grad != 0).all(), "every raw output (locations and spreads) should get a gradient"


def test_euclidean_posterior_is_the_thesis_diagonal_gaussian():
    """Raw ``(mu, log sigma^2)`` (thesis Eq. 4.4)."""
    raw = torch.tensor([[0.5, -1.0, math.log(0.25), math.log(4.0)]], dtype=torch.float64)
    posterior = Euclidean(2).posterior(raw)
    torch.testing.assert_close(posterior.mean, raw[:, :2])
    torch.testing.assert_close(posterior.variance, torch.tensor([[0.25, 4.0]]).double())


def test_torus_posteriors_have_one_time_per_factor():
    """Thesis Eq. 11.8: one ``(mu_i, t_i)`` per circle factor."""
    raw = torch.tensor([[1.0, 0.0, 0.0, 1.0, -2.0, 0.5]])
    posterior = CliffordTorus().posterior(raw)
    torch.testing.assert_close(posterior.loc, torch.tensor([[0.0, math.pi / 2]]))
    expected = torch.nn.functional.softplus(torch.tensor([[-2.0, 0.5]])) + 1e-6
    torch.testing.assert_close(posterior.time, expected)


# --- heat kernel -----------------------------------------------------------------------------
@parametrize_all
def test_heat_kernel_is_a_distribution_over_points(m):
    loc = m.to_point(random_coordinates(m, (4,), _generator(7), dtype=torch.float32))
    time = torch.tensor([0.05, 0.3, 1.0, 3.0])
    kernel = m.heat_kernel(loc, time)
    assert isinstance(kernel, PointDistribution)
    assert kernel.batch_shape == (4,) and kernel.event_shape == (m.ambient_dim,)
    sample = kernel.sample(torch.Size([500]))
    assert sample.shape == (500, 4, m.ambient_dim)
    assert kernel.support.check(sample).all() and m.point_support().check(sample).all()
    assert torch.isfinite(kernel.log_prob(sample)).all()
    assert kernel.expand(torch.Size([2, 4])).sample().shape == (2, 4, m.ambient_dim)
    assert m.heat_kernel(loc[0], 0.5).batch_shape == ()


@parametrize_all
@pytest.mark.parametrize("time", [0.05, 0.3, 2.0])
def test_heat_kernel_is_normalised_for_the_riemannian_volume(m, time):
    coords, cell = coordinate_grid(m, GRID[m.dim])
    loc = m.to_point(random_coordinates(m, (), _generator(8)) * 0.5)
    density = m.heat_kernel(loc, time).log_prob(m.to_point(coords)).exp()
    total = (density * m.log_volume_density(coords).exp()).sum() * cell
    assert total.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("time", [0.01, 0.3, 2.0])
def test_circle_heat_kernel_integrates_to_one_over_arc_length(time):
    m = Circle()
    theta, step = coordinate_grid(m, 4096)
    density = m.heat_kernel(m.to_point(torch.tensor([0.3], dtype=torch.float64)), time)
    assert (density.log_prob(m.to_point(theta)).exp().sum() * step).item() == pytest.approx(
        1.0, abs=1e-9
    )


@pytest.mark.parametrize("time", [0.01, 0.3, 2.0])
def test_clifford_heat_kernel_integrates_to_one_over_its_area(time):
    """Area element ``da db / 2`` (total area 2 pi^2)."""
    m = CliffordTorus()
    coords, cell = coordinate_grid(m, 400)
    loc = m.to_point(torch.tensor([0.3, -2.0], dtype=torch.float64))
    density = m.heat_kernel(loc, time).log_prob(m.to_point(coords)).exp()
    assert (density.sum() * cell / 2).item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("time", [0.01, 0.3, 2.0])
def test_clifford_heat_kernel_is_twice_the_product_of_circle_kernels_at_twice_the_time(time):
    m = CliffordTorus()
    loc = torch.tensor([0.3, -2.0], dtype=torch.float64)
    angles = random_coordinates(m, (200,), _generator(9))
    log_p = m.heat_kernel(m.to_point(loc), time).log_prob(m.to_point(angles))
    circle = CircleHeatKernel(loc, torch.tensor(2 * time, dtype=torch.float64))
    torch.testing.assert_close(log_p, circle.log_prob(angles).sum(-1) + math.log(2.0))


@pytest.mark.parametrize("time", [0.01, 0.3, 2.0])
def test_scaled_circle_heat_kernel_is_the_unit_kernel_at_time_over_radius_squared(time):
    m = ScaledCircle(2.0)
    angles = random_coordinates(m, (100,), _generator(10))
    log_p = m.heat_kernel(m.to_point(torch.tensor([1.0]).double()), time).log_prob(
        m.to_point(angles)
    )
    unit = CircleHeatKernel(torch.tensor(1.0).double(), torch.tensor(time / 4).double())
    torch.testing.assert_close(log_p, unit.log_prob(angles[:, 0]) - math.log(2.0))


@pytest.mark.parametrize("m", [Euclidean(1), Euclidean(2)], ids=repr)
@pytest.mark.parametrize("time", [0.1, 1.5])
def test_euclidean_heat_kernel_has_variance_two_t(m, time):
    loc = torch.linspace(-1.0, 2.0, m.dim, dtype=torch.float64)
    kernel = m.heat_kernel(loc, time)
    torch.manual_seed(2)
    sample = kernel.sample(torch.Size([50000]))
    assert (sample.mean(0) - loc).abs().max() < 5 * (2 * time / 50000) ** 0.5
    assert (sample.var(0) / (2 * time) - 1).abs().max() < 5 * (2 / 50000) ** 0.5
    x = random_coordinates(m, (30,), _generator(11))
    expected = dist.Normal(loc, math.sqrt(2 * time)).log_prob(x).sum(-1)
    torch.testing.assert_close(kernel.log_prob(x), expected)


@parametrize_compact
@pytest.mark.parametrize("time", [0.1, 0.7])
def test_heat_kernel_cosine_moment(m, time):
    """On circles of radius r: ``E cos(angle - loc) = exp(-t / r^2)`` per factor."""
    r = radius(m)
    loc_angles = random_coordinates(m, (), _generator(12))
    kernel = m.heat_kernel(m.to_point(loc_angles), time)
    expected = torch.full((m.dim,), math.exp(-time / r**2), dtype=torch.float64)
    # exactly, by quadrature of the density against the Riemannian volume
    coords, cell = coordinate_grid(m, GRID[m.dim])
    weight = (kernel.log_prob(m.to_point(coords)) + m.log_volume_density(coords)).exp() * cell
    moment = (weight.unsqueeze(-1) * torch.cos(coords - loc_angles)).sum(0)
    torch.testing.assert_close(moment, expected, rtol=0, atol=1e-8)
    # and by the sampler
    torch.manual_seed(3)
    angles = m.to_coordinates(kernel.sample(torch.Size([40000])))
    assert (torch.cos(angles - loc_angles).mean(0) - expected).abs().max() < 5 * (
        0.5 / 40000
    ) ** 0.5


@pytest.mark.parametrize("time", [0.1, 0.7])
def test_clifford_cosine_moment_is_exp_minus_two_t(time):
    m = CliffordTorus()
    loc = torch.tensor([2.0, -1.0], dtype=torch.float64)
    torch.manual_seed(4)
    angles = m.to_coordinates(m.heat_kernel(m.to_point(loc), time).sample(torch.Size([40000])))
    moment = torch.cos(angles - loc).mean(0)
    assert (moment - math.exp(-2 * time)).abs().max() < 5 * (0.5 / 40000) ** 0.5
    assert (moment - math.exp(-time)).abs().min() > 0.05  # a unit-circle kernel would give this


@parametrize_all
def test_heat_kernel_log_prob_at_samples_matches_the_coordinate_kernel(m):
    loc = m.to_point(random_coordinates(m, (3,), _generator(13)))
    time = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    kernel = m.heat_kernel(loc, time)
    coords = m.to_coordinates(kernel.sample(torch.Size([10])))
    base_kernel = m.coordinate_heat_kernel(m.to_coordinates(loc), time)
    expected = base_kernel.log_prob(coords) - m.log_volume_density(coords)
    torch.testing.assert_close(kernel.log_prob(m.to_point(coords)), expected)


# --- the protocol suffices for the VAE -------------------------------------------------------
def test_user_manifold_works_with_the_vae(isolated_registry, tmp_path):
    register_manifold(ScaledCircle)
    torch.manual_seed(0)
    vae = VAE(ScaledCircle(2.0), (25,), Gaussian(0.1))
    x = sinusoids(n=16, seed=3).data
    torch.manual_seed(1)
    terms = vae.elbo(x)
    assert terms.elbo.shape == (16,) and torch.isfinite(terms.elbo).all()
    assert (terms.kl >= 0).all()
    posterior = vae.encode(x)
    torch.testing.assert_close(terms.kl, kl_divergence(posterior, vae.prior().expand((16,))))
    terms.elbo.mean().backward()
    assert all(p.grad is not None for p in vae.parameters())

    path = tmp_path / "scaled.pt"
    vae.save(path)
    loaded = VAE.load(path)
    assert loaded.latent == ScaledCircle(2.0)
    torch.manual_seed(1)
    expected = vae.elbo(x).elbo
    torch.manual_seed(1)
    torch.testing.assert_close(loaded.elbo(x).elbo, expected, rtol=0, atol=0)


# --- declared capabilities ---------------------------------------------------------------------
_R = 0.5**0.5


@pytest.mark.parametrize(
    ("m", "radii", "vector_space"),
    [
        (Euclidean(2), (None, None), True),
        (Circle(), (1.0,), False),
        (FlatTorus(3), (1.0, 1.0, 1.0), False),
        (CliffordTorus(), (_R, _R), False),
        (Sphere(), (None, None, None), False),
        (Product(Circle(), Euclidean(1)), (1.0, None), False),
        (Product(Euclidean(1), Euclidean(2)), (None, None, None), True),
        (Product(CliffordTorus(), Circle()), (_R, _R, 1.0), False),
        (FixedTime(CliffordTorus(), 0.1), (_R, _R), False),
        (FixedTime(Euclidean(3), 0.1), (None, None, None), True),
    ],
    ids=repr,
)
def test_builtin_manifolds_declare_their_capabilities(m, radii, vector_space):
    assert list(m.angle_radii) == [r if r is None else pytest.approx(r, rel=1e-15) for r in radii]
    assert m.angle_product == all(r is not None for r in radii)
    assert m.is_vector_space is vector_space and m.has_posterior_spread
    raw = torch.randn(4, 3, m.posterior_params, dtype=torch.float64, generator=_generator(2))
    spread = m.posterior_spread(m.posterior(raw))
    assert spread.shape == (4, 3, m.dim) and (spread > 0).all()


def test_products_and_fixed_times_answer_for_their_parts():
    """Spreads are the factors' concatenated; a factor without one makes the product lack it."""
    circle, line = Circle(), Euclidean(1)
    raw = torch.randn(5, 5, dtype=torch.float64, generator=_generator(3))
    q = Product(circle, line).posterior(raw)
    expected = torch.cat([circle.posterior_spread(q.parts[0]), q.parts[1].stddev], -1)
    torch.testing.assert_close(Product(circle, line).posterior_spread(q), expected)
    fixed = FixedTime(circle, 0.125)  # angle time 0.125: spread sqrt(2 t) = 0.5
    spread = fixed.posterior_spread(fixed.posterior(raw[:, :3]))
    torch.testing.assert_close(spread, torch.full((5, 1), 0.5, dtype=torch.float64))
    silent = Product(circle, ScaledCircle())
    assert silent.angle_radii == (1.0, None) and not silent.angle_product
    assert not silent.has_posterior_spread and not silent.is_vector_space
    with pytest.raises(NotImplementedError, match="posterior_spread"):
        silent.posterior_spread(silent.posterior(torch.zeros(2, 6)))


def test_require_names_the_capability_and_who_needs_it():
    base.require(Circle(), "angle coordinates (angle_radii)", True, "f")
    with pytest.raises(ValueError, match=r"f needs .*is_vector_space.*Circle\(\) does not"):
        base.require(Circle(), "a vector space (is_vector_space)", False, "f")
