r"""The heat kernel (wrapped normal) and the uniform distribution on the unit circle."""

from __future__ import annotations

from numbers import Number

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions.utils import broadcast_all

from . import constraints as mconstraints
from ._brownian import BrownianTime
from ._circle_kl import circle_kl_to_uniform_table
from ._repr import shape_repr
from ._series import circle_log_density_where, circle_log_prob
from ._summaries import WrappedNormalSummaries
from ._uniform import ConstantDensity
from .angles import LOG_2PI, PI, TWO_PI, wrap_angle

__all__ = ["CircleHeatKernel", "CircleUniform", "circle_log_density_where"]


class CircleHeatKernel(BrownianTime, WrappedNormalSummaries, TorchDistribution):
    r"""Heat kernel on the unit circle: the wrapped normal with variance :math:`2t`.

    The density of the angle :math:`\theta \in [-\pi, \pi)` with respect to its Lebesgue
    measure solves :math:`\partial_t p = \partial_\theta^2 p` with :math:`p_0 = \delta_{\mu}`:

    .. math::

        p(\theta \mid \mu, t)
            = \frac{1}{2\pi}\Big[1 + 2\sum_{m \ge 1} e^{-m^2 t}\cos m(\theta - \mu)\Big]
            = \sum_{k \in \mathbb Z} \mathcal N(\theta - \mu + 2\pi k;\, 0,\, 2t).

    ``log_prob`` is exact to float64 rounding for every ``time > 0`` (winding sum for
    ``time <= 1.5``, Fourier sum above, chosen per element, truncation bounds in
    :func:`distributions._series.circle_log_density`); ``rsample`` is exact,
    :math:`\operatorname{wrap}(\mu + \sqrt{2t}\,\varepsilon)`, with pathwise gradients.

    Brownian motion with generator :math:`\Delta/2` (geomstats, most score-based models) run for
    time :math:`s` gives this kernel at :math:`t = s/2`: use :meth:`from_brownian_time`.

    Parameters
    ----------
    loc : Tensor or float, shape=[...]
        Location :math:`\mu` (any finite angle; it is wrapped to :math:`[-\pi, \pi)`).
    time : Tensor or float, shape=[...]
        Diffusion time :math:`t > 0`, broadcastable with ``loc``.
    validate_args : bool, optional
        Check parameters and values (``ValueError`` naming the argument on failure).

    Examples
    --------
    >>> import torch
    >>> d = CircleHeatKernel(torch.tensor(0.5), torch.tensor(0.1))
    >>> d.log_prob(torch.tensor(0.5)).exp()  # peak of a wrapped normal with sigma^2 = 0.2
    tensor(0.8921)
    >>> d.mean_resultant_length  # E cos(theta - mu) = exp(-t)
    tensor(0.9048)
    """

    arg_constraints = {"loc": mconstraints.finite, "time": mconstraints.positive_finite}
    support = mconstraints.angle
    has_rsample = True

    def __init__(
        self,
        loc: Tensor | float,
        time: Tensor | float,
        validate_args: bool | None = None,
    ) -> None:
        self.loc, self.time = broadcast_all(loc, time)
        if isinstance(loc, Number) and isinstance(time, Number):
            batch_shape = torch.Size()
        else:
            batch_shape = self.loc.shape
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape: torch.Size, _instance=None) -> CircleHeatKernel:
        new = self._get_checked_instance(CircleHeatKernel, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.time = self.time.expand(batch_shape)
        super(CircleHeatKernel, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        r"""Exact reparameterised sample :math:`\operatorname{wrap}(\mu + \sqrt{2t}\,\varepsilon)`.

        Returns
        -------
        Tensor, shape=sample_shape + batch_shape
        """
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return wrap_angle(self.loc + torch.sqrt(2.0 * self.time) * eps)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact :math:`\log p(\theta \mid \mu, t)` with respect to the angle's Lebesgue measure.

        Parameters
        ----------
        value : Tensor, shape=[..., *batch_shape]
            Angles in :math:`[-\pi, \pi)`.
        """
        if self._validate_args:
            self._validate_sample(value)
        return circle_log_prob(value, self.loc, self.time)

    def entropy(self) -> Tensor:
        r"""Exact differential entropy :math:`H = \log 2\pi - \mathrm{KL}(p \| u)`."""
        return LOG_2PI - circle_kl_to_uniform_table(self.time)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({shape_repr('loc', self.loc)}, {shape_repr('time', self.time)})"
        )


class CircleUniform(ConstantDensity):
    r"""Uniform distribution of an angle on :math:`[-\pi, \pi)`, density :math:`1/2\pi`.

    The normalised Riemannian volume of the unit circle: the prior of circle latents.

    Parameters
    ----------
    batch_shape : torch.Size, optional
        Batch shape (default scalar); ``expand`` also works.
    dtype, device : optional
        Of the samples (default: torch's default dtype, CPU). ``log_prob`` follows its input.
    validate_args : bool, optional
        Check values against the support.
    """

    support = mconstraints.angle
    log_volume = LOG_2PI

    def __init__(
        self,
        batch_shape: torch.Size | tuple[int, ...] = torch.Size(),
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        self._setup(batch_shape, (), dtype, device, validate_args)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self._dtype, device=self._device)
        return wrap_angle(TWO_PI * u - PI)

    @property
    def mean_direction(self) -> Tensor:
        """Circular mean direction: undefined for the uniform distribution, so ``nan``."""
        return torch.full(self.batch_shape, float("nan"), dtype=self._dtype, device=self._device)

    @property
    def mean(self) -> Tensor:
        return self.mean_direction

    @property
    def mean_resultant_length(self) -> Tensor:
        """Mean resultant length: 0 for the uniform distribution."""
        return torch.zeros(self.batch_shape, dtype=self._dtype, device=self._device)

    @property
    def variance(self) -> Tensor:
        """Circular variance: 1 for the uniform distribution."""
        return torch.ones(self.batch_shape, dtype=self._dtype, device=self._device)
