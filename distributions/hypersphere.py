r"""The uniform distribution and the heat kernel on the hypersphere :math:`S^d \subset R^{d+1}`."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import constraints

from . import constraints as mconstraints
from ._brownian import BrownianTime
from ._gegenbauer import heat_kl_to_uniform, heat_log_series, series_plan
from ._hyperspherical import DirectionalFamily, log_sphere_volume, place, unit
from ._sphere_sampling import polar_angle_time_derivative, sample_polar_angle
from ._sphere_series import sphere_kl_to_uniform, sphere_log_prob
from ._uniform import ConstantDensity
from .sphere import SphereHeatKernel

__all__ = ["HypersphereHeatKernel", "HypersphereUniform", "hypersphere_heat_kl_to_uniform"]

#: Rejection rounds of the polar-angle sampler for d >= 3 (acceptance at least 4/7).
MAX_ROUNDS = 200


def min_time(d: int) -> float:
    r"""The smallest time supported on :math:`S^d`: 0 on :math:`S^2` (every time is exact),
    :math:`T_d` of :func:`distributions._gegenbauer.series_plan` for :math:`d \ge 3`."""
    return 0.0 if d == 2 else series_plan(d)[0]


def hypersphere_heat_kl_to_uniform(time: Tensor, d: int) -> Tensor:
    r"""Exact :math:`\mathrm{KL}(p_t \,\|\, \mathrm{uniform})` on :math:`S^d` (the
    :math:`S^2` implementation for :math:`d = 2`, the Gegenbauer quadrature above)."""
    return sphere_kl_to_uniform(time) if d == 2 else heat_kl_to_uniform(time, d)


class HypersphereUniform(ConstantDensity):
    r"""Uniform distribution on :math:`S^d`, density :math:`1/|S^d|`,
    :math:`|S^d| = 2\pi^{(d+1)/2}/\Gamma(\tfrac{d+1}{2})`.

    The prior of the hyperspherical families (:class:`~distributions.vmf.VonMisesFisher`,
    :class:`~distributions.power_spherical.PowerSpherical`, :class:`HypersphereHeatKernel`),
    whose KL divergences to it are registered and exact. Batch shape ``()``; ``expand`` gives
    others.

    Parameters
    ----------
    d : int
        Sphere dimension, at least 1 (samples are unit vectors of :math:`R^{d+1}`).
    dtype, device : optional
        Of the samples (default: torch's default dtype, CPU). ``log_prob`` follows its input.
    validate_args : bool, optional
        Check values against the support.
    """

    support = mconstraints.sphere
    _copied = ("d",)

    def __init__(
        self,
        d: int,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ValueError(f"d must be an integer >= 1 (the sphere S^d), got {d!r}")
        self.d = d
        self._setup((), (d + 1,), dtype, device, validate_args)

    @property
    def log_volume(self) -> float:
        return log_sphere_volume(self.d)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Uniform points: normalised standard normal vectors in :math:`R^{d+1}`."""
        shape = self._extended_shape(sample_shape)
        return unit(torch.randn(shape, dtype=self._dtype, device=self._device))

    @property
    def mean(self) -> Tensor:
        r""":math:`E[x] = 0`."""
        return torch.zeros((*self.batch_shape, self.d + 1), dtype=self._dtype, device=self._device)

    @property
    def mean_direction(self) -> Tensor:
        """Mean direction: undefined for the uniform distribution, so ``nan``."""
        return torch.full(
            (*self.batch_shape, self.d + 1), float("nan"), dtype=self._dtype, device=self._device
        )

    @property
    def mean_resultant_length(self) -> Tensor:
        r""":math:`\lVert E[x] \rVert = 0`."""
        return torch.zeros(self.batch_shape, dtype=self._dtype, device=self._device)

    @property
    def variance(self) -> Tensor:
        """Variance :math:`1/(d+1)` of every coordinate."""
        return torch.full(
            (*self.batch_shape, self.d + 1),
            1.0 / (self.d + 1),
            dtype=self._dtype,
            device=self._device,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, batch_shape={tuple(self.batch_shape)})"


class _TimeAtLeast(constraints.Constraint):
    """Finite times at least ``low``, with 1e-6 relative slack (``low`` rounded to float32 may
    fall just below it; the series bounds hold with a margin there)."""

    def __init__(self, low: float) -> None:
        super().__init__()
        self.low = low

    def check(self, value: Tensor) -> Tensor:
        return torch.isfinite(value) & (value > 0) & (value >= self.low * (1.0 - 1e-6))

    def __repr__(self) -> str:
        return f"time(value >= {self.low:.6g}, finite; smaller times not supported for d >= 3)"


class _HeatConstraints:
    r"""``arg_constraints``: on the class, ``loc`` and ``time > 0``; on an instance on
    :math:`S^d`, :math:`d \ge 3`, ``time >= min_time(d)``."""

    def __get__(self, instance, owner) -> dict[str, constraints.Constraint]:
        plain = {"loc": mconstraints.sphere, "time": mconstraints.positive_finite}
        if instance is None or "loc" not in instance.__dict__:
            return plain
        d = instance.loc.shape[-1] - 1
        return plain if d == 2 else {**plain, "time": _TimeAtLeast(min_time(d))}


class HypersphereHeatKernel(BrownianTime, DirectionalFamily):
    r"""Heat kernel on :math:`S^d`, :math:`d \ge 2`: the law of Brownian motion started at ``loc``.

    Density with respect to the surface measure (time convention :math:`\partial_t p = \Delta
    p`; Brownian motion with generator :math:`\Delta/2` at time :math:`s` is :math:`t = s/2`,
    :meth:`from_brownian_time`), with :math:`\lambda = (d-1)/2`:

    .. math::

        p_t(x \mid \mu) = \frac{1}{|S^d|}\sum_{l \ge 0} \frac{2l + d - 1}{d - 1}\,
            e^{-l(l + d - 1)t}\, C_l^{\lambda}(\mu\cdot x).

    * :math:`d = 2`: every time :math:`t > 0`, with exactly the values, sampler and KL of
      :class:`~distributions.sphere.SphereHeatKernel` (image integral below :math:`t = 1/2`,
      Legendre series above), of which this is the generalisation.
    * :math:`d \ge 3`: times :math:`t \ge T_d` (:func:`min_time`; 0.60 on :math:`S^3`, 0.31 on
      :math:`S^9`, 0.074 on :math:`S^{64}`), where the Gegenbauer series has a proven
      truncation bound below :math:`10^{-18}` and a proven rounding bound (a few dozen unit
      roundoffs): :mod:`distributions._gegenbauer`. Smaller times (the concentrated kernels)
      are **not supported** on :math:`d \ge 3`: they raise ``ValueError`` under validation
      (without it, ``log_prob`` and the KL are ``nan`` there).

    ``rsample`` is exact: the cosine :math:`w = \mu\cdot x` by rejection from the uniform
    distribution (accepted with probability :math:`p_t(w)/p_t(1)`, valid because the kernel
    decreases away from :math:`\mu`; acceptance at least 4/7), a uniform tangent direction;
    reparameterised pathwise in ``loc`` and implicitly in ``time`` with
    :math:`d\theta/dt = -\partial_\theta\log p_t(\theta)` (the heat equation integrated over a
    cap), i.e. :math:`d(1-w)/dt = (1 - w^2)\,\partial_w\log p_t(w)`. The KL to
    :class:`HypersphereUniform` is registered and exact. :math:`E[x] = e^{-dt}\mu`.

    Parameters
    ----------
    loc : Tensor, shape=[..., d + 1]
        Unit vectors :math:`\mu`, :math:`d \ge 2`.
    time : Tensor or float, shape=[...]
        Diffusion time, broadcastable with ``loc.shape[:-1]``.
    validate_args : bool, optional
        Check parameters and values (``ValueError`` naming the argument on failure).

    Examples
    --------
    >>> import torch
    >>> p = HypersphereHeatKernel(torch.tensor([0.0, 0.0, 0.0, 1.0]), torch.tensor(1.0))
    >>> p.mean  # exp(-d t) loc
    tensor([0.0000, 0.0000, 0.0000, 0.0498])
    """

    arg_constraints = _HeatConstraints()
    _scalar = "time"
    _min_dim = 2

    def __init__(
        self, loc: Tensor, time: Tensor | float, validate_args: bool | None = None
    ) -> None:
        self._setup(loc, time, validate_args)

    def _log_density(self, y: Tensor, time: Tensor) -> Tensor:
        """:math:`\\log p_t` at :math:`1 - \\mu\\cdot x = y` (d >= 3)."""
        return heat_log_series(y, time, self.dim) - log_sphere_volume(self.dim)

    def log_prob(self, value: Tensor) -> Tensor:
        r"""Exact :math:`\log p_t(x \mid \mu)` with respect to the surface measure.

        Parameters
        ----------
        value : Tensor, shape=[..., *batch_shape, d + 1]
            Unit vectors.
        """
        if self.dim == 2:
            if self._validate_args:
                self._validate_sample(value)
            return sphere_log_prob(value, self.loc, self.time)
        return self._log_density(0.5 * self._chordal(value), self.time)

    def _sample_y(self, time: Tensor) -> Tensor:
        """Exact samples of :math:`y = 1 - w` (d >= 3), by rejection from the uniform."""
        with torch.no_grad():
            flat = time.detach().reshape(-1)
            y = torch.zeros_like(flat)
            pending = torch.arange(flat.numel(), device=flat.device)
            log_top = self._log_density(torch.zeros_like(flat), flat)
            for _ in range(MAX_ROUNDS):
                if pending.numel() == 0:
                    return y.reshape(time.shape)
                shape = (pending.numel(), self.dim + 1)
                g = torch.randn(shape, dtype=flat.dtype, device=flat.device)
                proposal = 1.0 - g[:, 0] / torch.linalg.vector_norm(g, dim=-1)
                t = flat[pending]
                log_acc = self._log_density(proposal, t) - log_top[pending]
                accept = torch.log(torch.rand_like(t)) <= log_acc
                y[pending[accept]] = proposal[accept]
                pending = pending[~accept]
        raise RuntimeError(
            f"hypersphere heat kernel: {pending.numel()} samples still rejected after "
            f"{MAX_ROUNDS} rounds; times must be at least {min_time(self.dim):.4g} and finite"
        )

    def _time_slope(self, y: Tensor, time: Tensor) -> Tensor:
        r""":math:`dy/dt = y(2 - y)\,\partial_w\log p_t = -y(2-y)\,\partial_y\log p_t`."""
        with torch.enable_grad():
            leaf = y.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._log_density(leaf, time.detach()).sum(), leaf)
        return -y * (2.0 - y) * grad

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        r"""Exact samples :math:`x = (1 - y)\mu + \sqrt{y(2 - y)}\,v`, reparameterised.

        Returns
        -------
        Tensor, shape=sample_shape + batch_shape + (d + 1,)
        """
        shape = self._extended_shape(sample_shape)
        time = self.time.expand(shape[:-1])
        grad = time.requires_grad and torch.is_grad_enabled()
        if self.dim == 2:
            theta = sample_polar_angle(time)
            if grad:
                theta = theta + polar_angle_time_derivative(theta, time) * (time - time.detach())
            y = 2.0 * torch.sin(theta / 2) ** 2
        else:
            y = self._sample_y(time)
            if grad:
                y = y + self._time_slope(y, time) * (time - time.detach())
        return place(y, self.loc.expand(shape))

    def kl_to_uniform(self) -> Tensor:
        """Exact KL to the uniform distribution (:func:`hypersphere_heat_kl_to_uniform`)."""
        return hypersphere_heat_kl_to_uniform(self.time, self.dim)

    @property
    def mean_resultant_length(self) -> Tensor:
        r""":math:`E[\mu\cdot x] = e^{-dt}` (:math:`C_1^\lambda` decays at the eigenvalue
        :math:`d`)."""
        return torch.exp(-self.dim * self.time)

    def _radial_moments(self) -> tuple[Tensor, Tensor]:
        r"""From :math:`E\,C_l^\lambda(w) = C_l^\lambda(1)e^{-l(l+d-1)t}`:
        :math:`E[w^2] = (1 + d\,e^{-2(d+1)t})/(d+1)`, so
        :math:`E[1 - w^2] = -d\operatorname{expm1}(-2(d+1)t)/(d+1)` and
        :math:`\operatorname{Var} w = E[w^2] - e^{-2dt}`."""
        d, t = self.dim, self.time
        spread = -d * torch.expm1(-2.0 * (d + 1) * t) / (d + 1)
        var_w = (1.0 - spread) - torch.exp(-2.0 * d * t)
        return var_w.clamp(min=0.0), spread

    @property
    def variance(self) -> Tensor:
        """Coordinate variances (on :math:`S^2` :class:`SphereHeatKernel`'s cancellation-free
        form, which matters at small times)."""
        if self.dim == 2:
            return SphereHeatKernel(self.loc, self.time, validate_args=False).variance
        return super().variance
