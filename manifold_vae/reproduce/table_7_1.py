"""``table-7.1``: Table 7.1, the diffusion VAE on :math:`S^1` over the sinusoid grid.

The grid, training and report are shared with Table 5.1 (:mod:`.sinusoid_tables`).
"""

from __future__ import annotations

from pathlib import Path

from ..manifolds import Circle
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
from .thesis import TABLE_7_1

__all__ = ["EXPERIMENT", "NAME", "table_7_1"]

NAME = "table-7.1"


def table_7_1(
    out: Path,
    budget: Budget = DEFAULT,
    progress: bool = True,
    lr_final: float | None = LR_FINAL,
    sigma_start: float | None = SIGMA_START,
    warmup: float = WARMUP,
    screen_epochs: int | None = SCREEN_EPOCHS,
) -> Report:
    """Table 7.1: the diffusion VAE on :math:`S^1`; the options are those of Table 5.1
    (:func:`~manifold_vae.reproduce.table_5_1.table_5_1`)."""
    return run_table(
        NAME,
        "Table 7.1: diffusion VAE, latent S^1",
        Circle(),
        TABLE_7_1,
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
        "diffusion VAE on S^1, sinusoid grid (Table 7.1)",
        table_7_1,
        DEFAULT,
        TINY,
        restarts=True,
    )
)
