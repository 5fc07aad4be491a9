"""Tests of the built-in datasets and their generative models (thesis Secs. 5.1, 6.1, 10, 11.1)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from manifold_vae.datasets import (
    COIL20_URL,
    GenerativeModel,
    LatentDataset,
    coil20,
    load_grey_image,
    pixel_shift,
    rotating_object,
    sinusoid_mean,
    sinusoid_model,
    sinusoids,
    sinusoids_frequency,
    sinusoids_frequency_grid,
    sinusoids_grid,
    to_frequency_domain,
    toroidal,
    toroidal_grid,
    toroidal_mean,
    toroidal_model,
)
from manifold_vae.datasets.pixel_shift import default_image_path
from manifold_vae.manifolds import Circle, Euclidean, FlatTorus

TWO_PI = 2.0 * math.pi


def _in_angle_range(latent: torch.Tensor) -> bool:
    return bool(((latent >= -math.pi) & (latent < math.pi)).all())


# --- sinusoids (Sec. 5.1) ----------------------------------------------------------------------


def test_sinusoids_keep_their_random_draws():
    """The same seed gives the same phases and noise as the original implementation."""
    n, dim, noise, seed = 50, 7, 0.3, 11
    g = torch.Generator().manual_seed(seed)
    phase = (torch.rand(n, generator=g, dtype=torch.float64) * 2.0 - 1.0) * math.pi
    j = torch.arange(1, dim + 1, dtype=torch.float64)
    mean = torch.sin(TWO_PI * j / dim + phase[:, None])
    x = mean + noise * torch.randn(n, dim, generator=g, dtype=torch.float64)
    ds = sinusoids(n, dim, noise, seed)
    assert isinstance(ds, LatentDataset)
    assert ds.data.dtype == torch.float32 and ds.latent.shape == (n, 1)
    torch.testing.assert_close(ds.data, x.float(), rtol=0, atol=0)
    torch.testing.assert_close(ds.latent[:, 0], phase.float(), rtol=0, atol=0)
    # The attached model reproduces the same draws.
    again = ds.model.sample(n, seed=seed, dtype=torch.float64)
    torch.testing.assert_close(again.data, x, rtol=0, atol=0)
    assert ds.model.noise == noise and ds.model.data_shape == (dim,)
    assert ds.model.latent == Circle()


def test_sinusoids_grid_model_is_noiseless():
    ds = sinusoids_grid(8, dim=5, dtype=torch.float64)
    expected = -math.pi + TWO_PI * torch.arange(8, dtype=torch.float64) / 8
    torch.testing.assert_close(ds.latent[:, 0], expected, rtol=0, atol=0)
    assert ds.model is not None and ds.model.noise == 0.0
    torch.testing.assert_close(ds.model.mean(ds.latent), ds.data, rtol=0, atol=0)
    with pytest.raises(ValueError, match="noise is 0"):
        ds.model.conditional(ds.latent)


@pytest.mark.parametrize("dim", [3, 4, 25])
def test_to_frequency_domain_is_exact_on_noiseless_sinusoids(dim):
    phase = torch.linspace(-math.pi, 3.0, 41, dtype=torch.float64)
    coeffs = to_frequency_domain(sinusoid_mean(phase, dim))
    expected = torch.stack([torch.sin(phase), torch.cos(phase)], -1)
    torch.testing.assert_close(coeffs, expected, rtol=0, atol=1e-13)


def test_frequency_grid_is_the_transform_of_the_time_grid():
    time_grid = sinusoids_grid(100, dim=25, dtype=torch.float64)
    freq_grid = sinusoids_frequency_grid(100, dtype=torch.float64)
    assert freq_grid.data.shape == (100, 2) and freq_grid.model.noise == 0.0
    torch.testing.assert_close(freq_grid.latent, time_grid.latent, rtol=0, atol=0)
    torch.testing.assert_close(
        to_frequency_domain(time_grid.data), freq_grid.data, rtol=0, atol=1e-13
    )
    # Eq. 6.5: (sin phi, cos phi); phase -pi gives (0, -1).
    torch.testing.assert_close(
        freq_grid.data[0], torch.tensor([0.0, -1.0], dtype=torch.float64), rtol=0, atol=1e-15
    )


def test_frequency_noise_has_variance_two_sigma_squared_over_dim():
    dim, sigma, n = 25, 0.5, 40000
    g = torch.Generator().manual_seed(3)
    coeffs = to_frequency_domain(sigma * torch.randn(n, dim, generator=g, dtype=torch.float64))
    var = coeffs.var(0)
    expected = 2.0 * sigma**2 / dim  # 0.02; sigma^2 / dim would be half of it
    # Standard error of a variance estimate: var * sqrt(2 / n) ~ 0.7 %.
    torch.testing.assert_close(
        var, torch.full((2,), expected, dtype=torch.float64), rtol=0.04, atol=0
    )
    corr = torch.corrcoef(coeffs.T)[0, 1]
    assert abs(corr) < 0.03


def test_eq_6_2_double_counts_aliased_frequencies():
    """Frequencies k and D - k coincide on D samples: the sum to D - 1 is not a basis."""
    dim = 9
    i = torch.arange(1, dim + 1, dtype=torch.float64)
    for k in range(1, dim):
        torch.testing.assert_close(
            torch.cos(TWO_PI * k * i / dim), torch.cos(TWO_PI * (dim - k) * i / dim)
        )
        torch.testing.assert_close(
            torch.sin(TWO_PI * k * i / dim), -torch.sin(TWO_PI * (dim - k) * i / dim)
        )


def test_sinusoids_frequency_noise_and_shapes():
    ds = sinusoids_frequency(n=20000, noise=0.2, seed=1, dtype=torch.float64)
    assert ds.data.shape == (20000, 2) and ds.latent.shape == (20000, 1)
    assert _in_angle_range(ds.latent)
    residual = ds.data - torch.stack([torch.sin(ds.latent[:, 0]), torch.cos(ds.latent[:, 0])], -1)
    torch.testing.assert_close(
        residual.std(0), torch.full((2,), 0.2, dtype=torch.float64), rtol=0.03, atol=0
    )
    # Uniform phases: mean near 0, variance pi^2 / 3.
    assert abs(ds.latent.mean().item()) < 0.05
    assert abs(ds.latent.var().item() - math.pi**2 / 3) < 0.1
    assert sinusoids_frequency(5, seed=1).data.dtype == torch.float32


def test_to_frequency_domain_rejects_bad_input():
    with pytest.raises(ValueError, match="D >= 3"):
        to_frequency_domain(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="floating-point"):
        to_frequency_domain(torch.zeros(4, 5, dtype=torch.long))


def test_sinusoid_arguments_are_validated():
    with pytest.raises(ValueError, match="noise"):
        sinusoids(10, noise=-1.0)
    with pytest.raises(ValueError, match="n must"):
        sinusoids(0)
    with pytest.raises(ValueError, match="dim must"):
        sinusoids(10, dim=1)
    with pytest.raises(ValueError, match="n must"):
        sinusoids_frequency(0)


# --- generative models -------------------------------------------------------------------------


def test_log_joint_matches_eq_5_3():
    dim, sigma = 6, 0.4
    model = sinusoid_model(dim, sigma)
    g = torch.Generator().manual_seed(0)
    coords = (torch.rand(5, 1, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    x = torch.randn(5, dim, generator=g, dtype=torch.float64)
    sq = ((x - sinusoid_mean(coords[:, 0], dim)) ** 2).sum(-1)
    expected = -sq / (2 * sigma**2) - dim * math.log(sigma * math.sqrt(TWO_PI)) - math.log(TWO_PI)
    torch.testing.assert_close(model.log_joint(x, coords), expected)
    assert model.conditional(coords).event_shape == (dim,)
    torch.testing.assert_close(
        model.prior(dtype=torch.float64).log_prob(coords),
        torch.full((5,), -math.log(TWO_PI), dtype=torch.float64),
    )


def test_frequency_log_joint_matches_eq_6_6():
    sigma = 0.3
    model = sinusoids_frequency(3, noise=sigma).model
    coords = torch.tensor([[0.5], [-2.0]], dtype=torch.float64)
    x = torch.tensor([[0.1, 0.7], [-1.0, 0.2]], dtype=torch.float64)
    mean = torch.stack([torch.sin(coords[:, 0]), torch.cos(coords[:, 0])], -1)
    expected = -math.log(4 * math.pi**2 * sigma**2) - ((x - mean) ** 2).sum(-1) / (2 * sigma**2)
    torch.testing.assert_close(model.log_joint(x, coords), expected)


def test_toroidal_conditional_has_image_event_shape():
    model = toroidal_model(dim=5, noise=0.1)
    coords = torch.zeros(3, 2, dtype=torch.float64)
    cond = model.conditional(coords)
    assert cond.batch_shape == (3,) and cond.event_shape == (5, 5)
    x = model.mean(coords)
    expected = -25 * math.log(0.1 * math.sqrt(TWO_PI)) - 2 * math.log(TWO_PI)
    torch.testing.assert_close(
        model.log_joint(x, coords), torch.full((3,), expected, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="coords must"):
        model.conditional(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="x must have shape"):
        model.log_joint(torch.zeros(3, 4, 4), coords)


def test_sample_uses_no_global_rng_and_is_seeded():
    model = toroidal_model(dim=5, noise=0.1)
    state = torch.get_rng_state()
    a = model.sample(10, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    b = model.sample(10, seed=4)
    c = model.sample(10, seed=5)
    assert torch.equal(a.data, b.data) and torch.equal(a.latent, b.latent)
    assert not torch.equal(a.latent, c.latent)
    assert a.model is model and a.latent.shape == (10, 2) and _in_angle_range(a.latent)


def test_euclidean_model_samples_standard_normal_latents():
    model = GenerativeModel(Euclidean(2), lambda z: z.sum(-1, keepdim=True), 0.0, (1,), "sum")
    ds = model.sample(4000, seed=0, dtype=torch.float64)
    assert abs(ds.latent.std().item() - 1.0) < 0.05
    torch.testing.assert_close(ds.data[:, 0], ds.latent.sum(-1))


def test_generative_model_validates_its_fields():
    mean = lambda z: z  # noqa: E731
    with pytest.raises(ValueError, match="latent must"):
        GenerativeModel("circle", mean, 0.1, (1,), "m")
    with pytest.raises(ValueError, match="mean must"):
        GenerativeModel(Circle(), 3, 0.1, (1,), "m")
    with pytest.raises(ValueError, match="noise must"):
        GenerativeModel(Circle(), mean, float("nan"), (1,), "m")
    with pytest.raises(ValueError, match="data_shape must"):
        GenerativeModel(Circle(), mean, 0.1, (0,), "m")
    model = GenerativeModel(Circle(), mean, 0.1, [1], "m")
    assert model.data_shape == (1,)
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)
    with pytest.raises(ValueError, match="seed must"):
        model.sample(3, seed=1.5)


# --- toroidal (Sec. 11.1) ----------------------------------------------------------------------


def test_toroidal_mean_at_zero_phase_matches_eq_11_1():
    dim = 25
    image = toroidal_mean(torch.zeros(2, dtype=torch.float64), dim)
    expected = np.empty((dim, dim))
    for i in range(1, dim + 1):
        for j in range(1, dim + 1):
            expected[i - 1, j - 1] = math.sin(2 * math.pi * i / dim) + math.sin(
                4 * math.pi * j / dim
            )
    np.testing.assert_allclose(image.numpy(), expected, rtol=0, atol=1e-13)
    printed = toroidal_mean(torch.tensor([0.3, -1.1], dtype=torch.float64), dim, layout="printed")
    for i in range(1, dim + 1):
        value = math.sin(2 * math.pi * i / dim + 0.3) + math.sin(4 * math.pi * i / dim - 1.1)
        np.testing.assert_allclose(printed[i - 1].numpy(), np.full(dim, value), atol=1e-13)


def test_toroidal_mean_is_periodic_in_both_phases():
    phases = torch.tensor([[0.4, -2.5]], dtype=torch.float64)
    base = toroidal_mean(phases, 7)
    for shift in ([TWO_PI, 0.0], [0.0, TWO_PI]):
        torch.testing.assert_close(
            toroidal_mean(phases + torch.tensor(shift, dtype=torch.float64), 7), base
        )
    assert not torch.allclose(toroidal_mean(phases + torch.tensor([0.0, math.pi]), 7), base)


def test_toroidal_grid_order_and_values():
    n = 6
    ds = toroidal_grid(n, dim=5, dtype=torch.float64)
    assert ds.data.shape == (n * n, 5, 5) and ds.latent.shape == (n * n, 2)
    axis = -math.pi + TWO_PI * torch.arange(n, dtype=torch.float64) / n
    for a in range(n):
        for b in range(n):
            torch.testing.assert_close(
                ds.latent[a * n + b], torch.stack([axis[a], axis[b]]), rtol=0, atol=0
            )
    torch.testing.assert_close(ds.data, toroidal_mean(ds.latent, 5), rtol=0, atol=0)
    assert ds.model.noise == 0.0 and ds.model.latent == FlatTorus(2)
    full = toroidal_grid()
    assert full.data.shape == (2500, 25, 25)
    # Both axes cover the whole circle (Eq. 11.3 as printed covers half of the second one).
    for k in range(2):
        assert len(torch.unique(full.latent[:, k])) == 50
        assert full.latent[:, k].max() - full.latent[:, k].min() > TWO_PI * 0.97


def test_toroidal_samples():
    ds = toroidal(300, dim=6, noise=0.5, seed=2, dtype=torch.float64)
    assert ds.data.shape == (300, 6, 6) and _in_angle_range(ds.latent)
    residual = ds.data - toroidal_mean(ds.latent, 6)
    assert abs(residual.std().item() - 0.5) < 0.02
    clean = toroidal(4, dim=6, seed=2, dtype=torch.float64)
    torch.testing.assert_close(clean.data, toroidal_mean(clean.latent, 6), rtol=0, atol=0)
    assert toroidal(2).data.shape == (2, 25, 25)


def test_toroidal_arguments_are_validated():
    with pytest.raises(ValueError, match="layout must"):
        toroidal_mean(torch.zeros(2), 25, layout="rows")
    with pytest.raises(ValueError, match="dim must"):
        toroidal(5, dim=4)
    with pytest.raises(ValueError, match="phases must"):
        toroidal_mean(torch.zeros(3), 25)
    with pytest.raises(ValueError, match="n_per_axis must"):
        toroidal_grid(0)
    with pytest.raises(ValueError, match="noise must"):
        toroidal(5, noise=-0.1)


# --- pixel shift (Sec. 10.1) -------------------------------------------------------------------


def test_pixel_shift_rows_are_cyclic_shifts():
    image = np.arange(4 * 5, dtype=np.float64).reshape(4, 5) / 19.0
    ds = pixel_shift(image, size=None, dtype=torch.float64)
    assert ds.data.shape == (5, 4, 5)
    for s in range(5):
        for j in range(5):
            np.testing.assert_array_equal(ds.data[s, :, j].numpy(), image[:, (j + s) % 5])
    angles = [math.remainder(TWO_PI * s / 5, TWO_PI) for s in range(5)]
    np.testing.assert_allclose(ds.latent[:, 0].numpy(), angles, atol=1e-15)
    assert _in_angle_range(ds.latent)


def test_pixel_shift_model_mean():
    image = np.random.default_rng(0).random((3, 8))
    ds = pixel_shift(image, size=None, dtype=torch.float64)
    model = ds.model
    assert model.latent == Circle() and model.noise == 0.0 and model.data_shape == (3, 8)
    torch.testing.assert_close(model.mean(ds.latent), ds.data, rtol=0, atol=0)
    # Halfway between shifts 2 and 3: the average of the two images (linear interpolation).
    half = torch.tensor([[TWO_PI * 2.5 / 8]], dtype=torch.float64)
    torch.testing.assert_close(model.mean(half)[0], (ds.data[2] + ds.data[3]) / 2)
    # Between shift 7 (angle -pi/4) and shift 0 (angle 0): wraps around.
    torch.testing.assert_close(
        model.mean(torch.tensor([[-TWO_PI * 0.25 / 8]], dtype=torch.float64))[0],
        0.75 * ds.data[0] + 0.25 * ds.data[7],
    )


def test_pixel_shift_default_photograph():
    ds = pixel_shift()
    assert ds.data.shape == (64, 64, 64) and ds.data.dtype == torch.float32
    assert ds.data.min() >= 0 and ds.data.max() <= 1 and ds.data.std() > 0.1
    torch.testing.assert_close(ds.data[5], torch.roll(ds.data[0], -5, dims=1), rtol=0, atol=0)
    grey = load_grey_image(None, size=None)
    assert grey.shape == (600, 512)
    with Image.open(default_image_path()) as im:
        pil = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    assert np.abs(grey - pil).max() <= 1.0 / 255.0 + 1e-12


def test_image_inputs_agree(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    np.testing.assert_allclose(load_grey_image(rgb, None), grey, atol=1e-12)
    np.testing.assert_allclose(
        load_grey_image(torch.as_tensor(rgb / 255.0), None), grey, atol=1e-12
    )
    rgba = np.concatenate([rgb, np.zeros((6, 7, 1), np.uint8)], -1)
    np.testing.assert_allclose(load_grey_image(rgba, None), grey, atol=1e-12)
    path = tmp_path / "im.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_allclose(load_grey_image(path, None), grey, atol=1e-12)
    np.testing.assert_allclose(load_grey_image(str(path), None), grey, atol=1e-12)
    assert load_grey_image(path, 4).shape == (4, 4)
    constant = np.full((10, 12), 0.25)
    np.testing.assert_allclose(load_grey_image(constant, 5), np.full((5, 5), 0.25), atol=1e-6)


def test_image_validation(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(H, W\) or \(H, W, 3\|4\)"):
        pixel_shift(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        pixel_shift(np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        pixel_shift(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pixel_shift(np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pixel_shift(np.full((4, 4), -0.5))
    with pytest.raises(ValueError, match="size must"):
        pixel_shift(np.zeros((4, 4)), size=1)
    with pytest.raises(ValueError, match="cannot read"):
        pixel_shift(tmp_path / "missing.png")
    (tmp_path / "not_an_image.png").write_text("hello")
    with pytest.raises(ValueError, match="cannot read"):
        pixel_shift(tmp_path / "not_an_image.png")
    with pytest.raises(ValueError, match="2 pixels wide"):
        pixel_shift(np.zeros((4, 1)), size=None)


# --- objects (Sec. 10.2) -----------------------------------------------------------------------


def _write_coil(folder, object_id=3, views=range(72), side=8):
    folder.mkdir(parents=True, exist_ok=True)
    for k in views:
        pixels = np.full((side, side), k, dtype=np.uint8)
        pixels[0, 0] = 255
        Image.fromarray(pixels).save(folder / f"obj{object_id}__{k}.png")


@pytest.mark.parametrize("sub", ["", "coil-20-proc"])
def test_coil20_loader(tmp_path, sub):
    _write_coil(tmp_path / sub if sub else tmp_path)
    ds = coil20(tmp_path, object_id=3, dtype=torch.float64)
    assert ds.data.shape == (72, 8, 8) and ds.model is None
    # Ordered by k (numerically, not as strings: obj3__10 after obj3__9).
    np.testing.assert_allclose(ds.data[:, 1, 1].numpy(), np.arange(72) / 255.0)
    assert (ds.data[:, 0, 0] == 1.0).all()
    angles = np.deg2rad(5.0 * np.arange(72))
    np.testing.assert_allclose(
        ds.latent[:, 0].numpy(), np.where(angles >= np.pi, angles - 2 * np.pi, angles), atol=1e-12
    )
    assert ds.latent[36, 0].item() == -math.pi and _in_angle_range(ds.latent)
    assert coil20(tmp_path, object_id=3, size=4).data.shape == (72, 4, 4)


def test_coil20_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist") as info:
        coil20(tmp_path / "nowhere")
    assert COIL20_URL in str(info.value)
    _write_coil(tmp_path, views=[k for k in range(72) if k != 17])
    with pytest.raises(
        ValueError, match=r"1 of the 72 views of object 3 are missing.*obj3__17\.png"
    ) as info:
        coil20(tmp_path, object_id=3)
    assert COIL20_URL in str(info.value)
    with pytest.raises(ValueError, match="72 of the 72"):
        coil20(tmp_path, object_id=4)
    for bad in (0, 21, 1.0):
        with pytest.raises(ValueError, match="object_id must"):
            coil20(tmp_path, object_id=bad)


@pytest.fixture(scope="module")
def rotating():
    return rotating_object(dtype=torch.float64)


def test_rotating_object_shape_and_range(rotating):
    ds = rotating
    assert ds.data.shape == (72, 64, 64) and ds.latent.shape == (72, 1)
    assert ds.data.min() >= 0 and ds.data.max() <= 1
    assert (ds.data[:, 0, 0] == 0).all()  # black background
    assert 0.03 < ds.data.mean() < 0.5
    expected = (
        torch.remainder(TWO_PI * torch.arange(72, dtype=torch.float64) / 72 + math.pi, TWO_PI)
        - math.pi
    )
    torch.testing.assert_close(ds.latent[:, 0], expected, rtol=0, atol=1e-12)
    assert rotating_object(8, size=16).data.dtype == torch.float32


def test_rotating_object_is_deterministic_and_its_model_renders_it(rotating):
    ds = rotating
    again = rotating_object(n_angles=12, size=64, dtype=torch.float64)
    assert torch.equal(again.data, rotating_object(n_angles=12, size=64, dtype=torch.float64).data)
    # The same views as every 6th of 72 (angles equal up to rounding).
    torch.testing.assert_close(again.data, ds.data[::6], rtol=0, atol=1e-9)
    torch.testing.assert_close(ds.model.mean(ds.latent[:4]), ds.data[:4], rtol=0, atol=1e-12)
    assert ds.model.data_shape == (64, 64) and ds.model.latent == Circle()


def test_rotating_object_geometry(rotating):
    ds = rotating
    flat = ds.data.reshape(72, -1)
    dist = torch.cdist(flat, flat)
    opposite = dist[torch.arange(72), (torch.arange(72) + 36) % 72]
    neighbour = dist[torch.arange(72), (torch.arange(72) + 1) % 72]
    # No rotational symmetry: every view differs from the view half a turn away.
    assert opposite.min() > 0.2 * flat.norm(dim=1).mean()
    assert (neighbour < opposite).all()
    # Periodic: the last view (355 degrees) is as close to the first as neighbours are.
    assert dist[0, 71] <= 1.5 * neighbour.max()
    assert dist[0, 71] < 0.5 * opposite[0]
    # And no view repeats except itself: the quarter turns differ too.
    quarter = dist[torch.arange(72), (torch.arange(72) + 18) % 72]
    assert quarter.min() > 0.2 * flat.norm(dim=1).mean()


def test_rotating_object_arguments_are_validated():
    with pytest.raises(ValueError, match="n_angles must"):
        rotating_object(0)
    with pytest.raises(ValueError, match="size must"):
        rotating_object(4, size=1)


def test_importing_datasets_imports_no_image_library():
    code = (
        "import sys, torch; d = torch.get_default_dtype(); import manifold_vae.datasets; "
        "print('PIL' in sys.modules, 'matplotlib' in sys.modules, torch.get_default_dtype() == d)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "True"]
