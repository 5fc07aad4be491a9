r"""The tolerance :math:`\Delta` of a reductor map (thesis Definition 8.1.1, Lemma 4).

For generative models :math:`p_1(z)\,p_1(x \mid z)` on :math:`Z_1` and :math:`p_2(x \mid w)` on
:math:`Z_2`, a map :math:`M: Z_1 \to Z_2` is a :math:`\Delta`-reductor when

.. math::

    \mathrm{KL}\big(p_{X \times Z_1} \,\|\, p_{X \times M(Z_1)}\big)
    = \mathbb E_{z \sim p_1(z)}\Big[\mathrm{KL}\big(p_1(x \mid z) \,\|\, p_2(x \mid M(z))\big)\Big]
    \le \Delta

(Lemma 4). The expectation is estimated by Monte Carlo over the source prior (Eq. 8.9) with
the decoder KL in closed form (:func:`~manifold_vae.reductors.decoder_kl`), and reported with
its standard error :math:`\hat s / \sqrt L`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..latent_model import LatentVariableModel
from .decoder_kl import decoder_kl

__all__ = [
    "DeltaEstimate",
    "check_pair",
    "delta",
    "delta_samples",
    "model_dtype",
    "pointwise_optimum",
    "sample_prior",
]

Map = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class DeltaEstimate:
    r"""A Monte Carlo estimate of :math:`\Delta` (one value per map copy).

    Attributes
    ----------
    value : Tensor, shape=[copies] or []
        :math:`\hat\Delta = \frac1L \sum_l \mathrm{KL}_l`.
    stderr : Tensor, shape=[copies] or []
        Its standard error :math:`\mathrm{std}(\mathrm{KL}_l) / \sqrt L` (ddof = 1).
    num_samples : int
        :math:`L`.
    """

    value: Tensor
    stderr: Tensor
    num_samples: int


def check_pair(source: LatentVariableModel, target: LatentVariableModel) -> None:
    """``ValueError`` unless the two models share their data shape and parameter dtype.

    A model without parameters (a known generating process) computes in the dtype it is
    given, so only two models that both have parameters must agree.
    """
    if tuple(source.data_shape) != tuple(target.data_shape):
        raise ValueError(
            f"source and target must model the same data shape, got {tuple(source.data_shape)} "
            f"and {tuple(target.data_shape)}"
        )
    dtypes = [
        next((p.dtype for p in m.parameters()), None) if isinstance(m, nn.Module) else None
        for m in (source, target)
    ]
    if None not in dtypes and dtypes[0] != dtypes[1]:
        raise ValueError(
            f"source and target must have the same dtype, got {dtypes[0]} and {dtypes[1]}: "
            "convert one with .to()"
        )


def model_dtype(model: LatentVariableModel) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of a model's parameters (default dtype on the CPU without any)."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def sample_prior(
    model: LatentVariableModel,
    num_samples: int,
    seed: int,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``num_samples`` coordinates ``(num_samples, latent.dim)`` from the model's prior.

    Drawn with torch's generator seeded by ``seed`` inside :func:`torch.random.fork_rng`, so the
    caller's random state is left as it was.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = model.prior(dtype=dtype, device=device)
        return prior.sample((num_samples,))


def delta_samples(
    source: LatentVariableModel,
    target: LatentVariableModel,
    map: Map,
    coords: Tensor,
    source_conditional: torch.distributions.Distribution | None = None,
) -> Tensor:
    r"""Per-sample decoder KLs :math:`\mathrm{KL}(p_1(x \mid z_l) \,\|\, p_2(x \mid M(z_l)))`.

    Parameters
    ----------
    source, target : LatentVariableModel
        The two generative models (same ``data_shape``).
    map : callable
        Source points ``(L, source.latent.ambient_dim)`` to target points, shape
        ``(copies, L, target.latent.ambient_dim)`` (a :class:`~manifold_vae.reductors.ReductorMap`)
        or ``(L, target.latent.ambient_dim)``.
    coords : Tensor, shape=[L, source.latent.dim]
        Source coordinates.
    source_conditional : Distribution, optional
        ``source.conditional(coords)`` if already computed.

    Returns
    -------
    Tensor, shape=[copies, L] or [L]
    """
    check_pair(source, target)
    if coords.dim() != 2 or coords.shape[-1] != source.latent.dim:
        raise ValueError(
            f"coords must have shape (L, {source.latent.dim}), got {tuple(coords.shape)}"
        )
    if source_conditional is None:
        source_conditional = source.conditional(coords)
    mapped = map(source.latent.to_point(coords))
    if mapped.shape[-1] != target.latent.ambient_dim or mapped.dim() not in (2, 3):
        raise ValueError(
            f"map must return target points of shape ([copies,] L, {target.latent.ambient_dim}),"
            f" got {tuple(mapped.shape)}"
        )
    target_conditional = target.conditional(target.latent.to_coordinates(mapped))
    return decoder_kl(source_conditional, target_conditional)


def delta(
    source: LatentVariableModel,
    target: LatentVariableModel,
    map: Map,
    num_samples: int = 10000,
    seed: int = 0,
) -> DeltaEstimate:
    r"""Estimate the tolerance :math:`\Delta` of ``map`` from ``source`` into ``target`` (Lemma 4).

    .. math::

        \hat\Delta = \frac1L \sum_{l=1}^{L}
        \mathrm{KL}\big(p_1(x \mid z_l) \,\|\, p_2(x \mid M(z_l))\big),
        \qquad z_l \sim p_1(z),

    with the decoder KL in closed form. For Gaussian decoders with scalar scales
    :math:`\sigma_1, \sigma_2` and :math:`D` features this is the thesis's Eq. 8.12 / 9.2:
    :math:`\frac{1}{2\sigma_2^2} \mathbb E\lVert\mu_1(z) - \mu_2(M(z))\rVert^2
    + \frac D2\big(\log\frac{\sigma_2^2}{\sigma_1^2} + \frac{\sigma_1^2}{\sigma_2^2} - 1\big)`.

    Parameters
    ----------
    source, target : LatentVariableModel
        Trained VAEs or known generating processes with the same ``data_shape``.
    map : callable
        Source points ``(L, source.latent.ambient_dim)`` to target points
        ``(copies, L, target.latent.ambient_dim)`` or ``(L, target.latent.ambient_dim)``.
    num_samples : int
        :math:`L \ge 2` prior samples.
    seed : int
        Seed of the prior samples (the global random state is restored).

    Returns
    -------
    DeltaEstimate
        ``value`` and ``stderr`` of shape ``(copies,)``, or ``()`` for a map returning
        ``(L, ambient_dim)``.
    """
    dtype, device = model_dtype(source)
    coords = sample_prior(source, num_samples, seed, dtype=dtype, device=device)
    with torch.no_grad():
        kl = delta_samples(source, target, map, coords)
    return DeltaEstimate(kl.mean(-1), kl.std(-1) / num_samples**0.5, num_samples)


def pointwise_optimum(
    source: LatentVariableModel,
    target: LatentVariableModel,
    candidates: Tensor,
    num_samples: int = 2000,
    seed: int = 0,
    chunk: int = 256,
) -> DeltaEstimate:
    r"""Delta of the best map of any form, over a finite set of target coordinates.

    .. math::

        \Delta^*_K = \mathbb E_{z \sim p_1(z)}
        \min_{k \le K} \mathrm{KL}\big(p_1(x \mid z) \,\|\, p_2(x \mid w_k)\big)
        \;\ge\; \inf_M \Delta(M),

    the map choosing for every :math:`z` the best candidate :math:`w_k`. On a dense grid of
    a low-dimensional target (e.g. a few thousand angles on a circle) it approximates
    :math:`\inf_M \Delta(M)`, the floor no reductor family can go below: what is left is
    the source decoder's own mismatch with every decoded point of the target. It bounds that
    floor from above (by the grid resolution) and is itself a Monte Carlo estimate, so a
    fitted map evaluated on other samples can come out below it by a few standard errors;
    compare the two on the same ``seed`` and ``num_samples``.

    Parameters
    ----------
    source, target : LatentVariableModel
        The two models (same ``data_shape``).
    candidates : Tensor, shape=[K, target.latent.dim]
        Target coordinates to choose from.
    num_samples : int
        Source prior samples.
    seed : int
        Seed of the prior samples.
    chunk : int
        Source samples per batch (memory ``chunk * K * D``).

    Returns
    -------
    DeltaEstimate
        Scalar ``value`` and ``stderr``.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    if candidates.dim() != 2 or candidates.shape[-1] != target.latent.dim:
        raise ValueError(
            f"candidates must have shape (K, {target.latent.dim}), got {tuple(candidates.shape)}"
        )
    check_pair(source, target)
    dtype, device = model_dtype(source)
    coords = sample_prior(source, num_samples, seed, dtype=dtype, device=device)
    candidates = candidates.to(dtype=dtype, device=device)
    best = []
    with torch.no_grad():
        decoded = target.conditional(candidates)
        for part in coords.split(chunk):
            kl = decoder_kl(source.conditional(part.unsqueeze(1)), decoded)  # (chunk, K)
            best.append(kl.min(-1).values)
    values = torch.cat(best)
    return DeltaEstimate(values.mean(), values.std() / num_samples**0.5, num_samples)
