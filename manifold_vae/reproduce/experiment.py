"""The experiment registry: :class:`Experiment`, :data:`EXPERIMENTS` and :func:`reproduce`.

An experiment is registered once, by the module that defines it, and found by name from then
on (the command line ``manifold-vae reproduce NAME`` takes its choices from
``EXPERIMENTS.names()``). A user registers one from outside the package the same way::

    from manifold_vae.reproduce import EXPERIMENTS, Budget, Experiment

    EXPERIMENTS.register(Experiment("mine", "my grid", run, Budget(100, 3, 1000), Budget(2, 1, 64)))
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import Registry
from .budget import Budget, parse_budget
from .common import GroupTrainer, Report, group_trainer

__all__ = ["EXPERIMENTS", "Experiment", "reproduce"]


@dataclass(frozen=True)
class Experiment:
    """A named experiment and its two budget presets.

    Attributes
    ----------
    name : str
        The name of ``manifold-vae reproduce NAME``.
    description : str
        One line, for listings.
    run : callable
        ``run(out, budget=..., progress=..., **options) -> Report``: trains, measures, writes its
        figures into the folder ``out`` and returns the :class:`~.common.Report` (its
        ``report.md`` and ``results.json`` are written by :func:`reproduce`).
    default, tiny : Budget
        The converged settings, and a budget that runs in seconds (tests, ``--budget tiny``).
    restarts : bool
        Whether the experiment trains with ``budget.restarts`` (the others refuse
        ``restarts > 1``).
    cli_options : tuple of str
        Keyword options of ``run`` that the command line passes on (``--coil20`` gives
        ``coil20=``); from Python, :func:`reproduce` passes any keyword option.
    """

    name: str
    description: str
    run: Callable[..., Report]
    default: Budget
    tiny: Budget
    restarts: bool = False
    cli_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not callable(self.run):
            raise ValueError(f"run must be callable, got {self.run!r}")
        for field in ("default", "tiny"):
            if not isinstance(getattr(self, field), Budget):
                raise ValueError(f"{field} must be a Budget, got {getattr(self, field)!r}")
        if not isinstance(self.cli_options, tuple) or not all(
            isinstance(o, str) for o in self.cli_options
        ):
            raise ValueError(f"cli_options must be a tuple of str, got {self.cli_options!r}")


def _check(entry: Any) -> None:
    if not isinstance(entry, Experiment):
        raise ValueError(f"an experiment must be an Experiment, got {type(entry).__name__}")


#: The experiments by name; each module of :mod:`manifold_vae.reproduce` that defines one
#: registers it on import.
EXPERIMENTS: Registry[Experiment] = Registry("experiment", check=_check)


def reproduce(
    name: str,
    out: str | Path,
    budget: str | Budget | None = None,
    progress: bool = True,
    command: str | None = None,
    trainer: GroupTrainer | None = None,
    **options: Any,
) -> Report:
    """Run experiment ``name`` and write its report into ``out``.

    Parameters
    ----------
    name : str
        One of ``EXPERIMENTS.names()``.
    out : path
        Output folder (created).
    budget : str or Budget, optional
        ``"default"`` (the converged settings), ``"tiny"`` (seconds), ``"epochs=E,reps=R"``
        overrides, or a :class:`Budget`.
    progress : bool
        Progress bars.
    command : str, optional
        The command line to record in the report (default: the equivalent CLI call).
    trainer : GroupTrainer, optional
        How the grid's ensemble groups are trained (:func:`~.common.group_trainer`): by
        default one after another in this process; e.g. a
        :class:`manifold_vae.distributed.RayGroupTrainer` runs them as Ray tasks. The numbers
        do not depend on it.
    options
        Extra keyword arguments of the experiment (e.g. ``coil20=`` for ``chapter-10``).

    Returns
    -------
    Report
        With ``seconds``, the wall time of the run.
    """
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
    with group_trainer(trainer):
        report = experiment.run(out, budget=budget, progress=progress, **options)
    report.seconds = time.perf_counter() - start
    if command is None:
        command = shlex.join(
            ["manifold-vae", "reproduce", name, "--out", str(out), "--budget", budget.describe()]
        )
    report.write(out, command)
    return report
