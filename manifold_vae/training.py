"""Training one VAE: Adam on the negative ELBO, with a progress bar and divergence protection."""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .likelihoods import Gaussian
from .vae import VAE

__all__ = ["History", "decoder_sigma", "fit", "learning_rate"]


@dataclass
class History:
    """What :func:`fit` did (or ``fit_ensemble`` to one member): per-epoch means, why it stopped."""

    #: Mean negative ELBO per datapoint, one entry per completed epoch.
    loss: list[float] = field(default_factory=list)
    #: Mean reconstruction log-likelihood per datapoint.
    reconstruction: list[float] = field(default_factory=list)
    #: Mean KL per datapoint.
    kl: list[float] = field(default_factory=list)
    #: ``None`` when all epochs ran, else the reason training stopped early.
    stopped: str | None = None

    def as_dict(self) -> dict:
        return {
            "loss": self.loss,
            "reconstruction": self.reconstruction,
            "kl": self.kl,
            "stopped": self.stopped,
        }


def _check_options(epochs: int, batch_size: int, num_samples: int, lr: float) -> None:
    """``ValueError`` for training options that :func:`fit` and ``fit_ensemble`` refuse."""
    if epochs < 0 or batch_size < 1 or num_samples < 1:
        raise ValueError(
            f"need epochs >= 0, batch_size >= 1, num_samples >= 1; got {epochs}, {batch_size}, "
            f"{num_samples}"
        )
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr}")


def _check_lr_final(lr: float, lr_final: float | None) -> None:
    """``ValueError`` unless ``lr_final`` is ``None`` or in ``(0, lr]``."""
    if lr_final is not None and not (0 < lr_final <= lr and math.isfinite(lr_final)):
        raise ValueError(f"lr_final must be None or in (0, lr = {lr:g}], got {lr_final}")


def learning_rate(epoch: int, epochs: int, lr: float, lr_final: float | None = None) -> float:
    r"""The step size of 0-based ``epoch``: constant, or a cosine from ``lr`` to ``lr_final``.

    .. math::

        \eta_e = \eta_{\text{final}} + \tfrac12 (\eta - \eta_{\text{final}})
        \big(1 + \cos(\pi e / (E - 1))\big), \qquad e = 0, \dots, E - 1,

    so the first epoch uses ``lr`` and the last ``lr_final`` (``lr`` throughout when
    ``lr_final`` is ``None`` or ``epochs == 1``). One schedule for :func:`fit` and
    ``fit_ensemble``, set at the start of every epoch.
    """
    if lr_final is None or epochs <= 1:
        return lr
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * epoch / (epochs - 1)))


def decoder_sigma(
    epoch: int, sigma: float, sigma_start: float | None = None, warmup_epochs: int = 0
) -> float:
    r"""The Gaussian decoder scale of 0-based ``epoch`` under a warm-up from ``sigma_start``.

    .. math::

        \sigma_e = \begin{cases}
            \sigma_{\text{start}}^{\,1 - e/W}\, \sigma_X^{\,e/W}
                & e < W \text{ and } \sigma_X < \sigma_{\text{start}}, \\
            \sigma_X & \text{otherwise,}
        \end{cases}

    a geometric path from :math:`\sigma_{\text{start}}` (epoch 0) to the model's own
    :math:`\sigma_X` (epoch :math:`W` on). A model whose :math:`\sigma_X \ge
    \sigma_{\text{start}}` trains at :math:`\sigma_X` throughout. The schedule counts epochs
    from the start of training, not from the end, so a shorter run (a restart screen) goes
    through the same decoder scales as the first epochs of the full one; a run of at most
    :math:`W` epochs ends inside the warm-up.

    Why: on a circle with a uniform prior, what the objective pays for a non-uniform encoding
    (with narrow posteriors and a decoder that follows it) enters only through the posterior
    entropy: about :func:`~manifold_vae.evaluation.encoding_nonuniformity` nats per
    datapoint, whatever :math:`\sigma_X`, while the reconstruction term and its minibatch
    noise scale as :math:`1/\sigma_X^2`. At :math:`\sigma_X = 0.01` that pull towards a
    uniform encoding is lost in the noise, and the encoding keeps whatever shape the first
    epochs gave it; at :math:`\sigma_X \approx 1` it is felt. Starting at a large scale and
    shrinking it shapes the encoder while the pull still acts. Each epoch's loss is the exact
    negative ELBO of the model at :math:`\sigma_e`; from epoch :math:`W` on it is the
    model's own objective.
    """
    if sigma_start is None or epoch >= warmup_epochs or sigma >= sigma_start:
        return sigma
    if epoch == 0:
        return float(sigma_start)
    fraction = epoch / warmup_epochs
    return math.exp((1.0 - fraction) * math.log(sigma_start) + fraction * math.log(sigma))


def _check_sigma_start(sigma_start: float | None) -> None:
    """``ValueError`` unless ``sigma_start`` is ``None`` or a positive finite number."""
    if sigma_start is not None and (
        isinstance(sigma_start, bool)
        or not (
            isinstance(sigma_start, numbers.Real) and math.isfinite(sigma_start) and sigma_start > 0
        )
    ):
        raise ValueError(
            f"sigma_start must be None or a positive finite number, got {sigma_start!r}"
        )


def _check_sigma_warmup(sigma_start: float | None, warmup_epochs: int, vae: VAE) -> None:
    """``ValueError`` unless the warm-up options make sense for ``vae``'s likelihood."""
    if (
        isinstance(warmup_epochs, bool)
        or not isinstance(warmup_epochs, numbers.Integral)
        or warmup_epochs < 0
    ):
        raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
    _check_sigma_start(sigma_start)
    if sigma_start is None:
        if warmup_epochs:
            raise ValueError(f"warmup_epochs = {warmup_epochs} needs sigma_start")
        return
    if warmup_epochs < 1:
        raise ValueError(f"sigma_start = {sigma_start} needs warmup_epochs >= 1")
    if not isinstance(vae.likelihood, Gaussian):
        raise ValueError(
            f"sigma_start needs a Gaussian likelihood with fixed sigma_X, got "
            f"{type(vae.likelihood).__name__}"
        )


def _check_input_noise(input_noise: float, vae: VAE) -> None:
    """``ValueError`` unless ``input_noise`` is a finite standard deviation ``>= 0``.

    Noise is added to the data itself (data augmentation: it is also the reconstruction
    target), so it needs a likelihood whose support is all of the data space
    (``Likelihood.real_valued``; not Bernoulli's ``[0, 1]``).
    """
    if isinstance(input_noise, bool) or not (
        isinstance(input_noise, (int, float)) and math.isfinite(input_noise) and input_noise >= 0
    ):
        raise ValueError(f"input_noise must be a finite standard deviation >= 0, got {input_noise}")
    if input_noise > 0 and not vae.likelihood.real_valued:
        raise ValueError(
            f"input_noise = {input_noise} needs real-valued data, but the "
            f"{type(vae.likelihood).__name__} likelihood has bounded support: noisy data would "
            "leave it"
        )


@contextlib.contextmanager
def _scale_restored(vae: VAE, warmup: bool) -> Iterator[None]:
    """Put the Gaussian decoder's ``scale`` buffer back as it was on leaving (if ``warmup``)."""
    saved = vae.likelihood.scale.clone() if warmup else None
    try:
        yield
    finally:
        if saved is not None:
            with torch.no_grad():
                vae.likelihood.scale.copy_(saved)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _adam(params: Iterable[Tensor], lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    """The optimiser of :func:`fit` and ``fit_ensemble``: one definition for both.

    Adam is elementwise, so one Adam over stacked member parameters updates each member exactly
    as its own Adam would; torch's default implementation is chosen by device (single-tensor on
    the CPU, ``foreach`` on CUDA), the same for both trainers on the same device.
    """
    return torch.optim.Adam(params, lr=lr, betas=betas)


def _stop_message(problem: tuple[str, str], epoch: int) -> str:
    """``History.stopped`` for a problem ``(what, detail)`` in 0-based ``epoch``."""
    return (
        f"{problem[0]} in epoch {epoch + 1} ({problem[1]}); parameters restored to the end of "
        f"epoch {epoch}"
    )


def _resolve_device(device: str | torch.device | None, vae: VAE) -> torch.device:
    if device is None:
        return next(vae.parameters()).device
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch.cuda.is_available() is False")
    return device


def fit(
    vae: VAE,
    data: Tensor,
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    num_samples: int = 1,
    beta: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    lr_final: float | None = None,
    input_noise: float = 0.0,
    sigma_start: float | None = None,
    warmup_epochs: int = 0,
) -> History:
    r"""Train ``vae`` on ``data`` by minibatch Adam on the mean negative ELBO.

    Deterministic under ``seed``: data order and latent noise come from a forked RNG seeded with
    ``seed`` (the caller's global RNG state is left untouched). If a minibatch loss or gradient
    becomes non-finite, training stops with a warning, the parameters are restored to the end
    of the last good epoch, and ``History.stopped`` says why.

    Parameters
    ----------
    vae : VAE
        The model, trained in place.
    data : Tensor, shape=[N, *vae.data_shape]
        Training data (validated by the likelihood: shape, dtype, finiteness, range).
    epochs, batch_size : int
        Passes over the data and minibatch size.
    lr, betas : float
        Adam's step size and moment coefficients (thesis Sec. 5.3: ``betas=(0.9, 0.999)``; the
        thesis's ``lr=1e-4`` over 1e5 epochs is replaced by ``1e-3`` and fewer epochs).
    seed : int
        Seed of data order and noise.
    device : str or torch.device, optional
        Where to train (default: where the model is); the model is moved there.
    num_samples : int
        Latent samples per datapoint in the reconstruction term.
    beta : float
        KL weight.
    progress : bool
        Show a progress bar with the current loss.
    checkpoint : path, optional
        If given, the model is saved there (atomically) after every good epoch.
    lr_final : float, optional
        Anneal the step size from ``lr`` to ``lr_final`` by a cosine over the epochs
        (:func:`learning_rate`); ``None`` keeps ``lr``.
    input_noise : float
        Standard deviation :math:`s \ge 0` of Gaussian noise added to every minibatch before
        it is encoded (and reconstructed): the model is trained on :math:`x + s\,\varepsilon`.
        The noise is drawn from the seeded RNG just before the latent noise of the same step.
    sigma_start, warmup_epochs : float, int
        Decoder-scale warm-up (Gaussian likelihood only): epoch ``e`` trains the model with
        its :math:`\sigma_X` replaced by :func:`decoder_sigma` ``(e, sigma_X, sigma_start,
        warmup_epochs)``, geometric from ``sigma_start`` down to :math:`\sigma_X` over the
        first ``warmup_epochs`` epochs (``History.loss`` of those epochs is the negative ELBO
        at that scale). ``None`` (default): no warm-up. Only the likelihood's ``scale``
        buffer (what the loss reads) changes, and it is restored when training ends, however
        it ends; checkpoints store :math:`\sigma_X`. With ``epochs <= warmup_epochs`` training
        ends inside the warm-up (as a restart screen does).

    Returns
    -------
    History
    """
    _check_options(epochs, batch_size, num_samples, lr)
    _check_lr_final(lr, lr_final)
    _check_input_noise(input_noise, vae)
    _check_sigma_warmup(sigma_start, warmup_epochs, vae)
    vae.likelihood.validate_data(data)
    device = _resolve_device(device, vae)
    dtype = next(vae.parameters()).dtype
    vae.to(device)
    data = data.to(device=device, dtype=dtype)
    optimizer = _adam(vae.parameters(), lr, betas)
    history = History()
    n = data.shape[0]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    devices = [device.index or 0] if device.type == "cuda" else []
    good_state = copy.deepcopy(vae.state_dict())
    good_optim = copy.deepcopy(optimizer.state_dict())
    vae.train()
    sigma = vae.likelihood.sigma if sigma_start is not None else None
    with torch.random.fork_rng(devices=devices), _scale_restored(vae, sigma is not None):
        torch.manual_seed(seed)
        bar = tqdm(range(epochs), desc=f"fit {vae.latent!r}", disable=not progress, leave=False)
        for epoch in bar:
            _set_lr(optimizer, learning_rate(epoch, epochs, lr, lr_final))
            if sigma is not None:
                vae.likelihood.scale.fill_(decoder_sigma(epoch, sigma, sigma_start, warmup_epochs))
            totals = torch.zeros(3, dtype=torch.float64)
            order = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n, batch_size):
                batch = data[order[start : start + batch_size]]
                if input_noise > 0:
                    batch = batch + input_noise * torch.randn_like(batch)
                problem = None
                try:
                    terms = vae.elbo(batch, num_samples=num_samples, beta=beta)
                except ValueError as error:  # invalid posterior parameters (e.g. infinite time)
                    problem = ("invalid distribution parameters", str(error))
                else:
                    loss = -terms.elbo.mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    finite = torch.isfinite(loss) and all(
                        torch.isfinite(p.grad).all() for p in vae.parameters() if p.grad is not None
                    )
                    if not finite:
                        problem = ("non-finite loss or gradient", f"loss {loss.item()}")
                if problem is not None:
                    vae.load_state_dict(good_state)
                    optimizer.load_state_dict(good_optim)
                    history.stopped = _stop_message(problem, epoch)
                    warnings.warn(history.stopped, RuntimeWarning, stacklevel=2)
                    vae.eval()
                    return history
                optimizer.step()
                weight = batch.shape[0]
                totals += (
                    weight
                    * torch.stack(
                        [
                            loss.detach(),
                            terms.reconstruction.detach().mean(),
                            terms.kl.detach().mean(),
                        ]
                    )
                    .cpu()
                    .double()
                )
            totals /= n
            history.loss.append(totals[0].item())
            history.reconstruction.append(totals[1].item())
            history.kl.append(totals[2].item())
            bar.set_postfix(loss=f"{history.loss[-1]:.4g}")
            good_state = copy.deepcopy(vae.state_dict())
            good_optim = copy.deepcopy(optimizer.state_dict())
            if checkpoint is not None:
                vae.save(checkpoint)
    vae.eval()
    return history
