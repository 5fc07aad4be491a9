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

**Capabilities.** What the analysis code (plots, evaluation, reductor families, harmonic
spectra) may do with a manifold is *declared* by the manifold, never guessed from its class:

* :attr:`LatentManifold.angle_radii`: for each coordinate, the radius of the circle it is an
  angle of, or ``None`` (a product of circles has all radii, :math:`\mathbb R^d` none);
* :attr:`LatentManifold.is_vector_space`: whether the manifold is :math:`\mathbb R^d` with its
  flat metric, the identity embedding and the standard normal prior;
* :meth:`LatentManifold.posterior_spread`: a posterior's standard deviation per coordinate.

:class:`~manifold_vae.manifolds.Product` and :class:`~manifold_vae.manifolds.FixedTime`
answer for their factors; the conformance kit (:mod:`manifold_vae.testing`) checks each
declaration against the geometry. :func:`require` turns a missing capability into a
``ValueError`` that says what is missing and who needed it.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import Distribution, constraints

from ..registry import Registry

__all__ = [
    "MANIFOLDS",
    "LatentManifold",
    "PointDistribution",
    "manifold_from_spec",
    "register_manifold",
    "registered_manifolds",
    "require",
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

    # --- declared capabilities ---------------------------------------------------------
    @property
    def angle_radii(self) -> tuple[float | None, ...]:
        r"""Per coordinate: the radius :math:`r_i` of the circle it is an angle of, or ``None``.

        Coordinate :math:`i` is an angle of a circle of radius :math:`r_i` when ``to_point`` is
        :math:`2\pi`-periodic in it and the metric along it is :math:`r_i^2\,d\theta_i^2`,
        orthogonal to the other coordinates. A flat product of circles (circle, flat tori, the
        Clifford torus) has every radius; :math:`\mathbb R^d` and the sphere have none. The
        default declares no angle coordinate.

        Returns
        -------
        tuple of (float or None), length ``dim``
        """
        return (None,) * self.dim

    @property
    def angle_product(self) -> bool:
        """Whether every coordinate is an angle (a flat product of circles)."""
        return all(r is not None for r in self.angle_radii)

    @property
    def is_vector_space(self) -> bool:
        r"""Whether the manifold is :math:`\mathbb R^d` as a Gaussian space.

        True means: coordinates are points (``dim == ambient_dim``, ``to_point`` the identity),
        the metric is the flat one, every vector of :math:`\mathbb R^d` is a point, and the
        prior is :math:`N(0, I)`. The default is ``False``.
        """
        return False

    def posterior_spread(self, posterior: Distribution) -> Tensor:
        r"""A posterior's spread: its standard deviation along each coordinate.

        In the units of the coordinates. Euclidean posteriors give their ``stddev``; heat
        kernels :math:`p_t` on angles give :math:`\sqrt{2t}` (``t`` the angle time), the
        standard deviation of the unwrapped Brownian motion they are the law of (convention
        :math:`\partial_t p = \Delta p`); embedded coordinates (the sphere's unit vectors)
        give the intrinsic :math:`\sqrt{2t}` of each tangent direction, repeated for every
        coordinate.

        Parameters
        ----------
        posterior : Distribution
            A distribution returned by :meth:`posterior`, batch shape ``batch``.

        Returns
        -------
        Tensor, shape=[*batch, dim]

        Raises
        ------
        NotImplementedError
            Unless overridden (the built-in manifolds do).
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not declare posterior_spread(posterior): override it to "
            "return the posterior's standard deviation per coordinate, shape batch + (dim,)"
        )

    @property
    def has_posterior_spread(self) -> bool:
        """Whether :meth:`posterior_spread` is implemented (by default: whether overridden)."""
        return type(self).posterior_spread is not LatentManifold.posterior_spread

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


def _check_manifold_class(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, LatentManifold)):
        raise ValueError(f"a registered manifold must be a LatentManifold subclass, got {cls!r}")


#: Manifold classes by name: checkpoints and the command line rebuild latents from it.
MANIFOLDS: Registry[type[LatentManifold]] = Registry("manifold", _check_manifold_class)


def register_manifold(cls: type[LatentManifold]) -> type[LatentManifold]:
    """Class decorator: make ``cls`` rebuildable by name (``MANIFOLDS.register``)."""
    return MANIFOLDS.register(cls)


def registered_manifolds() -> dict[str, type[LatentManifold]]:
    """Registered manifold classes by name."""
    return MANIFOLDS.as_dict()


def manifold_from_spec(spec: dict[str, Any]) -> LatentManifold:
    """Rebuild a manifold from :meth:`LatentManifold.spec`."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"unknown manifold spec {spec!r}; registered: {list(MANIFOLDS.names())}")
    if spec["name"] not in MANIFOLDS:
        raise ValueError(f"unknown manifold spec {spec!r}; registered: {list(MANIFOLDS.names())}")
    return MANIFOLDS[spec["name"]](**spec.get("kwargs", {}))


def require(latent: LatentManifold, capability: str, present: bool, needed_by: str) -> None:
    """``ValueError`` saying that ``needed_by`` needs ``capability``, unless ``present``.

    Parameters
    ----------
    latent : LatentManifold
        The manifold asked.
    capability : str
        What is needed, in words (e.g. ``"angle coordinates (angle_radii)"``).
    present : bool
        Whether ``latent`` declares it.
    needed_by : str
        Who needs it (e.g. ``"plot_posterior_arcs"``).
    """
    if not present:
        raise ValueError(
            f"{needed_by} needs a latent manifold with {capability}; {latent!r} does not declare "
            "it (see LatentManifold's capabilities: angle_radii, is_vector_space, "
            "posterior_spread)"
        )
