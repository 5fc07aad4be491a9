"""``table-11.1``: Delta-reductions between :math:`\\mathbb R^4` and the Clifford torus.

Training, reduction and report are shared with Table 9.2 (:mod:`.reduction`).
"""

from __future__ import annotations

from .experiment import EXPERIMENTS, Experiment
from .reduction import T11_DEFAULT, T11_NAME, T11_TINY, table_11_1

__all__ = ["EXPERIMENT", "table_11_1"]

EXPERIMENT = EXPERIMENTS.register(
    Experiment(
        T11_NAME,
        "Delta-reductions between R^4 and the Clifford torus (Table 11.1)",
        table_11_1,
        T11_DEFAULT,
        T11_TINY,
    )
)
