r"""Euclidean latent space :math:`\mathbb R^d`: the baseline VAE's (thesis Ch. 4)."""

from __future__ import annotations

import math
from typing import Any

import pyro.distributions as dist
import torch
from torch import Tensor
from torch.distributions import constraints

from .._geomstats import load_geomstats
from .base import LatentManifold, register_manifold

__all__ = ["Euclidean"]


@register_manifold
class Euclidean(LatentManifold):
    r""":math:`\mathbb R^d` with its flat metric; points and coordinates coincide.

    Prior :math:`N(0, I)`; posterior family the diagonal Gaussian
    :math:`N(\mu, \operatorname{diag}\sigma^2)` with the encoder giving :math:`(\mu, \log\sigma^2)`
    (thesis Eq. 4.4); heat kernel :math:`N(x, 2t I)`.

    Parameters
    ----------
    dim : int
        Dimension ``d >= 1``.
    """

    name = "euclidean"

    def __init__(self, dim: int = 2) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = dim
        self.ambient_dim = dim
        self.posterior_params = 2 * dim
        self._space: Any = None

    def _kwargs(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @property
    def volume(self) -> float:
        return math.inf

    @property
    def space(self) -> Any:
        """geomstats ``Euclidean(dim)``."""
        if self._space is None:
            load_geomstats()
            from geomstats.geometry.euclidean import Euclidean as GsEuclidean

            self._space = GsEuclidean(self.dim)
        return self._space

    def to_point(self, coordinates: Tensor) -> Tensor:
        return coordinates

    def to_coordinates(self, point: Tensor) -> Tensor:
        return point

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        return torch.zeros_like(coordinates[..., 0])

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        """Flat: ``base_point + tangent_vec``, shape ``(..., d)``."""
        return base_point + tangent_vec

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        """Euclidean norm of the difference, shape ``(...)`` (gradient 0 where they coincide)."""
        return (point_a - point_b).norm(dim=-1)

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        """Every vector is tangent: ``vector`` broadcast against ``base_point``."""
        return vector.expand(torch.broadcast_shapes(vector.shape, base_point.shape))

    def point_support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, 1)

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> dist.Distribution:
        """Standard normal :math:`N(0, I_d)`."""
        zero = torch.zeros(self.dim, dtype=dtype or torch.get_default_dtype(), device=device)
        return dist.Normal(zero, torch.ones_like(zero)).to_event(1)

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Standard normal draws ``(n, d)`` from ``generator`` only."""
        return torch.randn(n, self.dim, generator=generator, dtype=dtype)

    def posterior(self, raw: Tensor) -> dist.Distribution:
        r"""Diagonal Gaussian from ``raw = (mu, log sigma^2)``, shape ``(..., 2d)``.

        The scale is clamped to ``[sqrt(tiny), max ** (1/4)]`` of the dtype (smallest normal
        and largest finite numbers): a very negative ``log sigma^2`` (where ``exp`` underflows
        to 0) or a huge one (where it overflows) still gives a valid distribution whose
        variance, samples, ``log_prob`` and KL stay finite. Inside that range (``1.5e-154`` to
        ``1.2e77`` in float64, ``1.1e-19`` to ``4.3e9`` in float32) nothing changes.
        """
        if raw.shape[-1] != self.posterior_params:
            raise ValueError(
                f"raw posterior parameters must have last dimension {self.posterior_params} "
                f"for {self!r}, got shape {tuple(raw.shape)}"
            )
        loc, log_var = raw[..., : self.dim], raw[..., self.dim :]
        info = torch.finfo(log_var.dtype)
        scale = torch.exp(0.5 * log_var).clamp(math.sqrt(info.tiny), info.max**0.25)
        return dist.Normal(loc, scale).to_event(1)

    def reparameterize(self, posterior: dist.Distribution, noise: Tensor) -> Tensor:
        r""":math:`z = \mu + \sigma \odot \varepsilon`, what ``posterior.rsample`` computes.

        Parameters
        ----------
        posterior : Distribution
            From :meth:`posterior`: ``Normal(loc, scale).to_event(1)``.
        noise : Tensor, shape=[*sample_shape, *posterior.batch_shape, dim]
            Standard normal noise.

        Returns
        -------
        Tensor, shape=[*sample_shape, *posterior.batch_shape, dim]
        """
        base = posterior.base_dist
        return base.loc + noise * base.scale

    def posterior_location(self, posterior: dist.Distribution) -> Tensor:
        return posterior.mean

    @property
    def is_vector_space(self) -> bool:
        r""":math:`\mathbb R^d` with the identity embedding and the prior :math:`N(0, I)`."""
        return True

    def posterior_spread(self, posterior: dist.Distribution) -> Tensor:
        """The diagonal Gaussian's standard deviations, shape ``(*batch, dim)``."""
        return posterior.stddev

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> dist.Distribution:
        scale = torch.sqrt(2.0 * time).unsqueeze(-1).expand_as(coordinates)
        return dist.Normal(coordinates, scale).to_event(1)
