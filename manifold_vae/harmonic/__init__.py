r"""Harmonic analysis of encoders and decoders (Camuto & Willetts, AISTATS 2022).

* Spectra of a decoder along its latent manifold: Fourier on circles and tori (FFT on a grid),
  Hermite in Gaussian space :math:`\mathbb R^d`; the high-frequency content
  :meth:`Spectrum.high_frequency_content`.
* Spectrum of an encoder along a path in data space.
* Lipschitz estimates: Jacobian spectral norms by power iteration with autograd, for the
  decoder on tangent directions of the manifold and for the encoder on the data.
* Exact heat smoothing on circles and tori in the Fourier domain (the posterior-averaged
  decoder), and its Monte Carlo check.

See ``docs/harmonic.md``.
"""

from .decoder import decoder_jacobian_norms, decoder_spectrum
from .encoder import encoder_jacobian_norms, encoder_spectrum
from .fourier import angle_grid, decoder_fourier_spectrum, fourier_spectrum, path_spectrum
from .geometry import circle_radii, embedding_jacobian, is_gaussian_space, tangent_frame
from .hermite import (
    decoder_hermite_spectrum,
    gauss_hermite,
    hermite_functions,
    hermite_spectrum,
)
from .lipschitz import jacobian_norms, lipschitz_estimate
from .smoothing import heat_smoothed_decoder, heat_smoothing, monte_carlo_smoothed_decoder
from .spectrum import Spectrum

__all__ = [
    "Spectrum",
    "angle_grid",
    "circle_radii",
    "decoder_fourier_spectrum",
    "decoder_hermite_spectrum",
    "decoder_jacobian_norms",
    "decoder_spectrum",
    "embedding_jacobian",
    "encoder_jacobian_norms",
    "encoder_spectrum",
    "fourier_spectrum",
    "gauss_hermite",
    "heat_smoothed_decoder",
    "heat_smoothing",
    "hermite_functions",
    "hermite_spectrum",
    "is_gaussian_space",
    "jacobian_norms",
    "lipschitz_estimate",
    "monte_carlo_smoothed_decoder",
    "path_spectrum",
    "tangent_frame",
]
