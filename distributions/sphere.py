r"""The heat kernel and the uniform distribution on the unit sphere :math:`S^2 \subset R^3`."""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor

from . import constraints as mconstraints
from ._brownian import BrownianTime
from ._repr import shape_repr
from ._sphere_sampling import polar_angle_time_derivative, sample_polar_angle
from ._sphere_series import sphere_kl_to_uniform, sphere_log_prob
from ._uniform import ConstantDensity
from .angles import PI

__all__ = ["SphereHeatKernel", "SphereUniform"]

_LOG_4PI = math.log(4.0 * PI)


def _unit(x: Tensor) -> Tensor:
    """``x`` divided by its norm over the last dimension (floored at the smallest normal)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(
        min=torch.finfo(x.dtype).tiny
    )


def _tangent_directions(loc: Tensor) -> Tensor:
    r"""Uniform unit vectors in the tangent planes at the unit vectors ``loc``, shape of ``loc``.

    :math:`v = (g - (g\cdot\mu)\mu) / \lVert\cdot\rVert` with :math:`g \sim N(0, I_3)`: uniform
    by rotational symmetry about :math:`\mu`, and differentiable in :math:`\mu` (no global frame,
    which the hairy-ball theorem forbids).
    """
    g = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
    return _unit(g - (g * loc).sum(-1, keepdim=True) * loc)


class SphereHeatKernel(BrownianTime, TorchDistribution):
    r"""Heat kernel on the unit sphere :math:`S^2`, the law of Brownian motion started at ``loc``.

    Points are unit vectors of :math:`R^3`; the density with respect to the area measure
    (total :math:`4\pi`) solves :math:`\partial_t p = \Delta p`, :math:`p_0 = \delta_\mu`, and
    depends on the polar angle :math:`\theta = \angle(x, \mu)` only:

    .. math::

        p(x \mid \mu, t) = \frac{1}{4\pi}\sum_{l \ge 0} (2l + 1)\, e^{-l(l+1)t}\,
            P_l(\cos\theta)
        = \frac{\sqrt2\, e^{t/4}}{(4\pi t)^{3/2}} \sum_{k \in \mathbb Z} (-1)^k
            \int_\theta^\pi \frac{(\varphi + 2\pi k)\, e^{-(\varphi + 2\pi k)^2/4t}}
            {\sqrt{\cos\theta - \cos\varphi}}\, d\varphi .

    ``log_prob`` is exact to float64 rounding for every ``time > 0`` (the image integral for
    ``time <= 0.5``, the Legendre series above: :mod:`distributions._sphere_series`). For small
    ``t`` it is close to the planar normal :math:`N(\mu, 2t I_2)` in the tangent plane.
    ``rsample`` is exact: the polar angle by rejection sampling, a uniform tangent direction,
    with pathwise gradients in ``loc`` and implicit reparameterisation in ``time``
    (:math:`d\theta/dt = -\partial_\theta \log p_t(\theta)`). The KL to :class:`SphereUniform` is
    registered and exact. Summaries: :math:`E[x] = e^{-2t}\mu` (``mean``; :math:`P_1` decays at
    the eigenvalue 2), ``mean_resultant_length`` :math:`e^{-2t}`.

    Brownian motion with generator :math:`\Delta/2` (geomstats, most score-based models) run for
    time :math:`s` gives this kernel at :math:`t = s/2`: use :meth:`from_brownian_time`.

    Parameters
    ----------
    loc : Tensor, shape=[..., 3]
        Unit vectors :math:`\mu`.
    time : Tensor or float, shape=[...]
        Diffusion time :math:`t > 0` (:math:`\partial_t p = \Delta p`), broadcastable with
        ``loc.shape[:-1]``.
    validate_args : bool, optional
        Check parameters and values (``ValueError`` naming the argument on failure).

    Examples
    --------
    >>> import torch
    >>> d = SphereHeatKernel(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(0.1))
    >>> d.log_prob(torch.tensor([0.0, 0.0, 1.0])).exp()  # about e^{t/3} / (4 pi t)
    tensor(0.8228)
    >>> d.mean  # exp(-2t) loc
    tensor([0.0000, 0.0000, 0.8187])
    """

    arg_constraints = {"loc": mconstraints.sphere, "time": mconstraints.positive_finite}
    support = mconstraints.sphere
    has_rsample = True

    def __init__(
        self, loc: Tensor, time: Tensor | float, validate_args: bool | None = None
    ) -> None:
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point():
            loc = loc.to(torch.get_default_dtype())
        if loc.dim() < 1 or loc.shape[-1] != 3:
            raise ValueError(
                f"loc must have shape (..., 3) (unit vectors of R^3), got {tuple(loc.shape)}"
            )
        time = torch.as_tensor(time, dtype=loc.dtype, device=loc.device)
        try:
            batch_shape = torch.broadcast_shapes(loc.shape[:-1], time.shape)
        except RuntimeError as error:
            raise ValueError(
                f"time of shape {tuple(time.shape)} does not broadcast against the batch shape "
                f"{tuple(loc.shape[:-1])} of loc"
            ) from error
        self.loc = loc.expand((*batch_shape, 3))
        self.time = time.expand(batch_shape)
        super().__init__(batch_shape, torch.Size([3]), validate_args=validate_args)

    def expand(self, batch_shape: torch.Size, _instance=None) -> SphereHeatKernel:
        new = self._get_checked_instance(SphereHeatKernel, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand((*batch_shape, 3))
        new.time = self.time.expand(batch_shape)
        super(SphereHeatKernel, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        r"""Exact sample :math:`x = \cos\theta\,\mu + \sin\theta\, v`, reparameterised.

        :math:`\theta` from :func:`distributions._sphere_sampling.sample_polar_angle`, carrying
        the implicit gradient :math:`d\theta/dt = -\partial_\theta\log p_t(\theta)` (first
        order); :math:`v` a uniform unit tangent vector at :math:`\mu`, differentiable in
        :math:`\mu`.

        Returns
        -------
        Tensor, shape=sample_shape + batch_shape + (3,)
        """
        shape = self._extended_shape(sample_shape)
        time = self.time.expand(shape[:-1])
        theta = sample_polar_angle(time)
        if time.requires_grad and torch.is_grad_enabled():
            slope = polar_angle_time_derivative(theta, time)
            theta = theta + slope * (time - time.detach())
        loc = _unit(self.loc.expand(shape))
        theta = theta.unsqueeze(-1)
        x = torch.cos(theta) * loc + torch.sin(theta) * _tangent_directions(loc)
        return _unit(x)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact :math:`\log p(x \mid \mu, t)` with respect to the area measure of :math:`S^2`.

        Parameters
        ----------
        value : Tensor, shape=[..., *batch_shape, 3]
            Unit vectors (without validation, other non-zero vectors are read as their radial
            projections).
        """
        if self._validate_args:
            self._validate_sample(value)
        return sphere_log_prob(value, self.loc, self.time)

    def entropy(self) -> Tensor:
        r"""Exact differential entropy :math:`H = \log 4\pi - \mathrm{KL}(p \| u)`."""
        return _LOG_4PI - sphere_kl_to_uniform(self.time)

    @property
    def mean_direction(self) -> Tensor:
        r"""The location :math:`\mu` (direction of :math:`E[x]`), shape ``batch_shape + (3,)``."""
        return self.loc

    @property
    def mode(self) -> Tensor:
        """The location (the density's maximum)."""
        return self.loc

    @property
    def mean_resultant_length(self) -> Tensor:
        r""":math:`\lVert E[x] \rVert = E\cos\theta = e^{-2t}`, shape ``batch_shape``."""
        return torch.exp(-2.0 * self.time)

    @property
    def mean(self) -> Tensor:
        r""":math:`E[x] = e^{-2t}\mu` in :math:`R^3` (:math:`E P_l(\cos\theta) = e^{-l(l+1)t}`)."""
        return self.mean_resultant_length.unsqueeze(-1) * self.loc

    @property
    def variance(self) -> Tensor:
        r"""Variances of the coordinates of :math:`x` in :math:`R^3`, shape ``batch_shape + (3,)``.

        With :math:`y = e^{-2t}`, :math:`E\cos^2\theta = (1 + 2y^3)/3` (from :math:`P_2`) and
        :math:`E[vv^\top] = (I - \mu\mu^\top)/2`:

        .. math::

            \operatorname{Var} x_i = \frac{1 - y}{3}\Big[(1 + y + y^2)(1 - \mu_i^2)
                + (1 - y)(1 + 2y)\,\mu_i^2\Big],

        written with :math:`1 - y = -\operatorname{expm1}(-2t)` so that nothing cancels.
        """
        y = torch.exp(-2.0 * self.time).unsqueeze(-1)
        one_minus_y = -torch.expm1(-2.0 * self.time).unsqueeze(-1)
        mu2 = self.loc * self.loc
        return (
            one_minus_y
            / 3.0
            * ((1.0 + y + y * y) * (1.0 - mu2) + one_minus_y * (1.0 + 2.0 * y) * mu2)
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({shape_repr('loc', self.loc, 1)}, "
            f"{shape_repr('time', self.time, 0)})"
        )


class SphereUniform(ConstantDensity):
    r"""Uniform distribution on the unit sphere :math:`S^2`, density :math:`1/4\pi` (area).

    The normalised area measure: the prior of sphere latents. Batch shape ``()``; ``expand``
    gives others.

    Parameters
    ----------
    dtype, device : optional
        Of the samples (default: torch's default dtype, CPU). ``log_prob`` follows its input.
    validate_args : bool, optional
        Check values against the support.
    """

    support = mconstraints.sphere
    log_volume = _LOG_4PI

    def __init__(
        self,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        self._setup((), (3,), dtype, device, validate_args)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Uniform points: normalised standard normal vectors in :math:`R^3`."""
        shape = self._extended_shape(sample_shape)
        return _unit(torch.randn(shape, dtype=self._dtype, device=self._device))

    @property
    def mean_direction(self) -> Tensor:
        """Mean direction: undefined for the uniform distribution, so ``nan``."""
        return torch.full(
            (*self.batch_shape, 3), float("nan"), dtype=self._dtype, device=self._device
        )

    @property
    def mean(self) -> Tensor:
        r""":math:`E[x] = 0` in :math:`R^3`."""
        return torch.zeros((*self.batch_shape, 3), dtype=self._dtype, device=self._device)

    @property
    def mean_resultant_length(self) -> Tensor:
        """:math:`\\lVert E[x] \\rVert = 0`."""
        return torch.zeros(self.batch_shape, dtype=self._dtype, device=self._device)

    @property
    def variance(self) -> Tensor:
        """Variance 1/3 of every coordinate."""
        return torch.full((*self.batch_shape, 3), 1.0 / 3.0, dtype=self._dtype, device=self._device)
