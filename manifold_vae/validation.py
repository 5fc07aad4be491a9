r"""The one input-validation path of the VAE's public methods and of the training front ends.

Every public entry point that takes data or latent coordinates (``fit``, ``fit_ensemble``,
``VAE.elbo``, ``encode``, ``decode``, ``point_log_likelihood``, ``model``, ``guide``) checks
its tensors here once, before any network sees them, and raises a ``ValueError`` that names the
argument and what is wrong with it:

- it is a ``torch.Tensor`` of a floating dtype (integer, boolean and complex tensors are
  refused);
- its shape is ``(N, *data_shape)`` for data, ``(..., dim)`` for latent coordinates;
- it is not empty;
- its values are finite and lie in the support of the likelihood
  (:attr:`~manifold_vae.likelihoods.Likelihood.support`, e.g. :math:`[0, 1]` for a
  Bernoulli).

Floating tensors of another dtype than the model's parameters are **cast** to the model's
dtype (as :func:`~manifold_vae.training.fit` has always done), not refused: casting float32
data to a float64 model is exact, and a float32 model computes in float32 whatever its input.

The values are checked with one fused reduction per tensor (finite and in the support); the
slower diagnosis of what is wrong runs only when something is. The training loop validates its
data once, in the front end, never per step.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor
from torch.distributions import constraints

__all__ = [
    "check_coordinates",
    "check_data",
    "check_num_samples",
    "check_real",
    "check_values",
    "describe_support",
]


def check_num_samples(num_samples: Any, name: str = "num_samples") -> int:
    """``num_samples`` as an ``int``; ``ValueError`` naming ``name`` unless an integer >= 1."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {num_samples!r}")
    if num_samples < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {num_samples!r}")
    return int(num_samples)


def check_real(value: Any, name: str) -> float:
    """``value`` as a ``float``; ``ValueError`` naming ``name`` unless it is a finite real."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _check_tensor(x: Any, name: str) -> Tensor:
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def describe_support(support: constraints.Constraint) -> str:
    """``[0, 1]`` for an interval constraint, else the constraint's ``repr``."""
    lower = getattr(support, "lower_bound", None)
    upper = getattr(support, "upper_bound", None)
    if isinstance(support, constraints.interval) and lower is not None and upper is not None:
        return f"[{lower:g}, {upper:g}]"
    return repr(support)


def _rows(bad: Tensor) -> list[int]:
    """The first five datapoints (leading index) with a ``True`` entry of ``bad``."""
    return bad.reshape(bad.shape[0], -1).any(1).nonzero().flatten()[:5].tolist()


def check_values(
    x: Tensor, name: str, support: constraints.Constraint | None = None, owner: str = ""
) -> None:
    """``ValueError`` naming ``name`` if ``x`` has a non-finite value or one outside ``support``.

    Parameters
    ----------
    x : Tensor, shape=[N, ...]
        A floating tensor with at least one dimension (the datapoints along the first).
    name : str
        The argument's name, for the message.
    support : Constraint, optional
        Where every value must lie (default: anywhere finite).
    owner : str
        Who defines the support, for the message (e.g. ``"a Bernoulli likelihood"``).
    """
    finite = torch.isfinite(x)
    ok = finite if support is None or support is constraints.real else finite & support.check(x)
    if bool(ok.all()):
        return
    if not bool(finite.all()):
        raise ValueError(
            f"{name} contains nan or inf values (datapoints {_rows(~finite)} ...); "
            "every value must be finite"
        )
    inside = x[ok]
    raise ValueError(
        f"{name} for {owner or 'this model'} must lie in {describe_support(support)}, got values "
        f"in [{x.min().item():.4g}, {x.max().item():.4g}] (datapoints {_rows(~ok)} ...; "
        f"{inside.numel()} of {x.numel()} values inside)"
    )


def check_data(
    x: Any,
    data_shape: torch.Size,
    *,
    name: str = "data",
    likelihood: Any = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Validate a batch of datapoints; return it cast to ``dtype``.

    Parameters
    ----------
    x : Tensor, shape=[N, *data_shape]
        The datapoints, ``N >= 1``.
    data_shape : torch.Size
        The shape of one datapoint.
    name : str
        The argument's name, for the messages.
    likelihood : Likelihood, optional
        Whose :attr:`~manifold_vae.likelihoods.Likelihood.support` every value must lie in.
    dtype : torch.dtype, optional
        The model's dtype, which ``x`` is cast to (``None``: left as it is).

    Returns
    -------
    Tensor, shape=[N, *data_shape]

    Raises
    ------
    ValueError
        Naming ``name``: not a tensor, not floating, wrong shape, empty, non-finite values or
        values outside the likelihood's support.
    """
    x = _check_tensor(x, name)
    if x.dim() != len(data_shape) + 1 or x.shape[1:] != data_shape:
        raise ValueError(
            f"{name} must have shape (N, {', '.join(map(str, data_shape))}), got "
            f"{tuple(x.shape)} (N datapoints of the model's data_shape {tuple(data_shape)})"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no datapoints")
    support = getattr(likelihood, "support", None)
    owner = f"a {type(likelihood).__name__} likelihood" if likelihood is not None else ""
    check_values(x, name, support, owner)
    return x if dtype is None else x.to(dtype)


def check_coordinates(
    z: Any, dim: int, *, name: str = "z", dtype: torch.dtype | None = None
) -> Tensor:
    """Validate latent coordinates ``(..., dim)``; return them cast to ``dtype``.

    Parameters
    ----------
    z : Tensor, shape=[..., dim]
        Latent coordinates (any leading batch shape, at least one point).
    dim : int
        The latent manifold's coordinate size.
    name : str
        The argument's name, for the messages.
    dtype : torch.dtype, optional
        The model's dtype, which ``z`` is cast to.

    Raises
    ------
    ValueError
        Naming ``name``: not a tensor, not floating, last dimension not ``dim``, empty, or
        non-finite values.
    """
    z = _check_tensor(z, name)
    if z.dim() == 0 or z.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (..., {dim}) (latent coordinates), got {tuple(z.shape)}"
        )
    if z.numel() == 0:
        raise ValueError(f"{name} is empty: it has no points")
    check_values(z.reshape(-1, dim), name)
    return z if dtype is None else z.to(dtype)
