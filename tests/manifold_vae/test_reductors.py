"""Delta-reduction: closed-form decoder KLs, Delta, the map families, Algorithm 2, the table."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from manifold_vae.datasets import GenerativeModel, sinusoid_mean, sinusoid_model, toroidal_mean
from manifold_vae.likelihoods import Bernoulli, Gaussian, GaussianLearnedScale
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean, FlatTorus
from manifold_vae.reductors import (
    MAP_FAMILIES,
    AngleIsometry,
    IdentityMap,
    bernoulli_kl,
    decoder_kl,
    delta,
    fit_reductor,
    make_map,
    normal_kl,
    plot_reduction_grid,
    pointwise_optimum,
    reduction_table,
)
from manifold_vae.vae import VAE

# --- decoder KL ------------------------------------------------------------------------------


def _likelihood(kind: str, shape: tuple[int, ...]):
    if kind == "gaussian":
        lik = Gaussian(0.3)
    elif kind == "gaussian-learned":
        lik = GaussianLearnedScale(0.5)
    else:
        lik = Bernoulli()
    lik.build(torch.Size(shape))
    if kind == "gaussian-learned":
        with torch.no_grad():
            lik.log_sigma.copy_(torch.linspace(-1.0, 0.5, math.prod(shape)).reshape(shape))
    return lik


@pytest.mark.parametrize("kind", ["gaussian", "gaussian-learned", "bernoulli"])
def test_closed_form_decoder_kl_matches_monte_carlo(kind):
    """Mean of log p(x) - log q(x), x ~ p, within 5 standard errors (failure rate < 1e-6)."""
    g = torch.Generator().manual_seed(1)
    shape = (3, 4)
    lik = _likelihood(kind, shape)
    out_p = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    out_q = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    p, q = lik(out_p), lik(out_q)
    exact = decoder_kl(p, q)
    torch.manual_seed(2)
    x = p.sample((100000,))
    ratio = p.log_prob(x) - q.log_prob(x)
    mc, se = ratio.mean(0), ratio.std(0) / math.sqrt(len(ratio))
    assert exact.shape == (2,)
    assert (exact > 0).all()
    assert ((exact - mc).abs() <= 5 * se).all(), (exact, mc, se)


def test_decoder_kl_agrees_with_torch_registry():
    torch.manual_seed(0)
    p = torch.distributions.Independent(
        torch.distributions.Normal(torch.randn(5, 7), torch.rand(5, 7) + 0.1), 1
    )
    q = torch.distributions.Independent(
        torch.distributions.Normal(torch.randn(5, 7), torch.rand(5, 7) + 0.1), 1
    )
    torch.testing.assert_close(decoder_kl(p, q), torch.distributions.kl_divergence(p, q))


def test_gaussian_kl_is_thesis_eq_8_11():
    """Scalar scales: ||mu1 - mu2||^2 / (2 s2^2) + D/2 (log(s2^2/s1^2) + s1^2/s2^2 - 1)."""
    D, s1, s2 = 25, 0.01, 0.1
    mu1, mu2 = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    kl = normal_kl(mu1, torch.tensor(s1), mu2, torch.tensor(s2)).sum()
    eq = ((mu1 - mu2) ** 2).sum() / (2 * s2**2) + D / 2 * (
        math.log(s2**2 / s1**2) + s1**2 / s2**2 - 1
    )
    torch.testing.assert_close(kl, eq)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_forms_are_finite_for_extreme_parameters(dtype):
    # scales and locations whose KLs (up to (loc / scale)^2 ~ 1e24 or 1e280) are representable
    lo, hi = (1e-6, 1e6) if dtype == torch.float32 else (1e-70, 1e70)
    scales = torch.tensor([lo, 1e-3, 1.0, hi], dtype=dtype)
    locs = torch.tensor([-hi, 0.0, 1.0, hi], dtype=dtype) * 0.5
    kl = normal_kl(locs[:, None], scales[:, None], locs[None], scales[None])
    assert torch.isfinite(kl).all() and (kl >= 0).all()
    assert (kl.diagonal() == 0).all()
    tiny, huge = torch.finfo(dtype).tiny, torch.finfo(dtype).max
    extreme = normal_kl(
        torch.tensor(huge, dtype=dtype),
        torch.tensor(tiny, dtype=dtype),
        torch.tensor(-huge, dtype=dtype),
        torch.tensor(tiny, dtype=dtype),
    )
    assert not torch.isnan(extreme)  # overflows to inf, the true value being beyond dtype
    logits = torch.tensor([-1e4, -30.0, 0.0, 30.0, 1e4], dtype=dtype)
    kl = bernoulli_kl(logits[:, None], logits[None])
    assert torch.isfinite(kl).all() and (kl >= 0).all()
    assert (kl.diagonal() == 0).all()
    assert kl[0, -1] > 1e3  # confident and wrong


def test_decoder_kl_rejects_unlike_distributions():
    normal = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(3), 1.0), 1)
    bern = torch.distributions.Independent(torch.distributions.Bernoulli(logits=torch.zeros(3)), 1)
    other = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(4), 1.0), 1)
    with pytest.raises(ValueError, match="Normal and Bernoulli"):
        decoder_kl(normal, bern)
    with pytest.raises(ValueError, match="same event shape"):
        decoder_kl(normal, other)


# --- Delta -----------------------------------------------------------------------------------


def _circle_vae(seed: int, dtype: torch.dtype = torch.float32) -> VAE:
    torch.manual_seed(seed)
    return VAE(Circle(), (25,), Gaussian(0.1), hidden=8).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_delta_is_zero_for_the_identity_and_positive_otherwise(dtype):
    vae, other = _circle_vae(0, dtype), _circle_vae(1, dtype)
    same = delta(vae, vae, IdentityMap(vae.latent, vae.latent), num_samples=2000)
    assert same.value.dtype == dtype
    assert same.value.abs().max() < 1e-6 and torch.isfinite(same.stderr).all()
    rotated = AngleIsometry(vae.latent, vae.latent)
    with torch.no_grad():
        rotated.shift.fill_(0.5)
    assert delta(vae, vae, rotated, num_samples=2000).value.item() > 1e-3
    assert delta(vae, other, IdentityMap(vae.latent, vae.latent), 2000).value.item() > 1e-3
    phi = sinusoid_model(noise=0.1)
    assert delta(phi, phi, lambda p: p, num_samples=2000).value.abs() < 1e-6


def test_delta_of_two_noise_levels_is_the_variance_term_of_eq_9_2():
    """Same mean, sigmas 0.01 and 0.1: Delta = D/2 (log(s2^2/s1^2) + s1^2/s2^2 - 1) both ways."""
    a, b = sinusoid_model(noise=0.01), sinusoid_model(noise=0.1)
    ident = IdentityMap(a.latent, b.latent)
    forward = delta(a, b, ident, num_samples=100).value.item()
    backward = delta(b, a, ident, num_samples=100).value.item()
    assert forward == pytest.approx(12.5 * (math.log(100) + 0.01 - 1), rel=1e-4)
    assert backward == pytest.approx(12.5 * (math.log(0.01) + 100 - 1), rel=1e-4)


def test_delta_leaves_the_global_random_state_alone():
    phi = sinusoid_model(noise=0.1)
    state = torch.get_rng_state()
    delta(phi, phi, lambda p: p, num_samples=10, seed=3)
    assert torch.equal(state, torch.get_rng_state())


def test_delta_rejects_mismatched_models():
    with pytest.raises(ValueError, match="same data shape"):
        delta(sinusoid_model(dim=25), sinusoid_model(dim=10), lambda p: p, num_samples=10)
    with pytest.raises(ValueError, match="num_samples"):
        delta(sinusoid_model(), sinusoid_model(), lambda p: p, num_samples=1)


def test_models_of_different_dtypes_are_refused_by_name():
    """A float32 source with a float64 target: a ValueError, not a matmul error deep inside."""
    single, double = _circle_vae(0), _circle_vae(1, torch.float64)
    candidates = torch.zeros(4, 1)
    calls = [
        lambda: delta(single, double, IdentityMap(Circle(), Circle()), num_samples=10),
        lambda: fit_reductor(single, double, "isometry", steps=1, num_samples=4, eval_samples=4),
        lambda: pointwise_optimum(single, double, candidates, num_samples=10),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"same dtype, got torch\.float32 and torch\.float64"):
            call()
    phi = sinusoid_model(noise=0.1)  # no parameters: it computes in the dtype it is given
    assert (
        delta(double, phi, IdentityMap(Circle(), Circle()), num_samples=10).value.dtype
        == torch.float64
    )


# --- map families ----------------------------------------------------------------------------

MANIFOLDS = {
    "R^2": Euclidean(2),
    "R^4": Euclidean(4),
    "S^1": Circle(),
    "T^2": CliffordTorus(),
    "flat T^2": FlatTorus(2),
}
PAIRS = [(s, t) for s in MANIFOLDS for t in MANIFOLDS]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", MAP_FAMILIES.names())
def test_every_map_lands_on_its_target_or_refuses_the_pair(family, dtype):
    fitted = 0
    for s, t in PAIRS:
        source, target = MANIFOLDS[s], MANIFOLDS[t]
        try:
            reductor = make_map(family, source, target, copies=3).to(dtype)
        except ValueError as error:
            assert family in str(error) or "identity" in str(error)
            continue
        fitted += 1
        points = source.to_point(source.prior(dtype=dtype).sample((50,)))
        if math.isinf(source.volume):  # far from and close to the origin of R^d
            points = torch.cat([points, 1e3 * points[:5], 1e-3 * points[:5] + 1e-3])
        out = reductor(points)
        assert out.shape == (reductor.copies, len(points), target.ambient_dim)
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert target.point_support().check(out).all(), (family, s, t)
        one = reductor.select(2 if reductor.copies == 3 else 0)
        assert one.copies == 1
        torch.testing.assert_close(one(points)[0], out[-1 if reductor.copies == 3 else 0])
    assert fitted > 0


def test_families_refuse_pairs_they_do_not_fit():
    with pytest.raises(ValueError, match="circles"):
        make_map("isometry", Circle(), Euclidean(2))
    with pytest.raises(ValueError, match="not a vector space"):
        make_map("linear", Euclidean(2), Circle())
    with pytest.raises(ValueError, match="onto a circle"):
        make_map("chart", CliffordTorus(), Circle())
    with pytest.raises(ValueError, match="family must be one of"):
        make_map("spline", Circle(), Circle())
    reductor = make_map("mlp", Circle(), Circle())
    with pytest.raises(ValueError, match="source points"):
        reductor(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="index"):
        reductor.select(1)


# --- Algorithm 2 -----------------------------------------------------------------------------


def _transformed_circle(sign: float, shift: float) -> GenerativeModel:
    """The sinusoid model seen through w = sign * phase + shift: F2(w) = F(sign * (w - shift))."""

    def mean(w):
        return sinusoid_mean(sign * (w[..., 0] - shift))

    return GenerativeModel(Circle(), mean, 0.1, (25,), "transformed")


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_fit_reductor_recovers_a_rotation_and_a_reflection(sign, one_thread):
    source, shift = sinusoid_model(noise=0.1), 2.0
    target = _transformed_circle(sign, shift)
    fit = fit_reductor(
        source,
        target,
        "isometry",
        restarts=4,
        steps=150,
        num_samples=256,
        eval_samples=2000,
        progress=False,
    )
    assert fit.map.signs.item() == sign
    error = math.remainder(fit.map.shift.item() - shift, 2 * math.pi)
    assert abs(error) < 1e-2
    assert fit.delta.value < 0.05 and fit.restarts.shape == (4,)


def test_table_9_1_rotations_cannot_reduce_a_reflected_copy(one_thread):
    """The thesis's rotation maps (Table 9.1, no reflection) fail where O(2) succeeds."""
    source, target = sinusoid_model(noise=0.1), _transformed_circle(-1.0, 0.5)
    options = {"steps": 100, "num_samples": 256, "eval_samples": 2000, "progress": False}
    rotation_only = fit_reductor(source, target, "chart", restarts=1, **options)  # s = +1
    assert rotation_only.map.signs.item() == 1.0
    with_reflection = fit_reductor(source, target, "chart", restarts=2, **options)
    assert rotation_only.delta.value > 100 * with_reflection.delta.value
    assert rotation_only.delta.value > 100


def test_fit_reductor_recovers_a_torus_swap_and_reflection(one_thread):
    source = GenerativeModel(FlatTorus(2), partial(toroidal_mean, dim=6), 0.2, (6, 6), "T")
    shift = torch.tensor([0.7, -1.2])

    def mean(w):  # w = (-phase_2, phase_1) + shift
        v = w - shift
        return toroidal_mean(torch.stack([v[..., 1], -v[..., 0]], -1), dim=6)

    target = GenerativeModel(FlatTorus(2), mean, 0.2, (6, 6), "swapped")
    fit = fit_reductor(
        source,
        target,
        "isometry",
        restarts=8,
        steps=150,
        num_samples=128,
        eval_samples=2000,
        progress=False,
    )
    assert fit.map.permutation.tolist() == [[1, 0]]
    assert fit.map.signs.tolist() == [[-1.0, 1.0]]
    error = torch.remainder(fit.map.shift[0] - shift + math.pi, 2 * math.pi) - math.pi
    assert error.abs().max() < 2e-2
    assert fit.delta.value < 0.2 < 100 < fit.restarts.sort().values[1]


def test_fit_reductor_validates_and_restores_state(one_thread):
    vae = _circle_vae(0)
    phi = sinusoid_model(noise=0.1)
    with pytest.raises(ValueError, match="restarts"):
        fit_reductor(vae, phi, "isometry", restarts=0)
    with pytest.raises(ValueError, match="family"):
        fit_reductor(vae, phi, "spline")
    vae.train()
    state = torch.get_rng_state()
    fit = fit_reductor(
        vae, phi, "mlp", restarts=2, steps=3, num_samples=16, eval_samples=16, progress=False
    )
    assert torch.equal(state, torch.get_rng_state())
    assert vae.training and all(p.requires_grad for p in vae.parameters())
    assert all(p.grad is None for p in vae.parameters()), "gradients reach the map only"
    assert len(fit.losses) == 3 and len(fit.losses[0]) == 2
    # as the target, the VAE's decoder is differentiated through: its parameters stay frozen
    fit = fit_reductor(
        phi, vae, "mlp", restarts=2, steps=3, num_samples=16, eval_samples=16, progress=False
    )
    assert vae.training and all(p.requires_grad for p in vae.parameters())
    assert all(p.grad is None for p in vae.parameters()), "gradients reach the map only"
    assert len(fit.losses) == 3
    with pytest.raises(ValueError, match="lr"):
        fit_reductor(vae, phi, "mlp", lr=math.inf)
    # a model reduced to itself gets its state back too
    fit_reductor(
        vae, vae, "isometry", restarts=2, steps=2, num_samples=8, eval_samples=8, progress=False
    )
    assert vae.training and all(p.requires_grad for p in vae.parameters())


# --- the table -------------------------------------------------------------------------------


def test_reduction_table_and_figure(tmp_path, one_thread):
    models = {
        "Phi": sinusoid_model(noise=0.1),
        "reflected": _transformed_circle(-1.0, 1.0),
        "R^2 VAE": VAE(Euclidean(2), (25,), Gaussian(0.1), hidden=8),
    }
    state = torch.get_rng_state()
    table = reduction_table(
        models,
        ("linear", "projected-linear", "isometry", "chart"),
        progress=False,
        restarts=2,
        steps=80,
        num_samples=32,
        eval_samples=200,
    )
    assert torch.equal(state, torch.get_rng_state()), "the global random state is left alone"
    assert set(table.fits) == {(s, t) for s in models for t in models if s != t}
    assert table.best("Phi", "reflected").value < 1.0
    assert "linear" in table.skipped[("Phi", "reflected")]
    assert "projected-linear" in table.skipped[("Phi", "R^2 VAE")]
    text = table.markdown()
    assert text.count("N/A") == 3 and "isometry" in text
    assert table.as_dict()["Phi -> reflected"]["best"] in ("isometry", "chart")
    phase = torch.linspace(-math.pi, math.pi, 40)[:-1]
    coords = {
        "Phi": phase[:, None],
        "reflected": -phase[:, None] + 1.0,
        "R^2 VAE": torch.stack([phase.cos(), phase.sin()], -1),
    }
    path = plot_reduction_grid(table, models, coords, phase, tmp_path / "grid.png")
    assert path.is_file() and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="at least two"):
        reduction_table({"Phi": models["Phi"]})


def test_pointwise_optimum_is_the_floor_under_every_map(one_thread):
    grid = torch.linspace(-math.pi, math.pi, 1025)[:-1, None]
    phi, flipped = sinusoid_model(noise=0.1), _transformed_circle(-1.0, 1.0)
    assert pointwise_optimum(phi, flipped, grid, num_samples=200).value < 0.05
    vae = _circle_vae(3)
    floor = pointwise_optimum(phi, vae, grid, num_samples=500)
    fit = fit_reductor(
        phi,
        vae,
        "isometry",
        restarts=4,
        steps=60,
        num_samples=128,
        eval_samples=500,
        progress=False,
    )
    assert 0 < floor.value <= fit.delta.value + 3 * (fit.delta.stderr + floor.stderr)
    with pytest.raises(ValueError, match="candidates"):
        pointwise_optimum(phi, vae, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="chunk"):
        pointwise_optimum(phi, vae, grid, chunk=0)
