r"""Exact heat smoothing on circles and tori in the Fourier domain, and its Monte Carlo check.

On the torus with angle coordinates, the heat kernel :math:`p_t(\cdot \mid \mu)` of angle time
:math:`t_i` in factor :math:`i` (:math:`\partial_t p = \Delta p`, NOTES.md) has
:math:`E[e^{i m\cdot\theta}] = e^{i m\cdot\mu - \sum_i m_i^2 t_i}`, so averaging a function over
it multiplies Fourier mode :math:`m` by :math:`e^{-\sum_i m_i^2 t_i}`:

.. math::

    E_{\theta \sim p_t(\cdot\mid\mu)}[F(\theta)] = (p_t * F)(\mu)
    = \sum_m c_m\, e^{-\sum_i m_i^2 t_i}\, e^{i m\cdot\mu}.

For a VAE whose posterior is a heat kernel (the diffusion VAE on the circle and the tori) this is
the posterior-averaged decoder :math:`E_{q(z\mid x)}[F(z)]`: larger posterior times damp the
high modes of the decoder. The sum is exact for the spectrum it is given; computed from grid
samples (:func:`~manifold_vae.harmonic.fourier.decoder_fourier_spectrum`) it is exact for a
decoder with modes :math:`|m_i| < N_i/2` and otherwise carries the grid's aliasing error.
On a circle of radius :math:`r` the intrinsic time :math:`t` is angle time :math:`t / r^2`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..latent_model import LatentVariableModel
from ._evaluate import model_dtype_device
from .fourier import decoder_fourier_spectrum
from .geometry import circle_radii
from .spectrum import Spectrum

__all__ = ["heat_smoothed_decoder", "heat_smoothing", "monte_carlo_smoothed_decoder"]


def heat_smoothing(spectrum: Spectrum, loc: Tensor, time: Tensor) -> Tensor:
    r""":math:`\sum_m c_m e^{-\sum_i m_i^2 t_i} e^{i m\cdot\mu}`: the heat-smoothed function.

    Parameters
    ----------
    spectrum : Spectrum
        A Fourier spectrum of a real function on the :math:`n`-torus.
    loc : Tensor, shape=[..., n]
        Locations :math:`\mu` (angles).
    time : Tensor, shape=[..., n] (broadcastable)
        Finite angle times :math:`t_i \ge 0` per factor (e.g. ``TorusHeatKernel.time``).

    Returns
    -------
    Tensor, shape=[..., *out_shape]
        Real, in the real dtype of the coefficients.
    """
    if spectrum.basis != "fourier":
        raise ValueError(f"heat smoothing needs a Fourier spectrum, got a {spectrum.basis} one")
    n = spectrum.modes.shape[-1]
    if loc.shape[-1] != n:
        raise ValueError(f"loc must have last dimension {n} (the torus), got {tuple(loc.shape)}")
    time_tensor = torch.as_tensor(time)
    if not bool(((time_tensor >= 0) & torch.isfinite(time_tensor)).all()):
        raise ValueError("time must be finite and >= 0")
    coefficients = spectrum.coefficients
    real = coefficients.real.dtype
    flat = coefficients.reshape(coefficients.shape[0], -1)
    modes = spectrum.modes.to(device=flat.device, dtype=real)
    loc = loc.to(device=flat.device, dtype=real)
    time = torch.as_tensor(time, dtype=real, device=flat.device).expand_as(loc)
    phase = loc @ modes.T  # (..., K)
    damping = torch.exp(-time @ (modes**2).T)  # (..., K)
    out = (damping * torch.cos(phase)) @ flat.real - (damping * torch.sin(phase)) @ flat.imag
    return out.reshape(*loc.shape[:-1], *coefficients.shape[1:])


def heat_smoothed_decoder(
    model: LatentVariableModel,
    loc: Tensor,
    time: Tensor | float,
    grid_shape: int | Sequence[int] = 64,
) -> Tensor:
    r""":math:`E_{z \sim p_t(\cdot\mid\mu)}[F(z)]` by the Fourier domain, intrinsic time ``t``.

    Parameters
    ----------
    model : LatentVariableModel
        With a latent that is a flat product of circles.
    loc : Tensor, shape=[..., n]
        Locations (angles).
    time : Tensor or float, shape=[...]
        Intrinsic times (the manifold's ``coordinate_heat_kernel`` convention).
    grid_shape : int or tuple of int
        Grid of the decoder's spectrum.

    Returns
    -------
    Tensor, shape=[..., *data_shape]
    """
    radii = circle_radii(model.latent)
    if radii is None:
        raise ValueError(
            "heat smoothing needs a product of circles (angle_radii declared for every "
            f"coordinate), got {model.latent!r}"
        )
    spectrum = decoder_fourier_spectrum(model, grid_shape)
    real, device = spectrum.coefficients.real.dtype, spectrum.coefficients.device
    time = torch.as_tensor(time, dtype=real, device=device).unsqueeze(-1)
    angle_time = time / torch.tensor(radii, dtype=real, device=device) ** 2
    return heat_smoothing(spectrum, loc, angle_time)


def monte_carlo_smoothed_decoder(
    model: LatentVariableModel,
    loc: Tensor,
    time: Tensor | float,
    samples: int = 4096,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    r"""Monte Carlo :math:`\frac1S\sum_s F(z_s)`, :math:`z_s \sim p_t(\cdot\mid\mu)`, and its error.

    Samples the latent's own ``coordinate_heat_kernel`` (any manifold), seeded (the global RNG
    state is restored).

    Parameters
    ----------
    model : LatentVariableModel
        Any latent manifold (its heat kernel must have ``sample``).
    loc : Tensor, shape=[B, dim]
        Locations (coordinates).
    time : Tensor or float, shape=[B]
        Intrinsic times.
    samples : int
        :math:`S`.
    seed : int
        Seed of the samples.

    Returns
    -------
    (Tensor, Tensor), each of shape=[B, *data_shape]
        The average and its standard error.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    dtype, device = model_dtype_device(model)
    loc = loc.to(dtype=dtype, device=device)
    time = torch.as_tensor(time, dtype=dtype, device=device).expand(loc.shape[:-1])
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        z = model.latent.coordinate_heat_kernel(loc, time).sample(torch.Size([samples]))
        values = model.decoder_mean(z.reshape(-1, loc.shape[-1])).reshape(
            samples, *loc.shape[:-1], *model.data_shape
        )
    return values.mean(0), values.std(0) / samples**0.5
