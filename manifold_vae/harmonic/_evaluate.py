"""Evaluating a model's functions on many points: dtype, device, chunks, progress."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["evaluate_in_chunks", "model_dtype_device"]


def model_dtype_device(model: object) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of a model's parameters (an ``nn.Module``), else the defaults.

    A :class:`~manifold_vae.latent_model.LatentVariableModel` without parameters (e.g. a
    dataset's generating process) is evaluated in float64 on the CPU.
    """
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        first = next(iter(parameters()), None)
        if first is not None:
            return first.dtype, first.device
    return torch.float64, torch.device("cpu")


def evaluate_in_chunks(
    function: Callable[[Tensor], Tensor],
    inputs: Tensor,
    chunk: int = 4096,
    progress: bool = False,
    desc: str = "evaluating",
) -> Tensor:
    """``function(inputs)`` in chunks of ``chunk`` rows, without a graph.

    Parameters
    ----------
    function : callable
        Maps ``(P, ...)`` to ``(P, ...)`` row by row.
    inputs : Tensor, shape=[P, ...]
        The points.
    chunk : int
        Rows per call.
    progress : bool
        Show a progress bar over the chunks.
    desc : str
        Its label.

    Returns
    -------
    Tensor, shape=[P, ...]
    """
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of rows, got {chunk}")
    starts = range(0, inputs.shape[0], chunk)
    with torch.no_grad():
        parts = [
            function(inputs[s : s + chunk])
            for s in tqdm(starts, desc=desc, disable=not progress, leave=False)
        ]
    return torch.cat(parts)
