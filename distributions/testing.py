r"""Hypothesis strategies for valid parameters of the manifold distributions.

Use them to test your own densities the way this package tests its own::

    from hypothesis import given
    from distributions.testing import circle_heat_kernels

    @given(circle_heat_kernels())
    def test_my_property(dist):
        ...

Times are drawn log-uniformly over :math:`[10^{-8}, 10^4]` by default (the range in which
``log_prob`` is guaranteed exact), angles in :math:`[-\pi, \pi)`. Requires ``hypothesis``
(the ``dev`` extra).
"""

from __future__ import annotations

import math

import torch

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - exercised only without the dev extra
    raise ImportError(
        "distributions.testing needs hypothesis: pip install 'manifold-vae[dev]'"
    ) from error

from .circle import CircleHeatKernel
from .sphere import SphereHeatKernel
from .torus import TorusHeatKernel

__all__ = [
    "MAX_TIME",
    "MIN_TIME",
    "angles",
    "circle_heat_kernels",
    "locs",
    "sphere_heat_kernels",
    "sphere_points",
    "times",
    "torus_heat_kernels",
]

MIN_TIME = 1e-8
MAX_TIME = 1e4


def times(min_value: float = MIN_TIME, max_value: float = MAX_TIME) -> st.SearchStrategy[float]:
    """Diffusion times, log-uniform in ``[min_value, max_value]`` (both positive)."""
    if not 0 < min_value <= max_value < math.inf:
        raise ValueError(
            f"times needs 0 < min_value <= max_value < inf, got {min_value}, {max_value}"
        )
    lo, hi = math.log(min_value), math.log(max_value)
    return st.floats(lo, hi).map(lambda x: min(max(math.exp(x), min_value), max_value))


def angles() -> st.SearchStrategy[float]:
    r"""Angles in :math:`[-\pi, \pi)`, the support of the circle distributions."""
    return st.floats(-math.pi, math.pi, exclude_max=True)


def locs(bound: float = 10.0) -> st.SearchStrategy[float]:
    """Locations: any finite angle in ``[-bound, bound]`` (they need not be wrapped)."""
    return st.floats(-bound, bound)


def circle_heat_kernels(
    dtype: torch.dtype = torch.float64,
    min_time: float = MIN_TIME,
    max_time: float = MAX_TIME,
) -> st.SearchStrategy[CircleHeatKernel]:
    """Scalar :class:`CircleHeatKernel` with validation on."""
    return st.builds(
        lambda loc, time: CircleHeatKernel(
            torch.tensor(loc, dtype=dtype), torch.tensor(time, dtype=dtype), validate_args=True
        ),
        locs(),
        times(min_time, max_time),
    )


def torus_heat_kernels(
    n: int | None = None,
    dtype: torch.dtype = torch.float64,
    min_time: float = MIN_TIME,
    max_time: float = MAX_TIME,
) -> st.SearchStrategy[TorusHeatKernel]:
    """:class:`TorusHeatKernel` on ``T^n`` (``n`` drawn from 1..3 if not given)."""
    dims = st.just(n) if n is not None else st.integers(1, 3)

    def build(k: int) -> st.SearchStrategy[TorusHeatKernel]:
        return st.builds(
            lambda loc, time: TorusHeatKernel(
                torch.tensor(loc, dtype=dtype),
                torch.tensor(time, dtype=dtype),
                validate_args=True,
            ),
            st.lists(locs(), min_size=k, max_size=k),
            st.lists(times(min_time, max_time), min_size=k, max_size=k),
        )

    return dims.flatmap(build)


def sphere_points(dtype: torch.dtype = torch.float64) -> st.SearchStrategy[torch.Tensor]:
    r"""Unit vectors of :math:`R^3` (points of :math:`S^2`), shape ``(3,)``.

    Drawn as normalised vectors with coordinates in :math:`[-1, 1]` and norm at least 1/8, which
    reaches every direction; the poles and the coordinate axes (coordinates exactly 0 or
    :math:`\pm 1`) come up often, as hypothesis favours boundary values.
    """
    coordinates = st.floats(-1.0, 1.0, allow_subnormal=False)
    vectors = st.tuples(coordinates, coordinates, coordinates).filter(
        lambda v: sum(x * x for x in v) >= 1 / 64
    )

    def unit(v: tuple[float, float, float]) -> torch.Tensor:
        x = torch.tensor(v, dtype=torch.float64)
        return (x / x.norm()).to(dtype)

    return vectors.map(unit)


def sphere_heat_kernels(
    dtype: torch.dtype = torch.float64,
    min_time: float = MIN_TIME,
    max_time: float = MAX_TIME,
) -> st.SearchStrategy[SphereHeatKernel]:
    """Scalar :class:`SphereHeatKernel` with validation on (time convention dp/dt = Laplace p)."""
    return st.builds(
        lambda loc, time: SphereHeatKernel(
            loc, torch.tensor(time, dtype=dtype), validate_args=True
        ),
        sphere_points(dtype),
        times(min_time, max_time),
    )
