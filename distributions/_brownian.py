"""The Brownian-time constructor shared by the heat kernels."""

from __future__ import annotations

from typing import TypeVar

from torch import Tensor

__all__ = ["BrownianTime"]

_Kernel = TypeVar("_Kernel", bound="BrownianTime")


class BrownianTime:
    r"""``from_brownian_time`` for a heat kernel constructed as ``cls(loc, time, validate_args)``.

    The heat kernels solve :math:`\partial_t p = \Delta p`; Brownian motion with generator
    :math:`\Delta/2` run for Brownian time :math:`s` has the law at heat-equation time
    :math:`t = s/2`.
    """

    @classmethod
    def from_brownian_time(
        cls: type[_Kernel],
        loc: Tensor | float,
        brownian_time: Tensor | float,
        validate_args: bool | None = None,
    ) -> _Kernel:
        r"""The law of Brownian motion with generator :math:`\Delta/2` started at ``loc``.

        Brownian time :math:`s` corresponds to heat-equation time :math:`t = s/2`.
        """
        # a float stays a float, so that it takes the dtype of ``loc`` (as a time passed to the
        # constructor would), not torch's default dtype
        return cls(loc, brownian_time / 2.0, validate_args=validate_args)  # type: ignore[call-arg]
