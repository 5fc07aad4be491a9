"""Short reprs of distribution parameters."""

from __future__ import annotations

from torch import Tensor


def shape_repr(name: str, value: Tensor, event_dims: int = 0) -> str:
    """``name: value`` for a single parameter (a scalar, or one event vector), else its shape."""
    if value.numel() == 1 and event_dims == 0:
        return f"{name}: {value.item():.4g}"
    if event_dims and value.numel() == value.shape[value.dim() - event_dims :].numel():
        return f"{name}: {[round(v, 4) for v in value.reshape(-1).tolist()]}"
    return f"{name}: {tuple(value.shape)}"
