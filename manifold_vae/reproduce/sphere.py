r"""The S^2 demonstration: a VAE with a spherical latent recovers a direction on the sphere.

Data: :func:`~manifold_vae.datasets.spherical_sensors`, a light source in a uniformly random
direction :math:`z \in S^2` seen by :math:`D` sensors. Models: the diffusion VAE on
``Sphere()`` (exact heat-kernel posterior, uniform prior) and the baseline VAE on
``Euclidean(3)``, ``reps`` seeds each, trained by
:func:`~manifold_vae.reproduce.common.train_members` (the sphere's rejection-sampled posterior
has no Gaussian-noise ``reparameterize``, so its members train one by one inside the training
loop, exactly as :func:`~manifold_vae.training.fit`; the Euclidean ones as a stacked ensemble).

Recovery is measured on held-out data up to the symmetry of the problem: the encoded
directions :math:`u_i` (the posterior locations on the sphere; on :math:`\mathbb R^3` the
posterior means, centred and projected radially onto the sphere) are aligned with the true
:math:`z_i` by the orthogonal map (rotation or reflection) that minimises
:math:`\sum_i \lVert R u_i - z_i\rVert^2` (orthogonal Procrustes, :math:`R = A B^\top` from the
SVD :math:`\sum_i z_i u_i^\top = A S B^\top`), and the residual angles
:math:`\angle(R u_i, z_i)` are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..analysis import encoded_directions, procrustes_alignment, true_negative_log_likelihood
from ..datasets import spherical_sensors
from ..evaluation import thesis_metrics
from ..likelihoods import Gaussian
from ..manifolds import Euclidean, LatentManifold, Sphere
from ..trainer import TrainConfig
from ..vae import VAE
from .budget import Budget
from .common import (
    Member,
    Report,
    build_members,
    convergence,
    markdown_table,
    member_records,
    plot_histories,
    train_members,
)
from .experiment import EXPERIMENTS, Experiment

__all__ = ["DEFAULT", "EXPERIMENT", "NAME", "TINY", "sphere"]

NAME = "sphere"

DEFAULT = Budget(epochs=150, reps=2, n=2000)
TINY = Budget(epochs=2, reps=1, n=128)
SENSORS, CONCENTRATION, NOISE = 30, 3.0, 0.05
SIGMA_X = 0.05
HIDDEN, DEPTH, BATCH, LR, LR_FINAL = 64, 2, 128, 3e-3, 3e-4
VIS = 1000


def _angle_summary(angles: Tensor) -> dict[str, float]:
    degrees = torch.rad2deg(angles)
    return {
        "angle_mean_deg": degrees.mean().item(),
        "angle_median_deg": degrees.median().item(),
        "angle_p90_deg": torch.quantile(degrees, 0.9).item(),
    }


def _train(
    latents: Sequence[LatentManifold], data: Tensor, budget: Budget, progress: bool
) -> list[Member]:
    by_repr = {repr(latent): latent for latent in latents}

    def make(cell: Mapping[str, Any]):
        vae = VAE(
            by_repr[cell["latent"]], (SENSORS,), Gaussian(SIGMA_X), hidden=HIDDEN, depth=DEPTH
        )
        return vae, data

    members = build_members([{"latent": repr(latent)} for latent in latents], budget.reps, make)
    config = TrainConfig(
        epochs=budget.epochs, batch_size=BATCH, lr=LR, lr_final=LR_FINAL, progress=progress
    )
    train_members(members, config)
    return members


def _figure(members: Sequence[Member], truth: Tensor, vis: Tensor, path: Path) -> Path:
    from ..plots import new_figure

    shown = [m for m in members if m.rep == 0]
    figure = new_figure(4.2 * len(shown), 8.0)
    for col, m in enumerate(shown):
        directions, _ = encoded_directions(m.vae, vis)
        rotation, angles = procrustes_alignment(directions, truth)
        aligned = directions @ rotation.T
        ax = figure.add_subplot(2, len(shown), col + 1, projection="3d")
        ax.scatter(*aligned.T.numpy(), c=truth[:, 2].numpy(), cmap="viridis", s=4)
        ax.set_title(f"{m.cell['latent']}: aligned codes\n(colour: true height z_3)", fontsize=9)
        ax.set_box_aspect((1, 1, 1))
        hist = figure.add_subplot(2, len(shown), len(shown) + col + 1)
        degrees = torch.rad2deg(angles)
        top = max(10.0, float(torch.quantile(degrees, 0.995)))
        hist.hist(degrees.numpy(), bins=40, range=(0, top), color=f"C{col}")
        hist.set_xlabel("residual angle after Procrustes (degrees)")
        hist.set_ylabel("held-out points")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def sphere(out: Path, budget: Budget = DEFAULT, progress: bool = True) -> Report:
    """Train VAEs with ``Sphere()`` and ``Euclidean(3)`` on the sensor data; measure recovery.

    Parameters
    ----------
    out : Path
        Output folder of the figures.
    budget : Budget
        ``epochs``, ``reps`` (seeds per latent) and ``n`` (training points).
    progress : bool
        Progress bars.
    """
    train = spherical_sensors(budget.n, SENSORS, CONCENTRATION, NOISE, seed=0)
    vis = spherical_sensors(min(VIS, budget.n), SENSORS, CONCENTRATION, NOISE, seed=1)
    truth = vis.latent.double()
    latents = [Sphere(), Euclidean(3)]
    members = _train(latents, train.data, budget, progress)
    for m in members:
        directions, spread = encoded_directions(m.vae, vis.data)
        _, angles = procrustes_alignment(directions, truth)
        metrics: dict[str, Any] = thesis_metrics(m.vae, vis.data, num_samples=20, seed=0)
        metrics.update(_angle_summary(angles))
        metrics["radial_spread"] = spread.item()
        metrics["convergence"] = convergence(m.history)
        metrics["stopped"] = m.history.stopped
        m.metrics = metrics
    # references: unrelated random directions, and the true directions themselves
    noise = torch.randn(
        len(truth), 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64
    )
    _, random_angles = procrustes_alignment(noise / noise.norm(dim=-1, keepdim=True), truth)
    reference = _angle_summary(random_angles)
    true_nll = true_negative_log_likelihood(vis.model, vis.data, truth).mean().item()
    rows = []
    for m in members:
        s = m.metrics
        rows.append(
            (
                m.cell["latent"],
                str(m.rep),
                f"{s['neg_elbo']:.2f}",
                f"{s['kl']:.2f}",
                f"{s['mse']:.4f}",
                f"{s['angle_mean_deg']:.2f}",
                f"{s['angle_median_deg']:.2f}",
                f"{s['angle_p90_deg']:.2f}",
                f"{s['radial_spread']:.3f}",
                "n/a" if math.isnan(s["convergence"]) else f"{s['convergence']:.1e}",
            )
        )
    rows.append(("true model (-log p(x))", "-", f"{true_nll:.2f}", *["-"] * 7))
    rows.append(
        (
            "random directions (reference)",
            "-",
            "-",
            "-",
            "-",
            *(
                f"{reference[k]:.2f}"
                for k in ("angle_mean_deg", "angle_median_deg", "angle_p90_deg")
            ),
            "-",
            "-",
        )
    )
    header = [
        "latent",
        "seed",
        "-ELBO",
        "KL",
        "MSE",
        "mean angle (deg)",
        "median angle (deg)",
        "90% angle (deg)",
        "radial spread",
        "drift",
    ]
    figures = [
        _figure(members, truth, vis.data, out / "recovery.png"),
        plot_histories(members, out / "training.png", label=lambda m: m.cell["latent"]),
    ]
    body = f"""
Data: {train.name}; {budget.n} training points, {len(vis.data)} held-out points (another seed).
Each latent: {budget.reps} seeds, a Gaussian decoder with sigma_X = {SIGMA_X:g} (the true
noise), {DEPTH} hidden layers of {HIDDEN} units, {budget.epochs} epochs of Adam (lr {LR:g}
decaying to {LR_FINAL:g}, batch {BATCH}), trained with `train_members` (the spheres one by
one inside the training loop, as `fit`; the Euclidean models as one stacked ensemble).

Recovery on the held-out points: the encoded directions are aligned with the true directions
by the best orthogonal map (Procrustes, reflections allowed) and the residual angle between
each aligned code and its true direction is summarised. On R^3 the codes are centred and
projected onto the unit sphere first; "radial spread" is std / mean of their radii (0 for a
code that is itself a sphere). Metrics (L = 20 latent samples) on the held-out points;
"drift" is the relative change of the training loss over the last 20% of epochs. The row
"true model" is the negative log-likelihood of the held-out points under the true generating
process (importance sampling, 512 draws per point from a narrow heat kernel at the true
direction): the lowest -ELBO any model could reach on average.

{markdown_table(header, rows)}
"""
    data = {
        "dataset": train.name,
        "reference_random": reference,
        "true_negative_log_likelihood": true_nll,
        "members": member_records(members),
    }
    return Report(NAME, "A spherical latent: Sphere() vs Euclidean(3)", budget, body, data, figures)


EXPERIMENT = EXPERIMENTS.register(
    Experiment(
        NAME,
        "spherical latent: Sphere() vs Euclidean(3) on a direction in S^2",
        sphere,
        DEFAULT,
        TINY,
    )
)
