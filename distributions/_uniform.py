"""What the uniform distributions on the circle, the torus and the sphere share."""

from __future__ import annotations

from typing import ClassVar

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

__all__ = ["ConstantDensity"]


class ConstantDensity(TorchDistribution):
    r"""A normalised uniform distribution: log density :math:`-\log|M|` on its manifold.

    Holds the dtype and device of the samples (``log_prob`` follows its input), and gives
    ``log_prob``, ``entropy = log|M|`` and ``expand``. A subclass sets :attr:`log_volume`,
    ``support`` and ``rsample``, calls :meth:`_setup` from its ``__init__``, and names any
    further attributes that ``expand`` must copy in :attr:`_copied`.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    has_rsample = True
    #: Attributes besides dtype and device that ``expand`` copies.
    _copied: ClassVar[tuple[str, ...]] = ()

    @property
    def log_volume(self) -> float:
        """:math:`\\log|M|` of the measure the density is taken against."""
        raise NotImplementedError

    def _setup(
        self,
        batch_shape: torch.Size | tuple[int, ...],
        event_shape: torch.Size | tuple[int, ...],
        dtype: torch.dtype | None,
        device: torch.device | str | None,
        validate_args: bool | None,
    ) -> None:
        self._dtype = dtype if dtype is not None else torch.get_default_dtype()
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args)

    def expand(self, batch_shape: torch.Size, _instance=None) -> ConstantDensity:
        new = self._get_checked_instance(type(self), _instance)
        for name in ("_dtype", "_device", *self._copied):
            setattr(new, name, getattr(self, name))
        super(ConstantDensity, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        batch = value.shape[: value.dim() - len(self.event_shape)]
        shape = torch.broadcast_shapes(batch, self.batch_shape)
        return torch.full(shape, -self.log_volume, dtype=value.dtype, device=value.device)

    def entropy(self) -> Tensor:
        return torch.full(self.batch_shape, self.log_volume, dtype=self._dtype, device=self._device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_shape={tuple(self.batch_shape)})"
