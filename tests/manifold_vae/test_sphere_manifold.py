"""The sphere S^2 as a latent: geometry, distributions, the VAE, the dataset and its recovery."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch.distributions import kl_divergence

from manifold_vae.analysis import encoded_directions, procrustes_alignment
from manifold_vae.cli import main
from manifold_vae.datasets import (
    GenerativeModel,
    fibonacci_sphere,
    sensor_mean,
    sensor_model,
    spherical_sensors,
)
from manifold_vae.ensemble import fit_ensemble
from manifold_vae.evaluation import thesis_metrics
from manifold_vae.jobs import parse_latent
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Product, Sphere, manifold_from_spec
from manifold_vae.training import fit
from manifold_vae.vae import VAE

from .registry import default_dtype

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

S = Sphere()
NORTH = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _units(n: int, seed: int = 0) -> torch.Tensor:
    return S.sample_prior(n, _g(seed))


def _quadrature(nodes: int = 96, arcs: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``(nodes * arcs, 3)`` and area weights: Gauss-Legendre in cos(theta), trapezoid in
    the azimuth (exact for spherical harmonics of degree < min(2 nodes, arcs))."""
    import numpy as np  # test-only: the nodes

    u, w = np.polynomial.legendre.leggauss(nodes)
    u, w = torch.tensor(u), torch.tensor(w)
    phi = 2 * math.pi * torch.arange(arcs, dtype=torch.float64) / arcs
    r = torch.sqrt(1 - u**2)
    points = torch.stack(
        [
            r[:, None] * torch.cos(phi)[None],
            r[:, None] * torch.sin(phi)[None],
            u[:, None].expand(-1, arcs),
        ],
        -1,
    ).reshape(-1, 3)
    return points, (w[:, None] * (2 * math.pi / arcs)).expand(-1, arcs).reshape(-1)


# --- the manifold ------------------------------------------------------------------------------
def test_sizes_spec_and_command_line_name():
    assert (S.dim, S.intrinsic_dim, S.ambient_dim, S.posterior_params) == (3, 2, 3, 4)
    assert S.volume == pytest.approx(4 * math.pi, rel=1e-15)
    assert manifold_from_spec(json.loads(json.dumps(S.spec()))) == S
    assert parse_latent("sphere") == S and repr(S) == "Sphere()"


def test_geomstats_space_is_the_two_sphere():
    with default_dtype(torch.float64):
        assert S.space.dim == S.intrinsic_dim == 2
        assert S.space.belongs(_units(20)).all()


def test_coordinates_are_the_points_and_projection_is_radial():
    z = _units(30)
    assert torch.equal(S.to_point(z), z)
    torch.testing.assert_close(S.to_coordinates(3.7 * z), z, rtol=0, atol=1e-15)
    assert torch.equal(S.to_coordinates(torch.zeros(2, 3)), torch.tensor([[0.0, 0, 1]] * 2))
    assert (S.log_volume_density(z) == 0).all()


def test_point_support():
    z = _units(30)
    support = S.point_support()
    assert support.check(z).all() and support.check(z.float()).all()
    assert not support.check(1.01 * z).any() and not support.check(torch.zeros(4, 2)).any()


def test_exp_and_distance_agree_with_geomstats():
    x = _units(25, 1)
    v = S.to_tangent(torch.randn(25, 3, dtype=torch.float64, generator=_g(2)), x)
    torch.testing.assert_close((v * x).sum(-1), torch.zeros(25, dtype=torch.float64))
    y = _units(25, 3)
    with default_dtype(torch.float64):
        torch.testing.assert_close(S.exp(v, x), S.space.metric.exp(v, x))
        torch.testing.assert_close(S.distance(x, y), S.space.metric.dist(x, y))
    torch.testing.assert_close(S.exp(torch.zeros_like(x), x), x, rtol=0, atol=1e-15)


def test_distance_is_accurate_near_zero_and_the_antipode():
    a = NORTH
    tiny = torch.tensor([1e-9, 0.0, math.sqrt(1 - 1e-18)], dtype=torch.float64)
    assert S.distance(a, tiny).item() == pytest.approx(1e-9, rel=1e-6)  # arccos gives ~1e-8
    near_antipode = torch.tensor([1e-9, 0.0, -1.0], dtype=torch.float64)
    assert S.distance(a, near_antipode).item() == pytest.approx(math.pi - 1e-9, rel=1e-15)


def test_sample_prior_is_uniform_and_reproducible():
    z = S.sample_prior(40000, _g(4))
    assert torch.equal(z, S.sample_prior(40000, _g(4))) and z.dtype == torch.float64
    assert S.point_support().check(z).all()
    assert z.mean(0).abs().max() < 5 / math.sqrt(3 * 40000)
    second = z.T @ z / len(z)
    assert (second - torch.eye(3, dtype=torch.float64) / 3).abs().max() < 0.01


def test_reparameterize_is_not_available_and_says_why():
    """A rejection sampler is not a function of one Gaussian draw (fit_ensemble trains such
    members one by one)."""
    with pytest.raises(NotImplementedError, match=r"reparameterize\(posterior, noise\)"):
        S.reparameterize(None, torch.zeros(2, 3))
    product = Product(S, parse_latent("euclidean:1"))
    assert not product.reparameterizable
    with pytest.raises(NotImplementedError, match="reparameterize"):
        product.reparameterize(None, torch.zeros(2, 4))


def test_posterior_rejects_a_wrong_raw_size():
    for size in (3, 5):
        with pytest.raises(ValueError, match="last dimension 4"):
            S.posterior(torch.zeros(2, size))


# --- distributions (need distributions.SphereHeatKernel) ------------------------------------
@pytest.mark.parametrize("time", [0.01, 0.3, 2.0])
def test_heat_kernel_is_normalised_over_the_area(time):
    points, weights = _quadrature()
    loc = NORTH if time < 0.1 else _units(1, 5)[0]  # off-pole locations need smooth kernels
    density = S.heat_kernel(loc, time).log_prob(points).exp()
    assert (density * weights).sum().item() == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("time", [0.05, 0.5])
def test_heat_kernel_mean_is_exp_minus_two_t(time):
    """E <x, loc> = exp(-l(l+1) t) with l = 1 (dp/dt = Laplace p), by quadrature and sampling."""
    points, weights = _quadrature()
    loc = NORTH
    kernel = S.heat_kernel(loc, time)
    moment = (kernel.log_prob(points).exp() * weights * points[:, 2]).sum()
    assert moment.item() == pytest.approx(math.exp(-2 * time), abs=1e-8)
    torch.manual_seed(1)
    x = kernel.sample(torch.Size([20000]))
    assert abs(x[:, 2].mean().item() - math.exp(-2 * time)) < 5 * math.sqrt(0.5 / 20000)


def test_prior_is_uniform_over_the_area():
    z = _units(10)
    prior = S.prior(dtype=torch.float64)
    assert prior.event_shape == (3,) and prior.batch_shape == ()
    uniform = torch.full((10,), -math.log(4 * math.pi), dtype=torch.float64)
    torch.testing.assert_close(prior.log_prob(z), uniform)
    assert S.prior(dtype=torch.float32).sample().dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_posterior_from_raw_outputs(dtype):
    raw = torch.randn(5, 4, dtype=dtype, generator=_g(6)).requires_grad_(True)
    q = S.posterior(raw)
    assert q.batch_shape == (5,) and q.event_shape == (3,) and q.has_rsample
    torch.testing.assert_close(
        S.posterior_location(q), raw[:, :3] / raw[:, :3].norm(dim=-1)[:, None]
    )
    torch.testing.assert_close(q.time, torch.nn.functional.softplus(raw[:, 3]) + 1e-6)
    z = q.rsample(torch.Size([2]))
    assert z.shape == (2, 5, 3) and z.dtype == dtype and S.point_support().check(z).all()
    (grad,) = torch.autograd.grad(z[..., 0].sum(), raw)
    assert torch.isfinite(grad).all() and (grad != 0).any(0).all()
    kl = kl_divergence(q, S.prior(dtype=dtype).expand(q.batch_shape))
    assert kl.shape == (5,) and (kl >= 0).all()
    zero = S.posterior(torch.zeros(1, 4, dtype=dtype))
    assert torch.isfinite(zero.rsample()).all()
    huge = S.posterior(torch.tensor([[1.0, -1e30, -1e30, 0.0]], dtype=dtype))  # squares overflow
    expected = torch.tensor([[0.0, -(0.5**0.5), -(0.5**0.5)]], dtype=dtype)
    torch.testing.assert_close(huge.mean_direction, expected)


# --- the VAE -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sensors():
    return spherical_sensors(n=96, sensors=12, seed=0)


def test_a_sphere_vae_trains_saves_and_evaluates(sensors, tmp_path, one_thread):
    torch.manual_seed(0)
    vae = VAE(S, (12,), Gaussian(0.05), hidden=16)
    history = fit(vae, sensors.data, epochs=2, batch_size=32, progress=False)
    assert len(history.loss) == 2 and all(math.isfinite(v) for v in history.loss)
    metrics = thesis_metrics(vae, sensors.data[:32], num_samples=3)
    assert all(math.isfinite(v) for k, v in metrics.items() if "thesis" not in k)
    vae.save(str(tmp_path / "sphere.pt"))
    again = VAE.load(str(tmp_path / "sphere.pt"))
    assert again.latent == S
    torch.testing.assert_close(again(sensors.data[:4]), vae(sensors.data[:4]))
    # fit_ensemble trains sphere members on their own inside the one loop, exactly as fit
    members = [copy.deepcopy(vae) for _ in range(2)]
    alone = copy.deepcopy(vae)
    histories = fit_ensemble(members, sensors.data, epochs=1, seeds=[0, 1], progress=False)
    assert fit(alone, sensors.data, epochs=1, seed=1, progress=False).loss == histories[1].loss
    for p, q in zip(members[1].parameters(), alone.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_sphere_vae_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--latent", "sphere", "--out", str(out), "--epochs", "1", "--n", "32"]
    assert main([*argv, "--no-progress"]) == 0
    assert VAE.load(str(out / "model.pt")).latent == S and (out / "latent.png").is_file()


# --- the dataset and the recovery metric -------------------------------------------------------
def test_fibonacci_sphere_is_nearly_uniform():
    points = fibonacci_sphere(500)
    assert S.point_support().check(points).all()
    assert points.mean(0).abs().max() < 0.01
    with pytest.raises(ValueError, match="positive number"):
        fibonacci_sphere(0)


def test_sensor_dataset_has_a_spherical_latent():
    ds = spherical_sensors(n=50, sensors=20, concentration=2.0, noise=0.0, seed=3)
    assert ds.data.shape == (50, 20) and ds.latent.shape == (50, 3)
    assert isinstance(ds.model, GenerativeModel) and ds.model.latent == S
    assert S.point_support().check(ds.latent).all()
    expected = sensor_mean(ds.latent.double(), fibonacci_sphere(20), 2.0)
    torch.testing.assert_close(ds.data, expected.float())
    assert torch.equal(spherical_sensors(n=50, sensors=20, seed=3).latent, ds.latent)
    assert ds.data.max() <= 1 and ds.data.min() >= math.exp(-4.0) - 1e-6


def test_sensor_model_log_joint_uses_the_uniform_prior():
    model = sensor_model(sensors=6, noise=0.1)
    z = _units(4)
    x = model.mean(z)
    expected = torch.distributions.Normal(x, 0.1).log_prob(x).sum(-1) - math.log(4 * math.pi)
    torch.testing.assert_close(model.log_joint(x, z), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sensors": 3}, "sensors must be an integer >= 4"),
        ({"concentration": 0.0}, "concentration must be a finite number > 0"),
        ({"noise": -1.0}, "noise must be a finite standard deviation >= 0"),
        ({"n": 0}, "n must be a positive number"),
    ],
)
def test_sensor_dataset_validates_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        spherical_sensors(**kwargs)


def test_procrustes_finds_a_rotation_or_reflection_exactly():
    z = _units(200, 7)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=_g(8)))
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    for orthogonal in (q, q @ reflection):
        rotation, angles = procrustes_alignment(z @ orthogonal.T, z)
        torch.testing.assert_close(rotation, orthogonal.T)
        assert angles.max() < 1e-7
    _, random = procrustes_alignment(_units(200, 9), z)
    assert random.mean() > 1.0  # unrelated directions stay far apart
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        procrustes_alignment(z[:, :2], z[:, :2])


def test_encoded_directions_centres_a_euclidean_code(sensors):
    torch.manual_seed(0)
    vae = VAE(parse_latent("euclidean:3"), (12,), Gaussian(0.05), hidden=8)
    directions, spread = encoded_directions(vae, sensors.data)
    assert directions.shape == (96, 3) and S.point_support().check(directions).all()
    assert spread.item() >= 0


def test_the_plots_that_apply_to_a_sphere(sensors, tmp_path):
    from matplotlib.figure import Figure

    from manifold_vae.plots import plot_latent, plot_posterior, plot_torus_projection

    torch.manual_seed(0)
    vae = VAE(S, (12,), Gaussian(0.05), hidden=8)
    assert plot_latent(vae, sensors.data, tmp_path / "latent.png").stat().st_size > 1000
    figure = Figure()
    with pytest.raises(ValueError, match="3-D projection"):
        plot_posterior(figure.add_subplot(1, 2, 1), vae, sensors.data)
    ax = figure.add_subplot(1, 2, 2, projection="3d")
    plot_torus_projection([ax], vae, sensors.data, sensors.latent[:, 2])
    assert len(ax.collections) == 1


def test_true_log_likelihood_by_importance_sampling_matches_quadrature():
    """A broad posterior (4 sensors, noise 0.3): p(x) = integral of p(x|z) p(z) dA by quadrature."""
    from manifold_vae.analysis import true_negative_log_likelihood

    ds = spherical_sensors(n=5, sensors=4, concentration=1.0, noise=0.3, seed=2)
    points, weights = _quadrature(64, 128)
    log_joint = ds.model.log_joint(ds.data.double()[:, None], points[None])
    exact = -torch.logsumexp(log_joint + weights.log(), -1)
    estimate = true_negative_log_likelihood(ds.model, ds.data, ds.latent, samples=4000, time=0.5)
    torch.testing.assert_close(estimate, exact, rtol=0, atol=0.02)
