r"""The protocol shared by every generative model with a manifold latent.

A trained :class:`~manifold_vae.vae.VAE` and the known generating process of a dataset
(:class:`~manifold_vae.datasets.GenerativeModel`) both describe

.. math::

    z \sim p(z) \text{ on } M, \qquad x \mid z \sim p(x \mid z),

and analysis code (Delta-reductors, harmonic analysis, evaluation) takes either through this
small protocol: the latent manifold, its prior over coordinates, the decoder distribution
:math:`p(x \mid z)` and its mean :math:`F(z) = E[x \mid z]`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.distributions import Distribution

from .manifolds import LatentManifold

__all__ = ["LatentVariableModel"]


@runtime_checkable
class LatentVariableModel(Protocol):
    r"""A generative model :math:`p(z)\,p(x \mid z)` with latent coordinates on a manifold.

    Attributes
    ----------
    latent : LatentManifold
        The latent space; coordinates have shape ``(..., latent.dim)``.
    data_shape : tuple of int
        Shape of one datapoint.
    """

    latent: LatentManifold
    data_shape: tuple[int, ...] | torch.Size

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        """The prior over coordinates, ``event_shape == (latent.dim,)``."""
        ...

    def conditional(self, coords: Tensor) -> Distribution:
        r""":math:`p(x \mid z)` at coordinates ``(..., dim)``; event shape ``data_shape``."""
        ...

    def decoder_mean(self, coords: Tensor) -> Tensor:
        r""":math:`E[x \mid z]` at coordinates ``(..., dim)``, shape ``(..., *data_shape)``."""
        ...
