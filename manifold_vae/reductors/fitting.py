r"""Algorithm 2 of the thesis: fit a reductor map by gradient descent on the Monte Carlo Delta.

.. math::

    \lambda^* = \arg\min_\lambda \frac1L \sum_{l=1}^{L}
    \mathrm{KL}\big(p_1(x \mid z_l) \,\|\, p_2(x \mid M^{(\lambda)}(z_l))\big),
    \qquad z_l \sim p_1(z) \text{ fresh at every step}.

For Gaussian decoders with fixed scales this is the thesis's Eq. 9.1 (the squared distance of
the decoder means, up to a constant factor and offset); with learned scales or Bernoulli
decoders it is the KL itself. Gradients flow through the frozen decoders into the map's
parameters only. All restarts (rotation losses are multimodal; reflections and factor swaps
are discrete) are fitted at once as one vectorised problem, the best restart is chosen on a
separate selection sample, and its Delta is estimated on fresh samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..latent_model import LatentVariableModel
from .delta import DeltaEstimate, check_pair, delta, delta_samples, model_dtype
from .maps import ReductorMap, map_family

__all__ = ["Fit", "fit_reductor"]


@dataclass
class Fit:
    """The result of :func:`fit_reductor`.

    Attributes
    ----------
    family : str
        The map family.
    map : ReductorMap
        The best restart (``copies == 1``).
    delta : DeltaEstimate
        Its Delta on fresh prior samples (scalar ``value`` and ``stderr``).
    restarts : Tensor, shape=[restarts]
        Every restart's Delta on the selection sample.
    index : int
        The chosen restart.
    losses : list of list of float
        Training objective per step, one value per restart.
    """

    family: str
    map: ReductorMap
    delta: DeltaEstimate
    restarts: Tensor
    index: int
    losses: list[list[float]] = field(default_factory=list)

    def drift(self, fraction: float = 0.2) -> float:
        """Relative change of the chosen restart's objective over the last ``fraction`` of steps.

        ``|L(S) - L((1 - fraction) S)| / max(1, |L(S)|)``, each ``L`` the mean over 5% of the
        steps ending there; ``nan`` with fewer than 20 steps.
        """
        loss = [step[self.index] for step in self.losses]
        if len(loss) < 20:
            return math.nan
        width = max(1, len(loss) // 20)
        cut = len(loss) - round(fraction * len(loss))
        end = sum(loss[-width:]) / width
        before = sum(loss[cut - width : cut]) / width
        return abs(end - before) / max(1.0, abs(end))


@contextmanager
def _frozen(*models: LatentVariableModel) -> Iterator[None]:
    """Evaluation mode and no parameter gradients for the models; restored afterwards."""
    saved = []
    for model in models:
        if isinstance(model, nn.Module):
            saved.append(
                (model, model.training, [(p, p.requires_grad) for p in model.parameters()])
            )
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
    try:
        yield
    finally:  # in reverse, so that a model given twice (source is target) gets its own state
        for model, training, flags in reversed(saved):
            model.train(training)
            for p, flag in flags:
                p.requires_grad_(flag)


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def fit_reductor(
    source: LatentVariableModel,
    target: LatentVariableModel,
    family: str,
    restarts: int = 8,
    steps: int = 500,
    num_samples: int = 1024,
    lr: float | None = None,
    eval_samples: int = 10000,
    seed: int = 0,
    progress: bool = True,
) -> Fit:
    r"""Algorithm 2: the map of ``family`` with the lowest Delta from ``source`` into ``target``.

    Adam on the Monte Carlo objective :math:`\frac1L\sum_l \mathrm{KL}_l` with ``num_samples``
    fresh prior samples per step and a cosine-decaying learning rate, all ``restarts`` at once;
    the restart with the lowest Delta on ``eval_samples`` selection samples (seed ``seed + 1``)
    is kept, and its Delta is estimated on ``eval_samples`` fresh ones (seed ``seed + 2``).

    Parameters
    ----------
    source, target : LatentVariableModel
        Trained VAEs or known generating processes with the same ``data_shape`` and dtype.
    family : str
        A registered map family, the name of one in
        :data:`~manifold_vae.reductors.MAP_FAMILIES` (``'linear'``, ``'projected-linear'``,
        ``'isometry'``, ``'chart'``, ``'mlp'``, ``'identity'``, or one registered by the
        user).
    restarts : int
        Independent initialisations (the discrete reflections and swaps of ``'isometry'`` and
        ``'chart'`` are cycled through them); at most the family's ``max_copies``.
    steps : int
        Gradient steps (0: evaluate the initial maps only).
    num_samples : int
        Prior samples :math:`L` per step.
    lr : float, optional
        Adam's initial learning rate (default: the family's ``default_lr``).
    eval_samples : int
        Prior samples for selecting the best restart and for its final Delta.
    seed : int
        Seed of the initialisation and of the samples (the global random state is restored).
    progress : bool
        A progress bar over the steps.

    Returns
    -------
    Fit

    Raises
    ------
    ValueError
        If an argument is out of range, the family is not registered or refuses the pair, or
        the models differ in data shape or dtype.
    """
    _check_int("restarts", restarts, 1)
    _check_int("steps", steps, 0)
    _check_int("num_samples", num_samples, 2)
    _check_int("eval_samples", eval_samples, 2)
    _check_int("seed", seed, 0)
    cls = map_family(family)
    if lr is None:
        lr = cls.default_lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < math.inf:
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    check_pair(source, target)
    dtype, device = model_dtype(source)
    losses: list[list[float]] = []
    with torch.random.fork_rng(devices=[]), _frozen(source, target):
        torch.manual_seed(seed)
        copies = restarts if cls.max_copies is None else min(restarts, cls.max_copies)
        reductor = cls(source.latent, target.latent, copies).to(dtype=dtype, device=device)
        params = list(reductor.parameters())
        if params and steps > 0 and lr > 0:
            prior = source.prior(dtype=dtype, device=device)
            optimizer = torch.optim.Adam(params, lr=lr)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
            bar = tqdm(range(steps), desc=f"reductor {family}", disable=not progress, leave=False)
            for _ in bar:
                coords = prior.sample((num_samples,))
                with torch.no_grad():
                    reference = source.conditional(coords)
                loss = delta_samples(source, target, reductor, coords, reference).mean(-1)
                optimizer.zero_grad()
                loss.sum().backward()
                optimizer.step()
                schedule.step()
                values = loss.detach().tolist()
                losses.append(values)
                bar.set_postfix(best=f"{min(values):.4g}")
        reductor.requires_grad_(False)
        selection = delta(source, target, reductor, eval_samples, seed=seed + 1).value
        finite = torch.where(torch.isfinite(selection), selection, torch.inf)
        index = int(torch.argmin(finite))
        best = reductor.select(index).requires_grad_(False)  # fitted: no gradients
        final = delta(source, target, best, eval_samples, seed=seed + 2)
    estimate = DeltaEstimate(final.value[0], final.stderr[0], final.num_samples)
    return Fit(family, best, estimate, selection, index, losses)
