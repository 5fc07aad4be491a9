r"""Known generative processes (a latent manifold, a mean function and Gaussian noise) and data.

A :class:`GenerativeModel` is the truth behind a synthetic dataset (thesis Ch. 2, Eq. 2.6):

.. math::

    z \sim P_Z = \mathrm{Uniform}(M), \qquad
    x \mid z \sim \mathcal N\big(F(z), \sigma^2 I\big), \qquad
    p(x, z) = p(x \mid z)\, p(z),

with :math:`M` a :class:`~manifold_vae.manifolds.LatentManifold` in its coordinates (angles in
:math:`[-\pi, \pi)^k` on circles and tori), :math:`F` the noiseless mean and :math:`\sigma` the
noise standard deviation.

Measures. :math:`p(x \mid z)` is a density with respect to the Lebesgue measure on the data
space :math:`\mathbb R^{\text{data\_shape}}`; :math:`p(z)` is the prior's density with respect
to the Lebesgue measure on the coordinates. On the circle and the flat tori the prior is
uniform on the angles, :math:`p(z) = (2\pi)^{-k}`. So :meth:`GenerativeModel.log_joint` is a
density with respect to Lebesgue on data times Lebesgue on angle coordinates (the thesis's
:math:`\mathcal L^D \otimes \mathcal L^k`, e.g. Eqs. 5.2-5.3, 6.6, 11.2).

A :class:`LatentDataset` is data with the latent values that generated it and, where it is known,
the process: what :meth:`GenerativeModel.sample` and every dataset constructor return.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from ..manifolds import LatentManifold

__all__ = ["GenerativeModel", "LatentDataset", "check_n", "check_noise"]


def check_n(n: int) -> None:
    """Raise ValueError unless ``n`` is a positive integer number of datapoints."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of datapoints, got {n!r}")


def check_noise(noise: float) -> None:
    r"""Raise ValueError unless ``noise`` is a finite standard deviation :math:`\sigma \ge 0`."""
    if (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float))
        or not (math.isfinite(noise) and noise >= 0)
    ):
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}")


@dataclass
class GenerativeModel:
    r"""The generating process of a dataset: :math:`x = F(z) + \sigma \varepsilon`.

    Attributes
    ----------
    latent : LatentManifold
        The latent space with its prior (e.g. ``Circle()`` for one phase, ``FlatTorus(2)`` for
        two phases); ``latent.dim`` is the number :math:`k` of coordinates.
    mean : Callable[[Tensor], Tensor]
        :math:`F`: coordinates ``(..., k)`` to noiseless datapoints ``(..., *data_shape)``, in
        the dtype of the coordinates.
    noise : float
        :math:`\sigma \ge 0`, the standard deviation of the isotropic Gaussian noise (0: the data
        lie exactly on the image of :math:`F`, and :math:`p(x \mid z)` has no density).
    data_shape : tuple of int
        Shape of one datapoint.
    name : str
        A short description for reports.
    """

    latent: LatentManifold
    mean: Callable[[Tensor], Tensor]
    noise: float
    data_shape: tuple[int, ...]
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.latent, LatentManifold):
            raise ValueError(f"latent must be a LatentManifold, got {self.latent!r}")
        if not callable(self.mean):
            raise ValueError(f"mean must be callable, got {self.mean!r}")
        check_noise(self.noise)
        self.noise = float(self.noise)
        shape = tuple(self.data_shape)
        if not shape or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape
        ):
            raise ValueError(
                "data_shape must be a non-empty tuple of positive integers, "
                f"got {self.data_shape!r}"
            )
        self.data_shape = shape

    @property
    def latent_dim(self) -> int:
        """:math:`k`, the number of latent coordinates."""
        return self.latent.dim

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        r"""The latent manifold's prior over coordinates, ``event_shape == (k,)``.

        Uniform on circles and tori: density :math:`(2\pi)^{-k}` with respect to Lebesgue
        measure on the angles.
        """
        return self.latent.prior(dtype=dtype, device=device)

    def _check_coords(self, coords: Tensor) -> None:
        if not isinstance(coords, Tensor) or coords.ndim < 1 or coords.shape[-1] != self.latent_dim:
            shape = tuple(coords.shape) if isinstance(coords, Tensor) else type(coords).__name__
            raise ValueError(
                f"coords must be a tensor of shape (..., {self.latent_dim}), got {shape}"
            )

    def conditional(self, coords: Tensor) -> Distribution:
        r""":math:`p(x \mid z) = \mathcal N(F(z), \sigma^2 I)` over datapoints.

        Parameters
        ----------
        coords : Tensor, shape=[..., k]
            Latent coordinates.

        Returns
        -------
        Distribution
            ``batch_shape == coords.shape[:-1]``, ``event_shape == data_shape``; its ``log_prob``
            is a density with respect to Lebesgue measure on :math:`\mathbb R^{\text{data\_shape}}`.

        Raises
        ------
        ValueError
            If ``noise == 0`` (the conditional is a point mass with no density).
        """
        if self.noise == 0:
            raise ValueError(
                f"noise is 0 for {self.name!r}: the conditional is a point mass at mean(coords) "
                "and has no density; use mean(coords) or a model with noise > 0"
            )
        self._check_coords(coords)
        loc = self.mean(coords)
        scale = torch.full_like(loc, self.noise)
        return Independent(Normal(loc, scale), len(self.data_shape))

    def decoder_mean(self, coords: Tensor) -> Tensor:
        r""":math:`E[x \mid z] = F(z)` at coordinates ``(..., k)``, shape ``(..., *data_shape)``.

        The name shared with :class:`~manifold_vae.vae.VAE` (the protocol
        :class:`~manifold_vae.latent_model.LatentVariableModel`).
        """
        self._check_coords(coords)
        return self.mean(coords)

    def log_joint(self, x: Tensor, coords: Tensor) -> Tensor:
        r""":math:`\log p(x, z) = \log p(x \mid z) + \log p(z)`.

        With respect to Lebesgue measure on the data times Lebesgue measure on the coordinates;
        for :math:`k` angles and noise :math:`\sigma`,
        :math:`-\tfrac{\lVert x - F(z)\rVert^2}{2\sigma^2}
        - \tfrac{n}{2}\log(2\pi\sigma^2) - k \log 2\pi`, :math:`n` the data size.

        Parameters
        ----------
        x : Tensor, shape=[..., *data_shape]
            Datapoints.
        coords : Tensor, shape=[..., k]
            Latent coordinates (broadcast against ``x``'s batch shape).

        Returns
        -------
        Tensor, shape=[...]
        """
        if tuple(x.shape[x.ndim - len(self.data_shape) :]) != self.data_shape:
            raise ValueError(
                f"x must have shape (..., {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(x.shape)}"
            )
        log_likelihood = self.conditional(coords).log_prob(x)
        log_prior = self.prior(dtype=coords.dtype, device=coords.device).log_prob(coords)
        return log_likelihood + log_prior

    def sample_latent(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        r"""``n`` draws from the prior, shape ``(n, k)``, using ``generator`` only.

        Through the protocol, :meth:`LatentManifold.sample_prior`: uniform priors (circles,
        tori): :math:`u \sim U[0,1)^k`, :math:`z = 2\pi u - \pi`, wrapped to
        :math:`[-\pi, \pi)`; Euclidean prior: standard normal; the sphere: normalised
        standard normal vectors; products: factor by factor.
        """
        check_n(n)
        try:
            return self.latent.sample_prior(n, generator, dtype)
        except NotImplementedError as error:
            raise ValueError(
                f"latent {self.latent!r} has a prior this model cannot sample with a private "
                f"generator: {error}"
            ) from error

    def sample(self, n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> LatentDataset:
        r"""Draw a dataset: :math:`z_i \sim P_Z`, :math:`x_i = F(z_i) + \sigma\varepsilon_i`.

        Computed in float64 and cast to ``dtype`` at the end; a private ``torch.Generator``
        seeded with ``seed`` draws first the latents ``(n, k)`` and then the noise
        ``(n, *data_shape)`` (so for the sinusoid model this reproduces
        :func:`~manifold_vae.datasets.sinusoids` exactly).

        Parameters
        ----------
        n : int
            Number of datapoints.
        seed : int
            Seed of the private generator (the global RNG is not touched).
        dtype : torch.dtype
            Of the returned tensors.

        Returns
        -------
        LatentDataset
            ``data`` of shape ``(n, *data_shape)``, ``latent`` of shape ``(n, k)``, ``model``
            this model.
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        g = torch.Generator().manual_seed(seed)
        z = self.sample_latent(n, g)
        eps = torch.randn(n, *self.data_shape, generator=g, dtype=torch.float64)
        x = self.mean(z) + self.noise * eps
        return LatentDataset(x.to(dtype), z.to(dtype), self.name, self)


@dataclass
class LatentDataset:
    """Data with the true latent values that generated it (and, if known, the process)."""

    #: Datapoints, shape ``(N, *data_shape)``.
    data: Tensor
    #: True latent values (phases in ``[-pi, pi)``), shape ``(N, latent_dim)``.
    latent: Tensor
    #: A short description for reports.
    name: str
    #: The generating process, where it is known (``None`` for real data).
    model: GenerativeModel | None = None
