r"""Closed-form KL divergences between decoder distributions :math:`p(x \mid z)`.

The decoders of the package's generative models are products over the data features of one
univariate family (:class:`torch.distributions.Independent` over ``Normal`` or ``Bernoulli``).
Their KL divergence is a sum over features of a univariate closed form, which each likelihood
gives as its method :meth:`~manifold_vae.likelihoods.Likelihood.decoder_kl`;
:func:`decoder_kl` finds the likelihood by the family of the features among the registered
ones (:data:`~manifold_vae.likelihoods.LIKELIHOODS`), so a user's likelihood that declares
``feature_family`` and ``feature_kl`` works here too. The elementwise closed forms
:func:`normal_kl` and :func:`bernoulli_kl` live with the likelihoods and are re-exported here.
"""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Distribution

from ..likelihoods import LIKELIHOODS, Likelihood, bernoulli_kl, feature_distribution, normal_kl

__all__ = ["bernoulli_kl", "decoder_kl", "decoder_likelihood", "normal_kl"]


def decoder_likelihood(p: Distribution, q: Distribution) -> type[Likelihood]:
    """The registered likelihood class whose decoders ``p`` and ``q`` both are.

    Among the registered likelihoods whose ``feature_family`` holds the features of both, the
    most specific family wins (an exact class match first, then the deepest subclass), ties by
    name: a user likelihood with a broader family cannot take over the built-in decoders.

    Raises
    ------
    ValueError
        If no registered likelihood declares the family of both, naming the families.
    """
    base_p, _ = feature_distribution(p)
    base_q, _ = feature_distribution(q)
    matches = [
        (name, likelihood)
        for name, likelihood in LIKELIHOODS.items()
        if likelihood.feature_family is not None
        and isinstance(base_p, likelihood.feature_family)
        and isinstance(base_q, likelihood.feature_family)
    ]
    if matches:

        def specificity(match: tuple[str, type[Likelihood]]) -> tuple[bool, int, str]:
            name, likelihood = match
            family = likelihood.feature_family
            exact = type(base_p) is family and type(base_q) is family
            return (not exact, -len(family.__mro__), name)

        return min(matches, key=specificity)[1]
    families = {c.feature_family.__name__ for _, c in LIKELIHOODS.items() if c.feature_family}
    raise ValueError(
        "decoder_kl has a closed form for two decoders of one registered likelihood family "
        f"(products over features of {' or '.join(sorted(families))}), got {type(base_p).__name__} "
        f"and {type(base_q).__name__}"
    )


def decoder_kl(p: Distribution, q: Distribution) -> Tensor:
    r""":math:`\mathrm{KL}(p \,\|\, q)` of two decoder distributions, summed over the data features.

    :meth:`~manifold_vae.likelihoods.Likelihood.decoder_kl` of the registered likelihood whose
    ``feature_family`` both have (:func:`decoder_likelihood`): for the built-in ones, products
    over features of ``Normal`` (any scales, fixed or learned) or ``Bernoulli`` (from logits or
    probabilities), with the same event shape; batch shapes broadcast. Returns a tensor of
    shape ``broadcast(p.batch_shape, q.batch_shape)``; raises ``ValueError`` if no registered
    likelihood has the families of both, or the event shapes differ.
    """
    return decoder_likelihood(p, q).decoder_kl(p, q)
