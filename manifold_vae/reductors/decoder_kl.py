r"""Closed-form KL divergences between decoder distributions :math:`p(x \mid z)`.

The decoders of the package's generative models are products over the data features of one
univariate family (:class:`torch.distributions.Independent` over ``Normal`` or ``Bernoulli``):
Gaussian with a fixed scale :math:`\sigma_X`, Gaussian with learned per-feature scales, and
Bernoulli with logits. Their KL divergence is a sum over features of a univariate closed form,
written here in plain tensor code (differentiable, no data-dependent branches, no scipy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent, Normal

__all__ = ["bernoulli_kl", "decoder_kl", "normal_kl"]


def normal_kl(loc_p: Tensor, scale_p: Tensor, loc_q: Tensor, scale_q: Tensor) -> Tensor:
    r"""Elementwise KL divergence of two univariate normal distributions.

    .. math::

        \mathrm{KL} = \frac{(\mu_1 - \mu_2)^2}{2\sigma_2^2}
        + \frac12\Big(\frac{\sigma_1^2}{\sigma_2^2} - 1 - \log\frac{\sigma_1^2}{\sigma_2^2}\Big),

    the univariate form of the thesis's Eq. 8.10; summed over :math:`D` features with scalar
    scales it is Eq. 8.11. The variance term is computed as :math:`e^u - 1 - u` with
    :math:`u = 2\log(\sigma_1/\sigma_2)` (``expm1``), exactly 0 for equal scales.

    Parameters
    ----------
    loc_p, scale_p, loc_q, scale_q : Tensor, shape=[...]
        Means and (positive) standard deviations, broadcastable.

    Returns
    -------
    Tensor, shape=[...] (the broadcast shape)
    """
    u = 2.0 * (torch.log(scale_p) - torch.log(scale_q))
    return 0.5 * ((loc_p - loc_q) / scale_q) ** 2 + 0.5 * (torch.expm1(u) - u)


def bernoulli_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    r"""Elementwise :math:`\mathrm{KL}(\mathrm{Bernoulli}(s(a)) \,\|\, \mathrm{Bernoulli}(s(b)))`.

    With :math:`s` the logistic function, :math:`p = s(a)` and the softplus
    :math:`\log(1 + e^x)`,

    .. math::

        \mathrm{KL} = p \log\frac{p}{s(b)} + (1 - p)\log\frac{1 - p}{1 - s(b)}
        = \operatorname{softplus}(b) - \operatorname{softplus}(a) + p\,(a - b),

    which stays finite for logits of any size (no :math:`\log 0`).

    Parameters
    ----------
    logits_p, logits_q : Tensor, shape=[...]
        Logits :math:`a` and :math:`b`, broadcastable.

    Returns
    -------
    Tensor, shape=[...]
    """
    kl = (
        F.softplus(logits_q)
        - F.softplus(logits_p)
        + torch.sigmoid(logits_p) * (logits_p - logits_q)
    )
    return kl.clamp_min(0.0)


def _unwrap(d: Distribution) -> tuple[Distribution, int]:
    ndims = 0
    while isinstance(d, Independent):
        ndims += d.reinterpreted_batch_ndims
        d = d.base_dist
    return d, ndims


def decoder_kl(p: Distribution, q: Distribution) -> Tensor:
    r""":math:`\mathrm{KL}(p \,\|\, q)` of two decoder distributions, summed over the data features.

    Both must be products over features (``Independent``, or a bare univariate distribution
    with an empty event) of the same family: ``Normal`` (any scales, fixed or learned) or
    ``Bernoulli`` (from logits or probabilities), with the same event shape; batch shapes
    broadcast.

    .. math::

        \mathrm{KL}(p \,\|\, q) = \sum_{i=1}^{D} \mathrm{KL}(p_i \,\|\, q_i).

    Parameters
    ----------
    p, q : Distribution
        ``event_shape`` equal (the data shape), ``batch_shape`` broadcastable.

    Returns
    -------
    Tensor, shape=broadcast(p.batch_shape, q.batch_shape)

    Raises
    ------
    ValueError
        If the event shapes differ or the families are not both Normal or both Bernoulli.
    """
    if p.event_shape != q.event_shape:
        raise ValueError(
            f"p and q must have the same event shape (the data shape), got "
            f"{tuple(p.event_shape)} and {tuple(q.event_shape)}"
        )
    base_p, ndims_p = _unwrap(p)
    base_q, ndims_q = _unwrap(q)
    if isinstance(base_p, Normal) and isinstance(base_q, Normal):
        values = normal_kl(base_p.loc, base_p.scale, base_q.loc, base_q.scale)
    elif isinstance(base_p, Bernoulli) and isinstance(base_q, Bernoulli):
        values = bernoulli_kl(base_p.logits, base_q.logits)
    else:
        raise ValueError(
            "decoder_kl has a closed form for Normal-Normal and Bernoulli-Bernoulli decoders "
            f"(products over features), got {type(base_p).__name__} and {type(base_q).__name__}"
        )
    ndims = max(ndims_p, ndims_q, len(p.event_shape))
    return values.sum(dim=tuple(range(-ndims, 0))) if ndims else values
