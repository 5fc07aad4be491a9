"""``manifold_vae.plots``: posterior ellipses, arcs, torus projections and model grids."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Arc, Ellipse

from manifold_vae.datasets import sinusoids_grid
from manifold_vae.likelihoods import Gaussian
from manifold_vae.manifolds import Circle, CliffordTorus, Euclidean
from manifold_vae.plots import (
    plot_latent,
    plot_model_grid,
    plot_posterior,
    plot_posterior_arcs,
    plot_posterior_ellipses,
    plot_torus_grid,
    plot_torus_projection,
)
from manifold_vae.vae import VAE

N = 24
PNG = b"\x89PNG\r\n\x1a\n"


# One torch thread: tiny models run many times faster on a busy 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def grid():
    return sinusoids_grid(n=N)


def _vae(latent, sigma: float = 0.1, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(latent, (25,), Gaussian(sigma), hidden=4)


def _ax(projection: str | None = None):
    figure = Figure()
    FigureCanvasAgg(figure)
    return figure.add_subplot(projection=projection)


def _is_png(path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def _ellipses(ax) -> list:
    return [p for p in ax.patches if type(p) is Ellipse]


def _arcs(ax) -> list:
    return [p for p in ax.patches if isinstance(p, Arc)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ellipses_one_per_datapoint_with_posterior_std(grid, dtype):
    vae = _vae(Euclidean(2)).to(dtype)
    ax = _ax()
    assert plot_posterior_ellipses(ax, vae, grid.data, grid.latent[:, 0]) is ax
    ellipses = _ellipses(ax)
    assert len(ellipses) == N
    with torch.no_grad():
        posterior = vae.encode(grid.data.to(dtype))
    mean, std = posterior.mean.double(), posterior.stddev.double()
    for e, m, s in zip(ellipses, mean, std, strict=True):
        assert e.center == pytest.approx(m.tolist(), rel=1e-5)
        assert (e.width, e.height) == pytest.approx((2 * s).tolist(), rel=1e-5)
        assert e.get_edgecolor()[:3] != (0.0, 0.0, 0.0)
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == N


def test_arcs_one_per_datapoint_spanning_plus_minus_one_std(grid):
    vae = _vae(Circle()).double()
    ax = _ax()
    assert plot_posterior_arcs(ax, vae, grid.data, grid.latent[:, 0]) is ax
    arcs = _arcs(ax)
    assert len(arcs) == N
    with torch.no_grad():
        posterior = vae.encode(grid.data.double())
    s = torch.sqrt(2 * posterior.time[:, 0])  # the std of the wrapped normal, not t (Eq. 7.11)
    radii = [a.width / 2 for a in arcs]
    assert all(r > 1.0 for r in radii) and radii == sorted(radii)
    for arc, mu, sd in zip(arcs, posterior.loc[:, 0], s, strict=True):
        span = (arc.theta2 - arc.theta1) % 360 or 360
        assert span == pytest.approx(min(360.0, math.degrees(2 * sd)), abs=1e-6)
        if sd < math.pi:
            assert math.radians(arc.theta1) == pytest.approx((mu - sd).item(), abs=1e-9)


def test_arcs_longer_than_the_circle_are_full_circles(grid):
    vae = _vae(Circle())
    with torch.no_grad():
        last = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight[2] = 0.0
        last.bias[2] = 10.0  # time ~ 10: s = sqrt(20) > pi
    arcs = _arcs(plot_posterior_arcs(_ax(), vae, grid.data))
    assert len(arcs) == N
    assert all((a.theta1, a.theta2) == (0.0, 360.0) for a in arcs)


def test_torus_projection_panels(grid):
    vae = _vae(CliffordTorus())
    axes = [_ax("3d"), _ax("3d")]
    phases = torch.stack([grid.latent[:, 0], grid.latent[:, 0].flip(0)], -1)
    assert plot_torus_projection(axes, vae, grid.data, phases, coords=(0, 2, 3)) == axes
    for ax in axes:
        assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == N
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("z[0]", "z[2]", "z[3]")


def test_plot_posterior_dispatches(grid):
    assert len(_ellipses(plot_posterior(_ax(), _vae(Euclidean(2)), grid.data))) == N
    assert len(_arcs(plot_posterior(_ax(), _vae(Circle()), grid.data))) == N
    ax = plot_posterior(_ax(), _vae(Euclidean(1)), grid.data, grid.latent[:, 0])
    assert not ax.patches and len(ax.collections[0].get_offsets()) == N
    with pytest.raises(ValueError, match="plot_torus_projection"):
        plot_posterior(_ax(), _vae(CliffordTorus()), grid.data)


def test_wrong_latent_or_arguments_raise(grid):
    with pytest.raises(ValueError, match=r"Euclidean\(2\)"):
        plot_posterior_ellipses(_ax(), _vae(Circle()), grid.data)
    with pytest.raises(ValueError, match=r"Circle\(\)"):
        plot_posterior_arcs(_ax(), _vae(Euclidean(2)), grid.data)
    with pytest.raises(ValueError, match="3-D projection"):
        plot_torus_projection([_ax("3d")], _vae(Circle()), grid.data, grid.latent)
    torus = _vae(CliffordTorus())
    with pytest.raises(ValueError, match="axes"):
        plot_torus_projection([_ax()], torus, grid.data, grid.latent)
    with pytest.raises(ValueError, match="coords"):
        plot_torus_projection([_ax("3d")], torus, grid.data, grid.latent, coords=(0, 1, 4))
    with pytest.raises(ValueError, match="phases"):
        plot_torus_projection([_ax("3d"), _ax("3d")], torus, grid.data, grid.latent)
    with pytest.raises(ValueError, match="colour"):
        plot_posterior_ellipses(_ax(), _vae(Euclidean(2)), grid.data, grid.latent[:5, 0])
    with pytest.raises(ValueError, match="data"):
        plot_posterior_ellipses(_ax(), _vae(Euclidean(2)), grid.data[:, :5])


def test_figures_write_pngs_and_leave_no_pyplot_state(grid, tmp_path):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    figures = sys.modules["matplotlib.pyplot"].get_fignums() if had_pyplot else None
    models = {
        (f"X_{noise}", str(sigma)): _vae(Euclidean(2), sigma)
        for noise in (0.01, 0.1)
        for sigma in (0.1, 1)
    }
    models[("X_1", "1")] = _vae(Circle()).double()
    path = plot_model_grid(models, grid.data, grid.latent[:, 0], tmp_path / "a" / "grid.png")
    assert path == tmp_path / "a" / "grid.png" and _is_png(path)
    per_key = {key: grid.data for key in models}
    path = plot_model_grid(models, per_key, None, tmp_path / "grid2.png", title="no colour")
    assert _is_png(path)
    with pytest.raises(ValueError, match="data"):
        plot_model_grid(models, {("X_1", "1"): grid.data}, None, tmp_path / "bad.png")
    phases = torch.stack([grid.latent[:, 0], grid.latent[:, 0].flip(0)], -1)
    tori = {f"sigma_X={s}": _vae(CliffordTorus(), s) for s in (0.1, 1.0)}
    assert _is_png(plot_torus_grid(tori, grid.data, phases, tmp_path / "b" / "torus.png"))
    assert _is_png(plot_latent(_vae(Circle()), grid.data, tmp_path / "latent.png", grid.latent))
    if had_pyplot:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == figures
    else:
        assert "matplotlib.pyplot" not in sys.modules
