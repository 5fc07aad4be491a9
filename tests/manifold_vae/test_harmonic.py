"""``manifold_vae.harmonic``: exact spectra, Lipschitz estimates, heat smoothing, geometry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from manifold_vae.datasets import GenerativeModel, sinusoid_model, sinusoids_grid
from manifold_vae.harmonic import (
    Spectrum,
    angle_grid,
    circle_radii,
    decoder_fourier_spectrum,
    decoder_hermite_spectrum,
    decoder_jacobian_norms,
    decoder_spectrum,
    encoder_jacobian_norms,
    encoder_spectrum,
    fourier_spectrum,
    gauss_hermite,
    heat_smoothed_decoder,
    heat_smoothing,
    hermite_functions,
    is_gaussian_space,
    jacobian_norms,
    lipschitz_estimate,
    monte_carlo_smoothed_decoder,
)
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean, FixedTime, FlatTorus
from manifold_vae.vae import VAE

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(latent, mean, data_shape=(3,)) -> GenerativeModel:
    return GenerativeModel(latent, mean, 0.0, data_shape, "test")


def _torus_polynomial(theta: Tensor) -> Tensor:
    """Three outputs with known modes on T^2: see ``_TORUS_COEFFICIENTS``."""
    a, b = theta[..., 0], theta[..., 1]
    return torch.stack(
        [
            1.5 + 2.0 * torch.cos(a + 0.4),
            torch.sin(2.0 * a - 3.0 * b),
            0.5 * torch.cos(5.0 * b) * torch.cos(a),
        ],
        dim=-1,
    )


#: Nonzero (mode, output) -> c_m of _torus_polynomial.
_TORUS_COEFFICIENTS = {
    ((0, 0), 0): 1.5,
    ((1, 0), 0): complex(math.cos(0.4), math.sin(0.4)),
    ((-1, 0), 0): complex(math.cos(0.4), -math.sin(0.4)),
    ((2, -3), 1): -0.5j,
    ((-2, 3), 1): 0.5j,
    ((1, 5), 2): 0.125,
    ((1, -5), 2): 0.125,
    ((-1, 5), 2): 0.125,
    ((-1, -5), 2): 0.125,
}


# --- Fourier spectra -------------------------------------------------------------------------
def test_spectrum_of_a_trigonometric_decoder_is_recovered_exactly():
    spectrum = decoder_fourier_spectrum(_model(FlatTorus(2), _torus_polynomial), (12, 16))
    assert spectrum.basis == "fourier" and spectrum.modes.shape == (12 * 16, 2)
    expected = torch.zeros(12 * 16, 3, dtype=torch.complex128)
    rows = {tuple(m): i for i, m in enumerate(spectrum.modes.tolist())}
    for (mode, output), value in _TORUS_COEFFICIENTS.items():
        expected[rows[mode], output] = value
    torch.testing.assert_close(spectrum.coefficients, expected, rtol=0, atol=1e-13)
    # energies: variance = 2 (output 0) + 0.5 + 4 / 64, of which frequency <= 1 holds 2
    variance = 2.0 + 0.5 + 0.0625
    assert spectrum.total_energy == pytest.approx(1.5**2 + variance, rel=1e-13)
    assert spectrum.high_frequency_content(1) == pytest.approx(0.5625 / variance, rel=1e-12)
    assert spectrum.high_frequency_content(3) == pytest.approx(0.0625 / variance, rel=1e-12)
    assert spectrum.high_frequency_content(5) == pytest.approx(0.0, abs=1e-25)
    freqs, energy = spectrum.energy_by_frequency()
    assert freqs.tolist() == sorted(set(freqs.tolist()))
    assert float(energy.sum()) == pytest.approx(spectrum.total_energy, rel=1e-13)


def test_grid_starting_at_minus_pi_gets_the_phase_right():
    """``(-1)^m`` corrects the FFT's origin: sin(theta) has c_1 = -i/2, not +i/2."""
    values = torch.sin(angle_grid((8,))[..., 0])
    spectrum = fourier_spectrum(values, 1)
    index = spectrum.modes[:, 0].tolist().index(1)
    assert complex(spectrum.coefficients[index]) == pytest.approx(-0.5j, abs=1e-15)


def test_modes_beyond_the_grid_alias_as_documented():
    """cos(5 theta) on 8 points is indistinguishable from cos(3 theta)."""
    values = torch.cos(5.0 * angle_grid((8,))[..., 0])
    spectrum = fourier_spectrum(values, 1)
    big = spectrum.coefficients.abs() > 1e-12
    assert sorted(spectrum.modes[big, 0].tolist()) == [-3, 3]


def test_the_true_sinusoid_process_has_no_energy_above_frequency_one():
    truth = sinusoid_model(noise=0.1)
    spectrum = decoder_spectrum(truth, 32)
    assert spectrum.high_frequency_content(1) == pytest.approx(0.0, abs=1e-20)
    assert spectrum.total_energy == pytest.approx(12.5, rel=1e-12)  # 25 * E[sin^2]


def test_encoder_spectrum_along_the_true_phase():
    """A linear encoder on the sinusoids is a trigonometric function of the phase: modes +-1."""
    torch.manual_seed(0)
    encoder = nn.Linear(25, 4)
    vae = VAE(Euclidean(2), (25,), Gaussian(0.1), encoder=encoder).double()
    spectrum = encoder_spectrum(vae, sinusoids_grid(16, dtype=torch.float64).data, 16)
    assert spectrum.coefficients.shape == (16, 2)
    assert spectrum.high_frequency_content(1) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="prod"):
        encoder_spectrum(vae, sinusoids_grid(16).data, 15)


# --- Hermite spectra -------------------------------------------------------------------------
def test_gauss_hermite_rule_integrates_polynomials_exactly():
    x, w = gauss_hermite(6)
    moments = [float((w * x**k).sum()) for k in range(12)]
    expected = [0.0 if k % 2 else float(math.prod(range(k - 1, 0, -2))) for k in range(12)]
    assert moments == pytest.approx(expected, rel=1e-12, abs=1e-10)
    h = hermite_functions(x, 5)
    gram = (h.T * w) @ h
    torch.testing.assert_close(gram, torch.eye(6, dtype=torch.float64), rtol=0, atol=1e-12)


def test_hermite_spectrum_of_a_polynomial_decoder_is_exact():
    def mean(z: Tensor) -> Tensor:
        h = hermite_functions(z, 3)
        return torch.stack(
            [3.0 * h[..., 0, 2] * h[..., 1, 1] + 0.5 * h[..., 0, 3] + 1.0, 2.0 * z[..., 1]],
            dim=-1,
        )

    spectrum = decoder_hermite_spectrum(_model(Euclidean(2), mean, (2,)), degree=4, nodes=8)
    assert spectrum.basis == "hermite"
    assert spectrum.total_energy == pytest.approx(9.0 + 0.25 + 1.0 + 4.0, rel=1e-12)
    expected = {((0, 0), 0): 1.0, ((2, 1), 0): 3.0, ((3, 0), 0): 0.5, ((0, 1), 1): 2.0}
    for i, mode in enumerate(map(tuple, spectrum.modes.tolist())):
        for out in range(2):
            value = expected.get((mode, out), 0.0)
            assert float(spectrum.coefficients[i, out]) == pytest.approx(value, abs=1e-12)
    # variance 13.25; degree <= 1 holds 4 (the linear output)
    assert spectrum.high_frequency_content(1) == pytest.approx(9.25 / 13.25, rel=1e-12)
    assert spectrum.high_frequency_content(3) == pytest.approx(0.0, abs=1e-12)


def test_hermite_energy_beyond_the_listed_degree_still_counts():
    spectrum = decoder_hermite_spectrum(
        _model(Euclidean(1), lambda z: hermite_functions(z, 5)[..., 0, 5:], (1,)), 2, 8
    )
    assert spectrum.high_frequency_content(2) == pytest.approx(1.0, rel=1e-12)


# --- which latents have which spectrum --------------------------------------------------------
class _Stretched(Euclidean):
    """R^1 embedded as 2 z: not an isometry, so not Gaussian space in our sense.

    Capabilities are declared, not probed: a subclass that changes the geometry declares it
    (left declared, the conformance kit's ``vector-space`` check fails: test_conformance.py).
    """

    def to_point(self, coordinates: Tensor) -> Tensor:
        return 2.0 * coordinates

    @property
    def is_vector_space(self) -> bool:
        return False


def test_geometry_is_read_from_the_declared_capabilities():
    assert circle_radii(Circle()) == pytest.approx((1.0,))
    assert circle_radii(FlatTorus(3)) == pytest.approx((1.0,) * 3)
    assert circle_radii(CliffordTorus()) == pytest.approx((0.5**0.5,) * 2, rel=1e-12)
    assert circle_radii(FixedTime(CliffordTorus(), 0.1)) == pytest.approx((0.5**0.5,) * 2)
    assert circle_radii(Euclidean(2)) is None
    assert is_gaussian_space(Euclidean(3)) and is_gaussian_space(FixedTime(Euclidean(2), 1.0))
    assert not is_gaussian_space(Circle()) and not is_gaussian_space(_Stretched(1))
    with pytest.raises(ValueError, match="no spectrum"):
        decoder_spectrum(_model(_Stretched(1), lambda z: z), 8)
    with pytest.raises(ValueError, match="not a flat product of circles"):
        decoder_fourier_spectrum(_model(Euclidean(1), lambda z: z), 8)
    with pytest.raises(ValueError, match="not R\\^d"):
        decoder_hermite_spectrum(_model(Circle(), lambda z: z), 2, 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fourier_spectrum(torch.zeros(1, 3), 1), "grid_shape"),
        (lambda: fourier_spectrum(torch.zeros(4, 3), 3), "ndim"),
        (lambda: fourier_spectrum(torch.full((4,), math.nan), 1), "finite"),
        (lambda: gauss_hermite(0), "nodes"),
        (lambda: decoder_hermite_spectrum(_model(Euclidean(1), lambda z: z), 4, 4), "nodes"),
        (lambda: decoder_fourier_spectrum(_model(Circle(), lambda z: z), (4, 4)), "entries"),
        (lambda: fourier_spectrum(torch.zeros(4), 1).high_frequency_content(-1), "cutoff"),
        (
            lambda: heat_smoothing(fourier_spectrum(torch.zeros(4), 1), torch.zeros(1, 1), -1),
            "time",
        ),
        (
            lambda: heat_smoothing(
                fourier_spectrum(torch.zeros(4), 1), torch.zeros(1, 1), math.inf
            ),
            "time",
        ),
    ],
)
def test_invalid_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_constant_function_has_no_high_frequency_content():
    spectrum = fourier_spectrum(torch.full((8, 2), 3.0, dtype=torch.float64), 1)
    assert isinstance(spectrum, Spectrum) and spectrum.high_frequency_content(0) == 0.0


# --- Lipschitz estimates ---------------------------------------------------------------------
def _matrix(singular_values: list[float], rows: int, cols: int, dtype) -> Tensor:
    g = torch.Generator().manual_seed(3)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g, dtype=torch.float64))
    s = torch.zeros(rows, cols, dtype=torch.float64)
    s[range(len(singular_values)), range(len(singular_values))] = torch.tensor(
        singular_values, dtype=torch.float64
    )
    return (u @ s @ v.T).to(dtype)


def test_lipschitz_estimate_of_a_linear_map_is_its_largest_singular_value(dtype):
    a = _matrix([3.0, 2.0, 0.5], 5, 4, dtype)
    x = torch.randn(6, 4, dtype=dtype)
    stop, rtol = (1e-14, 1e-12) if dtype == torch.float64 else (1e-6, 1e-5)
    for method in ("power", "full", "auto"):
        norms = jacobian_norms(lambda v: v @ a.T, x, rtol=stop, method=method)
        torch.testing.assert_close(norms, torch.full((6,), 3.0, dtype=dtype), rtol=rtol, atol=0)
        estimate = lipschitz_estimate(lambda v: v @ a.T, x, rtol=stop, method=method)
        assert estimate == pytest.approx(3.0, rel=rtol)
        assert lipschitz_estimate(lambda v: 0.0 * v, x, method=method) == 0.0


def test_lipschitz_of_a_nonlinear_map_is_its_largest_local_norm():
    """f(x) = sin(x) elementwise: local norm max_i |cos x_i|, largest at the point near 0."""
    x = torch.tensor([[0.3, 1.0], [1.2, 2.0], [0.05, 1.5]], dtype=torch.float64)
    for method in ("power", "full"):
        norms = jacobian_norms(torch.sin, x, rtol=1e-14, method=method)
        torch.testing.assert_close(norms, torch.cos(x).abs().amax(-1), rtol=1e-12, atol=0)


def test_power_iteration_warns_when_it_has_not_converged():
    a = _matrix([1.0, 0.999999, 0.5], 3, 3, torch.float64)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        jacobian_norms(lambda v: v @ a.T, torch.randn(2, 3, dtype=torch.float64), 2, method="power")
    with pytest.raises(ValueError, match="iterations"):
        jacobian_norms(torch.sin, torch.zeros(2, 2), iterations=0)
    with pytest.raises(ValueError, match="method"):
        jacobian_norms(torch.sin, torch.zeros(2, 2), method="svd")


def test_power_iteration_on_a_wide_network_agrees_with_the_full_jacobian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 20), nn.Tanh(), nn.Linear(20, 12)).double()
    x = torch.randn(4, 30, dtype=torch.float64)
    full = jacobian_norms(net, x, method="full")
    power = jacobian_norms(net, x, rtol=1e-14, iterations=2000, method="power")
    torch.testing.assert_close(power, full, rtol=1e-9, atol=0)


def test_decoder_lipschitz_uses_tangent_directions_in_the_metric():
    """F = A to_point: on R^d sigma_max(A); on the Clifford torus |A dp/dtheta_i| / r."""
    a = _matrix([4.0, 1.0], 3, 2, torch.float64)
    linear = _model(Euclidean(2), lambda z: z @ a.T)
    coords = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(
        decoder_jacobian_norms(linear, coords, rtol=1e-14),
        torch.full((5,), 4.0, dtype=torch.float64),
        rtol=1e-12,
        atol=0,
    )
    b = _matrix([2.0, 1.5, 1.0, 0.5], 4, 4, torch.float64)
    torus = CliffordTorus()
    model = _model(torus, lambda z: torus.to_point(z) @ b.T, (4,))
    angles = torch.rand(7, 2, dtype=torch.float64) * 2 * math.pi - math.pi
    dp = torch.zeros(7, 4, 2, dtype=torch.float64)  # unit tangent vectors d p / (r d theta_i)
    dp[:, 0, 0], dp[:, 1, 0] = -torch.sin(angles[:, 0]), torch.cos(angles[:, 0])
    dp[:, 2, 1], dp[:, 3, 1] = -torch.sin(angles[:, 1]), torch.cos(angles[:, 1])
    expected = torch.linalg.matrix_norm(b @ dp, ord=2)
    norms = decoder_jacobian_norms(model, angles, rtol=1e-14)
    torch.testing.assert_close(norms, expected, rtol=1e-12, atol=0)


def test_encoder_lipschitz_of_a_linear_encoder(dtype):
    torch.manual_seed(1)
    encoder = nn.Linear(25, 4, dtype=dtype)
    vae = VAE(Euclidean(2), (25,), Gaussian(0.1), encoder=encoder).to(dtype)
    expected = torch.linalg.matrix_norm(encoder.weight[:2].detach(), ord=2)
    stop, rtol = (1e-14, 1e-12) if dtype == torch.float64 else (1e-6, 1e-5)
    norms = encoder_jacobian_norms(vae, sinusoids_grid(10, dtype=dtype).data, rtol=stop)
    torch.testing.assert_close(norms, expected.expand(10), rtol=rtol, atol=0)


# --- heat smoothing --------------------------------------------------------------------------
def test_heat_smoothing_of_a_trigonometric_decoder_is_exact():
    """Mode m is damped by exp(-sum m_i^2 t_i): here per factor angle times (0.1, 0.02)."""
    spectrum = decoder_fourier_spectrum(_model(FlatTorus(2), _torus_polynomial), 16)
    loc = torch.tensor([[0.3, -1.0], [2.5, 0.7]], dtype=torch.float64)
    time = torch.tensor([0.1, 0.02], dtype=torch.float64)
    a, b = loc[:, 0], loc[:, 1]
    expected = torch.stack(
        [
            1.5 + 2.0 * math.exp(-0.1) * torch.cos(a + 0.4),
            math.exp(-4 * 0.1 - 9 * 0.02) * torch.sin(2.0 * a - 3.0 * b),
            0.5 * math.exp(-0.1 - 25 * 0.02) * torch.cos(5.0 * b) * torch.cos(a),
        ],
        dim=-1,
    )
    torch.testing.assert_close(heat_smoothing(spectrum, loc, time), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("latent", [Circle(), CliffordTorus()], ids=repr)
def test_fourier_heat_smoothing_matches_monte_carlo(latent):
    """A random network decoder; 40000 samples; |difference| <= 5 standard errors everywhere.

    A false alarm per output needs a 5-sigma deviation (p ~ 6e-7; 150 outputs), and the grid
    of 256 (circle) or 64 x 64 (torus) points keeps the aliasing error far below the MC error.
    The thesis's Eq. 7.5 kernel (no factor 2: half uniform plus half heat kernel, so in each
    factor mode m_i != 0 is damped by exp(-m_i^2 t_i) / 2) must be rejected by the same
    comparison.
    """
    torch.manual_seed(0)
    vae = VAE(latent, (25,), Gaussian(0.1), hidden=16).double()
    g = torch.Generator().manual_seed(1)
    loc = (torch.rand(3, latent.dim, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    time = torch.tensor([0.02, 0.3, 1.5], dtype=torch.float64)
    grid = 256 if latent.dim == 1 else 64
    exact = heat_smoothed_decoder(vae, loc, time, grid)
    mc, error = monte_carlo_smoothed_decoder(vae, loc, time, samples=40000, seed=2)
    assert ((exact - mc).abs() <= 5.0 * error).all()
    spectrum = decoder_fourier_spectrum(vae, grid)
    radii = torch.tensor(circle_radii(latent), dtype=torch.float64)
    angle_time = time.unsqueeze(-1) / radii**2
    modes = spectrum.modes.double()
    per_factor = torch.where(
        modes == 0, 1.0, 0.5 * torch.exp(-angle_time.unsqueeze(-2) * modes**2)
    )  # (3, K, n)
    thesis_factor = per_factor.prod(-1).unsqueeze(-2)  # (3, 1, K)
    flat = spectrum.coefficients.reshape(len(spectrum.modes), -1)
    phase = loc.unsqueeze(-2) @ spectrum.modes.double().T
    thesis = (thesis_factor * torch.cos(phase)) @ flat.real - (
        thesis_factor * torch.sin(phase)
    ) @ flat.imag
    assert ((thesis.squeeze(-2) - mc).abs() > 5.0 * error).any()


def test_heat_smoothing_at_time_zero_is_the_decoder_on_the_grid():
    torch.manual_seed(0)
    vae = VAE(Circle(), (25,), Gaussian(0.1)).double()
    grid = angle_grid((32,))
    smoothed = heat_smoothed_decoder(vae, grid, 0.0, 32)
    torch.testing.assert_close(smoothed, vae.decoder_mean(grid).detach(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="product of circles"):
        heat_smoothed_decoder(VAE(Euclidean(1), (25,), Gaussian(0.1)), torch.zeros(1, 1), 0.1)
