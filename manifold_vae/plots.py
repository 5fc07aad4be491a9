"""Latent-space plots of a trained VAE (matplotlib's object API, no global state)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .vae import VAE

__all__ = ["plot_latent"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


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
    figure = _figure(4.2 * pairs, 4.0 * len(colours))
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
