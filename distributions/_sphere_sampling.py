r"""Exact sampling of the heat kernel on :math:`S^2`: the polar angle by rejection, reparameterised.

A sample is :math:`x = \cos\theta\,\mu + \sin\theta\,v` with :math:`v` uniform on the unit
circle of the tangent plane at :math:`\mu` and :math:`\theta` drawn from its marginal density
:math:`q_t(\theta) = 2\pi\sin\theta\, p_t(\theta)` on :math:`[0, \pi]`
(:func:`sample_polar_angle`). Time convention :math:`\partial_t p = \Delta p`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._sphere_series import sphere_log_density
from .angles import PI

__all__ = ["MAX_ROUNDS", "RAYLEIGH_TIME", "polar_angle_time_derivative", "sample_polar_angle"]

#: At and below this time the proposal is the planar (Rayleigh) angle, above it uniform.
RAYLEIGH_TIME = 1.0
#: Rejection rounds before giving up. The acceptance rate is at least 0.69 for every time, so a
#: sample is still pending after 200 rounds with probability below 1e-100.
MAX_ROUNDS = 200


def _log_acceptance(theta: Tensor, time: Tensor, log_p0: Tensor, rayleigh: Tensor) -> Tensor:
    r"""Log acceptance probability of the proposals ``theta``.

    * Rayleigh proposal :math:`g(\theta) = \frac{\theta}{2t} e^{-\theta^2/4t}`:
      :math:`q/(Mg) = \frac{p_t(\theta)}{p_t(0)} e^{\theta^2/4t} \frac{\sin\theta}{\theta}`, with
      :math:`M = 4\pi t\, p_t(0)`; it is at most 1 (checked on a fine grid for
      :math:`t \le 1` in the tests) and is about :math:`\sqrt{\sin\theta/\theta}`;
      proposals beyond :math:`\pi` are rejected.
    * Uniform proposal on the sphere, :math:`g(\theta) = \sin(\theta)/2`:
      :math:`q/(Mg) = p_t(\theta)/p_t(0)`, since the kernel decreases from the location.
    """
    inside = theta <= PI
    theta_in = theta.clamp(max=PI)
    log_ratio = sphere_log_density(theta_in, time) - log_p0
    planar = log_ratio + theta_in * theta_in / (4.0 * time) + torch.log(torch.sinc(theta_in / PI))
    log_acc = torch.where(rayleigh, planar, log_ratio)
    return torch.where(inside, log_acc, torch.full_like(log_acc, -torch.inf))


def sample_polar_angle(time: Tensor, max_rounds: int = MAX_ROUNDS) -> Tensor:
    r"""Exact samples of the polar angle :math:`\theta \in [0, \pi]` of the kernel, one per time.

    Vectorised rejection sampling: every round proposes for all pending elements at once
    (:math:`\theta = 2\sqrt{tE}`, :math:`E \sim \mathrm{Exp}(1)`, for :math:`t \le 1`; the polar
    angle of a uniform point for :math:`t > 1`) and keeps the accepted ones (acceptance 0.997 at
    :math:`t = 0.01`, about 0.7 at :math:`t = 1`, 0.95 at :math:`t = 2`). No gradient.

    Parameters
    ----------
    time : Tensor, shape=[...]
        Positive diffusion times.
    max_rounds : int
        Cap on the rejection rounds.

    Returns
    -------
    Tensor, shape=time.shape

    Raises
    ------
    RuntimeError
        If some element is still rejected after ``max_rounds`` rounds (which has probability
        below 1e-100 for valid times: it signals a ``nan`` or non-positive time).
    """
    with torch.no_grad():
        flat = time.detach().reshape(-1)
        theta = torch.zeros_like(flat)
        pending = torch.arange(flat.numel(), device=flat.device)
        log_p0 = sphere_log_density(torch.zeros_like(flat), flat)  # log p_t at the location
        for _ in range(max_rounds):
            if pending.numel() == 0:
                return theta.reshape(time.shape)
            t = flat[pending]
            rayleigh = t <= RAYLEIGH_TIME
            planar = 2.0 * torch.sqrt(t * torch.empty_like(t).exponential_())
            uniform = torch.acos(1.0 - 2.0 * torch.rand_like(t))
            proposal = torch.where(rayleigh, planar, uniform)
            log_u = torch.log(torch.rand_like(t))
            accept = log_u < _log_acceptance(proposal, t, log_p0[pending], rayleigh)
            theta[pending[accept]] = proposal[accept]
            pending = pending[~accept]
        if pending.numel() == 0:
            return theta.reshape(time.shape)
    bad = flat[pending[:3]].tolist()
    raise RuntimeError(
        f"sphere heat kernel: {pending.numel()} polar angles still rejected after {max_rounds} "
        f"rejection rounds (times {bad}...); times must be positive and finite"
    )


def polar_angle_time_derivative(theta: Tensor, time: Tensor) -> Tensor:
    r"""Implicit reparameterisation :math:`d\theta/dt` of a sample at fixed quantile.

    With :math:`F_t` the distribution function of :math:`\theta`, :math:`F_t(\theta) = u` fixed
    gives :math:`d\theta/dt = -\partial_t F_t(\theta) / q_t(\theta)`. The heat equation
    :math:`\partial_t p = \frac{1}{\sin\theta}\partial_\theta(\sin\theta\,\partial_\theta p)`
    integrates to :math:`\partial_t F_t(\theta) = 2\pi\sin\theta\,\partial_\theta p_t(\theta)`, so

    .. math:: \frac{d\theta}{dt} = -\partial_\theta \log p_t(\theta).

    Parameters
    ----------
    theta, time : Tensor, shape=[...]
        Samples and their times (no gradient is taken through them).

    Returns
    -------
    Tensor, shape=broadcast(theta, time)
    """
    with torch.enable_grad():
        leaf = theta.detach().requires_grad_(True)
        log_p = sphere_log_density(leaf, time.detach())
        (grad,) = torch.autograd.grad(log_p.sum(), leaf)
    return -grad
