"""Shared code of the image experiments (:mod:`.chapter_10`, :mod:`.chapter_11`).

Both train, for each latent manifold and decoder :math:`\\sigma_X \\in \\{0.01, 0.1, 1\\}`,
``reps`` VAEs on a fixed set of images (every image is also its own visualisation point, as in
the thesis), then measure how well the encoded locations recover the true angles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..datasets import LatentDataset
from ..likelihoods import Gaussian
from ..manifolds import LatentManifold
from ..networks import default_hidden
from ..trainer import TrainConfig
from ..vae import VAE
from .budget import Budget
from .common import (
    Member,
    build_members,
    by_cell,
    cell_value,
    evaluate,
    group_runs,
    health_columns,
    train_members,
)

__all__ = ["LR", "METRIC_COLUMNS", "SIGMAS_X", "structure_rows", "train_grid"]

SIGMAS_X = (0.01, 0.1, 1.0)
LR = 1e-3
#: The metric columns of both reports (:func:`structure_rows`).
METRIC_COLUMNS = ("-ELBO", "KL", "Reconstruction (NLL)", "MSE")


def train_grid(
    datasets: Mapping[str, LatentDataset],
    latents: Sequence[LatentManifold],
    budget: Budget,
    depth: int,
    batch_size: int,
    progress: bool,
    lr_final: float | None = None,
    restarts: int = 1,
    screen_epochs: int | None = None,
) -> tuple[list[Member], float]:
    """Train the grid (dataset x latent x :data:`SIGMAS_X`) of Gaussian-decoder VAEs.

    Each model has ``depth`` hidden layers of :func:`~manifold_vae.networks.default_hidden`
    units, is trained on its dataset's images with Adam (lr :data:`LR`, optionally annealed to
    ``lr_final``; ``restarts`` and ``screen_epochs`` as in
    :func:`~.common.train_members`) and evaluated on the same images
    (:func:`~.common.evaluate`). Returns the members and the training wall time.
    """
    cells = [
        {"dataset": name, "latent": repr(latent), "sigma_x": sx}
        for name in datasets
        for latent in latents
        for sx in SIGMAS_X
    ]
    by_repr = {repr(latent): latent for latent in latents}

    def make(cell: Mapping[str, Any]):
        data = datasets[cell["dataset"]].data
        vae = VAE(
            by_repr[cell["latent"]],
            tuple(data.shape[1:]),
            Gaussian(cell["sigma_x"]),
            hidden=default_hidden(data.shape[1:]),
            depth=depth,
        )
        return vae, data

    members = build_members(cells, budget.reps, make, restarts=restarts)
    config = TrainConfig(
        epochs=budget.epochs, batch_size=batch_size, lr=LR, lr_final=lr_final, progress=progress
    )
    seconds = train_members(members, config, screen_epochs=screen_epochs)
    for m in members:
        ds = datasets[m.cell["dataset"]]
        evaluate(m, ds.data, ds.latent, loop=ds.latent.shape[-1] == 1)
    return members, seconds


def structure_rows(members: Sequence[Member], factors: int) -> tuple[list, list]:
    """Report rows per grid cell: the metrics, and the recovered structure of ``factors`` angles.

    Metric rows: ``(dataset, latent, sigma_X, -ELBO, KL, reconstruction, MSE)`` as
    ``mean ± std``. Structure rows: the same cell columns, the circular correlation of each
    factor, the worst run's per factor, for one factor how many runs wind once, and
    :func:`~.common.health_columns`.
    """
    cells = by_cell(members)
    metric_rows, structure_rows = [], []
    for key, entry in group_runs(members).items():
        cell, s = entry["cell"], entry["summary"]
        label = (cell["dataset"], cell["latent"], f"{cell['sigma_x']:g}")
        metric_rows.append(
            (
                *label,
                cell_value(s, "neg_elbo"),
                cell_value(s, "kl"),
                cell_value(s, "reconstruction"),
                cell_value(s, "mse"),
            )
        )
        group = cells[key]
        corr = [
            cell_value(s, f"phase_correlation_{i}", digits=4, scientific_below=1e-9)
            for i in range(factors)
        ]
        worst = [min(m.metrics["phase_correlation"][i] for m in group) for i in range(factors)]
        extra = []
        if factors == 1:
            w = [abs(m.metrics.get("winding", 0)) == 1 for m in group]
            extra.append(f"{sum(w)}/{len(w)}")
        structure_rows.append(
            (
                *label,
                *corr,
                " / ".join(f"{v:.4f}" for v in worst),
                *extra,
                *health_columns(group),
            )
        )
    return metric_rows, structure_rows
