r"""Decoder likelihoods :math:`p(x \mid z)`: Gaussian with fixed or learned scale, Bernoulli.

A likelihood turns the decoder network's output (same shape as a datapoint) into a
distribution whose event is the whole datapoint, checks data before training, describes
itself for checkpoints (:meth:`Likelihood.spec`), is built from the command line's options
(:meth:`Likelihood.from_options`) and gives the closed-form KL divergence between two of its
decoder distributions (:meth:`Likelihood.decoder_kl`). Every likelihood class is registered
by name in :data:`LIKELIHOODS`, a user's from outside the package exactly like the built-in
ones; checkpoints, the command line and :func:`~manifold_vae.reductors.decoder_kl` find it there.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, constraints

from .registry import Registry
from .validation import check_data

__all__ = [
    "LIKELIHOODS",
    "Bernoulli",
    "Gaussian",
    "GaussianLearnedScale",
    "Likelihood",
    "bernoulli_kl",
    "feature_distribution",
    "likelihood_from_spec",
    "normal_kl",
]


def normal_kl(loc_p: Tensor, scale_p: Tensor, loc_q: Tensor, scale_q: Tensor) -> Tensor:
    r"""Elementwise KL divergence of two univariate normal distributions.

    .. math::

        \mathrm{KL} = \frac{(\mu_1 - \mu_2)^2}{2\sigma_2^2}
        + \frac12\Big(\frac{\sigma_1^2}{\sigma_2^2} - 1 - \log\frac{\sigma_1^2}{\sigma_2^2}\Big),

    the univariate form of the thesis's Eq. 8.10; summed over :math:`D` features with scalar
    scales it is Eq. 8.11. The variance term is computed as :math:`e^u - 1 - u` with
    :math:`u = 2\log(\sigma_1/\sigma_2)` (``expm1``), exactly 0 for equal scales.

    Parameters
    ----------
    loc_p, scale_p, loc_q, scale_q : Tensor, shape=[...]
        Means and (positive) standard deviations, broadcastable.

    Returns
    -------
    Tensor, shape=[...] (the broadcast shape)
    """
    u = 2.0 * (torch.log(scale_p) - torch.log(scale_q))
    return 0.5 * ((loc_p - loc_q) / scale_q) ** 2 + 0.5 * (torch.expm1(u) - u)


def bernoulli_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    r"""Elementwise :math:`\mathrm{KL}(\mathrm{Bernoulli}(s(a)) \,\|\, \mathrm{Bernoulli}(s(b)))`.

    With :math:`s` the logistic function, :math:`p = s(a)` and the softplus
    :math:`\log(1 + e^x)`,

    .. math::

        \mathrm{KL} = p \log\frac{p}{s(b)} + (1 - p)\log\frac{1 - p}{1 - s(b)}
        = \operatorname{softplus}(b) - \operatorname{softplus}(a) + p\,(a - b),

    which stays finite for logits of any size (no :math:`\log 0`).

    Parameters
    ----------
    logits_p, logits_q : Tensor, shape=[...]
        Logits :math:`a` and :math:`b`, broadcastable.

    Returns
    -------
    Tensor, shape=[...]
    """
    kl = (
        F.softplus(logits_q)
        - F.softplus(logits_p)
        + torch.sigmoid(logits_p) * (logits_p - logits_q)
    )
    return kl.clamp_min(0.0)


def feature_distribution(d: Distribution) -> tuple[Distribution, int]:
    """The distribution of the features under ``Independent`` wrappers, and how many dims they
    reinterpret as event dims: ``Independent(Normal(loc, scale), 2) -> (Normal(loc, scale), 2)``.
    """
    ndims = 0
    while isinstance(d, Independent):
        ndims += d.reinterpreted_batch_ndims
        d = d.base_dist
    return d, ndims


class Likelihood(nn.Module, abc.ABC):
    """Base class: ``likelihood(output)`` is the distribution of a datapoint.

    A subclass sets ``name``, implements :meth:`forward` (and, for speed and ensembles,
    :meth:`log_density`), returns its constructor arguments from :meth:`config`, and is
    registered with ``@LIKELIHOODS.register``; optionally it overrides :meth:`from_options`
    (how the command line's ``--sigma-x`` sets it up) and declares :attr:`feature_family`
    with :meth:`feature_kl` (the closed-form decoder KL of the reductors).
    """

    name: ClassVar[str]
    #: Whether every real datapoint is in the support (Gaussians: yes; Bernoulli: only
    #: ``[0, 1]``). Training with ``input_noise`` needs it.
    real_valued: ClassVar[bool] = True
    #: Where every value of a datapoint must lie (a ``torch.distributions`` constraint, checked
    #: elementwise): :func:`~manifold_vae.validation.check_data` refuses data outside it, in
    #: ``fit`` and in every public method of the VAE that takes data.
    support: ClassVar[constraints.Constraint] = constraints.real
    #: Whether this is a Gaussian with one fixed standard deviation, a float attribute
    #: ``sigma``: evaluation then also reports the squared-error columns of the thesis's
    #: tables (:func:`~manifold_vae.evaluation.thesis_metrics`).
    gaussian_metrics: ClassVar[bool] = False
    #: The univariate distribution of one feature that :meth:`forward` wraps in
    #: ``Independent`` (``Normal``, ``Bernoulli``), or ``None``. With :meth:`feature_kl` it
    #: gives :meth:`decoder_kl`, which :func:`~manifold_vae.reductors.decoder_kl` dispatches to.
    feature_family: ClassVar[type[Distribution] | None] = None

    @classmethod
    def from_options(cls, *, sigma_x: float = 1.0) -> Likelihood:
        r"""The likelihood the command line builds (``manifold-vae train --likelihood NAME``).

        The default is ``cls()``, ignoring ``sigma_x``; likelihoods with a scale use it.

        Parameters
        ----------
        sigma_x : float
            The option ``--sigma-x``: the decoder's standard deviation :math:`\sigma_X` (its
            initial value when learned).
        """
        return cls()

    @staticmethod
    def feature_kl(p: Distribution, q: Distribution) -> Tensor:
        r"""Elementwise :math:`\mathrm{KL}(p_i \,\|\, q_i)` of two :attr:`feature_family`
        distributions (broadcastable batch shapes); implemented where a closed form exists."""
        raise NotImplementedError("this likelihood has no closed-form decoder KL")

    @classmethod
    def decoder_kl(cls, p: Distribution, q: Distribution) -> Tensor:
        r""":math:`\mathrm{KL}(p \,\|\, q)` of two decoder distributions of this likelihood.

        Both are products over the data features of :attr:`feature_family` distributions
        (``Independent``, or bare with an empty event), with the same event shape; their
        parameters may differ (e.g. two Gaussians of different :math:`\sigma_X`):

        .. math::

            \mathrm{KL}(p \,\|\, q) = \sum_{i=1}^{D} \mathrm{KL}(p_i \,\|\, q_i).

        Parameters
        ----------
        p, q : Distribution
            ``event_shape`` equal (the data shape), ``batch_shape`` broadcastable.

        Returns
        -------
        Tensor, shape=broadcast(p.batch_shape, q.batch_shape)

        Raises
        ------
        ValueError
            If the event shapes differ or ``p`` or ``q`` is not of :attr:`feature_family`.
        """
        if p.event_shape != q.event_shape:
            raise ValueError(
                f"p and q must have the same event shape (the data shape), got "
                f"{tuple(p.event_shape)} and {tuple(q.event_shape)}"
            )
        (base_p, ndims_p), (base_q, ndims_q) = feature_distribution(p), feature_distribution(q)
        family = cls.feature_family
        if family is None or not (isinstance(base_p, family) and isinstance(base_q, family)):
            raise ValueError(
                f"{cls.__name__}.decoder_kl needs two products of "
                f"{getattr(family, '__name__', 'closed-form')} features, got "
                f"{type(base_p).__name__} and {type(base_q).__name__}"
            )
        values = cls.feature_kl(base_p, base_q)
        ndims = max(ndims_p, ndims_q, len(p.event_shape))
        return values.sum(dim=tuple(range(-ndims, 0))) if ndims else values

    def build(self, data_shape: torch.Size) -> None:
        """Called once by the VAE with the datapoint shape (create shape-dependent parameters)."""
        self.data_shape = torch.Size(data_shape)

    @abc.abstractmethod
    def forward(self, output: Tensor) -> dist.Distribution:
        """Distribution with ``event_shape == data_shape`` from outputs ``(..., *data_shape)``."""

    def log_density(self, output: Tensor, x: Tensor) -> Tensor:
        r"""The log-likelihood :math:`\log p(x \mid \mathrm{output})` of whole datapoints.

        Summed over the features of a datapoint. The default is
        ``self(output).log_prob(x)``; the built-in likelihoods override it with closed forms
        in plain tensor code (no data-dependent control flow, no argument validation), which
        :func:`torch.func.vmap` can map over the members of an ensemble
        (:func:`~manifold_vae.ensemble.fit_ensemble`). A subclass used in an ensemble should
        do the same.

        Parameters
        ----------
        output : Tensor, shape=[*batch, *data_shape]
            Decoder outputs.
        x : Tensor, shape=[*batch, *data_shape]
            Datapoints (broadcastable against ``output``).

        Returns
        -------
        Tensor, shape=batch
        """
        return self(output).log_prob(x)

    # --- decoder-scale warm-up (a training hook) ---------------------------------------
    @property
    def warmup_scale(self) -> float | None:
        r"""The fixed decoder scale :math:`\sigma_X` that a warm-up can temper, or ``None``.

        Training with ``sigma_start`` (:func:`~manifold_vae.training.decoder_sigma`) asks
        this; a likelihood without a fixed scale (the default) refuses a warm-up.
        """
        return None

    def tempered_buffers(self, scale: float) -> dict[str, Tensor]:
        r"""Buffer values under which :meth:`log_density` is this likelihood at scale ``scale``.

        The training loop writes them into the likelihood's buffers (names relative to the
        likelihood) for an epoch of the warm-up and puts the originals back afterwards; an
        ensemble writes them into the member's row of the stacked buffers. Only likelihoods
        with a :attr:`warmup_scale` implement it.

        Parameters
        ----------
        scale : float
            The decoder scale of the epoch, :math:`> 0`.

        Returns
        -------
        dict of str to Tensor
            Buffer name to its value (same shape as the buffer).
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no fixed decoder scale to warm up (warmup_scale is None)"
        )

    def validate_data(self, data: Tensor) -> None:
        """Raise ``ValueError`` if ``data`` cannot be modelled (shape, dtype, finiteness,
        :attr:`support`): :func:`~manifold_vae.validation.check_data`."""
        check_data(data, self.data_shape, name="data", likelihood=self)

    def spec(self) -> dict[str, Any]:
        """JSON-able description for :func:`likelihood_from_spec`: name and :meth:`config`."""
        return {"name": self.name, "kwargs": self.config()}

    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments that rebuild this likelihood (JSON-able
        numbers, strings, booleans; checkpoints store them)."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def _event_dims(self) -> int:
        return len(self.data_shape)

    def _feature_sum(self, values: Tensor) -> Tensor:
        """Sum over the trailing ``data_shape`` dimensions: ``(*batch, *data_shape) -> batch``."""
        return values.sum(dim=tuple(range(-self._event_dims(), 0)))


class Gaussian(Likelihood):
    r"""Gaussian with fixed standard deviation :math:`\sigma_X` (the thesis's knob, Sec. 4.3).

    .. math::

        -\log p(x \mid z) = \frac{\|x - f(z)\|^2}{2\sigma_X^2} + \frac{D}{2}\log(2\pi\sigma_X^2)

    (the thesis's Eq. 4.13 drops the 1/2 on the last term; this is the correct negative
    log-likelihood).

    Parameters
    ----------
    sigma : float
        :math:`\sigma_X > 0`.
    """

    name = "gaussian"
    gaussian_metrics = True
    feature_family = torch.distributions.Normal
    #: :math:`\sigma_X` as a non-persistent float64 buffer (not in ``state_dict``): it follows
    #: ``.to(device/dtype)`` and is stacked by :func:`torch.func.stack_module_state`, so that
    #: ensemble members with different :math:`\sigma_X` train together.
    scale: Tensor

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        self.sigma = float(sigma)
        self.register_buffer(
            "scale", torch.tensor(self.sigma, dtype=torch.float64), persistent=False
        )

    def config(self) -> dict[str, Any]:
        return {"sigma": self.sigma}

    @classmethod
    def from_options(cls, *, sigma_x: float = 1.0) -> Gaussian:
        r"""``Gaussian(sigma_x)``: :math:`\sigma_X` fixed at ``--sigma-x``."""
        return cls(sigma_x)

    @staticmethod
    def feature_kl(p: Distribution, q: Distribution) -> Tensor:
        """:func:`normal_kl` of two ``Normal`` distributions (any scales)."""
        return normal_kl(p.loc, p.scale, q.loc, q.scale)

    @property
    def warmup_scale(self) -> float:
        r""":math:`\sigma_X`: the scale a decoder warm-up starts above and ends at."""
        return self.sigma

    def tempered_buffers(self, scale: float) -> dict[str, Tensor]:
        r"""``{"scale": scale}``: what :meth:`log_density` reads as :math:`\sigma_X`."""
        return {"scale": torch.full_like(self.scale, scale)}

    def forward(self, output: Tensor) -> dist.Distribution:
        return dist.Normal(output, torch.full_like(output, self.sigma)).to_event(self._event_dims())

    def log_density(self, output: Tensor, x: Tensor) -> Tensor:
        r"""Closed form :math:`-\|x - f\|^2 / (2\sigma_X^2) - \tfrac D2 \log(2\pi\sigma_X^2)`.

        Parameters
        ----------
        output, x : Tensor, shape=[*batch, *data_shape]
            Decoder outputs :math:`f` and datapoints (broadcastable).

        Returns
        -------
        Tensor, shape=batch
        """
        variance = self.scale.to(output.dtype) ** 2
        features = math.prod(self.data_shape)
        squared = self._feature_sum((x - output) ** 2)
        return -squared / (2.0 * variance) - 0.5 * features * torch.log(2.0 * math.pi * variance)


class GaussianLearnedScale(Likelihood):
    r"""Gaussian whose standard deviation is learned, one per data feature (or one shared).

    Parameters
    ----------
    init_sigma : float
        Initial standard deviation.
    shared : bool
        One scale for all features instead of one per feature.
    """

    name = "gaussian-learned"
    feature_family = torch.distributions.Normal
    feature_kl = staticmethod(Gaussian.feature_kl)

    def __init__(self, init_sigma: float = 1.0, shared: bool = False) -> None:
        super().__init__()
        valid = isinstance(init_sigma, (int, float)) and math.isfinite(init_sigma)
        if not (valid and init_sigma > 0):
            raise ValueError(f"init_sigma must be a positive finite number, got {init_sigma!r}")
        self.init_sigma = float(init_sigma)
        self.shared = bool(shared)

    def config(self) -> dict[str, Any]:
        return {"init_sigma": self.init_sigma, "shared": self.shared}

    @classmethod
    def from_options(cls, *, sigma_x: float = 1.0) -> GaussianLearnedScale:
        """``GaussianLearnedScale(init_sigma=sigma_x)``: learned from ``--sigma-x``."""
        return cls(init_sigma=sigma_x)

    def build(self, data_shape: torch.Size) -> None:
        super().build(data_shape)
        shape = torch.Size() if self.shared else self.data_shape
        self.log_sigma = nn.Parameter(torch.full(shape, math.log(self.init_sigma)))

    @property
    def sigma(self) -> Tensor:
        """Current standard deviations, shape ``data_shape`` (or ``()`` when shared)."""
        return self.log_sigma.exp()

    def forward(self, output: Tensor) -> dist.Distribution:
        scale = self.log_sigma.to(output.dtype).exp().expand_as(output)
        return dist.Normal(output, scale).to_event(self._event_dims())

    def log_density(self, output: Tensor, x: Tensor) -> Tensor:
        r"""Closed form :math:`\sum_i -\tfrac12 (x_i - f_i)^2 e^{-2 s_i} - s_i - \tfrac12\log 2\pi`.

        With :math:`s = \log\sigma` (``log_sigma``, per feature or shared).

        Parameters
        ----------
        output, x : Tensor, shape=[*batch, *data_shape]
            Decoder outputs :math:`f` and datapoints (broadcastable).

        Returns
        -------
        Tensor, shape=batch
        """
        log_sigma = self.log_sigma.to(output.dtype)
        residual = (x - output) * torch.exp(-log_sigma)
        terms = -0.5 * residual**2 - log_sigma - 0.5 * math.log(2.0 * math.pi)
        return self._feature_sum(terms)


class Bernoulli(Likelihood):
    r"""Bernoulli on every feature with logits from the decoder: binary cross-entropy.

    Data must lie in :math:`[0, 1]` (grey levels are allowed: the cross-entropy is then the
    continuous relaxation used for images, as in the slides seed).
    """

    name = "bernoulli"
    real_valued = False
    support = constraints.unit_interval
    feature_family = torch.distributions.Bernoulli

    @staticmethod
    def feature_kl(p: Distribution, q: Distribution) -> Tensor:
        """:func:`bernoulli_kl` of the logits (from logits or probabilities)."""
        return bernoulli_kl(p.logits, q.logits)

    def forward(self, output: Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=output, validate_args=False).to_event(self._event_dims())

    def log_density(self, output: Tensor, x: Tensor) -> Tensor:
        r""":math:`\sum_i x_i \log s(f_i) + (1 - x_i) \log(1 - s(f_i))`, minus the cross-entropy.

        Computed stably from the logits :math:`f` by
        :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

        Parameters
        ----------
        output : Tensor, shape=[*batch, *data_shape]
            Logits :math:`f`.
        x : Tensor, shape=[*batch, *data_shape]
            Data in :math:`[0, 1]` (broadcastable against ``output``).

        Returns
        -------
        Tensor, shape=batch
        """
        output, x = torch.broadcast_tensors(output, x)
        return -self._feature_sum(F.binary_cross_entropy_with_logits(output, x, reduction="none"))


def _check_likelihood_class(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Likelihood)):
        raise ValueError(f"a registered likelihood must be a Likelihood subclass, got {cls!r}")


#: Likelihood classes by name: checkpoints and the command line rebuild likelihoods from it.
#: Register a user likelihood with ``@LIKELIHOODS.register`` (class attribute ``name``).
LIKELIHOODS: Registry[type[Likelihood]] = Registry("likelihood", _check_likelihood_class)
for _cls in (Gaussian, GaussianLearnedScale, Bernoulli):
    LIKELIHOODS.register(_cls)


def likelihood_from_spec(spec: dict[str, Any]) -> Likelihood:
    """Rebuild a likelihood from :meth:`Likelihood.spec` (looked up in :data:`LIKELIHOODS`).

    Raises
    ------
    ValueError
        If ``spec`` is not a spec, names no registered likelihood (a user's likelihood must
        be registered with ``LIKELIHOODS.register`` before it is rebuilt), or its ``kwargs``
        do not fit the class.
    """
    if not isinstance(spec, dict) or spec.get("name") not in LIKELIHOODS:
        raise ValueError(
            f"unknown likelihood spec {spec!r}; registered: {list(LIKELIHOODS.names())} "
            "(register a user likelihood with LIKELIHOODS.register before rebuilding it)"
        )
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"likelihood spec kwargs must be a dict, got {kwargs!r}")
    try:
        return LIKELIHOODS[spec["name"]](**kwargs)
    except TypeError as error:
        raise ValueError(f"likelihood spec {spec!r} does not fit its class: {error}") from error
