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
from distributions.angles import wrap_angle


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
    # how ``log_prob`` without validation reads a finite value outside the support, and how a
    # value of another dtype is put back into it: angles modulo 2 pi, vectors radially
    to_support: Callable[[torch.Tensor], torch.Tensor] = wrap_angle
    # whether values are angles, with the cut of [-pi, pi) at pi
    angular: bool = True


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


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _u(x, dtype):
    """Unit vectors: ``x`` normalised in float64, then cast."""
    return _unit(torch.tensor(x, dtype=torch.float64)).to(dtype)


def _sphere_bad_values(dtype):
    return [
        torch.tensor([2.0, 0.0, 0.0], dtype=dtype),  # off the sphere
        _u([1.0, 2.0, 2.0], dtype) * 1.001,
        torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype),  # wrong event shape
        torch.full((3,), float("nan"), dtype=dtype),
    ]


def _hypersphere_bad_values(d):
    def values(dtype):
        off = torch.zeros(d + 1, dtype=dtype)
        off[0] = 2.0
        return [
            off,  # off the sphere
            torch.ones(d + 2, dtype=dtype) / math.sqrt(d + 2),  # wrong event shape
            torch.full((d + 1,), float("nan"), dtype=dtype),
        ]

    return values


_SPHERE = {"bad_values": _sphere_bad_values, "to_support": _unit, "angular": False}

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
        "sphere-scalar",
        D.SphereHeatKernel,
        lambda dtype: D.SphereHeatKernel(
            _u([0.3, -0.4, 0.8], dtype), _t(0.2, dtype), validate_args=True
        ),
        bad_params=[
            lambda dtype, v: D.SphereHeatKernel(
                _u([0.0, 0.0, 1.0], dtype), _t(-1.0, dtype), validate_args=v
            ),
            lambda dtype, v: D.SphereHeatKernel(
                _u([0.0, 0.0, 1.0], dtype), _t(0.0, dtype), validate_args=v
            ),
            lambda dtype, v: D.SphereHeatKernel(
                _u([0.0, 0.0, 1.0], dtype), _t(float("inf"), dtype), validate_args=v
            ),
            lambda dtype, v: D.SphereHeatKernel(
                _u([0.0, 0.0, 1.0], dtype), _t(float("nan"), dtype), validate_args=v
            ),
            lambda dtype, v: D.SphereHeatKernel(
                _t([0.0, 0.0, 2.0], dtype), _t(1.0, dtype), validate_args=v
            ),
            lambda dtype, v: D.SphereHeatKernel(
                _t([0.0, float("nan"), 1.0], dtype), _t(1.0, dtype), validate_args=v
            ),
        ],
        **_SPHERE,
    ),
    Example(
        "sphere-batched",
        D.SphereHeatKernel,
        lambda dtype: D.SphereHeatKernel(
            _u([[[1.0, 0.0, 0.0]], [[0.0, -1.0, 0.0]], [[0.5, 0.5, -0.7]]], dtype),
            _t([1e-8, 0.3, 0.5, 0.7, 3.0, 1e4], dtype),
            validate_args=True,
        ),
        **_SPHERE,
    ),
    Example(
        "sphere-uniform",
        D.SphereUniform,
        lambda dtype: D.SphereUniform(dtype=dtype, validate_args=True).expand((2,)),
        differentiable=False,
        **_SPHERE,
    ),
    Example(
        "vmf-s2",
        D.VonMisesFisher,
        lambda dtype: D.VonMisesFisher(
            _u([0.3, -0.4, 0.8], dtype), _t(5.0, dtype), validate_args=True
        ),
        bad_params=[
            lambda dtype, v: D.VonMisesFisher(
                _u([0.0, 0.0, 1.0], dtype), _t(-1.0, dtype), validate_args=v
            ),
            lambda dtype, v: D.VonMisesFisher(
                _u([0.0, 0.0, 1.0], dtype), _t(float("inf"), dtype), validate_args=v
            ),
            lambda dtype, v: D.VonMisesFisher(
                _t([0.0, 0.0, 2.0], dtype), _t(1.0, dtype), validate_args=v
            ),
        ],
        **_SPHERE,
    ),
    Example(
        "vmf-batched-s4",
        D.VonMisesFisher,
        lambda dtype: D.VonMisesFisher(
            _u([[[1.0, 0.0, 0.0, 0.0, 0.0]], [[0.5, 0.5, -0.5, 0.1, 0.2]]], dtype),
            _t([1e-8, 0.5, 40.0, 1e4, 1e8], dtype),
            validate_args=True,
        ),
        bad_values=_hypersphere_bad_values(4),
        to_support=_unit,
        angular=False,
    ),
    Example(
        "vmf-s1",
        D.VonMisesFisher,
        lambda dtype: D.VonMisesFisher(_u([0.6, 0.8], dtype), _t(3.0, dtype), validate_args=True),
        bad_values=_hypersphere_bad_values(1),
        to_support=_unit,
        angular=False,
    ),
    Example(
        "power-spherical-s2",
        D.PowerSpherical,
        lambda dtype: D.PowerSpherical(
            _u([0.3, -0.4, 0.8], dtype), _t(5.0, dtype), validate_args=True
        ),
        bad_params=[
            lambda dtype, v: D.PowerSpherical(
                _u([0.0, 0.0, 1.0], dtype), _t(0.0, dtype), validate_args=v
            ),
            lambda dtype, v: D.PowerSpherical(
                _t([0.0, float("nan"), 1.0], dtype), _t(1.0, dtype), validate_args=v
            ),
        ],
        **_SPHERE,
    ),
    Example(
        "power-spherical-batched-s9",
        D.PowerSpherical,
        lambda dtype: D.PowerSpherical(
            _u([[1.0] * 10, [0.0] * 9 + [1.0]], dtype).unsqueeze(1),
            _t([1e-8, 0.5, 40.0, 1e8], dtype),
            validate_args=True,
        ),
        bad_values=_hypersphere_bad_values(9),
        to_support=_unit,
        angular=False,
    ),
    Example(
        "hypersphere-heat-s3",
        D.HypersphereHeatKernel,
        lambda dtype: D.HypersphereHeatKernel(
            _u([[0.5, 0.5, -0.5, 0.5], [0.0, 0.0, 0.0, 1.0]], dtype),
            _t([0.7, 3.0], dtype),
            validate_args=True,
        ),
        bad_params=[
            lambda dtype, v: D.HypersphereHeatKernel(
                _u([0.0, 0.0, 0.0, 1.0], dtype), _t(0.1, dtype), validate_args=v
            ),
            lambda dtype, v: D.HypersphereHeatKernel(
                _u([0.0, 0.0, 0.0, 1.0], dtype), _t(float("inf"), dtype), validate_args=v
            ),
        ],
        bad_values=_hypersphere_bad_values(3),
        to_support=_unit,
        angular=False,
    ),
    Example(
        "hypersphere-heat-s2",
        D.HypersphereHeatKernel,
        lambda dtype: D.HypersphereHeatKernel(
            _u([0.3, -0.4, 0.8], dtype), _t([1e-4, 0.3, 2.0], dtype), validate_args=True
        ),
        **_SPHERE,
    ),
    Example(
        "hypersphere-uniform-s5",
        D.HypersphereUniform,
        lambda dtype: D.HypersphereUniform(5, dtype=dtype, validate_args=True).expand((2,)),
        bad_values=_hypersphere_bad_values(5),
        to_support=_unit,
        angular=False,
        differentiable=False,
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
