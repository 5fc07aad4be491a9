r"""A dataset with a true spherical latent: a light source seen by sensors on a sphere.

A point source in direction :math:`z \in S^2` is seen by ``sensors`` detectors at fixed
directions :math:`s_1, \dots, s_D` (a Fibonacci lattice, nearly uniform on :math:`S^2`); each
detector responds with a smooth bump of its angular distance to the source,

.. math::

    F(z)_j = \exp\big(\kappa\, (\langle z, s_j\rangle - 1)\big) \in (e^{-2\kappa}, 1],
    \qquad x = F(z) + \sigma\varepsilon, \quad z \sim \mathrm{Uniform}(S^2),

so the data lie near a smooth embedded sphere in :math:`\mathbb R^D`. :math:`F` is equivariant
(a rotation of the source permutes the responses approximately), injective once the sensors
are dense enough for the concentration :math:`\kappa`, and has no preferred chart: there is no
global angle to recover, only a direction, up to a rotation or reflection of the sphere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..manifolds import Sphere
from .generative import GenerativeModel, LatentDataset, check_n, check_noise

__all__ = ["fibonacci_sphere", "sensor_mean", "sensor_model", "spherical_sensors"]


def fibonacci_sphere(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    r"""``n`` nearly uniform unit vectors ``(n, 3)``: the Fibonacci lattice.

    Point :math:`i` has height :math:`1 - (2i + 1)/n` and azimuth :math:`i \cdot \pi(3 -
    \sqrt5)` (the golden angle).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of points, got {n!r}")
    i = torch.arange(n, dtype=dtype)
    height = 1.0 - (2.0 * i + 1.0) / n
    radius = torch.sqrt((1.0 - height**2).clamp_min(0.0))
    azimuth = i * math.pi * (3.0 - math.sqrt(5.0))
    return torch.stack([radius * torch.cos(azimuth), radius * torch.sin(azimuth), height], -1)


def sensor_mean(direction: Tensor, sensors: Tensor, concentration: float) -> Tensor:
    r""":math:`F(z)_j = \exp(\kappa(\langle z, s_j\rangle - 1))`.

    Parameters
    ----------
    direction : Tensor, shape=[..., 3]
        Unit vectors :math:`z`.
    sensors : Tensor, shape=[D, 3]
        Unit vectors :math:`s_j`.
    concentration : float
        :math:`\kappa > 0`.

    Returns
    -------
    Tensor, shape=[..., D]
    """
    cosine = direction @ sensors.to(direction.dtype).T
    return torch.exp(concentration * (cosine - 1.0))


def _check_concentration(value: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:
        raise ValueError(f"concentration must be a finite number > 0, got {value!r}")
    return float(value)


def sensor_model(
    sensors: int = 30, concentration: float = 3.0, noise: float = 0.05
) -> GenerativeModel:
    r"""The generating process: uniform :math:`z \in S^2`, :math:`x = F(z) + \sigma\varepsilon`.

    Parameters
    ----------
    sensors : int
        :math:`D \ge 4` detectors on the Fibonacci lattice.
    concentration : float
        :math:`\kappa > 0` of the response bumps.
    noise : float
        :math:`\sigma \ge 0`.
    """
    if isinstance(sensors, bool) or not isinstance(sensors, int) or sensors < 4:
        raise ValueError(f"sensors must be an integer >= 4, got {sensors!r}")
    kappa = _check_concentration(concentration)
    check_noise(noise)
    noise = float(noise)
    directions = fibonacci_sphere(sensors)

    def mean(z: Tensor) -> Tensor:
        return sensor_mean(z, directions, kappa)

    name = f"spherical sensors (D={sensors}, kappa={kappa:g}, noise={noise:g})"
    return GenerativeModel(Sphere(), mean, noise, (sensors,), name)


def spherical_sensors(
    n: int = 2000,
    sensors: int = 30,
    concentration: float = 3.0,
    noise: float = 0.05,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> LatentDataset:
    """``n`` draws of :func:`sensor_model`: data ``(n, sensors)``, latent unit vectors ``(n, 3)``.

    Parameters
    ----------
    n : int
        Number of datapoints.
    sensors, concentration, noise
        See :func:`sensor_model`.
    seed : int
        Seed of the private generator (directions first, then the noise).
    dtype : torch.dtype
        Of the returned tensors.
    """
    check_n(n)
    return sensor_model(sensors, concentration, noise).sample(n, seed=seed, dtype=dtype)
