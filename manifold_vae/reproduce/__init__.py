"""The thesis's experiments, one command each: ``manifold-vae reproduce NAME``.

Each experiment trains its grid of models (as vectorised ensembles), writes ``report.md`` with
its tables next to the thesis's published values, the figures, and ``results.json`` with every
number, and returns a :class:`~manifold_vae.reproduce.common.Report`.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import Budget, parse_budget

__all__ = ["EXPERIMENTS", "Budget", "Experiment", "parse_budget", "reproduce"]


@dataclass(frozen=True)
class Experiment:
    """A named experiment: its function ``run(out, budget, progress, **options) -> Report``
    and its two budget presets."""

    name: str
    description: str
    run: Callable[..., Any]
    default: Budget
    tiny: Budget
    #: Whether the experiment trains with ``budget.restarts`` (others refuse ``restarts > 1``).
    restarts: bool = False


def _experiments() -> dict[str, Experiment]:
    from . import chapter6, harmonic, images, reduction, sinusoid_tables, sphere

    table = (sinusoid_tables.DEFAULT, sinusoid_tables.TINY)
    return {
        e.name: e
        for e in (
            Experiment(
                "table-5.1",
                "baseline VAE on R^2, sinusoid grid (Table 5.1)",
                sinusoid_tables.table_5_1,
                *table,
                restarts=True,
            ),
            Experiment(
                "table-7.1",
                "diffusion VAE on S^1, sinusoid grid (Table 7.1)",
                sinusoid_tables.table_7_1,
                *table,
                restarts=True,
            ),
            Experiment(
                "chapter-6",
                "linear VAE and the corrected Theorem 3",
                chapter6.chapter_6,
                chapter6.DEFAULT,
                chapter6.TINY,
            ),
            Experiment(
                "chapter-10",
                "pixel shift and rotating object, R^2 vs S^1",
                images.chapter_10,
                images.CH10_DEFAULT,
                images.CH10_TINY,
            ),
            Experiment(
                "chapter-11",
                "toroidal images, R^4 vs Clifford torus",
                images.chapter_11,
                images.CH11_DEFAULT,
                images.CH11_TINY,
                restarts=True,
            ),
            Experiment(
                "table-9.2",
                "Delta-reductions between R^2, S^1 and the true model Phi (Table 9.2)",
                reduction.table_9_2,
                reduction.T92_DEFAULT,
                reduction.T92_TINY,
            ),
            Experiment(
                "table-11.1",
                "Delta-reductions between R^4 and the Clifford torus (Table 11.1)",
                reduction.table_11_1,
                reduction.T11_DEFAULT,
                reduction.T11_TINY,
            ),
            Experiment(
                "harmonic",
                "harmonic analysis of encoders and decoders (Camuto & Willetts)",
                harmonic.harmonic,
                harmonic.DEFAULT,
                harmonic.TINY,
            ),
            Experiment(
                "sphere",
                "spherical latent: Sphere() vs Euclidean(3) on a direction in S^2",
                sphere.sphere,
                sphere.DEFAULT,
                sphere.TINY,
            ),
        )
    }


#: The experiments by name.
EXPERIMENTS: dict[str, Experiment] = _experiments()


def reproduce(
    name: str,
    out: str | Path,
    budget: str | Budget | None = None,
    progress: bool = True,
    command: str | None = None,
    **options: Any,
):
    """Run experiment ``name`` and write its report into ``out``.

    Parameters
    ----------
    name : str
        One of :data:`EXPERIMENTS` (``table-5.1``, ``table-7.1``, ``chapter-6``,
        ``chapter-10``, ``chapter-11``, ``table-9.2``, ``table-11.1``, ``harmonic``,
        ``sphere``).
    out : path
        Output folder (created).
    budget : str or Budget, optional
        ``"default"`` (the converged settings), ``"tiny"`` (seconds), ``"epochs=E,reps=R"``
        overrides, or a :class:`Budget`.
    progress : bool
        Progress bars.
    command : str, optional
        The command line to record in the report (default: the equivalent CLI call).
    options
        Extra keyword arguments of the experiment (e.g. ``coil20=`` for ``chapter-10``).

    Returns
    -------
    Report
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    if not isinstance(budget, Budget):
        budget = parse_budget(budget, experiment.default, experiment.tiny)
    if budget.restarts > 1 and not experiment.restarts:
        raise ValueError(
            f"budget restarts={budget.restarts}: {name} trains without restarts "
            f"(they apply to {', '.join(n for n, e in EXPERIMENTS.items() if e.restarts)})"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = experiment.run(out, budget=budget, progress=progress, **options)
    report.seconds = time.perf_counter() - start
    if command is None:
        command = shlex.join(
            ["manifold-vae", "reproduce", name, "--out", str(out), "--budget", budget.describe()]
        )
    report.write(out, command)
    return report
