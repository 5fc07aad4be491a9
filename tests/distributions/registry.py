"""The registry of every public distribution: valid examples, bad parameters, bad values.

The generic suite (shapes, support, validation, gradients, goodness of fit, pickling) loops over
``EXAMPLES``; ``test_registry.py`` fails when a public distribution is missing here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.distributions import Distribution

import distributions as D


@dataclass
class Example:
    """One parameterisation of a distribution class.

    ``make(dtype)`` builds an instance with validation on; ``bad_params`` are constructor calls
    (taking a dtype) that must raise ``ValueError`` under validation and must not raise with
    ``validate_args=False``; ``bad_values(dtype)`` are values outside the support or of the
    wrong event shape.
    """

    name: str
    cls: type[Distribution]
    make: Callable[[torch.dtype], Distribution]
    bad_params: list[Callable[[torch.dtype, bool | None], Distribution]] = field(
        default_factory=list
    )
    bad_values: Callable[[torch.dtype], list[torch.Tensor]] = lambda dtype: []
    # whether the example has tensor parameters that carry gradients
    differentiable: bool = True


def _t(x, dtype):
    return torch.tensor(x, dtype=dtype)


def _circle_bad_values(dtype):
    return [_t(4.0, dtype), _t(math.pi, dtype), _t(-3.5, dtype), _t(float("nan"), dtype)]


def _torus_bad_values(n):
    def values(dtype):
        return [
            torch.full((n,), 4.0, dtype=dtype),
            torch.zeros(n + 1, dtype=dtype),  # wrong event shape
            torch.full((n,), float("nan"), dtype=dtype),
        ]

    return values


EXAMPLES: list[Example] = [
    Example(
        "circle-scalar",
        D.CircleHeatKernel,
        lambda dtype: D.CircleHeatKernel(_t(0.3, dtype), _t(0.2, dtype), validate_args=True),
        bad_params=[
            lambda dtype, v: D.CircleHeatKernel(_t(0.0, dtype), _t(-1.0, dtype), validate_args=v),
            lambda dtype, v: D.CircleHeatKernel(_t(0.0, dtype), _t(0.0, dtype), validate_args=v),
            lambda dtype, v: D.CircleHeatKernel(
                _t(0.0, dtype), _t(float("inf"), dtype), validate_args=v
            ),
            lambda dtype, v: D.CircleHeatKernel(
                _t(0.0, dtype), _t(float("nan"), dtype), validate_args=v
            ),
            lambda dtype, v: D.CircleHeatKernel(
                _t(float("inf"), dtype), _t(1.0, dtype), validate_args=v
            ),
            lambda dtype, v: D.CircleHeatKernel(
                _t(float("nan"), dtype), _t(1.0, dtype), validate_args=v
            ),
        ],
        bad_values=_circle_bad_values,
    ),
    Example(
        "circle-batched",
        D.CircleHeatKernel,
        lambda dtype: D.CircleHeatKernel(
            _t([[-3.0, 0.0, 2.5]], dtype),
            _t([[1e-8], [0.5], [3.0], [1e4]], dtype),
            validate_args=True,
        ),
        bad_values=_circle_bad_values,
    ),
    Example(
        "torus-2",
        D.TorusHeatKernel,
        lambda dtype: D.TorusHeatKernel(
            _t([[0.1, -2.0], [3.0, 1.0], [-3.1, 0.0]], dtype),
            _t([0.05, 2.0], dtype),
            validate_args=True,
        ),
        bad_params=[
            lambda dtype, v: D.TorusHeatKernel(
                _t([0.0, 0.0], dtype), _t([1.0, -1.0], dtype), validate_args=v
            ),
            lambda dtype, v: D.TorusHeatKernel(
                _t([0.0, float("inf")], dtype), _t(1.0, dtype), validate_args=v
            ),
        ],
        bad_values=_torus_bad_values(2),
    ),
    Example(
        "torus-3-scalar-time",
        D.TorusHeatKernel,
        lambda dtype: D.TorusHeatKernel(
            _t([0.5, -1.0, 2.0], dtype), _t(0.7, dtype), validate_args=True
        ),
        bad_values=_torus_bad_values(3),
    ),
    Example(
        "circle-uniform",
        D.CircleUniform,
        lambda dtype: D.CircleUniform((2,), dtype=dtype, validate_args=True),
        bad_values=_circle_bad_values,
        differentiable=False,
    ),
    Example(
        "torus-uniform",
        D.TorusUniform,
        lambda dtype: D.TorusUniform(2, (3,), dtype=dtype, validate_args=True),
        bad_values=_torus_bad_values(2),
        differentiable=False,
    ),
]

#: Public distribution classes (those in ``distributions.__all__``).
PUBLIC_DISTRIBUTIONS = [
    getattr(D, name)
    for name in D.__all__
    if isinstance(getattr(D, name), type) and issubclass(getattr(D, name), Distribution)
]
