r"""An APPROXIMATE latent manifold on a compact geomstats space without an exact family.

:func:`~manifold_vae.manifolds.geomstats_spaces.as_latent` builds it, with a ``UserWarning``,
for a geomstats space that no built-in manifold describes exactly (e.g. ``Grassmannian(3, 1)``
with ``volume=``; every ``Hypersphere(n)`` is exact). Everything geometric is asked from the
geomstats space itself:

* **coordinates = points**: geomstats' points of shape ``space.shape`` flattened to
  ``(..., D)``, ``D = prod(space.shape)``; they must be an embedding (``D > space.dim``), so
  densities over them are with respect to the Riemannian volume and
  :meth:`~ApproximateGeomstatsLatent.log_volume_density` is 0 (as for the built-in sphere);
* **geometry**: ``space.metric.exp``, ``space.metric.dist``, ``space.to_tangent``,
  ``space.projection`` (geomstats' own, with whatever metric the space carries);
* **prior**: uniform, density :math:`1 / \operatorname{vol}(M)` with respect to the Riemannian
  volume (``volume`` is given by the caller: geomstats does not know it), sampled with
  ``space.random_uniform``, which geomstats documents as uniform;
* **posterior**: the APPROXIMATE heat kernel
  (:class:`~manifold_vae.manifolds.approximate.ApproximateHeatKernel`) at location
  :math:`\mu = \operatorname{projection}(u / \max(1, \lVert u\rVert_\infty))` from the first
  ``D`` raw encoder outputs ``u`` (a zero ``u`` gives a fixed point of the space) and time
  :math:`t = \operatorname{softplus}(\text{raw}_D) + 10^{-6}`. Its sampler is a geodesic random
  walk of ``steps`` steps, its density Varadhan's short-time form; **neither is exact** (see
  that module for the measured errors), so the ELBO of a model with this latent is an
  approximation and its KL a Monte Carlo estimate with the approximate density.

Declared capabilities: no angle coordinates, not a vector space; ``posterior_spread`` is
:math:`\sqrt{2t}` per tangent direction (the random walk's driving noise; the kit checks it
against the samples' :math:`E\,d^2` at small times). ``reparameterize`` is not available (the
walk draws ``steps`` normal tensors, not one). The model cannot be saved with
:meth:`~manifold_vae.vae.VAE.save`: a geomstats object cannot be rebuilt from a JSON spec, so
:meth:`~ApproximateGeomstatsLatent.spec` raises ``ValueError``; save ``vae.state_dict()`` and
rebuild the model with the same space instead.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

from .approximate import ApproximateHeatKernel
from .base import LatentManifold

__all__ = ["ApproximateGeomstatsLatent", "check_embedded", "check_induced_metric", "space_repr"]

#: Smallest posterior time produced from raw encoder outputs: softplus(raw) + MIN_TIME.
MIN_TIME = 1e-6
#: Seed of the fixed point that a zero location output maps to.
_ORIGIN_SEED = 0


def space_repr(space: Any) -> str:
    """``Hypersphere(dim=3)``-style name of a geomstats space (class name, ``dim``, shape)."""
    name = type(space).__name__.lstrip("_")
    return f"{name}(dim={getattr(space, 'dim', '?')}, shape={tuple(getattr(space, 'shape', ()))})"


def check_embedded(space: Any) -> None:
    """``ValueError`` unless the points of ``space`` embed it: ``prod(space.shape) > space.dim``."""
    shape = tuple(int(k) for k in space.shape)
    if math.prod(shape) <= int(space.dim):
        raise ValueError(
            f"its points, of shape {shape}, are chart coordinates of its {space.dim} "
            "dimensions, and the approximate family needs embedded points (as Hypersphere's)"
        )


def check_induced_metric(space: Any, rtol: float = 1e-6) -> None:
    r"""``ValueError`` unless the metric of ``space`` is the one its flattened points induce.

    The random walk draws isotropic steps in the ambient :math:`\mathbb R^D` of the flattened
    points and projects them onto the tangent space, which is an isotropic step of the metric
    only when :math:`\lVert v\rVert_g = \lVert v\rVert` for tangent vectors :math:`v`. Checked
    at 4 random points (``space.random_uniform``, in a forked RNG) with random tangent vectors.
    """
    shape = tuple(int(k) for k in space.shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_ORIGIN_SEED)
        x = torch.as_tensor(space.random_uniform(4)).reshape(4, *shape).to(torch.float64)
        x = space.projection(x)
        v = space.to_tangent(torch.randn(4, *shape, dtype=torch.float64), x)
    norm_g = torch.as_tensor(space.metric.norm(v, x)).reshape(4)
    norm = v.reshape(4, -1).norm(dim=-1)
    if not torch.allclose(norm_g, norm, rtol=rtol, atol=0.0):
        ratio = float((norm_g / norm).mean())
        raise ValueError(
            f"its metric is not the one induced by its points in R^{math.prod(shape)} "
            f"(|v|_g / |v| = {ratio:.4g} for tangent vectors v), which the approximate "
            "family's random walk and its isotropic steps assume"
        )


class _OnSpace(constraints.Constraint):
    r"""Flattened points ``x`` with :math:`\lVert \pi(x) - x\rVert_\infty \le 10\sqrt{\epsilon}
    (1 + \lVert x\rVert_\infty)`, :math:`\pi` geomstats' ``projection``.

    (geomstats' ``belongs`` compares in torch's default dtype and fails on float64 input.)
    """

    event_dim = 1

    def __init__(self, latent: ApproximateGeomstatsLatent) -> None:
        self.latent = latent
        super().__init__()

    def check(self, value: Tensor) -> Tensor:
        if value.shape[-1] != self.latent.ambient_dim:
            return torch.zeros(value.shape[:-1], dtype=torch.bool, device=value.device)
        gap = (self.latent.to_coordinates(value) - value).abs().amax(-1)
        tol = 10.0 * math.sqrt(torch.finfo(value.dtype).eps)
        return gap <= tol * (1.0 + value.abs().amax(-1))

    def __repr__(self) -> str:
        return f"on({space_repr(self.latent.space)})"


class _UniformPrior(TorchDistribution):
    r"""Uniform on a compact geomstats space: :math:`\log p = -\log\operatorname{vol}(M)`.

    With respect to the Riemannian volume; samples from ``space.random_uniform``.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(
        self,
        latent: ApproximateGeomstatsLatent,
        dtype: torch.dtype,
        device: torch.device | str | None,
        batch_shape: torch.Size = torch.Size(),
        validate_args: bool | None = None,
    ) -> None:
        self.latent, self.dtype, self.device = latent, dtype, device
        event = torch.Size([latent.dim])
        super().__init__(torch.Size(batch_shape), event, validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return self.latent.point_support()

    def expand(self, batch_shape: torch.Size, _instance=None) -> _UniformPrior:
        return _UniformPrior(self.latent, self.dtype, self.device, batch_shape, self._validate_args)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        n = math.prod(shape[:-1])
        with torch.no_grad():
            x = self.latent._draw_uniform(n, self.dtype)
        return x.reshape(shape).to(self.device)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return torch.full_like(value[..., 0], -math.log(self.latent.volume))


class ApproximateGeomstatsLatent(LatentManifold):
    r"""A compact geomstats space as a latent manifold with an APPROXIMATE posterior density.

    See the module docstring for the construction and its error. Prefer
    :func:`~manifold_vae.manifolds.geomstats_spaces.as_latent`, which picks an exact family
    when there is one.

    Parameters
    ----------
    space : geomstats Manifold
        A compact space with a Riemannian ``metric`` (``exp``, ``dist``), ``to_tangent``,
        ``projection`` and ``random_uniform``; points of shape ``space.shape`` with
        ``prod(space.shape) > space.dim`` (an embedding, not a chart).
    volume : float
        Its Riemannian volume (positive, finite).
    steps : int
        Random-walk steps of the posterior sampler (bias of order :math:`t^2/N`).
    """

    name: ClassVar[str] = "approximate-geomstats"

    def __init__(self, space: Any, volume: float, steps: int = 64) -> None:
        what = space_repr(space)
        missing = [
            attribute
            for attribute in ("metric", "to_tangent", "projection", "random_uniform")
            if not hasattr(space, attribute)
        ]
        if missing:
            raise ValueError(f"space {what} has no {', '.join(missing)}: not a geomstats manifold")
        if not (isinstance(volume, (int, float)) and math.isfinite(volume) and volume > 0):
            raise ValueError(f"volume of {what} must be a positive finite number, got {volume!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        for check in (check_embedded, check_induced_metric):
            try:
                check(space)
            except ValueError as error:
                raise ValueError(f"space {what}: {error}") from None
        self._space, self._volume, self.steps = space, float(volume), steps
        self.point_shape = tuple(int(k) for k in space.shape)
        self.ambient_dim = self.dim = math.prod(self.point_shape)
        self._intrinsic_dim = int(space.dim)
        self.posterior_params = self.dim + 1
        self._origin = self._draw_uniform(1, torch.float64, seed=_ORIGIN_SEED)[0]

    # --- geometry: geomstats' -----------------------------------------------------------
    @property
    def intrinsic_dim(self) -> int:
        return self._intrinsic_dim

    @property
    def space(self) -> Any:
        """The geomstats space given (not a copy)."""
        return self._space

    @property
    def volume(self) -> float:
        return self._volume

    def _shaped(self, flat: Tensor) -> Tensor:
        return flat.reshape(*flat.shape[:-1], *self.point_shape)

    def _flat(self, point: Tensor) -> Tensor:
        return point.reshape(*point.shape[: point.ndim - len(self.point_shape)], self.dim)

    def _draw_uniform(self, n: int, dtype: torch.dtype, seed: int | None = None) -> Tensor:
        """``n`` draws of ``space.random_uniform``, flattened ``(n, D)``; with ``seed``, in a
        forked RNG. geomstats draws in torch's default dtype: the draws are cast to ``dtype``
        and projected onto the space again in it."""
        if seed is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self._draw_uniform(n, dtype)
        draws = torch.as_tensor(self.space.random_uniform(n)).reshape(n, self.dim)
        return self.to_coordinates(draws.to(dtype))

    def to_point(self, coordinates: Tensor) -> Tensor:
        """The identity: coordinates are geomstats' points flattened, ``(..., D)``."""
        return coordinates

    def to_coordinates(self, point: Tensor) -> Tensor:
        """``space.projection`` of flattened points ``(..., D)``."""
        return self._flat(self.space.projection(self._shaped(point)))

    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        """0: densities over embedded coordinates are with respect to the Riemannian volume."""
        return torch.zeros_like(coordinates[..., 0])

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        """``space.metric.exp`` on flattened tangent vectors and points ``(..., D)``."""
        shape = torch.broadcast_shapes(tangent_vec.shape, base_point.shape)
        moved = self.space.metric.exp(
            self._shaped(tangent_vec.expand(shape)), self._shaped(base_point.expand(shape))
        )
        return self._flat(moved)

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        """``space.metric.dist`` of flattened points ``(..., D)``, shape ``(...)``."""
        a, b = torch.broadcast_tensors(point_a, point_b)
        return self.space.metric.dist(self._shaped(a), self._shaped(b)).reshape(a.shape[:-1])

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        """``space.to_tangent`` of flattened vectors at flattened points ``(..., D)``."""
        v, x = torch.broadcast_tensors(vector, base_point)
        return self._flat(self.space.to_tangent(self._shaped(v), self._shaped(x)))

    def point_support(self) -> constraints.Constraint:
        return _OnSpace(self)

    # --- distributions ------------------------------------------------------------------
    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> _UniformPrior:
        """Uniform, density ``1 / volume`` with respect to the Riemannian volume."""
        return _UniformPrior(self, dtype or torch.get_default_dtype(), device)

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """``space.random_uniform(n)`` ``(n, D)`` in an RNG forked and seeded from ``generator``."""
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return self._draw_uniform(n, dtype, seed=seed)

    def posterior(self, raw: Tensor) -> ApproximateHeatKernel:
        r"""APPROXIMATE heat kernel from raw outputs ``(..., D + 1)`` (see the module doc).

        Returns
        -------
        ApproximateHeatKernel with ``batch_shape == raw.shape[:-1]``, ``event_shape == (D,)``.
        """
        if raw.shape[-1] != self.posterior_params:
            raise ValueError(
                f"raw posterior parameters must have last dimension {self.posterior_params} "
                f"for {self!r}, got shape {tuple(raw.shape)}"
            )
        u = raw[..., : self.dim]
        scale = u.abs().amax(-1, keepdim=True)
        origin = self._origin.to(dtype=raw.dtype, device=raw.device)
        u = torch.where(scale > 0, u / scale.clamp_min(1.0), origin)
        time = F.softplus(raw[..., self.dim]) + MIN_TIME
        return ApproximateHeatKernel(self, self.to_coordinates(u), time, self.steps)

    def posterior_location(self, posterior: ApproximateHeatKernel) -> Tensor:
        return posterior.point

    def posterior_spread(self, posterior: ApproximateHeatKernel) -> Tensor:
        r""":math:`\sqrt{2t}` per tangent direction, repeated for each of the ``D`` coordinates."""
        spread = torch.sqrt(2.0 * posterior.time).unsqueeze(-1)
        return spread.expand(*posterior.batch_shape, self.dim)

    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> ApproximateHeatKernel:
        """The APPROXIMATE heat kernel at flattened points ``(..., D)`` and times ``(...)``."""
        return ApproximateHeatKernel(self, coordinates, time, self.steps)

    # --- persistence: not from JSON -----------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """Raises ``ValueError``: a geomstats object given as such has no JSON description."""
        raise ValueError(
            f"{self!r} cannot be described by a JSON spec (the geomstats object "
            f"{space_repr(self.space)} cannot be rebuilt from one), so VAE.save and checkpoints "
            "cannot store it: save vae.state_dict() with torch.save, and to load, build "
            "VAE(as_latent(space), ...) with the same space and call load_state_dict"
        )

    def __repr__(self) -> str:
        return (
            f"ApproximateGeomstatsLatent({space_repr(self.space)}, volume={self.volume:.6g}, "
            f"steps={self.steps}; approximate posterior density)"
        )

    def __eq__(self, other: object) -> bool:
        """Equal when built on the same geomstats object, volume and steps (no spec)."""
        return (
            type(other) is type(self)
            and other.space is self.space
            and (other.volume, other.steps) == (self.volume, self.steps)
        )

    def __hash__(self) -> int:
        return hash((type(self), id(self.space), self.volume, self.steps))
