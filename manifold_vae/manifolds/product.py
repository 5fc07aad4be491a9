r"""Products :math:`M_1 \times \dots \times M_k` of latent manifolds, e.g. S^1 x R.

Coordinates, points and raw encoder outputs are the factors' concatenated along the last axis;
the metric is the product metric, so :math:`\sqrt{\det g} = \prod_i \sqrt{\det g_i}`, the heat
kernel is the product of the factors' heat kernels at the same time (the Laplacian of a product
is the sum of the factors' Laplacians), and the prior and posterior are products of the
factors'. The KL divergence between two product distributions is the sum of the factors'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import Distribution, constraints, kl_divergence, register_kl

from .._geomstats import load_geomstats
from .base import LatentManifold, manifold_from_spec, register_manifold

__all__ = ["Product", "ProductDistribution"]


def _split(value: Tensor, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    return torch.split(value, list(sizes), dim=-1)


class _ConcatenatedConstraint(constraints.Constraint):
    """Each slice of the last axis satisfies its own constraint (all of event dimension 1)."""

    event_dim = 1

    def __init__(self, parts: Sequence[constraints.Constraint], sizes: Sequence[int]) -> None:
        self.parts, self.sizes = list(parts), list(sizes)
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        if value.shape[-1] != sum(self.sizes):
            return torch.zeros(value.shape[:-1], dtype=torch.bool, device=value.device)
        ok = torch.ones(value.shape[:-1], dtype=torch.bool, device=value.device)
        for part, piece in zip(self.parts, _split(value, self.sizes), strict=True):
            check = part.check(piece)
            for _ in range(1 - part.event_dim):  # an elementwise constraint: all of the slice
                check = check.all(-1)
            ok = ok & check
        return ok

    def __repr__(self) -> str:
        return f"concatenated({', '.join(map(repr, self.parts))})"


class ProductDistribution(TorchDistribution):
    r"""Independent distributions over consecutive slices of the last axis.

    .. math::

        \log q(z) = \sum_i \log q_i(z_i), \qquad z = (z_1, \dots, z_k).

    Parameters
    ----------
    parts : sequence of Distribution
        Each with ``event_shape == (d_i,)``; their batch shapes are broadcast.
    manifold : Product, optional
        When given and every factor implements ``reparameterize``, ``rsample`` draws one
        standard normal tensor ``(..., sum d_i)`` and maps it through
        :meth:`Product.reparameterize` (the contract ensemble training needs).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(
        self,
        parts: Sequence[Distribution],
        manifold: Product | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if not parts or any(len(p.event_shape) != 1 for p in parts):
            raise ValueError(
                "parts must be a non-empty sequence of distributions with event_shape (d_i,)"
            )
        batch = torch.broadcast_shapes(*(p.batch_shape for p in parts))
        self.parts = [p.expand(batch) if p.batch_shape != batch else p for p in parts]
        self.sizes = [p.event_shape[0] for p in parts]
        self.manifold = manifold
        self.has_rsample = all(p.has_rsample for p in parts)
        super().__init__(batch, torch.Size([sum(self.sizes)]), validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return _ConcatenatedConstraint([p.support for p in self.parts], self.sizes)

    def expand(self, batch_shape: torch.Size, _instance=None) -> ProductDistribution:
        batch_shape = torch.Size(batch_shape)
        parts = [p.expand(batch_shape) for p in self.parts]
        return ProductDistribution(parts, self.manifold, validate_args=self._validate_args)

    def _reparameterizable(self) -> bool:
        return bool(getattr(self.manifold, "reparameterizable", False))

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        if self._reparameterizable():
            first = self.parts[0]
            probe = first.mean if first.mean.is_floating_point() else torch.zeros(())
            shape = self._extended_shape(torch.Size(sample_shape))
            noise = torch.randn(shape, dtype=probe.dtype, device=probe.device)
            return self.manifold.reparameterize(self, noise)
        return torch.cat([p.rsample(sample_shape) for p in self.parts], dim=-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            if self.has_rsample:
                return self.rsample(sample_shape)
            return torch.cat([p.sample(sample_shape) for p in self.parts], dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        pieces = _split(value, self.sizes)
        return sum(p.log_prob(v) for p, v in zip(self.parts, pieces, strict=True))

    def entropy(self) -> Tensor:
        return sum(p.entropy() for p in self.parts)

    @property
    def mean(self) -> Tensor:
        return torch.cat([p.mean for p in self.parts], dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.parts))})"


@register_kl(ProductDistribution, ProductDistribution)
def _kl_product_product(p: ProductDistribution, q: ProductDistribution) -> Tensor:
    r""":math:`\mathrm{KL}(\prod p_i \,\|\, \prod q_i) = \sum_i \mathrm{KL}(p_i \| q_i)`."""
    if p.sizes != q.sizes:
        raise ValueError(f"product distributions over different slices: {p.sizes} vs {q.sizes}")
    return sum(kl_divergence(a, b) for a, b in zip(p.parts, q.parts, strict=True))


@register_manifold
class Product(LatentManifold):
    r"""The product of latent manifolds, e.g. ``Product(Circle(), Euclidean(1))``.

    Parameters
    ----------
    *factors : LatentManifold
        At least one factor; coordinates ``(..., sum dim_i)``, points
        ``(..., sum ambient_dim_i)``, raw outputs ``(..., sum posterior_params_i)``.
    specs : sequence of dict, optional
        The factors as :meth:`LatentManifold.spec` dictionaries instead (what
        :func:`manifold_from_spec` passes).
    """

    name = "product"

    def __init__(self, *factors: LatentManifold, specs: Sequence[dict] | None = None) -> None:
        if specs is not None:
            if factors:
                raise ValueError("give the factors either as arguments or as specs, not both")
            factors = tuple(manifold_from_spec(spec) for spec in specs)
        if not factors or not all(isinstance(f, LatentManifold) for f in factors):
            raise ValueError(
                f"factors must be one or more LatentManifold instances, got {factors!r}"
            )
        self.factors = tuple(factors)
        self.dim = sum(f.dim for f in factors)
        self.ambient_dim = sum(f.ambient_dim for f in factors)
        self.posterior_params = sum(f.posterior_params for f in factors)
        self._space: Any = None

    def _kwargs(self) -> dict[str, Any]:
        return {"specs": [f.spec() for f in self.factors]}

    def __repr__(self) -> str:
        return f"Product({', '.join(map(repr, self.factors))})"

    @property
    def intrinsic_dim(self) -> int:
        return sum(f.intrinsic_dim for f in self.factors)

    @property
    def reparameterizable(self) -> bool:
        """Whether every factor implements :meth:`LatentManifold.reparameterize`."""
        return all(f.reparameterizable for f in self.factors)

    @property
    def volume(self) -> float:
        return math.prod(f.volume for f in self.factors)

    @property
    def space(self) -> Any:
        """geomstats ``ProductManifold`` of the factors' spaces (their point conventions)."""
        if self._space is None:
            load_geomstats()
            from geomstats.geometry.product_manifold import ProductManifold

            self._space = ProductManifold([f.space for f in self.factors], point_ndim=1)
        return self._space

    # --- per-factor helpers ------------------------------------------------------------
    def _coords(self, coordinates: Tensor) -> tuple[Tensor, ...]:
        return _split(coordinates, [f.dim for f in self.factors])

    def _points(self, point: Tensor) -> tuple[Tensor, ...]:
        return _split(point, [f.ambient_dim for f in self.factors])

    def to_point(self, coordinates: Tensor) -> Tensor:
        pieces = zip(self.factors, self._coords(coordinates), strict=True)
        return torch.cat([f.to_point(c) for f, c in pieces], dim=-1)

    def to_coordinates(self, point: Tensor) -> Tensor:
        pieces = zip(self.factors, self._points(point), strict=True)
        return torch.cat([f.to_coordinates(p) for f, p in pieces], dim=-1)

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        pieces = zip(self.factors, self._coords(coordinates), strict=True)
        return sum(f.log_volume_density(c) for f, c in pieces)

    def point_support(self) -> constraints.Constraint:
        parts = [f.point_support() for f in self.factors]
        return _ConcatenatedConstraint(parts, [f.ambient_dim for f in self.factors])

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        """Factor by factor, ``(..., ambient_dim)``."""
        pieces = zip(self.factors, self._points(tangent_vec), self._points(base_point), strict=True)
        return torch.cat([f.exp(v, x) for f, v, x in pieces], dim=-1)

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        r""":math:`\sqrt{\sum_i d_i(a_i, b_i)^2}`, ``(...)``."""
        pieces = zip(self.factors, self._points(point_a), self._points(point_b), strict=True)
        return torch.stack([f.distance(a, b) for f, a, b in pieces], dim=-1).norm(dim=-1)

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        """Factor by factor, ``(..., ambient_dim)``."""
        pieces = zip(self.factors, self._points(vector), self._points(base_point), strict=True)
        return torch.cat([f.to_tangent(v, x) for f, v, x in pieces], dim=-1)

    # --- distributions -----------------------------------------------------------------
    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> ProductDistribution:
        """The product of the factors' priors."""
        return ProductDistribution([f.prior(dtype=dtype, device=device) for f in self.factors])

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """Each factor's draws in turn from the same generator, concatenated ``(n, dim)``."""
        return torch.cat([f.sample_prior(n, generator, dtype) for f in self.factors], dim=-1)

    def posterior(self, raw: Tensor) -> ProductDistribution:
        """The product of the factors' posteriors from consecutive slices of ``raw``."""
        if raw.shape[-1] != self.posterior_params:
            raise ValueError(
                f"raw posterior parameters must have last dimension {self.posterior_params} "
                f"for {self!r}, got shape {tuple(raw.shape)}"
            )
        pieces = _split(raw, [f.posterior_params for f in self.factors])
        parts = [f.posterior(r) for f, r in zip(self.factors, pieces, strict=True)]
        return ProductDistribution(parts, self)

    def reparameterize(self, posterior: ProductDistribution, noise: Tensor) -> Tensor:
        r"""Each factor's ``reparameterize`` on its slice of ``noise``.

        Parameters
        ----------
        posterior : ProductDistribution
            From :meth:`posterior`.
        noise : Tensor, shape=[*sample_shape, *posterior.batch_shape, dim]
            Standard normal noise.

        Returns
        -------
        Tensor, shape=[*sample_shape, *posterior.batch_shape, dim]

        Raises
        ------
        NotImplementedError
            If a factor does not implement ``reparameterize`` (e.g. the sphere).
        """
        if not self.reparameterizable:
            return super().reparameterize(posterior, noise)
        pieces = zip(self.factors, posterior.parts, self._coords(noise), strict=True)
        return torch.cat([f.reparameterize(q, e) for f, q, e in pieces], dim=-1)

    def posterior_location(self, posterior: ProductDistribution) -> Tensor:
        pieces = zip(self.factors, posterior.parts, strict=True)
        return torch.cat([f.posterior_location(q) for f, q in pieces], dim=-1)

    # --- capabilities, answered by the factors ------------------------------------------
    @property
    def angle_radii(self) -> tuple[float | None, ...]:
        """The factors' radii, concatenated."""
        return tuple(r for f in self.factors for r in f.angle_radii)

    @property
    def is_vector_space(self) -> bool:
        """A product of vector spaces is one (:math:`N(0, I)` times :math:`N(0, I)`)."""
        return all(f.is_vector_space for f in self.factors)

    @property
    def has_posterior_spread(self) -> bool:
        return all(f.has_posterior_spread for f in self.factors)

    def posterior_spread(self, posterior: ProductDistribution) -> Tensor:
        """The factors' spreads, concatenated: shape ``(*batch, dim)``."""
        if not self.has_posterior_spread:
            return super().posterior_spread(posterior)
        pieces = zip(self.factors, posterior.parts, strict=True)
        return torch.cat([f.posterior_spread(q) for f, q in pieces], dim=-1)

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> ProductDistribution:
        """The product of the factors' kernels, all at the same intrinsic ``time``."""
        pieces = zip(self.factors, self._coords(coordinates), strict=True)
        return ProductDistribution([f.coordinate_heat_kernel(c, time) for f, c in pieces])
