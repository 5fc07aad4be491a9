r"""A latent manifold whose posterior has a fixed diffusion time: a fixed encoder variance.

``FixedTime(base, time)`` is ``base`` with one change: the posterior at raw encoder outputs
``raw`` is the heat kernel of ``base`` at the location the base posterior would have, at the
fixed intrinsic time ``time``,

.. math::

    q(z \mid x) = p^{\text{base}}_{t}\big(z \mid \mu(x)\big), \qquad
    \mu(x) = \operatorname{location}\big(q^{\text{base}}(\cdot \mid x)\big),

whatever the time (variance) outputs of the encoder are (they still exist, so a checkpoint of
``base`` and of ``FixedTime(base, t)`` share their network shapes, but they get no gradient).
Convention :math:`\partial_t p = \Delta_g p`: on :math:`\mathbb R^d` the posterior is
:math:`N(\mu, 2t I)`; on the circle a heat kernel of angle time :math:`t`; on the Clifford torus
angle time :math:`2t` in each factor (:mod:`manifold_vae.manifolds.circles`). The wrapper uses
only the protocol (``posterior``, ``posterior_location``, ``coordinate_heat_kernel``,
``reparameterize``), so it works for every manifold whose heat kernel belongs to its own
posterior family (the one ``reparameterize`` accepts), which is the case for all built-in ones.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .base import LatentManifold, manifold_from_spec, register_manifold

__all__ = ["FixedTime"]


@register_manifold
class FixedTime(LatentManifold):
    r"""``base`` with the posterior time fixed to ``time`` (a fixed encoder variance).

    Parameters
    ----------
    base : LatentManifold or dict
        The manifold (or its :meth:`~LatentManifold.spec`, as checkpoints store it).
    time : float
        Positive finite intrinsic diffusion time :math:`t` of every posterior
        (:math:`\partial_t p = \Delta_g p`; Brownian time :math:`2t`).
    """

    name = "fixed-time"

    def __init__(self, base: LatentManifold | dict[str, Any], time: float) -> None:
        if isinstance(base, dict):
            base = manifold_from_spec(base)
        if not isinstance(base, LatentManifold):
            raise ValueError(f"base must be a LatentManifold or its spec, got {base!r}")
        if isinstance(base, FixedTime):
            raise ValueError(f"base is already a FixedTime manifold ({base!r}): nest none")
        if isinstance(time, bool) or not (
            isinstance(time, (int, float)) and math.isfinite(time) and time > 0
        ):
            raise ValueError(f"time must be a positive finite number, got {time!r}")
        self.base = base
        self.time = float(time)
        self.dim = base.dim
        self.ambient_dim = base.ambient_dim
        self.posterior_params = base.posterior_params

    def _kwargs(self) -> dict[str, Any]:
        return {"base": self.base.spec(), "time": self.time}

    def __repr__(self) -> str:
        return f"FixedTime({self.base!r}, time={self.time:g})"

    # --- geometry: the base's -----------------------------------------------------------
    @property
    def intrinsic_dim(self) -> int:
        return self.base.intrinsic_dim

    @property
    def space(self) -> Any:
        return self.base.space

    @property
    def volume(self) -> float:
        return self.base.volume

    def to_point(self, coordinates: Tensor) -> Tensor:
        return self.base.to_point(coordinates)

    def to_coordinates(self, point: Tensor) -> Tensor:
        return self.base.to_coordinates(point)

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        return self.base.log_volume_density(coordinates)

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        return self.base.exp(tangent_vec, base_point)

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        return self.base.distance(point_a, point_b)

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        return self.base.to_tangent(vector, base_point)

    def point_support(self) -> constraints.Constraint:
        return self.base.point_support()

    # --- distributions ------------------------------------------------------------------
    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        return self.base.prior(dtype=dtype, device=device)

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """The base manifold's prior draws ``(n, dim)``."""
        return self.base.sample_prior(n, generator, dtype)

    def posterior(self, raw: Tensor) -> Distribution:
        r"""The base heat kernel at the base posterior's location, at time ``self.time``.

        Parameters
        ----------
        raw : Tensor, shape=[..., posterior_params]
            Unconstrained encoder outputs (those of the base manifold).

        Returns
        -------
        Distribution with ``batch_shape == raw.shape[:-1]``, ``event_shape == (dim,)``.
        """
        loc = self.base.posterior_location(self.base.posterior(raw))
        time = torch.full(loc.shape[:-1], self.time, dtype=loc.dtype, device=loc.device)
        return self.base.coordinate_heat_kernel(loc, time)

    @property
    def reparameterizable(self) -> bool:
        return self.base.reparameterizable

    def reparameterize(self, posterior: Distribution, noise: Tensor) -> Tensor:
        """The base manifold's reparameterisation of its heat kernel (see the module doc).

        Parameters
        ----------
        posterior : Distribution
            From :meth:`posterior`.
        noise : Tensor, shape=[*sample_shape, *posterior.batch_shape, dim]
            Standard normal noise.
        """
        return self.base.reparameterize(posterior, noise)

    def posterior_location(self, posterior: Distribution) -> Tensor:
        return self.base.posterior_location(posterior)

    @property
    def angle_radii(self) -> tuple[float | None, ...]:
        return self.base.angle_radii

    @property
    def is_vector_space(self) -> bool:
        return self.base.is_vector_space

    @property
    def has_posterior_spread(self) -> bool:
        return self.base.has_posterior_spread

    def posterior_spread(self, posterior: Distribution) -> Tensor:
        """The base manifold's spread of its heat kernel at the fixed time."""
        return self.base.posterior_spread(posterior)

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> Distribution:
        return self.base.coordinate_heat_kernel(coordinates, time)
