r"""The generic VAE: one model for every latent manifold.

.. math::

    \mathrm{ELBO}(x) = E_{q(z|x)}[\log p(x \mid z)] - \beta\,\mathrm{KL}(q(z|x) \| p(z)),

with prior :math:`p(z)` and posterior family :math:`q` supplied by the latent manifold, the
likelihood :math:`p(x \mid z)` by a :class:`~manifold_vae.likelihoods.Likelihood` applied to the
decoder evaluated at the embedded point of :math:`z`. The baseline VAE (thesis Ch. 4) is
``VAE(Euclidean(2), ...)``, the diffusion VAE (Ch. 7, 11) ``VAE(Circle(), ...)`` or
``VAE(CliffordTorus(), ...)``.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import pyro
import torch
from pyro import poutine
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from .checkpoint import load_vae, save_vae
from .likelihoods import Likelihood
from .manifolds import LatentManifold
from .networks import DenseNetwork, default_hidden

__all__ = ["ELBO", "VAE", "elbo_terms"]


class ELBO(NamedTuple):
    """Per-datapoint terms of the evidence lower bound, each of shape ``(N,)``."""

    #: Monte Carlo estimate of :math:`E_q \log p(x \mid z)` (a log-likelihood, not a loss).
    reconstruction: Tensor
    #: :math:`\mathrm{KL}(q \| p)`, exact where registered.
    kl: Tensor
    #: ``reconstruction - beta * kl``.
    elbo: Tensor


def elbo_terms(log_likelihood: Tensor, kl: Tensor, beta: float) -> ELBO:
    r"""Combine the per-sample log-likelihoods and the KL into the ELBO terms.

    .. math::

        \mathrm{ELBO} = \frac1S \sum_{s=1}^S \log p(x \mid z_s) - \beta\,\mathrm{KL}.

    Parameters
    ----------
    log_likelihood : Tensor, shape=[S, *batch]
        :math:`\log p(x \mid z_s)` for the ``S`` latent samples.
    kl : Tensor, shape=batch
        :math:`\mathrm{KL}(q \| p)` per datapoint.
    beta : float
        Weight of the KL term.
    """
    reconstruction = log_likelihood.mean(0)
    return ELBO(reconstruction, kl, reconstruction - beta * kl)


class VAE(nn.Module):
    r"""Variational autoencoder with a latent manifold.

    Parameters
    ----------
    latent : LatentManifold
        The latent space (e.g. ``Euclidean(2)``, ``Circle()``, ``CliffordTorus()``).
    data_shape : tuple of int
        Shape of one datapoint, e.g. ``(25,)`` or ``(1, H, W)``.
    likelihood : Likelihood
        Decoder distribution family.
    encoder, decoder : nn.Module, optional
        Custom networks. The encoder maps ``(N, *data_shape)`` to
        ``(N, latent.posterior_params)``; the decoder maps embedded points
        ``(N, latent.ambient_dim)`` to ``(N, *data_shape)``. Default: :class:`DenseNetwork`.
        Checkpoints store their weights, not their code: :meth:`load` needs them passed.
    hidden : int, optional
        Units per hidden layer of the default networks (default ``floor(D/3)``, Sec. 3.5).
    depth : int
        Hidden layers of the default networks (thesis: 2).
    activation : str
        Activation of the default networks.
    """

    def __init__(
        self,
        latent: LatentManifold,
        data_shape: tuple[int, ...] | torch.Size,
        likelihood: Likelihood,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        hidden: int | None = None,
        depth: int = 2,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if not isinstance(latent, LatentManifold):
            raise ValueError(f"latent must be a LatentManifold, got {type(latent).__name__}")
        if not isinstance(likelihood, Likelihood):
            raise ValueError(f"likelihood must be a Likelihood, got {type(likelihood).__name__}")
        data_shape = torch.Size(data_shape)
        if len(data_shape) == 0 or any(s < 1 for s in data_shape):
            raise ValueError(
                f"data_shape must be a non-empty shape of positive sizes, got {data_shape}"
            )
        self.latent = latent
        self.data_shape = data_shape
        self.likelihood = likelihood
        likelihood.build(data_shape)
        self.hidden = hidden if hidden is not None else default_hidden(data_shape)
        self.depth = depth
        self.activation = activation
        #: The names of the networks passed to the constructor (``()`` for the defaults).
        self.custom_networks: tuple[str, ...] = tuple(
            name for name, net in (("encoder", encoder), ("decoder", decoder)) if net is not None
        )
        self.encoder = (
            encoder
            if encoder is not None
            else DenseNetwork(
                tuple(data_shape), (latent.posterior_params,), self.hidden, depth, activation
            )
        )
        self.decoder = (
            decoder
            if decoder is not None
            else DenseNetwork(
                (latent.ambient_dim,), tuple(data_shape), self.hidden, depth, activation
            )
        )

    # --- the two halves ------------------------------------------------------------------
    def encode(self, x: Tensor) -> Distribution:
        """Posterior :math:`q(z|x)` over latent coordinates, batch ``(N,)``, event ``(dim,)``."""
        return self.latent.posterior(self.encoder(x))

    def decode(self, z: Tensor) -> Distribution:
        """Likelihood :math:`p(x \\mid z)` for latent coordinates ``z`` of shape ``(..., dim)``."""
        return self.likelihood(self._decoder_output(self.latent.to_point(z)))

    def _decoder_output(self, points: Tensor) -> Tensor:
        """Decoder outputs ``(..., *data_shape)`` at embedded points ``(..., ambient_dim)``.

        The decoder sees them flattened to ``(prod(...), ambient_dim)``.
        """
        batch = points.shape[:-1]
        output = self.decoder(points.reshape(-1, points.shape[-1]))
        return output.reshape(*batch, *self.data_shape)

    def point_log_likelihood(self, points: Tensor, x: Tensor) -> Tensor:
        r""":math:`\log p(x \mid z)` at embedded points ``(S, N, ambient_dim)``: shape ``(S, N)``.

        ``x`` has shape ``(N, *data_shape)``. The ELBO's reconstruction term, shared with the
        stacked ensemble backend (:mod:`manifold_vae.trainer.stacked`), which maps it over
        members with vmap.
        """
        return self.likelihood.log_density(self._decoder_output(points), x)

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        """The latent manifold's prior, by default on this model's dtype and device."""
        p = next(self.parameters())
        return self.latent.prior(dtype=dtype or p.dtype, device=device or p.device)

    def conditional(self, coords: Tensor) -> Distribution:
        r""":math:`p(x \mid z)` at coordinates ``(..., dim)``: :meth:`decode`.

        The name shared with :class:`~manifold_vae.datasets.GenerativeModel` (the protocol
        :class:`~manifold_vae.latent_model.LatentVariableModel`).
        """
        return self.decode(coords)

    def decoder_mean(self, coords: Tensor) -> Tensor:
        r""":math:`E[x \mid z]` at coordinates ``(..., dim)``, shape ``(..., *data_shape)``."""
        return self.decode(coords).mean

    def kl(self, posterior: Distribution, z: Tensor | None = None) -> Tensor:
        """:math:`\\mathrm{KL}(q \\| p)` per datapoint: exact when registered with torch.

        For a user's manifold without a registered KL, the Monte Carlo average of
        ``log q(z) - log p(z)`` over the given samples ``z`` ``(S, N, dim)`` is used.
        """
        prior = self.prior()
        try:
            return kl_divergence(posterior, prior.expand(posterior.batch_shape))
        except NotImplementedError:
            if z is None:
                raise
            return (posterior.log_prob(z) - prior.log_prob(z)).mean(0)

    def elbo(
        self, x: Tensor, num_samples: int = 1, beta: float = 1.0, analytic_kl: bool = True
    ) -> ELBO:
        """ELBO terms per datapoint, with ``num_samples`` reparameterised latent samples.

        Parameters
        ----------
        x : Tensor, shape=[N, *data_shape]
            Datapoints.
        num_samples : int
            Latent samples :math:`L` for the reconstruction term.
        beta : float
            Weight of the KL term.
        analytic_kl : bool
            Use the exact KL (default); ``False`` uses ``log q(z) - log p(z)`` at the samples,
            which is what Pyro's ``Trace_ELBO`` estimates.

        The latent samples: on a latent with
        :meth:`~manifold_vae.manifolds.LatentManifold.reparameterize`, standard normal noise
        ``(num_samples, N, dim)`` drawn with ``torch.randn`` (what ``posterior.rsample`` draws)
        mapped by it, as the stacked ensemble does; otherwise ``posterior.rsample``.
        """
        raw = self.encoder(x)
        posterior = self.latent.posterior(raw)
        if self.latent.reparameterizable:  # what rsample draws, through the latent's own map
            noise = torch.randn(
                (num_samples, *raw.shape[:-1], self.latent.dim), dtype=raw.dtype, device=raw.device
            )
            z = self.latent.reparameterize(posterior, noise)
        else:
            z = posterior.rsample(torch.Size([num_samples]))
        log_likelihood = self.point_log_likelihood(self.latent.to_point(z), x)
        if analytic_kl:
            kl = self.kl(posterior, z)
        else:
            kl = (posterior.log_prob(z) - self.prior().log_prob(z)).mean(0)
        return elbo_terms(log_likelihood, kl, beta)

    def embedded_location(self, x: Tensor) -> Tensor:
        """Embedded points of the posterior locations, shape ``(N, latent.ambient_dim)``."""
        return self.latent.to_point(self.latent.posterior_location(self.encode(x)))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction ``decode(location(encode(x))).mean``, shape ``(N, *data_shape)``."""
        return self.decode(self.latent.posterior_location(self.encode(x))).mean

    # --- Pyro ----------------------------------------------------------------------------
    def model(self, x: Tensor, beta: float = 1.0) -> None:
        """Pyro model: ``z ~ prior``, ``x ~ likelihood(decoder(z))``, in a plate over data.

        The KL weight ``beta`` scales the latent site (no scale handler when it is 1).
        """
        pyro.module("vae", self)
        with pyro.plate("data", x.shape[0]):
            prior = self.prior().expand(x.shape[:1])
            if beta == 1.0:
                z = pyro.sample("latent", prior)
            else:
                with poutine.scale(scale=beta):
                    z = pyro.sample("latent", prior)
            pyro.sample("obs", self.decode(z), obs=x)

    def guide(self, x: Tensor, beta: float = 1.0) -> None:
        """Pyro guide: ``z ~ encode(x)``."""
        pyro.module("vae", self)
        with pyro.plate("data", x.shape[0]):
            if beta == 1.0:
                pyro.sample("latent", self.encode(x))
            else:
                with poutine.scale(scale=beta):
                    pyro.sample("latent", self.encode(x))

    # --- persistence ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and a config to rebuild the model to one file, atomically.

        Custom networks are saved by their weights only (and their class name): pass the
        modules again to :meth:`load`. See :mod:`manifold_vae.checkpoint`.
        """
        save_vae(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        map_location: str | torch.device | None = None,
        *,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> VAE:
        """Rebuild a model written by :meth:`save`, never unpickling code.

        Parameters
        ----------
        path : path
            The checkpoint.
        map_location : str or torch.device, optional
            Device to move the model to.
        encoder, decoder : nn.Module, optional
            Modules of the architecture of the custom networks the model was saved with
            (required then); their weights are loaded from the file.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            For corrupt, crafted or foreign files, an unregistered likelihood, custom
            networks not passed, or weights that do not fit them.
        """
        return load_vae(path, cls, map_location, encoder=encoder, decoder=decoder)

    def extra_repr(self) -> str:
        return f"latent={self.latent!r}, data_shape={tuple(self.data_shape)}"
