"""The thesis's experiments, one command each: ``manifold-vae reproduce NAME``.

Each experiment trains its grid of models (as vectorised ensembles), writes ``report.md`` with
its tables next to the thesis's published values, the figures, and ``results.json`` with every
number, and returns a :class:`~manifold_vae.reproduce.common.Report`.

Every experiment is one module of this package that defines its grid, measurement and report
and registers an :class:`Experiment` in :data:`EXPERIMENTS` (a
:class:`~manifold_vae.registry.Registry`); importing the package imports every module, so
``EXPERIMENTS.names()`` lists them all. Code shared by several experiments lives in shared
modules (:mod:`.common`, :mod:`.sinusoid_tables`, :mod:`.images`, :mod:`.reduction`). A user
registers an experiment of their own the same way, from outside the package, and runs it with
:func:`reproduce`.
"""

from __future__ import annotations

import importlib
import pkgutil

from .budget import Budget, parse_budget
from .experiment import EXPERIMENTS, Experiment, reproduce

__all__ = ["EXPERIMENTS", "Budget", "Experiment", "parse_budget", "reproduce"]


def _import_modules() -> None:
    """Import every module of the package: each experiment's module registers it."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_modules()
