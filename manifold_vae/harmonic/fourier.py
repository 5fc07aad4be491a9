r"""Fourier spectra on circles and tori, by the FFT of samples on a regular angle grid.

On the torus :math:`T^n = [-\pi, \pi)^n` with the uniform probability measure, the modes
:math:`e^{i m\cdot\theta}`, :math:`m \in \mathbb Z^n`, are orthonormal and

.. math::

    f(\theta) = \sum_m c_m e^{i m\cdot\theta}, \qquad
    c_m = \frac{1}{(2\pi)^n}\int f(\theta) e^{-i m\cdot\theta}\,d\theta.

From the samples at :math:`\theta_j = -\pi + 2\pi j / N` (:math:`j = 0..N-1` per axis), the
discrete transform gives

.. math::

    \hat c_m = \frac{1}{N^n} \sum_j f(\theta_j) e^{-i m\cdot\theta_j}
    = (-1)^{\sum_i m_i}\,\frac{\mathrm{FFT}(f)_m}{N^n}, \qquad -N/2 \le m_i < N/2,

which is exact (:math:`\hat c_m = c_m`) when :math:`f` is a trigonometric polynomial with
:math:`|m_i| < N/2`; otherwise each :math:`\hat c_m` also holds the aliased modes
:math:`m + N k`, whose energy the grid cannot tell apart: refine the grid until the spectrum
stops changing. Parseval holds exactly for the samples,
:math:`\sum_m \lVert\hat c_m\rVert^2 = N^{-n}\sum_j\lVert f(\theta_j)\rVert^2`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..latent_model import LatentVariableModel
from ._evaluate import evaluate_in_chunks, model_dtype_device
from .geometry import circle_radii
from .spectrum import Spectrum

__all__ = ["angle_grid", "decoder_fourier_spectrum", "fourier_spectrum", "path_spectrum"]


def _check_grid_shape(grid_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(grid_shape)
    if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in shape):
        raise ValueError(f"grid_shape must be a non-empty tuple of integers >= 2, got {grid_shape}")
    return shape


def angle_grid(
    grid_shape: Sequence[int],
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""The regular grid :math:`\theta_j = -\pi + 2\pi j / N_i` on :math:`[-\pi, \pi)^n`.

    Parameters
    ----------
    grid_shape : tuple of int
        Points per axis :math:`(N_1, \dots, N_n)`, each at least 2.
    dtype, device
        Of the result.

    Returns
    -------
    Tensor, shape=[N_1, ..., N_n, n]
        The angles, the first axis varying slowest (``meshgrid(..., indexing="ij")``).
    """
    shape = _check_grid_shape(grid_shape)
    axes = [-math.pi + 2.0 * math.pi * torch.arange(n, dtype=torch.float64) / n for n in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    return grid.to(dtype=dtype, device=device)


def fourier_spectrum(values: Tensor, ndim: int) -> Spectrum:
    r"""Fourier spectrum of samples on :func:`angle_grid`.

    Parameters
    ----------
    values : Tensor, shape=[N_1, ..., N_n, *out_shape]
        :math:`f(\theta_j)`; the first ``ndim`` axes are the grid.
    ndim : int
        :math:`n`, the number of angle axes.

    Returns
    -------
    Spectrum
        ``basis="fourier"``, modes :math:`m` ``(K, n)`` with :math:`-N_i/2 \le m_i < N_i/2`,
        frequency :math:`\max_i |m_i|`, complex coefficients ``(K, *out_shape)``.
    """
    if isinstance(ndim, bool) or not isinstance(ndim, int) or not 1 <= ndim <= values.dim():
        raise ValueError(f"ndim must be an integer in [1, values.dim()], got {ndim!r}")
    shape = _check_grid_shape(tuple(values.shape[:ndim]))
    if not torch.isfinite(values).all():
        raise ValueError("values must be finite")
    total = math.prod(shape)
    work = values.to(torch.complex128 if values.dtype == torch.float64 else torch.complex64)
    transform = torch.fft.fftn(work, dim=tuple(range(ndim))) / total
    freqs = [torch.fft.fftfreq(n, d=1.0 / n).round().long() for n in shape]
    modes = torch.stack(torch.meshgrid(*freqs, indexing="ij"), dim=-1).reshape(total, ndim)
    sign = 1.0 - 2.0 * (modes.sum(-1) % 2).to(torch.float64)  # (-1)^(sum m): grid starts at -pi
    coefficients = transform.reshape(total, *values.shape[ndim:])
    coefficients = coefficients * sign.to(coefficients.real.dtype).reshape(
        total, *([1] * (coefficients.dim() - 1))
    )
    energy = float((values.double() ** 2).reshape(total, -1).sum() / total)
    return Spectrum(
        "fourier", modes, modes.abs().amax(-1).double(), coefficients, total_energy=energy
    )


def decoder_fourier_spectrum(
    model: LatentVariableModel,
    grid_shape: int | Sequence[int] = 64,
    chunk: int = 4096,
    progress: bool = False,
) -> Spectrum:
    r"""Spectrum of the decoder mean :math:`F(\theta) = E[x \mid \theta]` on a torus latent.

    Parameters
    ----------
    model : LatentVariableModel
        A trained VAE or a dataset's generating process whose latent is a flat product of
        circles (declared ``angle_radii``, :func:`~manifold_vae.harmonic.geometry.circle_radii`).
    grid_shape : int or tuple of int
        Grid points per angle (an int: the same for every angle).
    chunk : int
        Decoder evaluations per call.
    progress : bool
        Progress bar over the chunks.

    Returns
    -------
    Spectrum
        Coefficients of shape ``(K, *data_shape)``.

    Raises
    ------
    ValueError
        If the latent is not a product of circles in angle coordinates.
    """
    latent = model.latent
    if circle_radii(latent) is None:
        raise ValueError(
            f"the latent {latent!r} is not a flat product of circles in angle coordinates "
            "(it does not declare angle_radii with a radius for every coordinate): no Fourier "
            "spectrum (use decoder_hermite_spectrum on R^d)"
        )
    shape = (grid_shape,) * latent.dim if isinstance(grid_shape, int) else tuple(grid_shape)
    if len(shape) != latent.dim:
        raise ValueError(f"grid_shape needs {latent.dim} entries for {latent!r}, got {shape}")
    dtype, device = model_dtype_device(model)
    grid = angle_grid(shape, dtype=dtype, device=device)
    values = evaluate_in_chunks(
        model.decoder_mean, grid.reshape(-1, latent.dim), chunk, progress, "decoder on grid"
    )
    return fourier_spectrum(values.reshape(*shape, *values.shape[1:]).cpu(), latent.dim)


def path_spectrum(
    function: Callable[[Tensor], Tensor],
    path: Tensor,
    grid_shape: int | Sequence[int],
    chunk: int = 4096,
    progress: bool = False,
) -> Spectrum:
    r"""Fourier spectrum of ``function`` along a closed path (or torus) of inputs.

    ``path`` holds the inputs :math:`x(\varphi_j)` at the grid angles :math:`\varphi_j` of
    :func:`angle_grid` (row-major, the first angle slowest), e.g. a benchmark dataset's
    noiseless images at regular true phases; the result is the spectrum of
    :math:`\varphi \mapsto \mathrm{function}(x(\varphi))`.

    Parameters
    ----------
    function : callable
        Maps ``(P, *in_shape)`` to ``(P, *out_shape)`` row by row.
    path : Tensor, shape=[N_1 * ... * N_n, *in_shape]
        Inputs on the grid of the path's angles.
    grid_shape : int or tuple of int
        :math:`(N_1, \dots, N_n)`.
    chunk, progress
        Evaluations per call; progress bar.

    Returns
    -------
    Spectrum
    """
    shape = (grid_shape,) if isinstance(grid_shape, int) else tuple(grid_shape)
    shape = _check_grid_shape(shape)
    if path.shape[0] != math.prod(shape):
        raise ValueError(
            f"path must have prod(grid_shape) = {math.prod(shape)} rows, got {path.shape[0]}"
        )
    values = evaluate_in_chunks(function, path, chunk, progress, "function along path")
    return fourier_spectrum(values.reshape(*shape, *values.shape[1:]).cpu(), len(shape))
