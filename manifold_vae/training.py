"""Training one VAE: Adam on the negative ELBO, with a progress bar and divergence protection."""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .vae import VAE

__all__ = ["History", "fit", "learning_rate"]


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

    Returns
    -------
    History
    """
    _check_options(epochs, batch_size, num_samples, lr)
    _check_lr_final(lr, lr_final)
    _check_input_noise(input_noise, vae)
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
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        bar = tqdm(range(epochs), desc=f"fit {vae.latent!r}", disable=not progress, leave=False)
        for epoch in bar:
            _set_lr(optimizer, learning_rate(epoch, epochs, lr, lr_final))
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
