r"""Training many VAEs of one shape at once, as one vectorised ensemble that reproduces ``fit``.

A table of the thesis is a grid of small VAEs of the same shape (datasets x decoder scales x
repetitions). :func:`fit_ensemble` trains :math:`M` of them together through the one training
loop (:mod:`manifold_vae.trainer`): when the latent manifold can reparameterise a posterior
sample from given noise, the members run as one
:class:`~manifold_vae.trainer.StackedBackend` (parameters stacked along a member axis, networks
vmapped, one Adam over the stacked parameters); otherwise (e.g. the sphere, whose sampler is a
rejection sampler) each member trains on its own
:class:`~manifold_vae.trainer.SingleBackend` inside the same loop, exactly as
:func:`~manifold_vae.training.fit` trains it.

Stacked members keep their own data order and latent noise, drawn from two generators seeded
with their seed (``randperm`` per epoch from a CPU generator; one standard normal tensor per
step, turned into a posterior sample by
:meth:`~manifold_vae.manifolds.LatentManifold.reparameterize`). So member :math:`m` ends where
``fit(vaes[m], data[m], ..., seed=seeds[m])`` would, up to floating-point rounding. The
forward pass and the Adam step agree bitwise, but for the last bit of a minibatch mean (a row of
an ``(M, B)`` tensor may be summed in another order than a vector of ``B``); the weight gradient
of a dense layer does not: ``fit``'s ``addmm`` backward computes it as ``grad^T @ x``, the
batched ``matmul`` as ``(x^T @ grad)^T`` (the same sums in another order). So the results
differ by accumulated rounding: about 1e-13 relative in float64 over a few epochs. (Adam, which
normalises each gradient entry, can amplify the rounding of entries whose gradient is pure
cancellation noise, most visibly at large learning rates.) Members that train on their own
equal ``fit`` bitwise.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from .trainer import (
    EpochCallback,
    History,
    SingleBackend,
    StackedBackend,
    StepBackend,
    TrainConfig,
    resolve_config,
    resolve_device,
    train,
)
from .trainer.config import Restarts
from .vae import VAE, seeded

__all__ = [
    "RESTART_SEED",
    "check_restarts",
    "ensemble_key",
    "fit_ensemble",
    "reinitialized",
    "restart_seeds",
    "train_with_restarts",
]

#: Seed offset of restart candidate ``j`` of a model of seed ``s``: ``s + RESTART_SEED * j``.
RESTART_SEED = 100_000


def _signature(vae: VAE) -> dict[str, Any]:
    """What must agree between ensemble members, by description."""
    networks = [
        (name, type(module).__qualname__, module.extra_repr())
        for name, module in vae.named_modules()
        if name and name != "likelihood" and not name.startswith("likelihood.")
    ]
    return {
        "model class": type(vae).__qualname__,
        "latent manifold": vae.latent.spec(),
        "data shape": tuple(vae.data_shape),
        "likelihood class": type(vae.likelihood).__qualname__,
        "network architecture": networks,
        "parameters (name, shape, dtype, requires_grad)": [
            (name, tuple(p.shape), p.dtype, p.requires_grad) for name, p in vae.named_parameters()
        ],
        "buffers (name, shape, dtype)": [
            (name, tuple(b.shape), b.dtype) for name, b in vae.named_buffers()
        ],
    }


def ensemble_key(vae: VAE) -> str:
    """Models with equal keys (and as many datapoints) can train in one :func:`fit_ensemble`."""
    return repr(_signature(vae))


def _first_difference(a: Any, b: Any) -> str:
    """``a vs b``, or for lists the first differing entries."""
    if isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b, strict=False):
            if x != y:
                return f"{x} vs {y}"
        return f"{len(a)} entries vs {len(b)}"
    return f"{a} vs {b}"


def _check_members(vaes: Sequence[VAE], device: torch.device | None) -> list[VAE]:
    """``ValueError`` unless ``vaes`` is a non-empty sequence of distinct VAEs of one shape."""
    if isinstance(vaes, nn.Module) or not isinstance(vaes, Sequence) or len(vaes) == 0:
        raise ValueError(f"vaes must be a non-empty sequence of VAE models, got {vaes!r:.80}")
    vaes = list(vaes)
    for i, vae in enumerate(vaes):
        if not isinstance(vae, VAE):
            raise ValueError(f"vaes[{i}] must be a VAE, got {type(vae).__name__}")
    first: dict[int, int] = {}
    for i, vae in enumerate(vaes):
        if id(vae) in first:
            raise ValueError(
                f"vaes[{first[id(vae)]}] and vaes[{i}] are the same model object; each member "
                "must be its own model (e.g. copy.deepcopy it)"
            )
        first[id(vae)] = i
    reference = _signature(vaes[0])
    for i, vae in enumerate(vaes[1:], start=1):
        for key, value in _signature(vae).items():
            if value != reference[key]:
                raise ValueError(
                    f"vaes[{i}] differs from vaes[0] in its {key}: "
                    f"{_first_difference(value, reference[key])}; ensemble members must share "
                    "latent manifold, data shape, likelihood class and network architecture"
                )
    if device is None:
        devices = {next(vae.parameters()).device for vae in vaes}
        if len(devices) > 1:
            raise ValueError(
                f"the members are on different devices {sorted(map(str, devices))}: pass device"
            )
    return vaes


def _check_seeds(seeds: Sequence[int] | None, members: int) -> list[int]:
    if seeds is None:
        return list(range(members))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ValueError(f"seeds must be a sequence of integers, got {type(seeds).__name__}")
    if len(seeds) != members:
        raise ValueError(f"seeds must have one seed per member ({members}), got {len(seeds)}")
    for i, seed in enumerate(seeds):
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seeds[{i}] must be an integer, got {seed!r}")
    return [int(seed) for seed in seeds]


def _check_data(data: Tensor | Sequence[Tensor], vaes: list[VAE]) -> list[Tensor]:
    """One tensor per member (the same object when shared), each validated like ``fit``'s."""
    if torch.is_tensor(data):
        for vae in vaes:
            vae.likelihood.validate_data(data)
        return [data] * len(vaes)
    if not isinstance(data, Sequence) or len(data) != len(vaes):
        size = len(data) if isinstance(data, Sequence) else type(data).__name__
        raise ValueError(
            f"data must be one tensor shared by all members or a sequence of one tensor per "
            f"member ({len(vaes)}), got {size}"
        )
    for i, (vae, tensor) in enumerate(zip(vaes, data, strict=True)):
        try:
            vae.likelihood.validate_data(tensor)
        except ValueError as error:
            raise ValueError(f"data[{i}]: {error}") from error
        if tensor.shape != data[0].shape:
            raise ValueError(
                f"data[{i}] has shape {tuple(tensor.shape)} but data[0] has "
                f"{tuple(data[0].shape)}: all members need the same number of datapoints"
            )
    return list(data)


def check_restarts(restarts: Any, screen_epochs: Any) -> None:
    """``ValueError`` unless ``restarts >= 1`` and ``screen_epochs`` is ``None`` or ``>= 1``
    (and then ``restarts >= 2``: a screen needs candidates to choose from)."""
    if isinstance(restarts, bool) or not isinstance(restarts, numbers.Integral) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    if screen_epochs is None:
        return
    if (
        isinstance(screen_epochs, bool)
        or not isinstance(screen_epochs, numbers.Integral)
        or screen_epochs < 1
    ):
        raise ValueError(f"screen_epochs must be None or an integer >= 1, got {screen_epochs!r}")
    if restarts < 2:
        raise ValueError(f"screen_epochs = {screen_epochs} needs restarts >= 2, got {restarts}")


def restart_seeds(seed: int, restarts: int) -> list[int]:
    """The seeds of a model's ``restarts`` candidates: ``seed + RESTART_SEED * j``."""
    return [seed + RESTART_SEED * j for j in range(restarts)]


def reinitialized(vae: VAE, seed: int) -> VAE:
    """A copy of ``vae`` whose networks have fresh initial weights, a function of ``seed``.

    Every module outside the likelihood that holds parameters of its own is reset with its
    ``reset_parameters()`` inside :func:`~manifold_vae.vae.seeded` ``(seed)`` (the caller's
    random state is untouched). The likelihood's parameters (e.g. the learned scale of
    ``GaussianLearnedScale``, which starts at ``init_sigma``) keep the values of ``vae``.

    Raises
    ------
    ValueError
        If a network module holds parameters but has no ``reset_parameters()``: its fresh
        weights could not be drawn.
    """
    new = copy.deepcopy(vae)
    likelihood = set(map(id, new.likelihood.modules()))
    modules = [(n, m) for n, m in new.named_modules() if id(m) not in likelihood]
    for name, module in modules:
        if next(module.parameters(recurse=False), None) is not None and not callable(
            getattr(module, "reset_parameters", None)
        ):
            raise ValueError(
                f"restarts need fresh initial weights, but the module {name!r} "
                f"({type(module).__name__}) holds parameters and has no reset_parameters(): "
                "give it one"
            )
    with seeded(seed), torch.no_grad():
        for _, module in modules:
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    return new


def _final_loss(history: History) -> tuple[bool, float]:
    """Sort key of a trained candidate: finished runs first, then by last epoch's loss."""
    loss = history.loss[-1] if history.loss else math.inf
    return (history.stopped is not None, loss if math.isfinite(loss) else math.inf)


def _backends(
    vaes: Sequence[VAE],
    tensors: Sequence[Tensor],
    seeds: Sequence[int],
    device: torch.device,
    config: TrainConfig,
    labels: Sequence[str],
    stacked: bool,
) -> list[StepBackend]:
    """One stacked backend of all models, or one single backend per model."""
    if stacked:
        return [
            StackedBackend(
                list(vaes),
                list(tensors),
                list(seeds),
                device,
                config.lr,
                config.betas,
                list(labels),
            )
        ]
    return [
        SingleBackend(vae, x, seed, device, config.lr, config.betas, label)
        for vae, x, seed, label in zip(vaes, tensors, seeds, labels, strict=True)
    ]


def train_with_restarts(
    vaes: Sequence[VAE],
    tensors: Sequence[Tensor],
    seeds: Sequence[int],
    device: torch.device,
    config: TrainConfig,
    callbacks: Sequence[EpochCallback],
    restarts: int,
    screen_epochs: int | None,
    stacked: bool,
    labels: Sequence[str],
    description: str,
) -> list[History]:
    r"""Train each model from ``restarts`` starts and keep, in place, the start of lowest loss.

    Model ``m``'s candidates: itself (seed ``seeds[m]``), then :func:`reinitialized` copies
    under the seeds :func:`restart_seeds` (also their training seeds). The kept candidate has
    the lowest final training loss (negative ELBO) among those that did not stop early: an
    unsupervised choice.

    - ``screen_epochs = None``: every candidate trains for ``config.epochs`` (all in one
      loop, with ``callbacks``); the kept one's weights are copied into ``vaes[m]``.
    - ``screen_epochs = S``: copies of the candidates first train for ``S`` epochs at constant
      ``lr`` (the screen; a warm-up applies as in the full run; no callbacks); then
      ``vaes[m]``, given the kept start's initial weights, trains for ``config.epochs`` with
      the kept start's seed and the callbacks: :math:`k S + E` epochs of work instead of
      :math:`k E`, for failures that show early (a torn torus does).

    Either way ``vaes[m]`` ends as training the kept start alone would leave it, and its
    history's ``restarts`` (:class:`~manifold_vae.trainer.config.Restarts`) holds every
    candidate's seed, history and final loss.
    """
    count = len(vaes)
    seed_lists = [restart_seeds(seed, restarts) for seed in seeds]
    starts = [
        [vae, *(reinitialized(vae, s) for s in seed_list[1:])]
        for vae, seed_list in zip(vaes, seed_lists, strict=True)
    ]
    runs = [(m, j) for m in range(count) for j in range(restarts)]

    def run(models: list[VAE], which: list[tuple[int, int]], cfg: TrainConfig, extra) -> list:
        run_labels = [f"{labels[m]}restart {j} (seed {seed_lists[m][j]}): " for m, j in which]
        backends = _backends(
            models,
            [tensors[m] for m, _ in which],
            [seed_lists[m][j] for m, j in which],
            device,
            cfg,
            run_labels,
            stacked,
        )
        return train(backends, cfg, extra, description=description)

    if screen_epochs is None:
        trained = run([starts[m][j] for m, j in runs], runs, config, callbacks)
    else:
        screen = replace(config, epochs=screen_epochs, lr_final=None)
        trained = run([copy.deepcopy(starts[m][j]) for m, j in runs], runs, screen, ())
    candidates = [trained[m * restarts : (m + 1) * restarts] for m in range(count)]
    chosen = [min(range(restarts), key=lambda j: _final_loss(c[j])) for c in candidates]
    if screen_epochs is None:
        histories = [replace(c[j]) for c, j in zip(candidates, chosen, strict=True)]
        for vae, start, j in zip(vaes, starts, chosen, strict=True):
            if j:
                vae.to(device).load_state_dict(start[j].state_dict())
                vae.eval()
    else:
        for vae, start, j in zip(vaes, starts, chosen, strict=True):
            if j:
                vae.load_state_dict(start[j].state_dict())
        final = [(m, chosen[m]) for m in range(count)]
        histories = run(list(vaes), final, config, callbacks)
    for history, c, j, seed_list in zip(histories, candidates, chosen, seed_lists, strict=True):
        history.restarts = Restarts(
            chosen=j,
            seeds=seed_list,
            final_loss=[h.loss[-1] if h.loss else math.nan for h in c],
            screen_epochs=screen_epochs,
            histories=[replace(h) for h in c],
        )
    return histories


def fit_ensemble(
    vaes: Sequence[VAE],
    data: Tensor | Sequence[Tensor],
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    seeds: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    num_samples: int = 1,
    beta: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    progress: bool = True,
    lr_final: float | None = None,
    input_noise: float = 0.0,
    sigma_start: float | None = None,
    warmup_epochs: int = 0,
    *,
    config: TrainConfig | None = None,
    callbacks: Sequence[EpochCallback] = (),
    restarts: int = 1,
    screen_epochs: int | None = None,
) -> list[History]:
    r"""Train ``M`` VAEs of one shape together, each exactly as :func:`fit` would train it.

    Member ``m`` is trained as ``fit(vaes[m], data[m], epochs, batch_size, lr,
    seed=seeds[m], device, num_samples, beta, betas, lr_final=lr_final,
    input_noise=input_noise, sigma_start=sigma_start, warmup_epochs=warmup_epochs)`` would
    train it, to floating-point rounding (see the module docstring), but all members take
    each step together: one vectorised forward and backward pass over tensors of shape
    ``(M, batch, ...)``, one Adam step over the stacked parameters. The trained weights are
    written back into each model, which is left in eval mode on ``device``.

    Divergence is handled per member, as :func:`fit` does it: when a member's loss or
    gradients become non-finite or its posterior parameters invalid, that member alone stops;
    its parameters (and optimiser moments) are restored to the end of its last good epoch and
    stay fixed for the rest of training, a ``RuntimeWarning`` names the member, and its
    ``History.stopped`` says why in the words :func:`fit` would use. The others go on.

    Parameters
    ----------
    vaes : sequence of VAE
        The members, trained in place. They must share the latent manifold (equal ``spec()``),
        data shape, likelihood class, model class and network architecture (parameter and
        buffer names, shapes and dtypes; module types). They may differ in their weights and
        likelihood buffers (e.g. the Gaussian :math:`\sigma_X`). To be stacked, the latent
        manifold must implement :meth:`~manifold_vae.manifolds.LatentManifold.reparameterize`
        (``reparameterizable``), and the likelihood's
        :meth:`~manifold_vae.likelihoods.Likelihood.log_density` and the networks must be
        vmap-able (no data-dependent Python control flow, no random operations such as
        dropout; buffers are read, not updated); members of other latents train one by one
        in the same loop.
    data : Tensor or sequence of Tensor, shape=[N, *data_shape]
        One tensor shared by all members, or one per member (the same ``N`` and shape; e.g.
        the datasets :math:`X_{0.01}, X_{0.1}, X_1` of one grid), each validated by the
        member's likelihood.
    epochs, batch_size, lr, num_samples, beta, betas, progress, lr_final, input_noise
        As for :func:`fit` (shared by all members); the progress bar shows the members' mean
        loss.
    sigma_start, warmup_epochs
        As for :func:`fit`: each member's decoder scale follows
        :func:`~manifold_vae.training.decoder_sigma` from ``sigma_start`` down to its own
        :math:`\sigma_X`.
    seeds : sequence of int, optional
        One seed per member, of its data order and latent noise (default ``range(M)``).
    device : str or torch.device, optional
        Where to train (default: where the members are; they must then all be on one device).
    config : TrainConfig, optional
        All the shared training options at once; the keyword options must then keep their
        defaults (``ValueError`` otherwise).
    callbacks : sequence of EpochCallback
        Extra epoch callbacks (:mod:`manifold_vae.trainer.callbacks`).
    restarts, screen_epochs : int, int or None
        As for :func:`fit`: each member trains from ``restarts`` starts (itself, then fresh
        weights under the seeds ``seeds[m] + RESTART_SEED * j``) and keeps the one of lowest
        final training loss, optionally chosen after a screen of ``screen_epochs`` epochs
        (:func:`train_with_restarts`). All ``M * restarts`` candidates train as one ensemble.

    Returns
    -------
    list of History
        One per member, as :func:`fit` returns it (with ``restarts`` filled in when
        ``restarts > 1``).

    Raises
    ------
    ValueError
        For invalid options, members that differ in more than weights and likelihood
        buffers, data of the wrong shape or size, or a wrong number of seeds.
    """
    config = resolve_config(
        config,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        betas=betas,
        num_samples=num_samples,
        beta=beta,
        lr_final=lr_final,
        input_noise=input_noise,
        sigma_start=sigma_start,
        warmup_epochs=warmup_epochs,
        progress=progress,
    )
    check_restarts(restarts, screen_epochs)
    vaes = _check_members(vaes, device)
    config.check_likelihood(vaes[0].likelihood)
    seeds = _check_seeds(seeds, len(vaes))
    tensors = _check_data(data, vaes)
    device = resolve_device(device, vaes[0])
    description = f"fit_ensemble {len(vaes)} x {vaes[0].latent!r}"
    # stacked when the latent can reparameterise; else each member trains on its own inside
    # the loop, exactly as fit trains it
    stacked = vaes[0].latent.reparameterizable
    if restarts > 1:
        labels = [f"fit_ensemble member {m} " for m in range(len(vaes))]
        return train_with_restarts(
            vaes,
            tensors,
            seeds,
            device,
            config,
            callbacks,
            restarts,
            screen_epochs,
            stacked,
            labels,
            description,
        )
    labels = [f"fit_ensemble member {m} (seed {s}): " for m, s in enumerate(seeds)]
    backends = _backends(vaes, tensors, seeds, device, config, labels, stacked)
    return train(backends, config, callbacks, description=description)
