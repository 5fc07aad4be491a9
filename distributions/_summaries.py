"""Circular summaries shared by the heat kernels on the circle and the torus."""

from __future__ import annotations

import torch
from torch import Tensor

from .angles import wrap_angle

__all__ = ["WrappedNormalSummaries"]


class WrappedNormalSummaries:
    r"""Summaries of a (product of) wrapped normal(s) with attributes ``loc`` and ``time``.

    Per factor: mean direction :math:`\mu` (wrapped to :math:`[-\pi, \pi)`), mean resultant
    length :math:`|E e^{i\theta}| = e^{-t}` and circular variance :math:`1 - e^{-t}`; ``mean``
    and ``mode`` are the mean direction (as for ``torch.distributions.VonMises``).
    """

    loc: Tensor
    time: Tensor

    @property
    def mean_direction(self) -> Tensor:
        r"""Circular mean direction :math:`\arg E e^{i\theta} = \mu`, wrapped to [-pi, pi)."""
        return wrap_angle(self.loc)

    @property
    def mean_resultant_length(self) -> Tensor:
        r"""Mean resultant length :math:`|E e^{i\theta}| = e^{-t}`."""
        return torch.exp(-self.time)

    @property
    def mean(self) -> Tensor:
        """The circular mean direction."""
        return self.mean_direction

    @property
    def mode(self) -> Tensor:
        """The circular mean direction (the density's maximum)."""
        return self.mean_direction

    @property
    def variance(self) -> Tensor:
        r"""Circular variance :math:`1 - e^{-t}`."""
        return -torch.expm1(-self.time)
