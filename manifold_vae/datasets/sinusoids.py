r"""The sinusoid benchmark of the thesis (Sec. 5.1) and its frequency-domain form (Sec. 6.1).

Time domain (Eq. 5.1), :math:`D` samples of a sine with a circular phase:

.. math::

    F(\varphi)_j = \sin\Big(\frac{2\pi j}{D} + \varphi\Big), \quad j = 1..D, \qquad
    x = F(\varphi) + \sigma\,\varepsilon, \quad \varphi \sim \mathrm{Uniform}[-\pi, \pi).

Frequency domain (Eqs. 6.3-6.6): only the first Fourier pair :math:`(a_1, b_1)` of
:math:`F(\varphi)` is non-zero, and it equals :math:`(\sin\varphi, \cos\varphi)`; the
frequency-domain benchmark is :math:`x' = (\sin\varphi, \cos\varphi) + \sigma\varepsilon`,
:math:`x' \in \mathbb R^2`.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from ..manifolds import Circle
from .generative import GenerativeModel, LatentDataset, check_n, check_noise

__all__ = [
    "frequency_mean",
    "sinusoid_frequency_model",
    "sinusoid_mean",
    "sinusoid_model",
    "sinusoids",
    "sinusoids_frequency",
    "sinusoids_frequency_grid",
    "sinusoids_grid",
    "to_frequency_domain",
]


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")


def sinusoid_mean(phase: Tensor, dim: int = 25) -> Tensor:
    r"""The noiseless datapoint :math:`F(\varphi)` (Eq. 5.1): phases ``(...,)`` to ``(..., D)``."""
    _check_dim(dim)
    j = torch.arange(1, dim + 1, dtype=phase.dtype, device=phase.device)
    return torch.sin(2.0 * math.pi * j / dim + phase.unsqueeze(-1))


def _sinusoid_model_mean(coords: Tensor, dim: int) -> Tensor:
    return sinusoid_mean(coords[..., 0], dim)


def sinusoid_model(dim: int = 25, noise: float = 0.1) -> GenerativeModel:
    r"""The generative model of :math:`X_\sigma` (Eqs. 5.1-5.3) on the phase circle.

    :math:`p(x, \varphi) = \frac{1}{2\pi (\sigma\sqrt{2\pi})^D}
    \exp(-\lVert x - F(\varphi)\rVert^2 / 2\sigma^2)`, latent ``Circle()``, data shape ``(D,)``.
    """
    _check_dim(dim)
    check_noise(noise)
    return GenerativeModel(
        Circle(), partial(_sinusoid_model_mean, dim=dim), noise, (dim,), f"X_{noise:g} (D={dim})"
    )


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

    Returns
    -------
    LatentDataset
        ``data`` ``(n, D)``, ``latent`` ``(n, 1)``, ``model`` :func:`sinusoid_model`.
    """
    check_n(n)
    check_noise(noise)
    model = sinusoid_model(dim, noise)
    g = torch.Generator().manual_seed(seed)
    phase = (torch.rand(n, generator=g, dtype=torch.float64) * 2.0 - 1.0) * math.pi
    x = sinusoid_mean(phase, dim) + noise * torch.randn(n, dim, generator=g, dtype=torch.float64)
    return LatentDataset(x.to(dtype), phase.unsqueeze(-1).to(dtype), model.name, model)


def _regular_phases(n: int) -> Tensor:
    r"""The regular partition :math:`\{-\pi + 2\pi i / n\}_{i=0}^{n-1}` (Eq. 5.4), float64."""
    check_n(n)
    return -math.pi + 2.0 * math.pi * torch.arange(n, dtype=torch.float64) / n


def sinusoids_grid(
    n: int = 100, dim: int = 25, dtype: torch.dtype = torch.float32
) -> LatentDataset:
    r"""The visualisation set :math:`X_{Vis}` (Eqs. 5.4-5.5): noiseless, ``n`` regular phases.

    The attached model is :func:`sinusoid_model` with noise 0.
    """
    phase = _regular_phases(n)
    model = sinusoid_model(dim, 0.0)
    return LatentDataset(
        sinusoid_mean(phase, dim).to(dtype),
        phase.unsqueeze(-1).to(dtype),
        f"X_Vis (D={dim}, {n} phases)",
        model,
    )


# --- frequency domain (Sec. 6.1) ---------------------------------------------------------------


def to_frequency_domain(x: Tensor) -> Tensor:
    r"""The first Fourier coefficient pair :math:`(a_1, b_1)` of time-domain sinusoids.

    The real discrete Fourier series of :math:`D` samples :math:`x_i`, :math:`i = 1..D` (the
    indexing of Eq. 5.1), is

    .. math::

        x_i = a_0 + \sum_{k=1}^{\lfloor D/2 \rfloor}
              a_k \cos\Big(\frac{2\pi k i}{D}\Big) + b_k \sin\Big(\frac{2\pi k i}{D}\Big),
        \qquad
        a_1 = \frac2D \sum_{i=1}^D x_i \cos\frac{2\pi i}{D}, \quad
        b_1 = \frac2D \sum_{i=1}^D x_i \sin\frac{2\pi i}{D}

    (valid for :math:`D \ge 3`, where frequency 1 is below the Nyquist frequency :math:`D/2`).
    By Eq. 6.3, :math:`\sin(2\pi i/D + \varphi) = \sin\varphi\cos(2\pi i/D) +
    \cos\varphi\sin(2\pi i/D)`, so ``to_frequency_domain(sinusoid_mean(phi))`` is
    :math:`(\sin\varphi, \cos\varphi)` (Eq. 6.4) and all other coefficients vanish.

    Noise. The map is linear with orthogonal rows of squared norm :math:`2/D`, so i.i.d. time-
    domain noise :math:`\mathcal N(0, \sigma^2)` becomes independent noise of variance
    :math:`2\sigma^2/D` on each of :math:`a_1, b_1`: the frequency-domain benchmark with noise
    :math:`\sigma'` corresponds to time-domain noise :math:`\sigma = \sigma' \sqrt{D/2}`.

    Note on Eq. 6.2: the thesis sums :math:`k = 1..D-1`. Frequencies :math:`k` and :math:`D-k`
    alias on :math:`D` samples (:math:`\cos` equal, :math:`\sin` opposite), so that sum counts
    every frequency twice and its coefficients are not unique; a real series of :math:`D`
    samples has frequencies :math:`0..\lfloor D/2 \rfloor` only.

    Parameters
    ----------
    x : Tensor, shape=[..., D]
        Time-domain signals (floating point), :math:`D \ge 3`.

    Returns
    -------
    Tensor, shape=[..., 2]
        :math:`(a_1, b_1)`, in the dtype of ``x``.
    """
    if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor of shape (..., D)")
    dim = x.shape[-1]
    if dim < 3:
        raise ValueError(
            f"x must have D >= 3 samples in its last dimension (frequency 1 must lie below the "
            f"Nyquist frequency D/2), got shape {tuple(x.shape)}"
        )
    i = torch.arange(1, dim + 1, dtype=torch.float64, device=x.device)
    angle = 2.0 * math.pi * i / dim
    basis = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1) * (2.0 / dim)  # (D, 2)
    return x @ basis.to(x.dtype)


def frequency_mean(coords: Tensor) -> Tensor:
    r""":math:`F'(\varphi) = (\sin\varphi, \cos\varphi)` (Eq. 6.5): ``(..., 1)`` to ``(..., 2)``."""
    phase = coords[..., 0]
    return torch.stack([torch.sin(phase), torch.cos(phase)], dim=-1)


def sinusoid_frequency_model(noise: float = 0.1) -> GenerativeModel:
    r"""The generative model of Eq. 6.6 on the phase circle, data shape ``(2,)``.

    :math:`p(x', \varphi) = \frac{1}{4\pi^2\sigma^2}
    \exp(-\lVert x' - (\sin\varphi, \cos\varphi)\rVert^2 / 2\sigma^2)`.
    """
    check_noise(noise)
    return GenerativeModel(Circle(), frequency_mean, noise, (2,), f"X'_{noise:g}")


def sinusoids_frequency(
    n: int = 10000, noise: float = 0.1, seed: int = 0, dtype: torch.dtype = torch.float32
) -> LatentDataset:
    r"""The frequency-domain benchmark :math:`X'_\sigma` (Eqs. 6.5-6.6).

    :math:`x' = (\sin\varphi, \cos\varphi) + \sigma\varepsilon`, :math:`\varphi` uniform,
    :math:`\varepsilon \sim \mathcal N(0, I_2)`. Note that :math:`\sigma` here is the noise
    of each coefficient, i.e. :math:`\sqrt{2/D}` times a time-domain noise (see
    :func:`to_frequency_domain`).

    Parameters
    ----------
    n : int
        Number of datapoints.
    noise : float
        :math:`\sigma \ge 0`.
    seed : int
        Seed of the private generator (latents drawn first, then the noise).
    dtype : torch.dtype
        Of the returned tensors.

    Returns
    -------
    LatentDataset
        ``data`` ``(n, 2)``, ``latent`` ``(n, 1)``, ``model`` :func:`sinusoid_frequency_model`.
    """
    check_n(n)
    return sinusoid_frequency_model(noise).sample(n, seed=seed, dtype=dtype)


def sinusoids_frequency_grid(n: int = 100, dtype: torch.dtype = torch.float32) -> LatentDataset:
    r"""Noiseless :math:`(\sin\varphi, \cos\varphi)` at the ``n`` regular phases of Eq. 5.4.

    Returns
    -------
    LatentDataset
        ``data`` ``(n, 2)``, ``latent`` ``(n, 1)`` with
        :math:`\varphi_i = -\pi + 2\pi i / n`, model with noise 0.
    """
    phase = _regular_phases(n).unsqueeze(-1)
    model = sinusoid_frequency_model(0.0)
    return LatentDataset(
        frequency_mean(phase).to(dtype), phase.to(dtype), f"X'_Vis ({n} phases)", model
    )
