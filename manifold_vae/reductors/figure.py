"""The grid figure of the reductions (thesis Fig. 9.5): source latents mapped into each target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..latent_model import LatentVariableModel
from ..manifolds import LatentManifold
from .table import ReductionTable

__all__ = ["plot_reduction_grid"]


def _viewer(
    manifold: LatentManifold, reference: Tensor
) -> tuple[Callable[[Tensor], Tensor], tuple[str, str]]:
    """A 2-D view of points ``(N, ambient_dim)`` of ``manifold``, and its axis labels.

    Planar embeddings as they are; a product of two circles (declared ``angle_product`` with
    two ``angle_radii``) by its two angles; anything else by the first two principal axes of
    ``reference`` (the target's own points), the same axes for every set.
    """
    if manifold.ambient_dim == 2:
        return (lambda p: p.detach().cpu().double()), ("z1", "z2")
    if manifold.angle_product and len(manifold.angle_radii) == 2:
        return (
            lambda p: manifold.to_coordinates(p.detach().cpu().double()),
            ("angle 1", "angle 2"),
        )
    reference = reference.detach().cpu().double()
    centre = reference.mean(0)
    _, _, vh = torch.linalg.svd(reference - centre, full_matrices=False)
    axes = vh[:2].T
    return (lambda p: (p.detach().cpu().double() - centre) @ axes), ("PC 1", "PC 2")


def plot_reduction_grid(
    table: ReductionTable,
    models: Mapping[str, LatentVariableModel],
    coords: Mapping[str, Tensor],
    phase: Tensor,
    path: str | Path,
    title: str = "reductions",
) -> Path:
    r"""Fig. 9.5: cell :math:`(i, j)` shows model :math:`i`'s latents mapped into :math:`Z_j`.

    In cell :math:`(i, j)`, :math:`i \ne j`, the latent representation of the visualisation
    data in the target (grey) and the source's representation mapped by the best reductor
    :math:`M_{i;j}` (coloured by the true phase); the diagonal shows each model's own
    representation, coloured.

    Parameters
    ----------
    table : ReductionTable
        The fitted reductors.
    models : mapping of str to LatentVariableModel
        The models of the table, by name.
    coords : mapping of str to Tensor, each shape=[N, latent.dim]
        Each model's latent coordinates of the same ``N`` visualisation datapoints (a VAE's
        encoded locations, a generating process's true latents).
    phase : Tensor, shape=[N]
        The true phase of each datapoint (colour, cyclic colormap).
    path : path
        The PNG to write.
    title : str
        Figure title.
    """
    from ..plots import CYCLIC_CMAP, new_figure, save_figure

    names = table.names
    n = len(names)
    figure = new_figure(3.0 * n, 3.0 * n, layout="constrained")
    hue = phase.detach().cpu().double().numpy()
    for i, s in enumerate(names):
        source_points = models[s].latent.to_point(coords[s])
        for j, t in enumerate(names):
            ax = figure.add_subplot(n, n, i * n + j + 1)
            target = models[t].latent
            own_points = target.to_point(coords[t])
            view, labels = _viewer(target, own_points)
            own = view(own_points)
            if i == j:
                ax.scatter(own[:, 0], own[:, 1], c=hue, cmap=CYCLIC_CMAP, s=6)
                ax.set_title(f"{s}", fontsize=9)
            else:
                best = table.best(s, t)
                reductor = best.fit.map
                with torch.no_grad():
                    mapped = reductor(source_points)[0]
                shown = view(mapped)
                ax.scatter(own[:, 0], own[:, 1], c="0.75", s=6)
                ax.scatter(
                    shown[:, 0], shown[:, 1], c=hue, cmap=CYCLIC_CMAP, s=6, marker="x", lw=0.7
                )
                ax.set_title(f"{s} -> {t}: {best.value:.3g} ({best.fit.family})", fontsize=8)
            ax.set_xlabel(labels[0], fontsize=7)
            ax.set_ylabel(labels[1], fontsize=7)
            ax.tick_params(labelsize=6)
    figure.suptitle(
        f"{title}\ngrey: target's own latents; crosses: source latents mapped into it",
        fontsize=9,
    )
    return save_figure(figure, path)
