"""The hypersphere S^d as a latent (issue 16): Sphere() unchanged, Hypersphere(2) equal to it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.distributions import kl_divergence

from distributions import HypersphereHeatKernel, HypersphereUniform, SphereHeatKernel
from manifold_vae.jobs import parse_latent
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Hypersphere, Sphere, manifold_from_spec
from manifold_vae.testing import check_distribution, manifold_checks
from manifold_vae.training import fit
from manifold_vae.vae import VAE

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

FAMILIES = ("heat", "vmf", "power-spherical")
#: The kit's checks that need the heat kernel at small times (0.001, 0.05), which on S^d,
#: d >= 3, is only available for t >= T_d: they raise ValueError there ("not supported").
SMALL_TIME_CHECKS = {"heat-kernel", "time-convention", "posterior-spread"}


# --- Sphere() is unchanged; Hypersphere(2) has its values ------------------------------------
def test_sphere_spec_and_checkpoint_name_are_unchanged():
    assert Sphere().spec() == {"name": "sphere", "kwargs": {}}
    assert manifold_from_spec({"name": "sphere", "kwargs": {}}) == Sphere()
    assert manifold_from_spec({"name": "sphere"}) == Sphere()
    assert repr(Sphere()) == "Sphere()"
    assert Sphere(family="vmf").spec() == {"name": "sphere", "kwargs": {"family": "vmf"}}
    assert Hypersphere(9).spec() == {"name": "hypersphere", "kwargs": {"d": 9}}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("d", [2, 3, 9])
def test_spec_round_trip(d, family):
    m = Hypersphere(d, family=family)
    assert manifold_from_spec(json.loads(json.dumps(m.spec()))) == m


def test_hypersphere_two_has_the_values_of_the_sphere():
    a, b = Sphere(), Hypersphere(2)
    raw = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    qa, qb = a.posterior(raw), b.posterior(raw)
    assert type(qa) is type(qb) is SphereHeatKernel
    torch.manual_seed(1)
    za = qa.rsample((3,))
    torch.manual_seed(1)
    zb = qb.rsample((3,))
    assert torch.equal(za, zb) and torch.equal(qa.log_prob(za), qb.log_prob(za))
    kl_a = kl_divergence(qa, a.prior(dtype=raw.dtype).expand((6,)))
    assert torch.equal(kl_a, kl_divergence(qb, b.prior(dtype=raw.dtype).expand((6,))))
    assert torch.equal(a.distance(za[0], za[1]), b.distance(za[0], za[1]))
    assert torch.equal(a.posterior_spread(qa), b.posterior_spread(qb))
    assert a.volume == b.volume == 4 * math.pi
    g = torch.Generator().manual_seed(2)
    assert torch.equal(a.sample_prior(5, g), b.sample_prior(5, torch.Generator().manual_seed(2)))


def test_sphere_values_did_not_change():
    """Values of Sphere() before issue 16 (HEAD e0aa44a), float64."""
    raw = torch.tensor([[0.3, -1.2, 0.5, -0.7], [0.0, 0.0, 0.0, 2.0]], dtype=torch.float64)
    q = Sphere().posterior(raw)
    assert torch.allclose(q.time, torch.nn.functional.softplus(raw[:, 3]) + 1e-6, rtol=0, atol=0)
    assert torch.equal(q.loc[1], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert torch.equal(q.loc[0], raw[0, :3] / raw[0, :3].norm())


def test_the_command_line_builds_hyperspheres():
    assert parse_latent("hypersphere:9") == Hypersphere(9)
    assert parse_latent("sphere") == Sphere()


# --- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 0, 2.0, True, "3"])
def test_bad_dimensions_raise(d):
    with pytest.raises(ValueError, match="d must be an integer >= 2"):
        Hypersphere(d)


@pytest.mark.parametrize("family", ["von-mises", "VMF", None, 3])
def test_bad_families_raise(family):
    with pytest.raises(ValueError, match="family of Hypersphere must be one of"):
        Hypersphere(3, family=family)
    with pytest.raises(ValueError, match="family of Sphere must be one of"):
        Sphere(family=family)


# --- S^d, d >= 3 -------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [3, 9, 64])
def test_attributes_and_volume(d):
    m = Hypersphere(d)
    assert (m.dim, m.ambient_dim, m.intrinsic_dim, m.posterior_params) == (d + 1, d + 1, d, d + 2)
    assert m.volume == pytest.approx(math.exp(HypersphereUniform(d).log_volume), rel=1e-12)
    assert isinstance(m.prior(), HypersphereUniform) and not m.reparameterizable


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("d", [3, 9])
def test_conformance_kit_passes_every_check_but_the_small_time_heat_kernel(d, family, one_thread):
    failed = {}
    for name, check in manifold_checks(Hypersphere(d, family=family), samples=1000).items():
        try:
            check()
        except (AssertionError, ValueError) as error:
            failed[name] = str(error)
    assert set(failed) == SMALL_TIME_CHECKS, failed
    assert all("not supported" in message for message in failed.values())


@pytest.mark.parametrize("d", [3, 9])
def test_the_heat_kernel_at_supported_times_passes_the_distribution_kit(d, one_thread):
    m = Hypersphere(d)
    loc = m.sample_prior(2, torch.Generator().manual_seed(3))
    time = torch.tensor([m.min_time, 2.0 * m.min_time])

    def make(dtype: torch.dtype) -> HypersphereHeatKernel:
        return m.coordinate_heat_kernel(loc.to(dtype), time.to(dtype))

    check_distribution(make, lambda dtype: m.prior(dtype=dtype), samples=2000)


@pytest.mark.parametrize("d", [3, 9, 64])
def test_heat_posterior_times_stay_supported(d):
    m = Hypersphere(d)
    raw = torch.full((2, m.posterior_params), -1e30)
    q = m.posterior(raw)
    assert bool((q.time >= m.min_time).all())
    assert bool((q.mean_resultant_length <= math.exp(-d * m.min_time) + 1e-6).all())
    with pytest.raises(ValueError, match="not supported"):
        m.coordinate_heat_kernel(q.loc, torch.full((2,), 0.5 * m.min_time))


@pytest.mark.parametrize("family", ["vmf", "power-spherical"])
@pytest.mark.parametrize("d", [2, 3, 9])
def test_posterior_spread_is_the_tangent_standard_deviation(d, family):
    """s^2 = E[1 - (mu . x)^2] / d, by Monte Carlo at 5.4 standard errors (the kit's check of
    embedded spreads uses small-time heat kernels, unavailable on d >= 3)."""
    m = Hypersphere(d, family=family)
    raw = torch.randn(4, m.posterior_params, dtype=torch.float64)
    raw[:, -1] = torch.tensor([-3.0, 0.0, 3.0, 30.0])
    q = m.posterior(raw)
    torch.manual_seed(4)
    x = q.sample((20000,))
    w = (x * q.loc).sum(-1)
    sq = (1 - w**2) / d
    mean, se = sq.mean(0), sq.std(0) / math.sqrt(sq.shape[0])
    spread = m.posterior_spread(q)
    assert spread.shape == (4, d + 1)
    assert bool(((mean - spread[:, 0] ** 2).abs() <= 5.4 * se).all()), (mean, spread[:, 0] ** 2)


def test_distance_is_accurate_near_zero_and_antipodes():
    m = Hypersphere(5)
    x = torch.zeros(6, dtype=torch.float64)
    x[0] = 1.0
    for angle in (1e-12, 1e-6, 1.0, math.pi - 1e-6):
        y = torch.zeros(6, dtype=torch.float64)
        y[0], y[3] = math.cos(angle), math.sin(angle)
        assert float(m.distance(x, y)) == pytest.approx(angle, rel=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_hypersphere_vae_trains_saves_and_loads(family, tmp_path, one_thread):
    data = torch.randn(32, 6, generator=torch.Generator().manual_seed(5))
    vae = VAE(Hypersphere(4, family=family), (6,), Gaussian(0.5), seed=0)
    history = fit(vae, data, epochs=2, batch_size=16, progress=False)
    assert all(math.isfinite(v) for v in history.loss)
    vae.save(tmp_path / "model.pt")
    again = VAE.load(tmp_path / "model.pt")
    assert again.latent == Hypersphere(4, family=family)
    torch.manual_seed(6)
    a = again.marginal_log_likelihood(data[:4], 64)
    torch.manual_seed(6)
    b = vae.eval().marginal_log_likelihood(data[:4], 64)
    assert torch.equal(a.value, b.value) and bool(torch.isfinite(a.value).all())
