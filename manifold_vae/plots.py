r"""Latent-space plots of a trained VAE (matplotlib's object API, no global state).

Axes-level functions draw into a given ``Axes`` and return it:

* :func:`plot_posterior_ellipses`: :math:`\mathbb R^2` posteriors as ellipses (thesis Fig. 5.4,
  Eq. 5.6);
* :func:`plot_posterior_arcs`: circle posteriors as arcs (thesis Fig. 7.1, Eq. 7.11, corrected);
* :func:`plot_torus_projection`: 3-D projections of torus encodings (thesis Figs. 11.3-11.4);
* :func:`plot_posterior`: dispatches on the latent space's declared capabilities.

What a plot needs is read from the capabilities the latent manifold declares
(:class:`~manifold_vae.manifolds.LatentManifold`: ``is_vector_space``, ``angle_radii``,
``posterior_spread``), never from its class: a missing capability raises ``ValueError`` naming it
(:func:`~manifold_vae.manifolds.base.require`).

Figure-level functions write PNGs: :func:`plot_latent`, :func:`plot_model_grid`,
:func:`plot_torus_grid`. Figures are ``matplotlib.figure.Figure`` objects with an Agg canvas of
their own (pyplot is never imported, so nothing is registered globally and nothing leaks). Models
may be float32 or float64 and live on any device: the data are moved to the model, the results
to the CPU.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .files import atomic_write
from .manifolds import LatentManifold
from .manifolds.base import require
from .vae import VAE

__all__ = [
    "new_figure",
    "plot_latent",
    "plot_model_grid",
    "plot_posterior",
    "plot_posterior_arcs",
    "plot_posterior_ellipses",
    "plot_torus_grid",
    "plot_torus_projection",
    "save_figure",
]

#: Colormap for phases: cyclic, so that -pi and pi get the same colour.
CYCLIC_CMAP = "twilight"


def new_figure(width: float, height: float, layout: str | None = None) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on the Agg canvas.

    Made without pyplot, so no global figure state is touched and nothing needs a display.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` (its folder created) atomically, in the format its suffix
    names (PNG without one); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    figure.savefig(image, format=path.suffix.removeprefix(".").lower() or "png")
    return atomic_write(path, image.getvalue())


@contextmanager
def _evaluating(vae: VAE) -> Iterator[None]:
    """Eval mode and no gradients; the module's previous mode is restored on exit."""
    was_training = vae.training
    vae.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        vae.train(was_training)


def _to_model(vae: VAE, data: Tensor) -> Tensor:
    """``data`` on the model's device and dtype, after checking its shape."""
    if not torch.is_tensor(data) or not data.is_floating_point():
        raise ValueError(
            f"data must be a floating torch.Tensor, got {getattr(data, 'dtype', type(data))}"
        )
    if data.dim() != len(vae.data_shape) + 1 or data.shape[1:] != vae.data_shape or not len(data):
        raise ValueError(
            f"data must have shape (N, {', '.join(map(str, vae.data_shape))}) with N >= 1 to "
            f"match vae.data_shape, got {tuple(data.shape)}"
        )
    p = next(vae.parameters())
    return data.to(device=p.device, dtype=p.dtype)


def _numpy(t: Tensor) -> Any:
    return t.detach().double().cpu().numpy()


def _colour_values(colour: Tensor | None, n: int) -> Any:
    """``colour`` as a float64 numpy array of shape ``(n,)``, or ``None``."""
    if colour is None:
        return None
    colour = torch.as_tensor(colour)
    if colour.numel() != n:
        raise ValueError(
            f"colour must hold one value per datapoint ({n}), got shape {tuple(colour.shape)}"
        )
    return _numpy(colour.reshape(n))


def _rgba(values: Any, n: int, cmap: str) -> Any:
    """RGBA colours ``(n, 4)`` of ``values`` under ``cmap`` (data range), or all ``C0``."""
    import matplotlib
    import numpy as np
    from matplotlib.colors import Normalize, to_rgba

    if values is None:
        return np.tile(to_rgba("C0"), (n, 1))
    norm = Normalize(vmin=float(values.min()), vmax=float(values.max()))
    return matplotlib.colormaps[cmap](norm(values))


def _check_vae(vae: VAE) -> None:
    if not isinstance(vae, VAE):
        raise ValueError(f"vae must be a VAE, got {type(vae).__name__}")


#: The capabilities of :func:`plot_posterior_ellipses` and :func:`plot_posterior_arcs`, in words.
_PLANE = "a 2-D vector space (is_vector_space and dim == 2, e.g. Euclidean(2))"
_ONE_ANGLE = "one angle coordinate (angle_radii of length 1 with a radius, e.g. Circle())"
_SPREAD = "a posterior spread (posterior_spread)"


def _is_plane(latent: LatentManifold) -> bool:
    return latent.is_vector_space and latent.dim == 2


def _is_one_angle(latent: LatentManifold) -> bool:
    radii = latent.angle_radii
    return len(radii) == 1 and radii[0] is not None


def _location_spread(
    vae: VAE,
    data: Tensor,
    capability: str,
    declares: Callable[[LatentManifold], bool],
    needed_by: str,
) -> tuple[Any, Any]:
    """Posterior locations and spreads ``(N, dim)``, float64 numpy, after checking that the
    latent ``declares`` ``capability`` and a posterior spread (``ValueError`` naming them)."""
    _check_vae(vae)
    require(vae.latent, capability, declares(vae.latent), needed_by)
    require(vae.latent, _SPREAD, vae.latent.has_posterior_spread, needed_by)
    with _evaluating(vae):
        posterior = vae.encode(_to_model(vae, data))
        location = vae.latent.posterior_location(posterior)
        return _numpy(location), _numpy(vae.latent.posterior_spread(posterior))


# --- axes-level ----------------------------------------------------------------------------
def plot_posterior_ellipses(
    ax: Any, vae: VAE, data: Tensor, colour: Tensor | None = None, cmap: str = CYCLIC_CMAP
) -> Any:
    r"""Posterior means and one-standard-deviation ellipses of an :math:`\mathbb R^2` VAE.

    Thesis Fig. 5.4, Eq. 5.6: for each datapoint :math:`x` the posterior
    :math:`N(\mu_Z(x), \operatorname{diag}\sigma_Z^2(x))` is drawn as a marker at
    :math:`\mu_Z(x)` and the axis-aligned ellipse
    :math:`\{z : \|(z - \mu_Z(x)) \oslash \sigma_Z(x)\|_2 \le 1\}` (semi-axes the posterior
    standard deviations: ``Ellipse`` of width :math:`2\sigma_1` and height :math:`2\sigma_2`),
    semi-transparent, its edge coloured like the marker. :math:`\mu_Z` is the latent's
    ``posterior_location`` and :math:`\sigma_Z` its ``posterior_spread``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    vae : VAE
        A model whose latent declares a 2-D vector space (``is_vector_space`` and
        ``dim == 2``, e.g. ``Euclidean(2)``) and ``posterior_spread``.
    data : Tensor, shape=[N, *data_shape]
        Datapoints to encode.
    colour : Tensor, shape=[N], optional
        Values to colour by (e.g. the true phase; ``cmap`` is cyclic by default).
    cmap : str
        Matplotlib colormap name.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, with ``N`` ellipse patches.

    Raises
    ------
    ValueError
        If the latent does not declare a 2-D vector space or a posterior spread.
    """
    from matplotlib.patches import Ellipse

    mean, std = _location_spread(vae, data, _PLANE, _is_plane, "plot_posterior_ellipses")
    values = _colour_values(colour, len(mean))
    rgba = _rgba(values, len(mean), cmap)
    for (mx, my), (sx, sy), c in zip(mean, std, rgba, strict=True):
        face = (*c[:3], 0.08)
        edge = (*c[:3], 0.7)
        ax.add_patch(
            Ellipse((mx, my), 2.0 * sx, 2.0 * sy, facecolor=face, edgecolor=edge, linewidth=0.8)
        )
    ax.scatter(mean[:, 0], mean[:, 1], c=rgba, s=10, zorder=3, edgecolors="none")
    ax.autoscale_view()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    return ax


def plot_posterior_arcs(
    ax: Any,
    vae: VAE,
    data: Tensor,
    colour: Tensor | None = None,
    cmap: str = CYCLIC_CMAP,
    gap: float = 0.06,
    spread: float = 0.3,
) -> Any:
    r"""Posterior mean directions and one-standard-deviation arcs of a circle VAE.

    Thesis Fig. 7.1, Eq. 7.11 (corrected): the posterior is the circle heat kernel
    :math:`p_t(\cdot \mid \mu)`, a wrapped normal with variance :math:`2t` (NOTES, heat-equation
    convention :math:`\partial_t p = \Delta p`). Each datapoint gets a marker at the mean
    direction :math:`(\cos\mu, \sin\mu)` on the unit circle (the angle coordinate is drawn on
    a circle of radius 1 whatever the latent circle's radius) and an arc spanning
    :math:`[\mu - s, \mu + s]` with :math:`s = \sqrt{2t}`, the standard deviation of the
    unwrapped normal: :math:`\mu` is the latent's ``posterior_location`` and :math:`s` its
    ``posterior_spread``, in angle units. The thesis's Eq. 7.11 uses
    :math:`|\theta - \mu| \le t`, comparing the time with a length; this uses the standard
    deviation, the analogue of the ellipses of Eq. 5.6. Arcs with :math:`2s \ge 2\pi` are
    drawn as the full circle. So that overlapping arcs stay readable, arc :math:`i` (of
    :math:`N`) is drawn outside the circle at radius
    :math:`1 + \text{gap} + \text{spread} \cdot i / (N - 1)`, in datapoint order.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    vae : VAE
        A model whose latent declares one angle coordinate (``angle_radii`` of length 1 with a
        radius, e.g. ``Circle()``) and ``posterior_spread``.
    data : Tensor, shape=[N, *data_shape]
        Datapoints to encode.
    colour : Tensor, shape=[N], optional
        Values to colour by (e.g. the true phase; ``cmap`` is cyclic by default).
    cmap : str
        Matplotlib colormap name.
    gap, spread : float
        Radial offset of the first arc from the circle, and radial range of the arcs (``>= 0``).

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``, with ``N`` ``matplotlib.patches.Arc`` patches.

    Raises
    ------
    ValueError
        If the latent does not declare one angle coordinate or a posterior spread.
    """
    import numpy as np
    from matplotlib.patches import Arc

    for name, value in (("gap", gap), ("spread", spread)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    location, std = _location_spread(vae, data, _ONE_ANGLE, _is_one_angle, "plot_posterior_arcs")
    mu, s = location[:, 0], std[:, 0]
    n = len(mu)
    values = _colour_values(colour, n)
    rgba = _rgba(values, n, cmap)
    theta = np.linspace(0.0, 2.0 * np.pi, 361)
    ax.plot(np.cos(theta), np.sin(theta), color="0.6", linewidth=1.0, zorder=1)
    radii = 1.0 + gap + spread * np.arange(n) / max(n - 1, 1)
    for m, sd, r, c in zip(mu, s, radii, rgba, strict=True):
        if 2.0 * sd >= 2.0 * np.pi:
            start, end = 0.0, 360.0
        else:
            start, end = np.degrees(m - sd), np.degrees(m + sd)
        ax.add_patch(
            Arc((0.0, 0.0), 2.0 * r, 2.0 * r, theta1=start, theta2=end, color=c, linewidth=1.2)
        )
    ax.scatter(np.cos(mu), np.sin(mu), c=rgba, s=14, zorder=3, edgecolors="none")
    limit = 1.0 + gap + spread + 0.1
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    return ax


def plot_torus_projection(
    axes: Sequence[Any],
    vae: VAE,
    data: Tensor,
    phases: Tensor,
    coords: tuple[int, int, int] = (0, 1, 2),
    cmap: str = CYCLIC_CMAP,
) -> Sequence[Any]:
    r"""3-D projection of the embedded posterior locations, one panel per phase.

    Thesis Figs. 11.3-11.4: the embedded posterior locations ``vae.embedded_location(x)``
    (e.g. :math:`\tfrac{1}{\sqrt2}(\cos a, \sin a, \cos b, \sin b)` on the Clifford torus) are
    projected onto the coordinates ``coords`` and scattered in 3-D; panel ``j`` is coloured by
    phase ``j`` (cyclic colormap).

    Parameters
    ----------
    axes : sequence of matplotlib 3-D axes
        One axes created with ``projection="3d"`` per column of ``phases``.
    vae : VAE
        A model whose latent space embeds in at least 3 dimensions.
    data : Tensor, shape=[N, *data_shape]
        Datapoints to encode.
    phases : Tensor, shape=[N, k]
        True phases (``k = len(axes)``, e.g. 2 for the torus).
    coords : tuple of three int
        Distinct embedding coordinates to show (axis labels ``z[i]``).
    cmap : str
        Matplotlib colormap name.

    Returns
    -------
    sequence of Axes
        ``axes``.
    """
    _check_vae(vae)
    if vae.latent.ambient_dim < 3:
        raise ValueError(
            f"a 3-D projection needs a latent space embedded in >= 3 dimensions, got "
            f"{vae.latent!r} (ambient_dim {vae.latent.ambient_dim}): use plot_posterior"
        )
    axes = list(axes)
    if not axes or any(getattr(ax, "name", None) != "3d" for ax in axes):
        raise ValueError('axes must be a non-empty sequence of axes made with projection="3d"')
    coords = tuple(coords)
    if (
        len(coords) != 3
        or len(set(coords)) != 3
        or any(isinstance(c, bool) or not isinstance(c, int) for c in coords)
        or not all(0 <= c < vae.latent.ambient_dim for c in coords)
    ):
        raise ValueError(
            f"coords must be three distinct integers in [0, {vae.latent.ambient_dim}), "
            f"got {coords!r}"
        )
    with _evaluating(vae):
        points = _numpy(vae.embedded_location(_to_model(vae, data)))
    phases = torch.as_tensor(phases)
    if phases.dim() == 1:
        phases = phases.unsqueeze(-1)
    if phases.dim() != 2 or phases.shape[0] != len(points) or phases.shape[1] != len(axes):
        raise ValueError(
            f"phases must have shape ({len(points)}, {len(axes)}) (one column per axes), got "
            f"{tuple(phases.shape)}"
        )
    i, j, k = coords
    for column, ax in enumerate(axes):
        ax.scatter(
            points[:, i],
            points[:, j],
            points[:, k],
            c=_numpy(phases[:, column]),
            cmap=cmap,
            s=6,
            depthshade=False,
        )
        ax.set_xlabel(f"z[{i}]")
        ax.set_ylabel(f"z[{j}]")
        ax.set_zlabel(f"z[{k}]")
        ax.set_title(f"colour: phase {column + 1}")
    return axes


def plot_posterior(
    ax: Any, vae: VAE, data: Tensor, colour: Tensor | None = None, cmap: str = CYCLIC_CMAP
) -> Any:
    """Draw the posteriors of ``data`` in the way that suits the latent space.

    Dispatches on the latent's declared capabilities, given a ``posterior_spread``: a 2-D
    vector space (``is_vector_space``, ``dim == 2``: ``Euclidean(2)``) gets
    :func:`plot_posterior_ellipses`; one angle coordinate (``angle_radii`` of length 1:
    ``Circle()``) gets :func:`plot_posterior_arcs`; other latent spaces embedded in 1 or 2
    dimensions get a scatter of the embedded posterior locations (on the line ``y = 0`` in 1-D).
    Latent spaces embedded in 3 or more dimensions (tori) need a 3-D projection: ``ValueError``
    pointing to :func:`plot_torus_projection`.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    vae : VAE
        A model.
    data : Tensor, shape=[N, *data_shape]
        Datapoints to encode.
    colour : Tensor, shape=[N], optional
        Values to colour by.
    cmap : str
        Matplotlib colormap name.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.
    """
    _check_vae(vae)
    latent = vae.latent
    if latent.has_posterior_spread and _is_plane(latent):
        return plot_posterior_ellipses(ax, vae, data, colour, cmap=cmap)
    if latent.has_posterior_spread and _is_one_angle(latent):
        return plot_posterior_arcs(ax, vae, data, colour, cmap=cmap)
    if latent.ambient_dim >= 3:
        raise ValueError(
            f"{latent!r} embeds in {latent.ambient_dim} dimensions: its posteriors need a 3-D "
            "projection, use plot_torus_projection (or plot_torus_grid) instead of plot_posterior"
        )
    with _evaluating(vae):
        points = _numpy(vae.embedded_location(_to_model(vae, data)))
    y = points[:, 1] if points.shape[1] > 1 else 0.0 * points[:, 0]
    rgba = _rgba(_colour_values(colour, len(points)), len(points), cmap)
    ax.scatter(points[:, 0], y, c=rgba, s=10, edgecolors="none")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]" if points.shape[1] > 1 else "")
    return ax


# --- figure-level --------------------------------------------------------------------------
def _per_key(value: Any, key: Any, name: str) -> Any:
    """``value[key]`` when ``value`` is a mapping, else ``value`` (shared by every panel)."""
    if isinstance(value, Mapping):
        if key not in value:
            raise ValueError(f"{name} is a mapping but has no entry for the model key {key!r}")
        return value[key]
    return value


def _colorbar(figure: Any, axes: list[Any], values: Any, cmap: str, label: str) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if values is None:
        return
    norm = Normalize(vmin=float(values.min()), vmax=float(values.max()))
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=label, shrink=0.8)


def plot_model_grid(
    models: Mapping[tuple[str, str], VAE],
    data: Tensor | Mapping[tuple[str, str], Tensor],
    colour: Tensor | Mapping[tuple[str, str], Tensor] | None,
    path: str | Path,
    row_label: str = "dataset",
    col_label: str = "sigma_X",
    title: str | None = None,
) -> Path:
    """A grid of :func:`plot_posterior` panels, one per model, written as a PNG.

    Thesis Figs. 5.4 and 7.1: rows are e.g. the training sets :math:`X_\\sigma`, columns the
    decoder scales :math:`\\sigma_X`. Rows and columns appear in the first-seen order of the
    keys of ``models``; panel ``(row, col)`` is titled ``"{row}, {col_label}={col}"`` (e.g.
    ``X_0.1, sigma_X=0.1``); combinations without a model stay empty.

    Parameters
    ----------
    models : mapping from (row, column) to VAE
        The models (2-D latent embeddings: ``Euclidean(2)``, ``Circle()``, ...).
    data : Tensor or mapping from (row, column) to Tensor
        Datapoints to encode (e.g. :math:`X_{Vis}`), shared or per model.
    colour : Tensor, mapping or None
        Values to colour by (e.g. the true phases), shared or per model.
    path : str or Path
        Where to write the PNG (parent folders are created).
    row_label, col_label : str
        What the rows and columns vary (figure labels; ``col_label`` also in panel titles).
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping from (row, column) keys to VAEs")
    for key in models:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"models keys must be (row, column) pairs, got {key!r}")
    rows = list(dict.fromkeys(k[0] for k in models))
    cols = list(dict.fromkeys(k[1] for k in models))
    figure = new_figure(3.6 * len(cols) + 1.0, 3.6 * len(rows) + 0.6, layout="constrained")
    grid = figure.subplots(len(rows), len(cols), squeeze=False)
    bar_values = None
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            ax = grid[r][c]
            if (row, col) not in models:
                ax.set_axis_off()
                continue
            key = (row, col)
            values = _per_key(colour, key, "colour")
            plot_posterior(ax, models[key], _per_key(data, key, "data"), values)
            ax.set_title(f"{row}, {col_label}={col}")
            if values is not None and bar_values is None:
                bar_values = _colour_values(values, torch.as_tensor(values).numel())
    _colorbar(figure, grid.ravel().tolist(), bar_values, CYCLIC_CMAP, "colour (true phase)")
    figure.supylabel(f"rows: {row_label}")
    figure.supxlabel(f"columns: {col_label}")
    figure.suptitle(title or f"posteriors by {row_label} and {col_label}")
    return save_figure(figure, path)


def plot_torus_grid(
    models: Mapping[str, VAE],
    data: Tensor | Mapping[str, Tensor],
    phases: Tensor | Mapping[str, Tensor],
    path: str | Path,
    coords: tuple[int, int, int] = (0, 1, 2),
    title: str | None = None,
) -> Path:
    """3-D projections of torus encodings, one row per model, one column per phase (PNG).

    Thesis Figs. 11.3-11.4: rows are the models (e.g. keyed by ``"sigma_X=0.1"``), columns the
    two phases used as colour; each panel is :func:`plot_torus_projection`.

    Parameters
    ----------
    models : mapping from str to VAE
        Models embedding in at least 3 dimensions, in row order.
    data : Tensor or mapping from str to Tensor
        Datapoints (e.g. the torus :math:`X_{Vis}`), shared or per model.
    phases : Tensor, shape=[N, 2], or mapping
        True phases, shared or per model.
    path : str or Path
        Where to write the PNG (parent folders are created).
    coords : tuple of three int
        Embedding coordinates shown.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping from row labels to VAEs")
    first = torch.as_tensor(_per_key(phases, next(iter(models)), "phases"))
    k = first.shape[1] if first.dim() == 2 else 1
    figure = new_figure(4.2 * k, 3.8 * len(models) + 0.6)
    for r, (key, vae) in enumerate(models.items()):
        axes = [
            figure.add_subplot(len(models), k, r * k + j + 1, projection="3d") for j in range(k)
        ]
        plot_torus_projection(
            axes, vae, _per_key(data, key, "data"), _per_key(phases, key, "phases"), coords
        )
        for j, ax in enumerate(axes):
            ax.set_title(f"{key}: colour phase {j + 1}")
    figure.suptitle(title or "encoded X_Vis, 3-D projections")
    return save_figure(figure, path)


@torch.no_grad()
def plot_latent(
    vae: VAE,
    data: Tensor,
    path: str | Path,
    colour: Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Scatter the posterior locations of ``data`` in the latent space and save a PNG.

    The embedded points of the posterior locations are drawn: in the plane when
    ``ambient_dim <= 2`` (the circle is drawn as its unit circle in R^2), pairwise for higher
    ambient dimensions (one panel per consecutive pair of coordinates: the two circles of a
    torus). Points are coloured by ``colour`` (e.g. the true phase), one figure row per column
    of ``colour``.

    Parameters
    ----------
    vae : VAE
        A trained model.
    data : Tensor, shape=[N, *data_shape]
        Datapoints to encode.
    path : str or Path
        Where to write the PNG.
    colour : Tensor, shape=[N] or [N, k], optional
        Values to colour by (e.g. true latent angles).
    title : str, optional
        Figure title.
    """
    vae.eval()
    points = vae.embedded_location(data).cpu().double()
    pairs = max(1, (points.shape[-1] + 1) // 2)
    colours = [None] if colour is None else list(colour.reshape(len(data), -1).cpu().T)
    figure = new_figure(4.2 * pairs, 4.0 * len(colours))
    for row, c in enumerate(colours):
        for col in range(pairs):
            ax = figure.add_subplot(len(colours), pairs, row * pairs + col + 1)
            x = points[:, 2 * col]
            y = points[:, 2 * col + 1] if 2 * col + 1 < points.shape[-1] else torch.zeros_like(x)
            scatter = ax.scatter(x, y, c=c, s=8, cmap="twilight" if c is not None else None)
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_xlabel(f"z[{2 * col}]")
            ax.set_ylabel(f"z[{2 * col + 1}]" if 2 * col + 1 < points.shape[-1] else "")
            if c is not None:
                figure.colorbar(scatter, ax=ax, label=f"true latent {row}")
    figure.suptitle(title or f"posterior locations, {vae.latent!r}")
    figure.tight_layout()
    return save_figure(figure, path)
