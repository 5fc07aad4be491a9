"""``table-5.1``: Table 5.1, the baseline VAE on :math:`\\mathbb R^2` over the sinusoid grid.

The grid, training and report are shared with Table 7.1 (:mod:`.sinusoid_tables`).
"""

from __future__ import annotations

from pathlib import Path

from ..manifolds import Euclidean
from .budget import Budget
from .common import Report
from .experiment import EXPERIMENTS, Experiment
from .sinusoid_tables import (
    DEFAULT,
    LR_FINAL,
    SCREEN_EPOCHS,
    SIGMA_START,
    TINY,
    WARMUP,
    run_table,
)
from .thesis import TABLE_5_1

__all__ = ["EXPERIMENT", "NAME", "table_5_1"]

NAME = "table-5.1"


def table_5_1(
    out: Path,
    budget: Budget = DEFAULT,
    progress: bool = True,
    lr_final: float | None = LR_FINAL,
    sigma_start: float | None = SIGMA_START,
    warmup: float = WARMUP,
    screen_epochs: int | None = SCREEN_EPOCHS,
) -> Report:
    """Table 5.1: the baseline VAE on :math:`\\mathbb R^2`.

    ``lr_final``: the step size is annealed from 1e-3 to it by a cosine (``None``: constant).
    ``sigma_start``, ``warmup``: decoder-scale warm-up from ``sigma_start`` to each model's
    :math:`\\sigma_X` over the first ``warmup`` fraction of the epochs (``None``: none; see
    :func:`~manifold_vae.training.decoder_sigma`). ``budget.restarts``: starts per model, all
    trained in full (``screen_epochs = None``) or screened for ``screen_epochs`` epochs, the
    one of lowest training loss kept.
    """
    return run_table(
        NAME,
        "Table 5.1: baseline VAE, latent R^2",
        Euclidean(2),
        TABLE_5_1,
        out,
        budget,
        progress,
        lr_final,
        sigma_start,
        warmup,
        screen_epochs,
    )


EXPERIMENT = EXPERIMENTS.register(
    Experiment(
        NAME,
        "baseline VAE on R^2, sinusoid grid (Table 5.1)",
        table_5_1,
        DEFAULT,
        TINY,
        restarts=True,
    )
)
