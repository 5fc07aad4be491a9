"""Default encoder and decoder networks (thesis Sec. 3.5): dense layers of ``floor(D/3)`` units."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "DenseNetwork", "default_hidden"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
}


def default_hidden(data_shape: torch.Size) -> int:
    """``floor(D / 3)`` units for data of ``D`` features (at least 2)."""
    return max(2, math.prod(data_shape) // 3)


class DenseNetwork(nn.Module):
    """``depth`` dense hidden layers of ``hidden`` units and a linear output layer.

    Inputs of shape ``(N, *in_shape)`` are flattened; outputs have shape ``(N, *out_shape)``.

    Parameters
    ----------
    in_shape, out_shape : tuple of int
        Shapes of one input and one output.
    hidden : int
        Units per hidden layer.
    depth : int
        Number of hidden layers (``0`` gives a linear map).
    activation : str
        One of :data:`ACTIVATIONS`.
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        hidden: int,
        depth: int = 2,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if depth < 0 or hidden < 1:
            raise ValueError(f"need depth >= 0 and hidden >= 1, got depth={depth}, hidden={hidden}")
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        layers: list[nn.Module] = []
        width = math.prod(self.in_shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        layers.append(nn.Linear(width, math.prod(self.out_shape)))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[: x.dim() - len(self.in_shape)]
        y = self.layers(x.reshape(*batch, -1))
        return y.reshape(*batch, *self.out_shape)
