r"""Decoder likelihoods :math:`p(x \mid z)`: Gaussian with fixed or learned scale, Bernoulli.

A likelihood turns the decoder network's output (same shape as a datapoint) into a
distribution whose event is the whole datapoint, checks data before training, and describes
itself for checkpoints.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import Registry

__all__ = [
    "LIKELIHOODS",
    "Bernoulli",
    "Gaussian",
    "GaussianLearnedScale",
    "Likelihood",
    "likelihood_from_spec",
]


class Likelihood(nn.Module, abc.ABC):
    """Base class: ``likelihood(output)`` is the distribution of a datapoint."""

    name: ClassVar[str]
    #: Whether every real datapoint is in the support (Gaussians: yes; Bernoulli: only
    #: ``[0, 1]``). Training with ``input_noise`` needs it.
    real_valued: ClassVar[bool] = True

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
        """Raise ``ValueError`` if ``data`` cannot be modelled (shape, dtype, finiteness)."""
        if not torch.is_tensor(data):
            raise ValueError(f"data must be a torch.Tensor, got {type(data).__name__}")
        if not data.is_floating_point():
            raise ValueError(f"data must have a floating dtype, got {data.dtype}")
        if data.dim() != len(self.data_shape) + 1 or data.shape[1:] != self.data_shape:
            raise ValueError(
                f"data must have shape (N, {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(data.shape)}"
            )
        if data.shape[0] == 0:
            raise ValueError("data is empty: it has no datapoints")
        bad = ~torch.isfinite(data)
        if bad.any():
            rows = bad.flatten(1).any(1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"data contains nan or inf values (datapoints {rows} ...)")

    def spec(self) -> dict[str, Any]:
        """JSON-able description for :func:`likelihood_from_spec`."""
        return {"name": self.name, "kwargs": self._kwargs()}

    def _kwargs(self) -> dict[str, Any]:
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items())

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

    def _kwargs(self) -> dict[str, Any]:
        return {"sigma": self.sigma}

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

    def __init__(self, init_sigma: float = 1.0, shared: bool = False) -> None:
        super().__init__()
        valid = isinstance(init_sigma, (int, float)) and math.isfinite(init_sigma)
        if not (valid and init_sigma > 0):
            raise ValueError(f"init_sigma must be a positive finite number, got {init_sigma!r}")
        self.init_sigma = float(init_sigma)
        self.shared = bool(shared)

    def _kwargs(self) -> dict[str, Any]:
        return {"init_sigma": self.init_sigma, "shared": self.shared}

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

    def validate_data(self, data: Tensor) -> None:
        super().validate_data(data)
        if (data < 0).any() or (data > 1).any():
            raise ValueError(
                f"data for a Bernoulli likelihood must lie in [0, 1], got values in "
                f"[{data.min().item():.4g}, {data.max().item():.4g}]"
            )


def _check_likelihood_class(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Likelihood)):
        raise ValueError(f"a registered likelihood must be a Likelihood subclass, got {cls!r}")


#: Likelihood classes by name: checkpoints and the command line rebuild likelihoods from it.
#: Register a user likelihood with ``@LIKELIHOODS.register`` (class attribute ``name``).
LIKELIHOODS: Registry[type[Likelihood]] = Registry("likelihood", _check_likelihood_class)
for _cls in (Gaussian, GaussianLearnedScale, Bernoulli):
    LIKELIHOODS.register(_cls)


def likelihood_from_spec(spec: dict[str, Any]) -> Likelihood:
    """Rebuild a likelihood from :meth:`Likelihood.spec` (looked up in :data:`LIKELIHOODS`)."""
    if not isinstance(spec, dict) or spec.get("name") not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood spec {spec!r}; known: {list(LIKELIHOODS.names())}")
    return LIKELIHOODS[spec["name"]](**spec.get("kwargs", {}))
