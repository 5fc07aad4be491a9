r"""The heat kernel and the uniform distribution on the flat torus :math:`T^n = (S^1)^n`."""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

from . import constraints as mconstraints
from ._brownian import BrownianTime
from ._circle_kl import circle_kl_to_uniform_table
from ._series import circle_log_prob
from ._summaries import WrappedNormalSummaries
from ._uniform import ConstantDensity
from .angles import LOG_2PI, PI, TWO_PI, wrap_angle

__all__ = ["TorusHeatKernel", "TorusUniform"]

_angles = constraints.independent(mconstraints.angle, 1)


class TorusHeatKernel(BrownianTime, WrappedNormalSummaries, TorchDistribution):
    r"""Heat kernel on the flat torus :math:`T^n`: a product of circle heat kernels.

    The torus is the product of :math:`n` unit circles, a point is its vector of angles in
    :math:`[-\pi, \pi)^n`, and the density is with respect to the Lebesgue measure of the angles:

    .. math::

        p(\theta \mid \mu, t) = \prod_{i=1}^{n} p_{S^1}(\theta_i \mid \mu_i, t_i),

    with one time per factor as in the thesis's Eq. 11.8 (a single time for all factors is the
    heat kernel of the flat metric). Each factor is exact to float64 rounding, see
    :class:`~distributions.CircleHeatKernel`; ``rsample`` is exact and reparameterised.

    Parameters
    ----------
    loc : Tensor, shape=[..., n]
        Location angles.
    time : Tensor, shape=[..., n] or broadcastable to ``loc``
        Positive diffusion times, one per factor (convention :math:`\partial_t p = \Delta p`).
    validate_args : bool, optional
        Check parameters and values (``ValueError`` naming the argument on failure).
    """

    arg_constraints = {
        "loc": constraints.independent(mconstraints.finite, 1),
        "time": constraints.independent(mconstraints.positive_finite, 1),
    }
    support = _angles
    has_rsample = True

    def __init__(
        self, loc: Tensor, time: Tensor | float, validate_args: bool | None = None
    ) -> None:
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        if loc.dim() < 1:
            raise ValueError(
                "loc must have shape (..., n) with one angle per torus factor, got a scalar"
            )
        time = torch.as_tensor(time, dtype=loc.dtype, device=loc.device)
        try:
            self.loc, self.time = torch.broadcast_tensors(loc, time)
        except RuntimeError as error:
            raise ValueError(
                f"time of shape {tuple(time.shape)} does not broadcast against loc of shape "
                f"{tuple(loc.shape)}"
            ) from error
        super().__init__(self.loc.shape[:-1], self.loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: torch.Size, _instance=None) -> TorusHeatKernel:
        new = self._get_checked_instance(TorusHeatKernel, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.loc = self.loc.expand(shape)
        new.time = self.time.expand(shape)
        super(TorusHeatKernel, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        r"""Exact sample :math:`\operatorname{wrap}(\mu_i + \sqrt{2t_i}\,\varepsilon_i)` per factor.

        Returns
        -------
        Tensor, shape=sample_shape + batch_shape + (n,)
        """
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return wrap_angle(self.loc + torch.sqrt(2.0 * self.time) * eps)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact log density, the sum of the factors' circle log densities.

        Parameters
        ----------
        value : Tensor, shape=[..., *batch_shape, n]
            Angles in :math:`[-\pi, \pi)^n`.
        """
        if self._validate_args:
            self._validate_sample(value)
        return circle_log_prob(value, self.loc, self.time).sum(-1)

    def entropy(self) -> Tensor:
        """Exact entropy: the sum of the factors' entropies."""
        return (LOG_2PI - circle_kl_to_uniform_table(self.time)).sum(-1)

    def __repr__(self) -> str:
        n = self.event_shape[0]
        space = "the circle S^1 as a 1-torus" if n == 1 else f"T^{n}"
        return (
            f"{type(self).__name__}(n={n}: {space}, loc: {tuple(self.loc.shape)}, "
            f"time: {tuple(self.time.shape)})"
        )


class TorusUniform(ConstantDensity):
    r"""Uniform distribution on :math:`T^n = [-\pi, \pi)^n`, density :math:`(2\pi)^{-n}`.

    Parameters
    ----------
    n : int
        Number of circle factors (``n >= 1``).
    batch_shape : torch.Size, optional
        Batch shape (default scalar).
    dtype, device : optional
        Of the samples (default: torch's default dtype, CPU).
    validate_args : bool, optional
        Check values against the support.
    """

    support = _angles
    _copied = ("n",)

    def __init__(
        self,
        n: int,
        batch_shape: torch.Size | tuple[int, ...] = torch.Size(),
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer (the number of factors), got {n!r}")
        self.n = n
        self._setup(batch_shape, (n,), dtype, device, validate_args)

    @property
    def log_volume(self) -> float:
        return self.n * LOG_2PI

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self._dtype, device=self._device)
        return wrap_angle(TWO_PI * u - PI)

    @property
    def mean_direction(self) -> Tensor:
        """Undefined for the uniform distribution: ``nan`` in every factor."""
        return torch.full(
            self._extended_shape(), float("nan"), dtype=self._dtype, device=self._device
        )

    @property
    def mean(self) -> Tensor:
        return self.mean_direction

    @property
    def mean_resultant_length(self) -> Tensor:
        """Zero in every factor."""
        return torch.zeros(self._extended_shape(), dtype=self._dtype, device=self._device)

    @property
    def variance(self) -> Tensor:
        """Circular variance 1 in every factor."""
        return torch.ones(self._extended_shape(), dtype=self._dtype, device=self._device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, batch_shape={tuple(self.batch_shape)})"
