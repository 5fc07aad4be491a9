"""Chapters 10 and 11: image datasets with circular and toroidal latent structure.

Both train, for each latent manifold and decoder :math:`\\sigma_X \\in \\{0.01, 0.1, 1\\}`,
``reps`` VAEs on a fixed set of images (every image is also its own visualisation point, as in
the thesis), then measure how well the encoded locations recover the true angles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..datasets import LatentDataset, pixel_shift, rotating_object, toroidal_grid
from ..evaluation import recovered_angles, unwound_phase_correlations
from ..likelihoods import Gaussian
from ..manifolds import Circle, CliffordTorus, Euclidean, LatentManifold
from ..networks import default_hidden
from ..plots import plot_model_grid, plot_torus_grid
from ..vae import VAE
from .budget import Budget
from .common import (
    Member,
    Report,
    build_members,
    by_cell,
    cell_value,
    evaluate,
    group_runs,
    health_columns,
    markdown_table,
    member_records,
    plot_histories,
    train_members,
)

__all__ = ["CH10_DEFAULT", "CH10_TINY", "CH11_DEFAULT", "CH11_TINY", "chapter_10", "chapter_11"]

SIGMAS_X = (0.01, 0.1, 1.0)
CH10_DEFAULT = Budget(epochs=1000, reps=1, n=1)
CH10_TINY = Budget(epochs=2, reps=1, n=1)
#: For chapter 11, ``n`` is the number of grid phases per axis (the thesis: 50, 2500 images).
CH11_DEFAULT = Budget(epochs=60, reps=3, n=50, restarts=8)
CH11_TINY = Budget(epochs=1, reps=1, n=10)
LR = 1e-3
#: Each chapter-11 model is the best of ``budget.restarts`` starts after a screen of
#: CH11_SCREEN_EPOCHS epochs (most torn tori show within a few epochs; see docs/reproduce.md).
CH11_SCREEN_EPOCHS = 12
#: Chapter 11's default training: minibatches of 32, the step size annealed from LR to
#: CH11_LR_FINAL by a cosine.
CH11_BATCH = 32
CH11_LR_FINAL = 1e-5
METRIC_COLUMNS = ("-ELBO", "KL", "Reconstruction (NLL)", "MSE")


def _train_grid(
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
    seconds = train_members(
        members,
        budget.epochs,
        batch_size=batch_size,
        lr=LR,
        progress=progress,
        lr_final=lr_final,
        screen_epochs=screen_epochs,
    )
    for m in members:
        ds = datasets[m.cell["dataset"]]
        evaluate(m, ds.data, ds.latent, loop=ds.latent.shape[-1] == 1)
    return members, seconds


def _structure_rows(members: Sequence[Member], factors: int) -> tuple[list, list]:
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


def chapter_10(
    out: Path,
    budget: Budget = CH10_DEFAULT,
    progress: bool = True,
    size: int = 32,
    coil20: str | Path | None = None,
    object_id: int = 1,
) -> Report:
    """Sec. 10.1 (circular pixel shift) and Sec. 10.2 (an object seen from 72 angles).

    Parameters
    ----------
    out : Path
        Output folder of the figures.
    budget : Budget
        Epochs and repetitions (``n`` is unused: the datasets are fixed).
    progress : bool
        Progress bars.
    size : int
        Image side in pixels. The thesis used 64 (pixel shift) and 128 (COIL-20); the default
        32 keeps the networks (``floor(size^2 / 3)`` units per layer) trainable on a CPU.
    coil20 : path, optional
        Folder of COIL-20's processed images; without it a built-in rendered object stands in.
    object_id : int
        Which COIL-20 object.
    """
    from ..datasets import coil20 as load_coil20

    objects = (
        load_coil20(coil20, object_id=object_id, size=size)
        if coil20 is not None
        else rotating_object(n_angles=72, size=size)
    )
    datasets = {"pixel shift": pixel_shift(size=size), "object": objects}
    latents = [Euclidean(2), Circle()]
    members, seconds = _train_grid(
        datasets, latents, budget, depth=3, batch_size=72, progress=progress
    )
    metric_rows, structure_rows = _structure_rows(members, 1)
    figures = []
    for name, ds in datasets.items():
        slug = name.replace(" ", "-")
        figures.append(
            plot_model_grid(
                {
                    (m.cell["latent"], f"{m.cell['sigma_x']:g}"): m.vae
                    for m in members
                    if m.rep == 0 and m.cell["dataset"] == name
                },
                ds.data,
                ds.latent[:, 0],
                out / f"posteriors-{slug}.png",
                row_label="latent",
                title=f"{ds.name}: posteriors (repetition 0)",
            )
        )
    figures.append(
        plot_histories(
            members,
            out / "training.png",
            label=lambda m: f"{m.cell['dataset']}, {m.cell['latent']}",
        )
    )
    head = ["dataset", "latent", "sigma_X"]
    table_metrics = markdown_table([*head, *METRIC_COLUMNS], metric_rows)
    table_structure = markdown_table(
        [*head, "circular correlation", "worst run", "winding 1", "drift", "stopped"],
        structure_rows,
    )
    pixel_name, object_name = datasets["pixel shift"].name, datasets["object"].name
    body = f"""
Datasets: {pixel_name} and {object_name}. For each, the baseline
VAE on R^2 and the diffusion VAE on S^1 with sigma_X in {{0.01, 0.1, 1}}, {budget.reps}
repetitions, three hidden layers of floor(D/3) units (D = {size}x{size} = {size * size}),
{budget.epochs} epochs (one minibatch holds every image), Adam lr {LR:g}; {len(members)} models
trained as vectorised ensembles in {seconds:.0f} s. Metrics on the training images (every image
is a point of the loop), L = 100 latent samples.

## Metrics (correct negative log-likelihood)

{table_metrics}

## Recovered circle

{table_structure}
"""
    data = {
        "size": size,
        "coil20": str(coil20) if coil20 is not None else None,
        "train_seconds": seconds,
        "cells": list(group_runs(members).values()),
        "members": member_records(members),
    }
    return Report("chapter-10", "Chapter 10: circular image datasets", budget, body, data, figures)


def chapter_11(
    out: Path,
    budget: Budget = CH11_DEFAULT,
    progress: bool = True,
    batch_size: int = CH11_BATCH,
    lr_final: float | None = CH11_LR_FINAL,
    screen_epochs: int = CH11_SCREEN_EPOCHS,
) -> Report:
    """Sec. 11.3-11.4: R^4 baseline versus the Clifford torus on the toroidal benchmark.

    Models are trained and evaluated on the regular grid of ``budget.n`` x ``budget.n`` phase
    pairs (the thesis: 50 x 50 = 2500 noiseless images, Sec. 11.1). ``batch_size``,
    ``lr_final`` (cosine step size) and ``screen_epochs`` (of restarts, with
    ``budget.restarts > 1``) change the training.
    """
    grid = toroidal_grid(n_per_axis=budget.n)
    datasets = {"toroidal X_Vis": grid}
    latents = [Euclidean(4), CliffordTorus()]
    screen = min(screen_epochs, budget.epochs)
    members, seconds = _train_grid(
        datasets,
        latents,
        budget,
        depth=2,
        batch_size=batch_size,
        progress=progress,
        lr_final=lr_final,
        restarts=budget.restarts,
        screen_epochs=screen,
    )
    shape = (budget.n, budget.n)
    for m in members:
        W, unwound = unwound_phase_correlations(
            grid.latent, recovered_angles(m.vae, grid.data), shape
        )
        m.metrics["winding_matrix"] = W.tolist()
        m.metrics["unwound_phase_correlation"] = unwound.tolist()
    metric_rows, structure_rows = _structure_rows(members, 2)
    torus_rows = []
    for group in by_cell(members).values():
        cell = group[0].cell
        windings = [m.metrics["winding_matrix"] for m in group]
        homeo = [abs(w[0][0] * w[1][1] - w[0][1] * w[1][0]) == 1 for w in windings]
        aligned = [min(m.metrics["phase_correlation"]) >= 0.95 for m in group]
        unwound = [min(m.metrics["unwound_phase_correlation"]) for m in group]
        torus_rows.append(
            (
                cell["latent"],
                f"{cell['sigma_x']:g}",
                f"{sum(aligned)}/{len(group)}",
                f"{sum(homeo)}/{len(group)}",
                "n/a" if any(math.isnan(u) for u in unwound) else f"{min(unwound):.4f}",
                "; ".join(str(w) for w in windings),
            )
        )
    restart_rows = []
    for group in by_cell(members).values():
        chosen = [m.restarts["chosen"] for m in group if m.restarts]
        screens = []
        for m in group:
            if m.restarts:
                losses = m.restarts["final_loss"]
                best = losses[m.restarts["chosen"]]
                others = sorted(v for j, v in enumerate(losses) if j != m.restarts["chosen"])
                screens.append(f"{best:.4g} < " + ", ".join(f"{v:.4g}" for v in others))
        restart_rows.append(
            (
                group[0].cell["latent"],
                f"{group[0].cell['sigma_x']:g}",
                ", ".join(map(str, chosen)) or "n/a",
                "; ".join(screens) or "n/a",
            )
        )
    figures = []
    for latent in latents:
        slug = latent.name
        figures.append(
            plot_torus_grid(
                {
                    f"sigma_X={m.cell['sigma_x']:g}": m.vae
                    for m in members
                    if m.rep == 0 and m.cell["latent"] == repr(latent)
                },
                grid.data,
                grid.latent,
                out / f"latents-{slug}.png",
            )
        )
    figures.append(plot_histories(members, out / "training.png", label=lambda m: m.cell["latent"]))
    torus_worst = min(
        min(m.metrics["phase_correlation"])
        for m in members
        if m.cell["latent"] == repr(CliffordTorus())
    )
    head = ["dataset", "latent", "sigma_X"]
    lr_text = f"{LR:g}" if lr_final is None else f"{LR:g} annealed to {lr_final:g} by a cosine"
    restart_section = ""
    if budget.restarts > 1:
        restart_table = markdown_table(
            ["latent", "sigma_X", "chosen start per repetition", "screen losses (chosen first)"],
            restart_rows,
        )
        restart_section = f"""
Restarts. Each model is the best of {budget.restarts} random initialisations: copies of all
{budget.restarts} are trained for {screen} epochs (the screen), and the start with the lowest
training loss (negative ELBO, which never sees the true phases) is then trained in full. A
torn torus (a recovered angle that does not wind) shows in the training loss within the first
epochs, orders of magnitude above the others at small sigma_X; a start whose loss spikes early
may still recover, so the screen only has to rank one good start first. The same procedure
trains the R^4 baseline.

{restart_table}
"""
    table_metrics = markdown_table([*head, *METRIC_COLUMNS], metric_rows)
    table_structure = markdown_table(
        [*head, "phase 1", "phase 2", "worst run (1 / 2)", "drift", "stopped"], structure_rows
    )
    table_torus = markdown_table(
        [
            "latent",
            "sigma_X",
            "both phases >= 0.95",
            "torus recovered (det W = ±1)",
            "worst unwound correlation",
            "winding matrices W",
        ],
        torus_rows,
    )
    body = f"""
Data: {grid.name}: like the thesis (Sec. 11.1, 50 x 50), we train on the noiseless
{budget.n} x {budget.n} grid of phase pairs itself. Models: the baseline VAE on R^4 and the
diffusion VAE on the Clifford torus, sigma_X in {{0.01, 0.1, 1}}, {budget.reps} repetitions,
two hidden layers of floor(625/3) = 208 units, {budget.epochs} epochs, batch {batch_size}, Adam
lr {lr_text}; {len(members)} models trained as vectorised ensembles in {seconds:.0f} s. Metrics
on the same {len(grid.data)} images, L = 100.
{restart_section}
## Metrics (correct negative log-likelihood)

{table_metrics}

## Recovered phases

Circular correlation of each true phase with its recovered angle, the two factors assigned
one-to-one (they may be swapped or reflected). On the Clifford torus the recovered angles are
the two torus angles; on R^4 they are the angles of the encoded points in the planes
(z0, z1) and (z2, z3) around their centroid, which need not be where R^4 models put the
phases, so low values there say little.

{table_structure}

Worst per-phase circular correlation over all Clifford-torus models: {torus_worst:.4f}.

## Which map of the torus was learned

The learned encoder can recover the torus without aligning its factors with the phases: a
shear such as `theta = (phi_1 + phi_2, phi_2)` is as good a generative model (the decoder
absorbs it) but mixes the phases, so the per-factor correlation above is low. The winding
matrix `W` (entry `(j, i)`: winding of recovered angle j around the loops where only phase i
varies, median over the grid's loops) tells them apart: `|det W| = 1` means the encoded grid is
a torus homeomorphic to the true one; a signed permutation matrix means the phases are separated
factor by factor. "Unwound correlation": the circular correlation of each phase with
`W^-1 theta`, i.e. after undoing the learned integer map.

{table_torus}
"""
    data = {
        "train_seconds": seconds,
        "cells": list(group_runs(members).values()),
        "members": member_records(members),
    }
    return Report(
        "chapter-11", "Chapter 11: toroidal latent structure", budget, body, data, figures
    )
