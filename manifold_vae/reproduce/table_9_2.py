"""``table-9.2``: Delta-reductions between :math:`\\mathbb R^2`, :math:`S^1` and the true model.

Training, reduction and report are shared with Table 11.1 (:mod:`.reduction`).
"""

from __future__ import annotations

from .experiment import EXPERIMENTS, Experiment
from .reduction import T92_DEFAULT, T92_NAME, T92_TINY, table_9_2

__all__ = ["EXPERIMENT", "table_9_2"]

EXPERIMENT = EXPERIMENTS.register(
    Experiment(
        T92_NAME,
        "Delta-reductions between R^2, S^1 and the true model Phi (Table 9.2)",
        table_9_2,
        T92_DEFAULT,
        T92_TINY,
    )
)
