r"""The decoder along its latent manifold: spectrum and Lipschitz constant.

Both take any :class:`~manifold_vae.latent_model.LatentVariableModel` (a trained VAE or a
dataset's generating process) and use its decoder mean :math:`F(z) = E[x \mid z]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..latent_model import LatentVariableModel
from ._evaluate import model_dtype_device
from .fourier import decoder_fourier_spectrum
from .geometry import circle_radii, is_gaussian_space, tangent_frame
from .hermite import decoder_hermite_spectrum
from .lipschitz import jacobian_norms
from .spectrum import Spectrum

__all__ = ["decoder_jacobian_norms", "decoder_spectrum"]


def decoder_spectrum(
    model: LatentVariableModel,
    grid_shape: int | Sequence[int] = 64,
    degree: int = 6,
    nodes: int = 16,
    progress: bool = False,
) -> Spectrum:
    """Spectrum of the decoder mean: Fourier on products of circles, Hermite on R^d.

    Chooses by the latent's declared capabilities (:mod:`manifold_vae.harmonic.geometry`):
    :func:`~manifold_vae.harmonic.fourier.decoder_fourier_spectrum` with ``grid_shape`` when
    the latent is a flat product of circles,
    :func:`~manifold_vae.harmonic.hermite.decoder_hermite_spectrum` with ``degree`` and
    ``nodes`` when it is Gaussian space.

    Raises
    ------
    ValueError
        For any other latent (e.g. the sphere), which has neither expansion here.
    """
    latent = model.latent
    if circle_radii(latent) is not None:
        return decoder_fourier_spectrum(model, grid_shape, progress=progress)
    if is_gaussian_space(latent):
        return decoder_hermite_spectrum(model, degree, nodes, progress=progress)
    raise ValueError(
        f"no spectrum for the latent {latent!r}: spectra are defined for flat products of "
        "circles (Fourier; declared angle_radii for every coordinate) and for R^d with a "
        "standard normal prior (Hermite; declared is_vector_space)"
    )


def decoder_jacobian_norms(
    model: LatentVariableModel,
    coords: Tensor,
    iterations: int = 200,
    rtol: float = 1e-6,
    seed: int = 0,
    progress: bool = False,
) -> Tensor:
    r"""Local Lipschitz constants of the decoder mean along the manifold, at ``coords``.

    .. math::

        L(z) = \max_{v \in T_zM,\ \lVert v\rVert_g = 1} \lVert dF_z(v)\rVert
             = \sigma_{\max}\big(J_F(z) R(z)^{-1}\big),

    with :math:`J_F` the Jacobian in coordinates and :math:`R` the factor of the embedding's
    Jacobian :math:`QR` (:func:`~manifold_vae.harmonic.geometry.tangent_frame`, so
    :math:`R^\top R = g`): only tangent directions count, measured in the manifold's metric.
    Estimated by :func:`~manifold_vae.harmonic.lipschitz.jacobian_norms` on
    :math:`u \mapsto F(z + R^{-1}u)` at :math:`u = 0`. The maximum over the points is a
    Lipschitz estimate of the decoder with respect to geodesic distance.

    Parameters
    ----------
    model : LatentVariableModel
        A trained VAE or a dataset's generating process.
    coords : Tensor, shape=[N, dim]
        Latent coordinates (e.g. the encoded locations of the data).
    iterations, rtol, seed, progress
        As for :func:`~manifold_vae.harmonic.lipschitz.jacobian_norms`.

    Returns
    -------
    Tensor, shape=[N]
    """
    latent = model.latent
    if coords.dim() != 2 or coords.shape[-1] != latent.dim:
        raise ValueError(
            f"coords must have shape (N, {latent.dim}) for {latent!r}, got {tuple(coords.shape)}"
        )
    dtype, device = model_dtype_device(model)
    coords = coords.detach().to(dtype=dtype, device=device)
    frame = tangent_frame(latent, coords)
    if not bool((frame.diagonal(dim1=-2, dim2=-1).abs() > 0).all()):
        raise ValueError("the embedding is singular at some coords (a coordinate pole)")

    def along(u: Tensor) -> Tensor:
        step = torch.linalg.solve_triangular(frame, u.unsqueeze(-1), upper=True).squeeze(-1)
        return model.decoder_mean(coords + step)

    return jacobian_norms(along, torch.zeros_like(coords), iterations, rtol, seed, progress)
