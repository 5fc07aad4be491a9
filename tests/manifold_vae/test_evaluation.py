"""``manifold_vae.evaluation``: thesis metrics, summaries, factor assignment, winding numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from manifold_vae.datasets import sinusoids_grid
from manifold_vae.evaluation import (
    _correlation_matrix,
    circular_correlation,
    encoding_nonuniformity,
    factor_assignment,
    factor_correlations,
    format_mean_std,
    grid_windings,
    has_recovered_angles,
    loop_winding,
    phase_recovery,
    recovered_angles,
    summarize,
    thesis_metrics,
    winding_number,
)
from manifold_vae.likelihoods import Bernoulli, Gaussian
from manifold_vae.manifolds import Circle, Euclidean, FixedTime, FlatTorus, Product, Sphere
from manifold_vae.vae import VAE

SIGMA = 0.1
D = 25
L = 20


# One torch thread: tiny models run many times faster on a busy 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def grid() -> torch.Tensor:
    return sinusoids_grid(n=40).data


def _vae(latent=None, likelihood=None, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent or Euclidean(2), (D,), likelihood or Gaussian(SIGMA), hidden=8)


def _samples(vae: VAE, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The latent samples thesis_metrics draws (same seed, same call)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        return vae.encode(x).rsample(torch.Size([L]))


# --- thesis_metrics ---------------------------------------------------------------------------
def test_kl_is_the_closed_form_gaussian_kl(grid):
    vae = _vae()
    metrics = thesis_metrics(vae, grid, num_samples=L)
    with torch.no_grad():
        raw = vae.encoder(grid).double()
    mu, log_var = raw[:, :2], raw[:, 2:]
    # Eq. 5.10 with the plain sum of log-variances (NOTES correction 4).
    kl = 0.5 * (log_var.exp() + mu**2 - log_var - 1.0).sum(-1).mean()
    assert metrics["kl"] == pytest.approx(kl.item(), rel=1e-5)


def test_reconstruction_is_the_gaussian_negative_log_likelihood(grid):
    vae = _vae()
    metrics = thesis_metrics(vae, grid, num_samples=L, seed=3)
    z = _samples(vae, grid, seed=3)
    with torch.no_grad():
        mean = vae.decoder(z.reshape(-1, 2)).reshape(L, len(grid), D).double()
    squared = (grid.double() - mean).square().sum(-1)  # (L, N)
    constant = 0.5 * D * math.log(2 * math.pi * SIGMA**2)
    nll = (squared / (2 * SIGMA**2) + constant).mean()
    thesis = (squared / SIGMA**2 + constant).mean()  # Eq. 5.9 as printed
    assert metrics["reconstruction"] == pytest.approx(nll.item(), rel=1e-5)
    assert metrics["reconstruction_thesis"] == pytest.approx(thesis.item(), rel=1e-5)
    # The exact relation: Eq. 5.9 = 2 * NLL - (D/2) log(2 pi sigma^2) (float64: to rounding).
    exact = thesis_metrics(vae.double(), grid.double(), num_samples=L, seed=3)
    assert exact["reconstruction_thesis"] == pytest.approx(
        2 * exact["reconstruction"] - constant, rel=1e-12
    )
    # A test that would catch the thesis version: the two differ by far more than rounding.
    assert abs(metrics["reconstruction_thesis"] - metrics["reconstruction"]) > 1.0


def test_neg_elbo_and_mse(grid):
    vae = _vae()
    metrics = thesis_metrics(vae, grid, num_samples=L)
    assert metrics["neg_elbo"] == pytest.approx(metrics["reconstruction"] + metrics["kl"])
    assert metrics["neg_elbo_thesis"] == pytest.approx(
        metrics["reconstruction_thesis"] + metrics["kl"]
    )
    with torch.no_grad():
        mu = vae.encoder(grid)[:, :2]
        reconstruction = vae.decoder(mu)
    mse = (grid - reconstruction).double().square().sum(-1).mean()
    assert metrics["mse"] == pytest.approx(mse.item(), rel=1e-5)
    assert set(metrics) == {
        "neg_elbo",
        "kl",
        "reconstruction",
        "mse",
        "neg_elbo_thesis",
        "reconstruction_thesis",
    }


def test_seeded_deterministic_and_global_state_untouched(grid):
    vae = _vae()
    vae.train()
    state = torch.get_rng_state()
    first = thesis_metrics(vae, grid, num_samples=L, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert vae.training, "the previous mode is restored"
    assert thesis_metrics(vae, grid, num_samples=L, seed=1) == first
    other = thesis_metrics(vae, grid, num_samples=L, seed=2)
    assert other["reconstruction"] != first["reconstruction"]
    assert other["kl"] == first["kl"]


def test_float64_model_and_float32_data(grid):
    vae = _vae().double()
    metrics = thesis_metrics(vae, grid, num_samples=L)
    reference = thesis_metrics(_vae(), grid, num_samples=L)
    assert metrics["kl"] == pytest.approx(reference["kl"], rel=1e-5)
    assert metrics["mse"] == pytest.approx(reference["mse"], rel=1e-5)


def test_circle_model_uses_the_exact_kl(grid):
    vae = _vae(Circle())
    metrics = thesis_metrics(vae, grid, num_samples=L)
    with torch.no_grad():
        posterior = vae.encode(grid)
    kl = (math.log(2 * math.pi) - posterior.entropy().double()).mean()
    assert metrics["kl"] == pytest.approx(kl.item(), rel=1e-5)
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["neg_elbo"] == pytest.approx(metrics["reconstruction"] + metrics["kl"])


def test_bernoulli_has_no_thesis_reconstruction(grid):
    data = (grid + 1.0) / 2.0
    vae = _vae(likelihood=Bernoulli())
    metrics = thesis_metrics(vae, data, num_samples=L, seed=5)
    assert math.isnan(metrics["reconstruction_thesis"])
    assert math.isnan(metrics["neg_elbo_thesis"])
    z = _samples(vae, data, seed=5)
    with torch.no_grad():
        logits = vae.decoder(z.reshape(-1, 2)).reshape(L, len(data), D).double()
    x = data.double()
    bce = -(x * nn.functional.logsigmoid(logits) + (1 - x) * nn.functional.logsigmoid(-logits))
    assert metrics["reconstruction"] == pytest.approx(bce.sum(-1).mean().item(), rel=1e-5)


@pytest.mark.parametrize("num_samples", [0, -1, 2.0, True])
def test_thesis_metrics_rejects_bad_num_samples(grid, num_samples):
    with pytest.raises(ValueError, match="num_samples"):
        thesis_metrics(_vae(), grid, num_samples=num_samples)


def test_thesis_metrics_rejects_wrong_data_shape(grid):
    with pytest.raises(ValueError, match="data_shape"):
        thesis_metrics(_vae(), grid[:, :10])


# --- summarize / format_mean_std --------------------------------------------------------------
def test_summarize_mean_std_n_and_nan():
    runs = [{"a": 1.0, "b": math.nan, "c": math.nan}, {"a": 3.0, "b": 2.0, "c": math.nan}]
    summary = summarize(runs)
    assert list(summary) == ["a", "b", "c"]
    assert summary["a"] == {"mean": 2.0, "std": pytest.approx(math.sqrt(2.0)), "n": 2.0}
    assert summary["b"] == {"mean": 2.0, "std": 0.0, "n": 1.0}
    assert math.isnan(summary["c"]["mean"]) and math.isnan(summary["c"]["std"])
    assert summary["c"]["n"] == 0.0
    five = summarize([{"x": v} for v in (1.0, 2.0, 3.0, 4.0, 5.0)])["x"]
    assert five["std"] == pytest.approx(math.sqrt(2.5))  # ddof = 1, not sqrt(2)


@pytest.mark.parametrize("runs", [[], {"a": 1.0}, [{"a": "x"}], [1.0]])
def test_summarize_rejects_bad_runs(runs):
    with pytest.raises(ValueError, match="runs"):
        summarize(runs)


@pytest.mark.parametrize(
    ("mean", "std", "kwargs", "text"),
    [
        (-79.9, 0.19, {}, "-79.90 ± 0.19"),
        (919.28, 213.64, {}, "919.28 ± 213.64"),
        (1.59e-5, 0.64e-5, {}, "(1.59 ± 0.64) × 10^-5"),
        (1.68e-3, 0.23e-3, {}, "(1.68 ± 0.23) × 10^-3"),
        (0.0422, 0.0034, {}, "0.04 ± 0.00"),
        (0.0422, 0.0034, {"small": 1}, "(4.22 ± 0.34) × 10^-2"),
        (0.769, 0.001, {"small": 1}, "(7.69 ± 0.01) × 10^-1"),
        (9.9999e-6, 1e-7, {}, "(1.00 ± 0.01) × 10^-5"),
        (12345.0, 67.0, {}, "(1.23 ± 0.01) × 10^4"),
        (0.0, 0.0, {}, "0.00 ± 0.00"),
        (25.41, 0.01, {"digits": 1}, "25.4 ± 0.0"),
        (math.nan, math.nan, {}, "nan ± nan"),
    ],
)
def test_format_mean_std(mean, std, kwargs, text):
    assert format_mean_std(mean, std, **kwargs) == text


def test_format_mean_std_rejects_bad_digits():
    with pytest.raises(ValueError, match="digits"):
        format_mean_std(1.0, 0.1, digits=-1)


# --- factor correlations ----------------------------------------------------------------------
def _angles(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi


def test_swapped_and_reflected_factors_are_recovered():
    a, b = _angles(200, 0), _angles(200, 1)
    true = torch.stack([a, b], -1)
    recovered = torch.stack([-b + 1.0, a + 0.3], -1)  # swapped, one reflected, rotated
    assert factor_assignment(true, recovered) == (1, 0)
    assert torch.allclose(factor_correlations(true, recovered), torch.ones(2, dtype=torch.float64))
    # One true factor, the best of several recovered angles.
    assert factor_correlations(a, recovered).item() == pytest.approx(1.0)


def _double_claim() -> tuple[torch.Tensor, torch.Tensor]:
    """Both true factors correlate best with recovered angle 0: greedy claims it twice."""
    g = torch.Generator().manual_seed(0)
    u = _angles(200, 0)
    true0 = u + 0.3 * torch.randn(200, generator=g, dtype=torch.float64)
    rec1 = true0 + 0.5 * torch.randn(200, generator=g, dtype=torch.float64)
    return torch.stack([true0, u], -1), torch.stack([u, rec1], -1)


def test_one_to_one_assignment_beats_greedy_double_claim():
    true, recovered = _double_claim()
    corr = _correlation_matrix(true, recovered)
    assert corr.argmax(1).tolist() == [0, 0], "the greedy maximum claims angle 0 twice"
    result = factor_correlations(true, recovered)
    assert factor_assignment(true, recovered) == (1, 0)
    assert torch.equal(result, torch.stack([corr[0, 1], corr[1, 0]]))
    assert result[0] < corr[0].max()  # factor 0 gives way so that the total is largest
    assert result.sum() > corr[0, 0] + corr[1, 1]


def test_factor_correlations_needs_enough_recovered_angles():
    a, b = _angles(50, 0), _angles(50, 1)
    with pytest.raises(ValueError, match="recovered_angles"):
        factor_correlations(torch.stack([a, b], -1), a)
    with pytest.raises(ValueError, match="same number"):
        factor_correlations(a, b[:40])


class _AngleEncoder(nn.Module):
    """Passes datapoints ``(cos, sin)`` per factor through as locations, small times."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.full((len(x), self.n), -5.0, dtype=x.dtype)], -1)


def _angle_vae(n: int) -> VAE:
    latent = Circle() if n == 1 else FlatTorus(n)
    torch.manual_seed(0)
    return VAE(latent, (2 * n,), Gaussian(0.1), encoder=_AngleEncoder(n), hidden=4)


def _embed(*angles: torch.Tensor) -> torch.Tensor:
    return torch.stack([f(a) for a in angles for f in (torch.cos, torch.sin)], -1)


def test_phase_recovery_uses_the_one_to_one_assignment():
    true, recovered = _double_claim()
    vae = _angle_vae(2)
    data = _embed(*recovered.T)
    # recovered_angles are the torus's angle coordinates: the double claim survives.
    corr = _correlation_matrix(true, recovered_angles(vae, data))
    assert corr.argmax(1).tolist() == [0, 0]
    result = phase_recovery(vae, data, true)
    assert torch.equal(result, torch.stack([corr[0, 1], corr[1, 0]]))
    # One true phase: unchanged, the best recovered angle.
    assert phase_recovery(vae, data, true[:, :1]).item() == pytest.approx(corr[0].max().item())


def test_phase_recovery_with_fewer_recovered_angles_leaves_nan():
    a, b = _angles(100, 0), _loop(100)  # a regular loop: centring changes nothing
    result = phase_recovery(_angle_vae(1), _embed(b), torch.stack([a, b], -1))
    assert math.isnan(result[0]) and result[1].item() == pytest.approx(1.0)


def test_recovered_angles_follow_the_declared_capabilities(grid):
    """Angle coordinates as they are, a vector space's centred pairs, else a named error."""
    torus = _angle_vae(2)
    data = _embed(_loop(40), 0.5 * _loop(40)).float()  # the model's dtype
    with torch.no_grad():
        location = torus.latent.posterior_location(torus.encode(data))
    torch.testing.assert_close(recovered_angles(torus, data), location.double(), rtol=0, atol=0)
    plane = _vae(Euclidean(3))  # odd dimension: one pair, the last coordinate left out
    with torch.no_grad():
        mean = plane.encode(grid).mean.double()
    centred = mean - mean.mean(0)
    expected = torch.atan2(centred[:, 1], centred[:, 0]).unsqueeze(-1)
    torch.testing.assert_close(recovered_angles(plane, grid), expected, rtol=0, atol=0)
    cylinder = _vae(Product(Circle(), Euclidean(1)))  # only the angle coordinate
    assert recovered_angles(cylinder, grid).shape == (len(grid), 1)
    for latent in (Euclidean(1), Sphere(), FixedTime(Sphere(), 0.1)):
        assert not has_recovered_angles(latent)
        with pytest.raises(ValueError, match=r"recovered_angles needs .*angle_radii"):
            recovered_angles(_vae(latent), grid)
    with pytest.raises(ValueError, match="is_vector_space"):
        phase_recovery(_vae(Sphere()), grid, torch.zeros(len(grid), 1))


def test_circular_correlation_still_signed():
    a = _angles(100, 0)
    assert circular_correlation(a, -a).item() == pytest.approx(-1.0)


# --- winding numbers --------------------------------------------------------------------------
def _loop(n: int = 60) -> torch.Tensor:
    return 2 * math.pi * torch.arange(n, dtype=torch.float64) / n


@pytest.mark.parametrize(
    ("angles", "expected"),
    [
        (_loop(), 1),
        (-_loop(), -1),
        (0.5 * torch.sin(_loop()), 0),
        (_loop() + 2.5, 1),  # wrapped angles, rotated
        (2 * _loop(), 2),
        (-3 * _loop(), -3),
    ],
    ids=["+1", "-1", "fold", "rotated", "+2", "-3"],
)
def test_winding_number(angles, expected):
    wrapped = torch.atan2(torch.sin(angles), torch.cos(angles))
    assert winding_number(wrapped) == expected
    assert isinstance(winding_number(wrapped), int)


def test_winding_number_columns_and_max_jump():
    angles = torch.stack([_loop(), -_loop(), 2 * _loop()], -1)
    winding, jump = winding_number(angles, return_max_jump=True)
    assert winding.tolist() == [1, -1, 2]
    assert torch.allclose(jump, torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64) * _loop()[1])
    w, j = winding_number(_loop(4), return_max_jump=True)
    assert (w, j) == (1, pytest.approx(math.pi / 2))


@pytest.mark.parametrize(
    "angles", [torch.zeros(1), torch.zeros(2, 2, 2), torch.tensor([0, math.nan])]
)
def test_winding_number_rejects_bad_angles(angles):
    with pytest.raises(ValueError, match="angles"):
        winding_number(angles)


def test_loop_winding_of_an_encoded_loop():
    phase = _loop(40)
    vae = _angle_vae(1)
    assert loop_winding(vae, _embed(phase)).tolist() == [1]
    assert loop_winding(vae, _embed(-phase)).tolist() == [-1]
    folded, jump = loop_winding(vae, _embed(0.5 * torch.sin(phase)), return_max_jump=True)
    assert folded.tolist() == [0] and jump.item() < math.pi / 2


def test_grid_windings_with_swapped_and_reflected_factors():
    n1, n2 = 6, 8
    a = _loop(n1).repeat_interleave(n2)  # first phase slowest
    b = _loop(n2).repeat(n1)
    data = _embed(b, -a)  # recovered angle 0 is phase 2, angle 1 is phase 1 reflected
    result = grid_windings(_angle_vae(2), data, (n1, n2))
    assert result.assignment == (1, 0)
    assert result.windings[0].shape == (n2,) and result.windings[1].shape == (n1,)
    assert result.windings[0].tolist() == [-1] * n2
    assert result.windings[1].tolist() == [1] * n1
    assert result.fraction.tolist() == [1.0, 1.0]
    same = grid_windings(_angle_vae(2), data, (n1, n2), true_angles=torch.stack([a, b], -1))
    assert same.assignment == (1, 0)


def test_grid_windings_detects_a_collapsed_factor():
    n = 6
    a = _loop(n).repeat_interleave(n)
    b = _loop(n).repeat(n)
    data = _embed(a, 0.4 * torch.sin(b))  # phase 2 folds back
    result = grid_windings(_angle_vae(2), data, (n, n))
    assert result.windings[0].tolist() == [1] * n
    assert result.windings[1].tolist() == [0] * n
    assert result.fraction.tolist() == [1.0, 0.0]


def test_grid_windings_rejects_bad_shape():
    data = _embed(_loop(36), _loop(36))
    with pytest.raises(ValueError, match="shape"):
        grid_windings(_angle_vae(2), data, (6, 5))
    with pytest.raises(ValueError, match="shape"):
        grid_windings(_angle_vae(2), data, (36, 1))


def _torus_grid(n: int) -> torch.Tensor:
    a = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return torch.stack(torch.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)


def test_winding_matrix_and_unwound_correlations_of_torus_maps():
    from manifold_vae.evaluation import unwound_phase_correlations, winding_matrix

    n = 16
    p = _torus_grid(n)
    shear = torch.stack([p[:, 0] + p[:, 1] + 0.3, -p[:, 1]], -1)
    W, corr = unwound_phase_correlations(p, shear, (n, n))
    assert W.tolist() == [[1, 1], [0, -1]]
    torch.testing.assert_close(corr, torch.ones(2, dtype=torch.float64))
    assert factor_correlations(p, shear)[0] < 0.1  # the per-factor metric misses the shear
    swapped = torch.stack([p[:, 1], -p[:, 0]], -1)
    assert winding_matrix(swapped, (n, n)).tolist() == [[0, 1], [-1, 0]]
    double = torch.stack([2 * p[:, 0], p[:, 1]], -1)
    W, corr = unwound_phase_correlations(p, double, (n, n))
    assert W.tolist() == [[2, 0], [0, 1]] and corr.isnan().all()
    with pytest.raises(ValueError, match="shape"):
        winding_matrix(shear, (n * n,))
    with pytest.raises(ValueError, match="recovered must have shape"):
        winding_matrix(shear[:-1], (n, n))


def test_encoding_nonuniformity_is_the_jensen_gap():
    """G = -E log theta'(phi): exact for theta = phi + a sin phi, 0 when uniform or reflected."""
    phi = torch.linspace(-math.pi, math.pi, 201, dtype=torch.float64)[:-1]
    assert encoding_nonuniformity(phi + 0.7) == pytest.approx(0.0, abs=1e-12)
    assert encoding_nonuniformity(-phi) == pytest.approx(0.0, abs=1e-12)
    for a in (0.1, 0.3, 0.6):
        exact = -math.log((1.0 + math.sqrt(1.0 - a * a)) / 2.0)
        theta = phi + a * torch.sin(phi)
        assert encoding_nonuniformity(theta) == pytest.approx(exact, rel=1e-3)
        assert encoding_nonuniformity(-theta) == pytest.approx(exact, rel=1e-3)
    assert encoding_nonuniformity(phi + 1.5 * torch.sin(phi)) == math.inf  # folds back
    assert math.isnan(encoding_nonuniformity(torch.zeros(50)))  # does not wind
    assert math.isnan(encoding_nonuniformity(2 * phi))  # winds twice
    with pytest.raises(ValueError, match="angles"):
        encoding_nonuniformity(torch.zeros(2))
