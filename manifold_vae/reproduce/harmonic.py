r"""``harmonic``: harmonic analysis of trained VAEs, the claims of Camuto & Willetts (AISTATS 2022).

On three benchmarks (noisy sinusoids, the toroidal images, the pixel-shift images), for a
Euclidean latent and the matching manifold latent (:math:`\mathbb R^2` / :math:`S^1`,
:math:`\mathbb R^4` / Clifford torus), models are trained over three one-at-a-time sweeps
around the base setting (:math:`\beta = 1`, learned posterior variance, no input noise):

* the KL weight :math:`\beta`;
* a fixed posterior time :math:`t` (:class:`~manifold_vae.manifolds.FixedTime`; the encoder
  variance is :math:`2t` on :math:`\mathbb R^d`);
* the standard deviation of Gaussian noise added to the encoder's input during training.

The experiment is split by role: the grid (:mod:`.harmonic_setup`), the measurement of each
model (:mod:`.harmonic_measure`), the report (:mod:`.harmonic_report`, statistics from
:mod:`manifold_vae.stats`) and the figures (:mod:`.harmonic_figures`); this module trains the
grid and registers the experiment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..likelihoods import Gaussian
from ..manifolds import FixedTime
from ..stats import false_positive_bound
from ..trainer import TrainConfig
from ..vae import VAE
from .budget import Budget
from .common import Member, Report, build_members, member_records, plot_histories, train_members
from .experiment import EXPERIMENTS, Experiment
from .harmonic_figures import plot_quantities, plot_spectra
from .harmonic_measure import measure
from .harmonic_report import by_cell, judge_all, report_body
from .harmonic_setup import (
    ALPHA,
    COLLAPSE_SHARE,
    DEFAULT,
    LR,
    SIGMA_X,
    TINY,
    Setup,
    settings,
    setups,
)

__all__ = ["DEFAULT", "EXPERIMENT", "NAME", "TINY", "TITLE", "harmonic"]

NAME = "harmonic"
TITLE = "Harmonic analysis of encoders and decoders"


def _train(setup: Setup, budget: Budget, progress: bool) -> tuple[list[Member], float]:
    """Build and train one benchmark's grid; one ensemble per (beta, input noise)."""
    cells = [
        {"dataset": setup.name, "latent": repr(latent), **s}
        for latent in setup.latents
        for s in settings()
    ]
    by_repr = {repr(latent): latent for latent in setup.latents}

    def make(cell: Mapping[str, Any]):
        latent = by_repr[cell["latent"]]
        if cell["time"] is not None:
            latent = FixedTime(latent, cell["time"])
        vae = VAE(
            latent,
            tuple(setup.train.shape[1:]),
            Gaussian(SIGMA_X),
            hidden=setup.hidden,
            depth=setup.depth,
        )
        return vae, setup.train

    group = build_members(cells, budget.reps, make)
    runs: dict[tuple[float, float], list[Member]] = {}
    for m in group:
        runs.setdefault((m.cell["beta"], m.cell["input_noise"]), []).append(m)
    seconds = 0.0
    for (beta, noise), run in runs.items():
        config = TrainConfig(
            epochs=setup.epochs,
            batch_size=setup.batch_size,
            lr=LR,
            progress=progress,
            beta=beta,
            input_noise=noise,
        )
        seconds += train_members(run, config)
    return group, seconds


def harmonic(out: Path, budget: Budget = DEFAULT, progress: bool = True) -> Report:
    """Train the sweeps on the three benchmarks, measure, and judge the paper's claims.

    Parameters
    ----------
    out : Path
        Output folder of the figures.
    budget : Budget
        ``epochs`` of the sinusoid models (the toroidal models train 2x, the pixel-shift
        models 6x as many epochs: they take 2 and 1 minibatch steps per epoch), ``reps``
        repetitions per setting, ``n`` sinusoid training points. A budget of at most 2
        epochs and one repetition (the tiny preset) also shrinks the toroidal grid to 8 x 8
        and the pixel-shift images to 16 x 16 pixels.
    progress : bool
        Progress bars.
    """
    benchmarks = setups(budget)
    members: list[Member] = []
    seconds = 0.0
    for setup in benchmarks:
        group, spent = _train(setup, budget, progress)
        seconds += spent
        for m in group:
            measure(m, setup)
        members += group
    records = member_records(members)
    claims = judge_all(by_cell(records), benchmarks)
    pairs = len(next(iter(claims["all"].values()))["rows"])
    figures = [
        plot_quantities(records, benchmarks, out / "harmonic.png"),
        plot_spectra(members, benchmarks, out / "spectra.png"),
        plot_histories(
            members,
            out / "training.png",
            label=lambda m: f"{m.cell['dataset']}, {m.cell['latent']}",
        ),
    ]
    data = {
        "train_seconds": seconds,
        "settings": settings(),
        "alpha": ALPHA,
        "collapse_share": COLLAPSE_SHARE,
        "false_positive_bound": false_positive_bound(pairs, ALPHA),
        "claims": {
            kind: {
                text: {k: v for k, v in claim.items() if k != "rows"}
                for text, claim in by_claim.items()
            }
            for kind, by_claim in claims.items()
        },
        "members": records,
    }
    body = report_body(budget, benchmarks, records, seconds)
    return Report(NAME, TITLE, budget, body, data, figures)


EXPERIMENT = EXPERIMENTS.register(
    Experiment(
        NAME,
        "harmonic analysis of encoders and decoders (Camuto & Willetts)",
        harmonic,
        DEFAULT,
        TINY,
    )
)
