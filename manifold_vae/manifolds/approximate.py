r"""An APPROXIMATE heat kernel for manifolds without a closed form: use only when asked for.

Every built-in manifold has an exact heat kernel (:meth:`LatentManifold.heat_kernel`). For a
manifold that has none, :func:`approximate_heat_kernel` gives a stand-in built only from the
protocol's geometry (:meth:`LatentManifold.exp`, :meth:`~LatentManifold.to_tangent`,
:meth:`~LatentManifold.distance`):

* **sampler**: a geodesic random walk of ``steps`` steps,
  :math:`x_{k+1} = \exp_{x_k}\big(\sqrt{2t/N}\, P_{x_k}\varepsilon_k\big)`, :math:`\varepsilon_k
  \sim N(0, I)` in the ambient space and :math:`P_x` the orthogonal projection onto the tangent
  space (so the step is an isotropic Gaussian of covariance :math:`(2t/N) I` in the tangent
  space: convention :math:`\partial_t p = \Delta p`). It converges weakly to the heat kernel as
  :math:`N \to \infty`, with a bias of order :math:`t^2 / N` on curved manifolds;
* **density**: Varadhan's short-time asymptotics with the Euclidean prefactor,

  .. math::

      \log \tilde p_t(x \mid y) = -\frac n2 \log(4\pi t) - \frac{d(x, y)^2}{4t},

  :math:`n` the intrinsic dimension and :math:`d` the geodesic distance. It omits the van Vleck
  factor and the other images of the point, so it is not normalised on a compact or curved
  manifold: its relative error grows with the distance from the point already at small
  :math:`t` (on :math:`S^2` the missing factor :math:`\sqrt{\theta/\sin\theta}`: about 2% at
  :math:`\theta = 0.5`, 20% at :math:`\pi/2`) and with :math:`t`, and it is of order one near
  the cut locus for every :math:`t` (on :math:`S^1` the omitted image doubles the density at the
  antipode).

The sampler and the density approximate the same kernel but are not each other's exact
counterpart. The measured errors on :math:`S^1` and :math:`S^2` against the exact kernels are
in ``docs/manifolds.md``. The class name and ``repr`` say *approximate*; nothing in the package
uses this module unless a user calls it.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

from .base import LatentManifold

__all__ = ["ApproximateHeatKernel", "approximate_heat_kernel"]


class ApproximateHeatKernel(TorchDistribution):
    r"""APPROXIMATE heat kernel on embedded points: geodesic random walk plus Varadhan density.

    Not exact (see the module docstring for the error). ``rsample`` is pathwise differentiable
    in ``point`` and ``time`` through the walk; ``log_prob`` is with respect to the Riemannian
    volume.

    Parameters
    ----------
    manifold : LatentManifold
        Provides ``exp``, ``to_tangent``, ``distance``, ``intrinsic_dim``.
    point : Tensor, shape=[..., ambient_dim]
        Location (embedded point).
    time : Tensor, shape=[...]
        Positive diffusion time, :math:`\partial_t p = \Delta p`.
    steps : int
        Number :math:`N` of random-walk steps.
    """

    arg_constraints = {"time": constraints.positive}
    has_rsample = True

    def __init__(
        self,
        manifold: LatentManifold,
        point: Tensor,
        time: Tensor,
        steps: int = 64,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(manifold, LatentManifold):
            raise ValueError(f"manifold must be a LatentManifold, got {manifold!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        point = torch.as_tensor(point)
        if point.ndim < 1 or point.shape[-1] != manifold.ambient_dim:
            raise ValueError(
                f"point must have shape (..., {manifold.ambient_dim}) for {manifold!r}, "
                f"got {tuple(point.shape)}"
            )
        time = torch.as_tensor(time, dtype=point.dtype, device=point.device)
        if not bool(torch.isfinite(time).all()) or not bool((time > 0).all()):
            raise ValueError(f"time must be positive and finite, got {time}")
        batch = torch.broadcast_shapes(point.shape[:-1], time.shape)
        self.manifold, self.steps = manifold, steps
        self.point = point.expand(*batch, manifold.ambient_dim)
        self.time = time.expand(batch)
        event = torch.Size([manifold.ambient_dim])
        super().__init__(batch, event, validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return self.manifold.point_support()

    def expand(self, batch_shape: torch.Size, _instance=None) -> ApproximateHeatKernel:
        batch_shape = torch.Size(batch_shape)
        point = self.point.expand(*batch_shape, self.manifold.ambient_dim)
        return ApproximateHeatKernel(
            self.manifold, point, self.time.expand(batch_shape), self.steps, self._validate_args
        )

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        x = self.point.expand(shape)
        scale = torch.sqrt(2.0 * self.time / self.steps).unsqueeze(-1)
        for _ in range(self.steps):
            noise = torch.randn(shape, dtype=x.dtype, device=x.device)
            x = self.manifold.exp(self.manifold.to_tangent(scale * noise, x), x)
        return x

    def log_prob(self, value: Tensor) -> Tensor:
        r""":math:`-\tfrac n2\log(4\pi t) - d(x, y)^2 / 4t` (Varadhan; approximate)."""
        if self._validate_args:
            self._validate_sample(value)
        distance = self.manifold.distance(value, self.point)
        n = self.manifold.intrinsic_dim
        return -0.5 * n * torch.log(4.0 * math.pi * self.time) - distance**2 / (4.0 * self.time)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.manifold!r}, steps={self.steps}, "
            "approximate: geodesic random walk and Varadhan density, not exact)"
        )


def approximate_heat_kernel(
    manifold: LatentManifold, point: Tensor, time: Tensor | float, steps: int = 64
) -> ApproximateHeatKernel:
    r"""An APPROXIMATE heat kernel at ``(point, time)``: see :class:`ApproximateHeatKernel`.

    Parameters
    ----------
    manifold : LatentManifold
        Any manifold implementing ``exp``, ``to_tangent`` and ``distance``.
    point : Tensor, shape=[..., ambient_dim]
        Location.
    time : Tensor or float, shape=[...]
        Positive diffusion time (:math:`\partial_t p = \Delta p`, Brownian time :math:`2t`).
    steps : int
        Random-walk steps :math:`N` (bias of order :math:`t^2/N` on curved manifolds).

    Returns
    -------
    ApproximateHeatKernel
    """
    return ApproximateHeatKernel(manifold, point, torch.as_tensor(time), steps)
