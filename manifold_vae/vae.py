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

import contextlib
import numbers
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import pyro
import torch
from pyro import poutine
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from .checkpoint import load_vae, save_vae
from .likelihoods import Likelihood
from .manifolds import LatentManifold, as_latent
from .networks import DenseNetwork, default_hidden
from .validation import check_coordinates, check_data, check_num_samples, check_real

__all__ = ["ELBO", "VAE", "MarginalLogLikelihood", "elbo_terms", "log_mean_exp", "seeded"]


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded with ``seed``; restore it afterwards.

    Everything built inside draws its initial weights from the seeded stream, so

    .. code-block:: python

        with seeded(3):
            vae = VAE(Circle(), (25,), Gaussian(0.1), encoder=MyEncoder())

    gives the same weights every time, custom networks included, and leaves the caller's
    global random state as it was. (Modules are built on the CPU; the CUDA generators are
    neither seeded nor changed.) ``VAE(..., seed=s)`` builds its default networks this way.

    Raises
    ------
    ValueError
        If ``seed`` is not an integer >= 0.
    """
    seed = _check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


class ELBO(NamedTuple):
    """Per-datapoint terms of the evidence lower bound, each of shape ``(N,)``."""

    #: Monte Carlo estimate of :math:`E_q \log p(x \mid z)` (a log-likelihood, not a loss).
    reconstruction: Tensor
    #: :math:`\mathrm{KL}(q \| p)`, exact where registered.
    kl: Tensor
    #: ``reconstruction - beta * kl``.
    elbo: Tensor


class MarginalLogLikelihood(NamedTuple):
    r"""Importance-weighted estimate of :math:`\log p(x)` per datapoint, each of shape ``(N,)``."""

    #: :math:`\hat L_K = \log \frac1K \sum_k w_k` (a lower bound in expectation).
    value: Tensor
    #: Delta-method standard error of ``value``: :math:`\hat\sigma_w / (\sqrt K\, \bar w)`.
    standard_error: Tensor
    #: Effective sample size :math:`(\sum_k w_k)^2 / \sum_k w_k^2` of the weights, in [1, K].
    effective_sample_size: Tensor


def log_mean_exp(log_w: Tensor) -> MarginalLogLikelihood:
    r"""Log of the mean of weights given in log space along axis 0, with its standard error.

    With :math:`m = \max_k \log w_k` and :math:`\tilde w_k = e^{\log w_k - m} \in (0, 1]`:
    :math:`\hat L = m + \log \bar{\tilde w}`, standard error
    :math:`s_{\tilde w} / (\sqrt K\, \bar{\tilde w})` (:math:`s` the sample standard
    deviation; 0 for :math:`K = 1`), effective sample size
    :math:`(\sum \tilde w)^2 / \sum \tilde w^2`.

    Parameters
    ----------
    log_w : Tensor, shape=[K, ...]
        Log weights (finite or :math:`-\infty`; at least one finite per column).

    Returns
    -------
    MarginalLogLikelihood, each of shape ``log_w.shape[1:]``
    """
    k = log_w.shape[0]
    top = log_w.amax(0)
    w = torch.exp(log_w - top)
    mean = w.mean(0)
    spread = w.std(0) if k > 1 else torch.zeros_like(mean)
    ess = w.sum(0) ** 2 / (w**2).sum(0)
    return MarginalLogLikelihood(top + torch.log(mean), spread / (k**0.5 * mean), ess)


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
    latent : LatentManifold or geomstats Manifold
        The latent space (e.g. ``Euclidean(2)``, ``Circle()``, ``CliffordTorus()``), or a
        geomstats space, mapped by :func:`~manifold_vae.manifolds.as_latent` (to the exact
        family where there is one, else to an approximate one with a warning).
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
    seed : int, optional
        Build the default networks inside :func:`seeded` ``(seed)``: the initial weights are a
        function of ``seed`` alone, and the caller's random state is left untouched. Without
        it they come from torch's global generator (``torch.manual_seed`` before building
        makes them reproducible too). With custom networks, build them inside
        ``seeded(seed)`` yourself: passing both is a ``ValueError``, since the seed could not
        reach weights that already exist.
    """

    def __init__(
        self,
        latent: LatentManifold | Any,
        data_shape: tuple[int, ...] | torch.Size,
        likelihood: Likelihood,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        hidden: int | None = None,
        depth: int = 2,
        activation: str = "relu",
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        latent = as_latent(latent)  # a geomstats space as given; a LatentManifold unchanged
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
        if seed is not None and self.custom_networks:
            raise ValueError(
                f"seed seeds the initial weights of the default networks, but a custom "
                f"{' and '.join(self.custom_networks)} was passed, whose weights already exist: "
                "build the networks and the VAE inside `with manifold_vae.seeded(seed):` instead"
            )
        context = seeded(seed) if seed is not None else contextlib.nullcontext()
        with context:
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

    # --- validation ----------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's parameters (data and coordinates are cast to it)."""
        return next(self.parameters()).dtype

    def check_data(self, x: Tensor, name: str = "x") -> Tensor:
        """``x`` validated as datapoints of this model and cast to its dtype.

        :func:`~manifold_vae.validation.check_data` with this model's ``data_shape``,
        likelihood (whose ``support`` the values must lie in) and dtype.

        Raises
        ------
        ValueError
            Naming ``name`` and what is wrong (type, dtype, shape, emptiness, non-finite or
            out-of-support values).
        """
        return check_data(
            x, self.data_shape, name=name, likelihood=self.likelihood, dtype=self.dtype
        )

    # --- the two halves ------------------------------------------------------------------
    def encode(self, x: Tensor) -> Distribution:
        """Posterior :math:`q(z|x)` over latent coordinates, batch ``(N,)``, event ``(dim,)``.

        ``x`` (shape ``(N, *data_shape)``) is validated (:meth:`check_data`).
        """
        return self.latent.posterior(self.encoder(self.check_data(x)))

    def decode(self, z: Tensor) -> Distribution:
        """Likelihood :math:`p(x \\mid z)` for latent coordinates ``z`` of shape ``(..., dim)``.

        ``z`` is validated (floating, finite, last dimension ``latent.dim``) and cast to the
        model's dtype.
        """
        return self._decode(check_coordinates(z, self.latent.dim, dtype=self.dtype))

    def _decode(self, z: Tensor) -> Distribution:
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
        members with vmap: so it does **not** validate its arguments (validation needs
        data-dependent control flow, which vmap refuses). :meth:`log_likelihood` is the
        validated form, at latent coordinates.
        """
        return self.likelihood.log_density(self._decoder_output(points), x)

    def log_likelihood(self, z: Tensor, x: Tensor) -> Tensor:
        r""":math:`\log p(x \mid z)` at latent coordinates ``z``, validated.

        Parameters
        ----------
        z : Tensor, shape=[*batch, N, dim]
            Latent coordinates (e.g. ``S`` posterior samples: ``(S, N, dim)``).
        x : Tensor, shape=[N, *data_shape]
            Datapoints, validated (:meth:`check_data`).

        Returns
        -------
        Tensor, shape=[*batch, N]
        """
        x = self.check_data(x)
        z = check_coordinates(z, self.latent.dim, dtype=self.dtype)
        if z.dim() < 2 or z.shape[-2] != x.shape[0]:
            raise ValueError(
                f"z must have shape (..., N, {self.latent.dim}) with N = {x.shape[0]} (the "
                f"datapoints of x), got {tuple(z.shape)}"
            )
        return self.point_log_likelihood(self.latent.to_point(z), x)

    def prior(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Distribution:
        """The latent manifold's prior, by default on this model's dtype and device."""
        p = next(self.parameters())
        return self.latent.prior(dtype=dtype or p.dtype, device=device or p.device)

    def conditional(self, coords: Tensor) -> Distribution:
        r""":math:`p(x \mid z)` at coordinates ``(..., dim)``, without validation.

        The name shared with :class:`~manifold_vae.datasets.GenerativeModel` (the protocol
        :class:`~manifold_vae.latent_model.LatentVariableModel`), which analysis code (the
        reductors, evaluation) calls with coordinates it computed; :meth:`decode` is the
        validated form.
        """
        return self._decode(coords)

    def decoder_mean(self, coords: Tensor) -> Tensor:
        r""":math:`E[x \mid z]` at coordinates ``(..., dim)``, shape ``(..., *data_shape)``."""
        return self._decode(coords).mean

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
        self,
        x: Tensor,
        num_samples: int = 1,
        beta: float = 1.0,
        analytic_kl: bool = True,
        *,
        validate: bool = True,
    ) -> ELBO:
        """ELBO terms per datapoint, with ``num_samples`` reparameterised latent samples.

        Parameters
        ----------
        x : Tensor, shape=[N, *data_shape]
            Datapoints (validated and cast to the model's dtype: :meth:`check_data`).
        num_samples : int
            Latent samples :math:`L` for the reconstruction term.
        beta : float
            Weight of the KL term.
        analytic_kl : bool
            Use the exact KL (default); ``False`` uses ``log q(z) - log p(z)`` at the samples,
            which is what Pyro's ``Trace_ELBO`` estimates.
        validate : bool
            Check the arguments (default). The training loop, which validated its data once
            in ``fit``, passes ``False`` on its hot path.

        The latent samples: on a latent with
        :meth:`~manifold_vae.manifolds.LatentManifold.reparameterize`, standard normal noise
        ``(num_samples, N, dim)`` drawn with ``torch.randn`` (what ``posterior.rsample`` draws)
        mapped by it, as the stacked ensemble does; otherwise ``posterior.rsample``.
        """
        if validate:
            x = self.check_data(x)
            num_samples = check_num_samples(num_samples)
            beta = check_real(beta, "beta")
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

    def marginal_log_likelihood(
        self,
        x: Tensor,
        num_samples: int = 1000,
        batch_size: int | None = None,
        *,
        sample_batch_size: int | None = None,
    ) -> MarginalLogLikelihood:
        r"""Importance-weighted estimate of :math:`\log p(x)` per datapoint, with standard error.

        .. math::

            \hat L_K(x) = \log \frac1K \sum_{k=1}^K w_k, \qquad
            \log w_k = \log p(x \mid z_k) + \log p(z_k) - \log q(z_k \mid x), \quad
            z_k \sim q(z \mid x),

        the estimator of Burda et al. (2016) and the metric of the hyperspherical and
        hyperbolic VAE papers, with the latent manifold's prior and posterior (both densities
        over coordinates with respect to the same reference measure, so the ratio is the
        density ratio on the manifold). It is not the ELBO's :meth:`log_likelihood`, which is
        :math:`\log p(x \mid z)`.

        **Bias.** :math:`\bar w` is unbiased for :math:`p(x)`, so by Jensen
        :math:`E\,\hat L_K \le \log p(x)`, with :math:`E\,\hat L_1 = \mathrm{ELBO}`
        (exact KL) :math:`\le E\,\hat L_K \le E\,\hat L_{2K}`; to second order the bias is
        :math:`-\tfrac12 \operatorname{Var}(w)/(K p(x)^2)`, about minus half the squared
        standard error, and it vanishes as :math:`K \to \infty` (Burda et al., Thm. 1). It
        is small only when the weights are not heavy-tailed: a posterior much narrower than
        the true one can give a small *reported* standard error and a large bias; the
        ``effective_sample_size`` (close to ``K`` when :math:`q` matches the true posterior,
        close to 1 when one weight dominates) shows it.

        **Standard error** (delta method): :math:`\operatorname{se}(\hat L_K) \approx
        s_w / (\sqrt K\, \bar w)`, :math:`s_w` the sample standard deviation of the weights
        (computed stably in log space: :func:`log_mean_exp`).

        Runs without gradients, in the model's current mode (call ``eval()`` first for
        dropout or batch-norm networks).

        Parameters
        ----------
        x : Tensor, shape=[N, *data_shape]
            Datapoints (validated and cast to the model's dtype: :meth:`check_data`).
        num_samples : int
            Importance samples :math:`K` per datapoint.
        batch_size : int, optional
            Datapoints per pass (default: all ``N``).
        sample_batch_size : int, optional
            Importance samples per decoder pass (default: all ``K``); the decoder sees
            ``sample_batch_size * batch_size`` points at once.

        Returns
        -------
        MarginalLogLikelihood
            ``value``, ``standard_error`` and ``effective_sample_size``, each of shape ``(N,)``.

        Raises
        ------
        ValueError
            For invalid data or non-positive integer counts.

        References
        ----------
        Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance weighted autoencoders.
        ICLR.
        """
        x = self.check_data(x)
        num_samples = check_num_samples(num_samples)
        batch_size = (
            x.shape[0] if batch_size is None else check_num_samples(batch_size, "batch_size")
        )
        chunk = num_samples if sample_batch_size is None else sample_batch_size
        chunk = check_num_samples(chunk, "sample_batch_size")
        results = []
        with torch.no_grad():
            prior = self.prior()
            for part in x.split(batch_size):
                posterior = self.latent.posterior(self.encoder(part))
                log_w = []
                for start in range(0, num_samples, chunk):
                    z = posterior.sample(torch.Size([min(chunk, num_samples - start)]))
                    log_likelihood = self.point_log_likelihood(self.latent.to_point(z), part)
                    log_w.append(log_likelihood + prior.log_prob(z) - posterior.log_prob(z))
                results.append(log_mean_exp(torch.cat(log_w)))
        return MarginalLogLikelihood(*(torch.cat(parts) for parts in zip(*results, strict=True)))

    def embedded_location(self, x: Tensor) -> Tensor:
        """Embedded points of the posterior locations, shape ``(N, latent.ambient_dim)``."""
        return self.latent.to_point(self.latent.posterior_location(self.encode(x)))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction ``decode(location(encode(x))).mean``, shape ``(N, *data_shape)``."""
        return self._decode(self.latent.posterior_location(self.encode(x))).mean

    # --- Pyro ----------------------------------------------------------------------------
    def _pyro_data(
        self, x: Tensor | None, num_samples: int | None, beta: float, who: str
    ) -> tuple[Tensor | None, int, float]:
        """The validated data (or ``None``), the plate size and ``beta`` of model and guide."""
        beta = check_real(beta, "beta")
        if x is None:
            if num_samples is None:
                raise ValueError(
                    f"{who}(None) draws from the generative model and needs num_samples, the "
                    f"number of datapoints to draw: {who}(None, num_samples=N)"
                )
            return None, check_num_samples(num_samples), beta
        x = self.check_data(x)
        if num_samples is not None and check_num_samples(num_samples) != x.shape[0]:
            raise ValueError(
                f"num_samples = {num_samples} differs from the {x.shape[0]} datapoints of x: "
                "pass num_samples only to draw new data (x = None)"
            )
        return x, x.shape[0], beta

    def model(
        self, x: Tensor | None = None, beta: float = 1.0, num_samples: int | None = None
    ) -> None:
        """Pyro model: ``z ~ prior``, ``x ~ likelihood(decoder(z))``, in a plate over data.

        With data ``x`` (shape ``(N, *data_shape)``, validated: :meth:`check_data`) the site
        ``obs`` is observed; with ``x = None`` it is sampled, ``num_samples`` datapoints
        (``model(None, num_samples=N)``: the generative model, e.g. for
        ``pyro.infer.Predictive``). The KL weight ``beta`` scales the latent site (no scale
        handler when it is 1).
        """
        x, n, beta = self._pyro_data(x, num_samples, beta, "model")
        pyro.module("vae", self)
        with pyro.plate("data", n):
            prior = self.prior().expand((n,))
            if beta == 1.0:
                z = pyro.sample("latent", prior)
            else:
                with poutine.scale(scale=beta):
                    z = pyro.sample("latent", prior)
            pyro.sample("obs", self._decode(z), obs=x)

    def guide(
        self, x: Tensor | None = None, beta: float = 1.0, num_samples: int | None = None
    ) -> None:
        """Pyro guide: ``z ~ encode(x)``, for data ``x`` of shape ``(N, *data_shape)``.

        Takes the model's arguments; ``x = None`` (the generative model) has no posterior
        and raises ``ValueError``: draw new data with ``Predictive(vae.model, ...)`` and no
        guide.
        """
        if x is None:
            raise ValueError(
                "guide(None): the guide is the posterior q(z | x) and needs data x; to draw "
                "from the generative model use Predictive(vae.model, num_samples=S) without a "
                "guide"
            )
        x, n, beta = self._pyro_data(x, num_samples, beta, "guide")
        pyro.module("vae", self)
        with pyro.plate("data", n):
            posterior = self.latent.posterior(self.encoder(x))
            if beta == 1.0:
                pyro.sample("latent", posterior)
            else:
                with poutine.scale(scale=beta):
                    pyro.sample("latent", posterior)

    # --- persistence ---------------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike,
        training: tuple[dict[str, Any], dict[str, Tensor]] | None = None,
    ) -> None:
        """Write the weights and a config to rebuild the model to one file, atomically.

        Custom networks are saved by their weights only (and their class name): pass the
        modules again to :meth:`load`. ``training`` (written by the training loop's
        checkpoints, :class:`~manifold_vae.trainer.TrainingState`) adds what resumes the run.
        See :mod:`manifold_vae.checkpoint`.
        """
        save_vae(self, path, training)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        map_location: str | torch.device | None = None,
        *,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> VAE:
        """Rebuild a model written by :meth:`save`, never unpickling code, in eval mode.

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
