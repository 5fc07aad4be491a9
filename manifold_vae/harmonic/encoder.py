r"""The encoder of a VAE: its spectrum along a path in data space and its Lipschitz constant.

The encoder's function here is :math:`x \mapsto \mathrm{to\_point}(\mu(x))`, the embedded
location of the posterior :math:`q(z \mid x)` (``VAE.embedded_location``): the posterior mean
on :math:`\mathbb R^d`, the point of the mean direction on circles and tori.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..vae import VAE
from ._evaluate import model_dtype_device
from .fourier import path_spectrum
from .lipschitz import jacobian_norms
from .spectrum import Spectrum

__all__ = ["encoder_jacobian_norms", "encoder_spectrum"]


def _on_model(vae: VAE, data: Tensor) -> Tensor:
    if data.shape[1:] != vae.data_shape:
        raise ValueError(
            f"data must have shape (N, {', '.join(map(str, vae.data_shape))}), "
            f"got {tuple(data.shape)}"
        )
    dtype, device = model_dtype_device(vae)
    return data.detach().to(dtype=dtype, device=device)


def encoder_spectrum(vae: VAE, path: Tensor, grid_shape: int | Sequence[int]) -> Spectrum:
    r"""Fourier spectrum of the encoder along a closed path :math:`\varphi \mapsto x(\varphi)`.

    Parameters
    ----------
    vae : VAE
        The model (evaluated in eval mode, on its dtype and device).
    path : Tensor, shape=[N_1 * ... * N_n, *data_shape]
        Datapoints at the regular angles of
        :func:`~manifold_vae.harmonic.fourier.angle_grid` (for the benchmark datasets: their
        noiseless grids at regular true phases, e.g. ``sinusoids_grid(n).data``).
    grid_shape : int or tuple of int
        :math:`(N_1, \dots, N_n)`.

    Returns
    -------
    Spectrum
        Coefficients of shape ``(K, ambient_dim)``.
    """
    was_training = vae.training
    vae.eval()
    try:
        return path_spectrum(vae.embedded_location, _on_model(vae, path), grid_shape)
    finally:
        vae.train(was_training)


def encoder_jacobian_norms(
    vae: VAE,
    data: Tensor,
    iterations: int = 200,
    rtol: float = 1e-6,
    seed: int = 0,
    progress: bool = False,
) -> Tensor:
    r""":math:`\sigma_{\max}` of the Jacobian of :math:`x \mapsto \mathrm{to\_point}(\mu(x))`.

    Parameters
    ----------
    vae : VAE
        The model (evaluated in eval mode, on its dtype and device).
    data : Tensor, shape=[N, *data_shape]
        The points (e.g. the data, or a benchmark's noiseless grid).
    iterations, rtol, seed, progress
        As for :func:`~manifold_vae.harmonic.lipschitz.jacobian_norms`.

    Returns
    -------
    Tensor, shape=[N]
    """
    was_training = vae.training
    vae.eval()
    try:
        with torch.enable_grad():
            return jacobian_norms(
                vae.embedded_location, _on_model(vae, data), iterations, rtol, seed, progress
            )
    finally:
        vae.train(was_training)
