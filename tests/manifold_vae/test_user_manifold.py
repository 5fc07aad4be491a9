"""A user's latent manifold, defined here and not in the package: its plots, evaluation and
harmonic spectra work through the capabilities it declares, and a manifold that declares none
gets a ``ValueError`` naming the missing capability (issue 13's acceptance test)."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Arc
from torch import Tensor
from torch.distributions import Distribution

from manifold_vae.datasets import sinusoids, sinusoids_grid
from manifold_vae.evaluation import (
    factor_correlations,
    has_recovered_angles,
    loop_winding,
    phase_recovery,
    recovered_angles,
    thesis_metrics,
)
from manifold_vae.harmonic import decoder_spectrum, heat_smoothed_decoder
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import register_manifold
from manifold_vae.manifolds.base import MANIFOLDS
from manifold_vae.plots import (
    plot_latent,
    plot_model_grid,
    plot_posterior,
    plot_posterior_arcs,
    plot_posterior_ellipses,
)
from manifold_vae.testing import manifold_checks
from manifold_vae.training import fit
from manifold_vae.vae import VAE

from .registry import ScaledCircle

pytestmark = pytest.mark.usefixtures("one_thread")

N = 32
PNG = b"\x89PNG\r\n\x1a\n"


class SilentCircle(ScaledCircle):
    """The circle of radius 2 (``registry.ScaledCircle``: written against the public protocol
    only, no capability declared).

    Coordinates: the angle ``(..., 1)``; points ``2 (cos a, sin a)``; metric ``4 da^2``; the
    heat kernel at intrinsic time ``t`` is the unit circle's at angle time ``t / 4``.
    """

    name = "test-user-silent-circle"


class AngleOnlyCircle(SilentCircle):
    """Declares its angle coordinate but not how to summarise a posterior's spread."""

    name = "test-user-angle-only-circle"

    @property
    def angle_radii(self) -> tuple[float | None, ...]:
        return (self.radius,)


class DeclaredCircle(AngleOnlyCircle):
    """Declares everything that applies: the angle of a circle of radius 2 and the spread."""

    name = "test-user-circle"

    def posterior_spread(self, posterior: Distribution) -> Tensor:
        return torch.sqrt(2.0 * posterior.time)  # std of the unwrapped angle, angle units


USER_MANIFOLDS = (SilentCircle, AngleOnlyCircle, DeclaredCircle)


@pytest.fixture(scope="module")
def registered():
    """The user's classes registered by name for this module only."""
    for cls in USER_MANIFOLDS:
        register_manifold(cls)
    yield
    for cls in USER_MANIFOLDS:
        MANIFOLDS.unregister(cls.name)


@pytest.fixture(scope="module")
def trained(registered) -> VAE:
    torch.manual_seed(0)
    vae = VAE(DeclaredCircle(), (25,), Gaussian(0.1), hidden=16)
    data = sinusoids(n=128, noise=0.1, seed=0).data
    history = fit(vae, data, epochs=2, batch_size=32, progress=False)
    assert len(history.loss) == 2 and all(math.isfinite(v) for v in history.loss)
    return vae


@pytest.fixture(scope="module")
def grid():
    return sinusoids_grid(n=N)


def _ax():
    figure = Figure()
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def _is_png(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def test_the_conformance_kit_accepts_the_declarations(registered):
    checks = manifold_checks(DeclaredCircle(), samples=1000)
    assert "radii (2.0,)" in checks["angle-radii"]()
    assert checks["vector-space"]() == "not declared"
    assert "within" in checks["posterior-spread"]()
    for name in ("spec", "coordinates", "prior", "heat-kernel", "posterior", "kl"):
        checks[name]()


def test_plots_work_through_the_capabilities(trained, grid, tmp_path):
    ax = plot_posterior(_ax(), trained, grid.data, grid.latent[:, 0])
    arcs = [p for p in ax.patches if isinstance(p, Arc)]
    assert len(arcs) == N
    with torch.no_grad():
        posterior = trained.eval().encode(grid.data)
    mu = posterior.mean_direction[:, 0].double()
    s = torch.sqrt(2.0 * posterior.time[:, 0]).double()
    for arc, m, sd in zip(arcs, mu, s, strict=True):
        assert math.radians(arc.theta1) == pytest.approx((m - sd).item(), abs=1e-6)
    assert len(plot_posterior_arcs(_ax(), trained, grid.data).patches) == N
    assert _is_png(plot_latent(trained, grid.data, tmp_path / "latent.png", grid.latent))
    models = {("X_0.1", "0.1"): trained}
    assert _is_png(plot_model_grid(models, grid.data, grid.latent[:, 0], tmp_path / "grid.png"))


def test_evaluation_works_through_the_capabilities(trained, grid):
    assert has_recovered_angles(trained.latent)
    angles = recovered_angles(trained, grid.data)
    with torch.no_grad():
        location = trained.latent.posterior_location(trained.encode(grid.data))
    assert angles.shape == (N, 1) and angles.dtype == torch.float64
    torch.testing.assert_close(angles, location.double(), rtol=0, atol=0)
    correlation = phase_recovery(trained, grid.data, grid.latent)
    assert correlation.shape == (1,) and 0.0 <= correlation.item() <= 1.0
    torch.testing.assert_close(factor_correlations(grid.latent, angles), correlation)
    assert loop_winding(trained, grid.data).dtype == torch.int64
    metrics = thesis_metrics(trained, grid.data, num_samples=4)
    assert all(math.isfinite(v) for k, v in metrics.items() if "thesis" not in k)


def test_harmonic_spectra_use_the_declared_radius(trained):
    spectrum = decoder_spectrum(trained, 16)
    assert spectrum.basis == "fourier" and spectrum.modes.shape == (16, 1)
    loc = torch.zeros(1, 1)
    smoothed = heat_smoothed_decoder(trained, loc, 0.0, 16)  # time 0: the decoder on the grid
    expected = trained.decoder_mean(loc).detach()
    torch.testing.assert_close(smoothed.to(expected.dtype), expected, rtol=0, atol=1e-5)


def test_undeclared_capabilities_raise_naming_them(registered, grid):
    torch.manual_seed(0)
    silent = VAE(SilentCircle(), (25,), Gaussian(0.1), hidden=4)
    with pytest.raises(ValueError, match=r"plot_posterior_arcs needs .*angle_radii"):
        plot_posterior_arcs(_ax(), silent, grid.data)
    with pytest.raises(ValueError, match=r"plot_posterior_ellipses needs .*is_vector_space"):
        plot_posterior_ellipses(_ax(), silent, grid.data)
    assert not has_recovered_angles(silent.latent)
    for evaluate in (recovered_angles, loop_winding):
        with pytest.raises(ValueError, match=r"recovered_angles needs .*angle_radii"):
            evaluate(silent, grid.data)
    with pytest.raises(ValueError, match=r"is_vector_space"):
        phase_recovery(silent, grid.data, grid.latent)
    with pytest.raises(ValueError, match=r"no spectrum.*angle_radii"):
        decoder_spectrum(silent, 16)
    ax = plot_posterior(_ax(), silent, grid.data)  # a scatter of the locations needs nothing
    assert not ax.patches and len(ax.collections[0].get_offsets()) == N


def test_a_missing_posterior_spread_is_named(registered, grid):
    torch.manual_seed(0)
    vae = VAE(AngleOnlyCircle(), (25,), Gaussian(0.1), hidden=4)
    with pytest.raises(ValueError, match=r"plot_posterior_arcs needs .*posterior_spread"):
        plot_posterior_arcs(_ax(), vae, grid.data)
    assert recovered_angles(vae, grid.data).shape == (N, 1)  # angles need no spread
