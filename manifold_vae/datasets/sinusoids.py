r"""The sinusoid benchmark of the thesis (Sec. 5.1): noisy discrete sines with a circular phase.

.. math::

    F(\varphi)_j = \sin\Big(\frac{2\pi j}{D} + \varphi\Big), \quad j = 1..D, \qquad
    x = F(\varphi) + \sigma\,\varepsilon, \quad \varphi \sim \mathrm{Uniform}[-\pi, \pi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LatentDataset", "sinusoid_mean", "sinusoids", "sinusoids_grid"]


@dataclass
class LatentDataset:
    """Data with the true latent values that generated it."""

    #: Datapoints, shape ``(N, *data_shape)``.
    data: Tensor
    #: True latent values (phases in ``[-pi, pi)``), shape ``(N, latent_dim)``.
    latent: Tensor
    #: A short description for reports.
    name: str


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")


def sinusoid_mean(phase: Tensor, dim: int = 25) -> Tensor:
    r"""The noiseless datapoint :math:`F(\varphi)` (Eq. 5.1): phases ``(...,)`` to ``(..., D)``."""
    _check_dim(dim)
    j = torch.arange(1, dim + 1, dtype=phase.dtype, device=phase.device)
    return torch.sin(2.0 * math.pi * j / dim + phase.unsqueeze(-1))


def sinusoids(
    n: int = 10000,
    dim: int = 25,
    noise: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> LatentDataset:
    r"""The dataset :math:`X_\sigma` (Sec. 5.1): ``n`` noisy sinusoids with uniform phases.

    Parameters
    ----------
    n : int
        Number of datapoints.
    dim : int
        :math:`D`, the number of samples of each sine (thesis: 25).
    noise : float
        Standard deviation :math:`\sigma \ge 0` of the Gaussian noise (thesis: 0.01, 0.1, 1).
    seed : int
        Seed of phases and noise (the global RNG is not touched).
    dtype : torch.dtype
        Of the returned tensors.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of datapoints, got {n}")
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise}")
    g = torch.Generator().manual_seed(seed)
    phase = (torch.rand(n, generator=g, dtype=torch.float64) * 2.0 - 1.0) * math.pi
    x = sinusoid_mean(phase, dim) + noise * torch.randn(n, dim, generator=g, dtype=torch.float64)
    return LatentDataset(x.to(dtype), phase.unsqueeze(-1).to(dtype), f"X_{noise:g} (D={dim})")


def sinusoids_grid(
    n: int = 100, dim: int = 25, dtype: torch.dtype = torch.float32
) -> LatentDataset:
    r"""The visualisation set :math:`X_{Vis}` (Eqs. 5.4-5.5): noiseless, ``n`` regular phases."""
    phase = -math.pi + 2.0 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return LatentDataset(
        sinusoid_mean(phase, dim).to(dtype),
        phase.unsqueeze(-1).to(dtype),
        f"X_Vis (D={dim}, {n} phases)",
    )
