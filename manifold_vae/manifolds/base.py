r"""The latent-manifold protocol: everything a VAE needs to know about its latent space.

A latent manifold :math:`M` of intrinsic dimension ``intrinsic_dim`` is handled in two
representations:

* **coordinates**, shape ``(..., dim)``: what the prior and posterior distributions are over
  (angles on circles and tori, the vector itself on :math:`\mathbb R^d`, the unit vector on the
  sphere :math:`S^2`, where angles would be singular at the poles). Usually ``dim`` equals
  ``intrinsic_dim``; embedded coordinates (the sphere's) have ``dim > intrinsic_dim``;
* **points**, shape ``(..., ambient_dim)``: the embedding :math:`M \subset \mathbb R^{D}` that
  the decoder sees (e.g. :math:`(\cos\theta, \sin\theta)` on the circle).

To add a manifold, subclass :class:`LatentManifold` and implement the abstract members below;
register it with :func:`register_manifold` so that checkpoints and the command line can rebuild
it by name. Nothing else in the package special-cases a concrete manifold.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import Distribution, constraints

__all__ = [
    "LatentManifold",
    "PointDistribution",
    "manifold_from_spec",
    "register_manifold",
    "registered_manifolds",
]


class LatentManifold(abc.ABC):
    """Protocol of a VAE's latent space.

    Class attribute ``name`` is the registry key; instances hold their own ``dim``,
    ``ambient_dim`` and ``posterior_params`` (the number of raw encoder outputs that
    :meth:`posterior` consumes).
    """

    name: ClassVar[str]
    #: Size of the coordinates (the event size of the prior and posterior); equal to the
    #: intrinsic dimension unless the coordinates are embedded (see :attr:`intrinsic_dim`).
    dim: int
    #: Dimension of the embedded points the decoder sees.
    ambient_dim: int
    #: Raw encoder outputs per datapoint consumed by :meth:`posterior`.
    posterior_params: int

    # --- geometry ------------------------------------------------------------------------
    @property
    def intrinsic_dim(self) -> int:
        """Dimension of the manifold (``dim`` by default; override for embedded coordinates)."""
        return self.dim

    @property
    @abc.abstractmethod
    def space(self) -> Any:
        """The geomstats manifold this latent space wraps (imported lazily)."""

    @property
    @abc.abstractmethod
    def volume(self) -> float:
        """Riemannian volume of the manifold (``inf`` when not compact)."""

    @abc.abstractmethod
    def to_point(self, coordinates: Tensor) -> Tensor:
        """Embed coordinates ``(..., dim)`` as points ``(..., ambient_dim)``."""

    @abc.abstractmethod
    def to_coordinates(self, point: Tensor) -> Tensor:
        """Coordinates ``(..., dim)`` of points ``(..., ambient_dim)`` (projecting first)."""

    @abc.abstractmethod
    def log_volume_density(self, coordinates: Tensor) -> Tensor:
        r"""Log of :math:`\sqrt{\det g}` in coordinates, shape ``(...)``.

        A density :math:`q` with respect to the coordinates' reference measure has density
        :math:`q / \sqrt{\det g}` with respect to the Riemannian volume. The reference measure
        is Lebesgue measure for chart coordinates (angles, :math:`\mathbb R^d`); for embedded
        coordinates (``dim > intrinsic_dim``, e.g. unit vectors on the sphere) it is the
        Riemannian volume itself and this is 0.
        """

    def exp(self, tangent_vec: Tensor, base_point: Tensor) -> Tensor:
        r"""Riemannian exponential map on embedded points.

        The default asks the geomstats :attr:`space`
        (``space.metric.exp(tangent_vec, base_point)``), which is right when the embedded
        points are geomstats' points with geomstats' metric; override it otherwise (or for
        speed).

        Parameters
        ----------
        tangent_vec : Tensor, shape=[..., ambient_dim]
            Tangent vector at ``base_point`` (ambient representation).
        base_point : Tensor, shape=[..., ambient_dim]
            Embedded point.

        Returns
        -------
        Tensor, shape=[..., ambient_dim]
        """
        return self.space.metric.exp(tangent_vec, base_point)

    def distance(self, point_a: Tensor, point_b: Tensor) -> Tensor:
        """Geodesic distance between embedded points.

        Default: ``space.metric.dist`` (see :meth:`exp` for when it applies).

        Parameters
        ----------
        point_a, point_b : Tensor, shape=[..., ambient_dim]
            Embedded points (broadcast against each other).

        Returns
        -------
        Tensor, shape=[...]
        """
        return self.space.metric.dist(point_a, point_b)

    def to_tangent(self, vector: Tensor, base_point: Tensor) -> Tensor:
        """Orthogonal projection of ambient vectors onto the tangent space at ``base_point``.

        Default: ``space.to_tangent`` (see :meth:`exp` for when it applies).

        Parameters
        ----------
        vector : Tensor, shape=[..., ambient_dim]
            Ambient vectors.
        base_point : Tensor, shape=[..., ambient_dim]
            Embedded point.

        Returns
        -------
        Tensor, shape=[..., ambient_dim]
        """
        return self.space.to_tangent(vector, base_point)

    @abc.abstractmethod
    def point_support(self) -> constraints.Constraint:
        """Constraint of embedded points (used by :class:`PointDistribution`)."""

    # --- distributions -----------------------------------------------------------------
    @abc.abstractmethod
    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        """The prior over coordinates, ``event_shape == (dim,)``, ``batch_shape == ()``."""

    def sample_prior(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        r"""``n`` prior draws ``(n, dim)`` using the private ``generator`` only.

        Datasets with this latent (``GenerativeModel.sample_latent``) and the conformance
        kit draw through it, so that they are reproducible without touching the global RNG.
        Every manifold with a prior overrides it (the built-in ones do); the base raises.

        Parameters
        ----------
        n : int
            Number of draws.
        generator : torch.Generator
            The only source of randomness (the global RNG is not touched).
        dtype : torch.dtype
            Of the result.

        Returns
        -------
        Tensor, shape=[n, dim]

        Raises
        ------
        NotImplementedError
            Unless overridden.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement sample_prior(n, generator, dtype): "
            "override it to draw from its prior with the given generator only"
        )

    @abc.abstractmethod
    def posterior(self, raw: Tensor) -> Distribution:
        """The posterior family over coordinates from raw encoder outputs.

        Parameters
        ----------
        raw : Tensor, shape=[..., posterior_params]
            Unconstrained encoder outputs.

        Returns
        -------
        Distribution with ``batch_shape == raw.shape[:-1]`` and ``event_shape == (dim,)``.
        """

    @property
    def reparameterizable(self) -> bool:
        """Whether :meth:`reparameterize` is implemented (by default: whether it is overridden).

        Wrappers and products answer for what they wrap (a
        :class:`~manifold_vae.manifolds.FixedTime` of a sphere is not).
        """
        return type(self).reparameterize is not LatentManifold.reparameterize

    def reparameterize(self, posterior: Distribution, noise: Tensor) -> Tensor:
        r"""A reparameterised posterior sample from given standard normal noise.

        The contract: for ``noise`` of shape ``sample_shape + posterior.batch_shape + (dim,)``,
        the result equals ``posterior.rsample(sample_shape)`` when ``rsample`` would have drawn
        exactly this ``noise`` (one ``torch.randn`` of that shape from the same RNG state), and
        it has the same pathwise gradients with respect to the posterior's parameters. E.g. on
        :math:`\mathbb R^d`, :math:`z = \mu + \sigma \odot \varepsilon`.

        This lets :func:`~manifold_vae.ensemble.fit_ensemble` draw each ensemble member's noise
        from its own generator and still reproduce :func:`~manifold_vae.training.fit`. The
        default raises ``NotImplementedError``: a manifold that does not override it can be
        trained with ``fit`` but not with ``fit_ensemble``.

        Parameters
        ----------
        posterior : Distribution
            A distribution returned by :meth:`posterior`.
        noise : Tensor, shape=[*sample_shape, *posterior.batch_shape, dim]
            Standard normal noise.

        Returns
        -------
        Tensor, shape=[*sample_shape, *posterior.batch_shape, dim]
            Coordinates.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement reparameterize(posterior, noise), which "
            "ensemble training needs: implement it to return, from standard normal noise of "
            "shape sample_shape + batch_shape + (dim,), the coordinates that "
            "posterior.rsample(sample_shape) returns when it draws that noise"
        )

    @abc.abstractmethod
    def posterior_location(self, posterior: Distribution) -> Tensor:
        """The location of a posterior (its mean direction or mean), coordinates ``(..., dim)``."""

    @abc.abstractmethod
    def coordinate_heat_kernel(self, coordinates: Tensor, time: Tensor) -> Distribution:
        r"""Heat kernel (:math:`\partial_t p = \Delta_g p` for the metric) over coordinates.

        Its ``log_prob`` is with respect to the coordinates' Lebesgue measure.
        """

    def heat_kernel(self, point: Tensor, time: Tensor | float) -> PointDistribution:
        r"""Heat kernel at ``(point, time)`` as a distribution over embedded points.

        Convention :math:`\partial_t p = \Delta_g p` (Brownian time :math:`s = 2t`); ``log_prob``
        is with respect to the Riemannian volume of the manifold's metric.

        Parameters
        ----------
        point : Tensor, shape=[..., ambient_dim]
            Location on the manifold.
        time : Tensor or float, shape=[...]
            Positive diffusion time (intrinsic: in units of the manifold's metric).
        """
        coords = self.to_coordinates(point)
        time = torch.as_tensor(time, dtype=coords.dtype, device=coords.device)
        return PointDistribution(self, self.coordinate_heat_kernel(coords, time))

    # --- persistence -------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """A JSON-able description from which :func:`manifold_from_spec` rebuilds ``self``."""
        return {"name": self.name, "kwargs": self._kwargs()}

    def _kwargs(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.spec() == self.spec()

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))


class PointDistribution(TorchDistribution):
    r"""A distribution over coordinates, seen as a distribution over embedded points.

    ``rsample`` embeds coordinate samples; ``log_prob`` of a point is the coordinate log density
    at its coordinates minus :math:`\log\sqrt{\det g}`, i.e. it is with respect to the
    Riemannian volume.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}

    def __init__(
        self,
        manifold: LatentManifold,
        base: Distribution,
        validate_args: bool | None = None,
    ) -> None:
        self.manifold = manifold
        self.base = base
        self.has_rsample = base.has_rsample
        super().__init__(
            base.batch_shape, torch.Size([manifold.ambient_dim]), validate_args=validate_args
        )

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return self.manifold.point_support()

    def expand(self, batch_shape: torch.Size, _instance=None) -> PointDistribution:
        return PointDistribution(
            self.manifold, self.base.expand(batch_shape), validate_args=self._validate_args
        )

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.manifold.to_point(self.base.rsample(sample_shape))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.manifold.to_point(self.base.sample(sample_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        coords = self.manifold.to_coordinates(value)
        return self.base.log_prob(coords) - self.manifold.log_volume_density(coords)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.manifold!r}, {self.base!r})"


_REGISTRY: dict[str, type[LatentManifold]] = {}


def register_manifold(cls: type[LatentManifold]) -> type[LatentManifold]:
    """Class decorator: make ``cls`` rebuildable by name (checkpoints, command line)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a manifold named {name!r} is already registered")
    _REGISTRY[name] = cls
    return cls


def registered_manifolds() -> dict[str, type[LatentManifold]]:
    """Registered manifold classes by name."""
    return dict(_REGISTRY)


def manifold_from_spec(spec: dict[str, Any]) -> LatentManifold:
    """Rebuild a manifold from :meth:`LatentManifold.spec`."""
    try:
        cls = _REGISTRY[spec["name"]]
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"unknown manifold spec {spec!r}; registered: {sorted(_REGISTRY)}"
        ) from error
    return cls(**spec.get("kwargs", {}))
