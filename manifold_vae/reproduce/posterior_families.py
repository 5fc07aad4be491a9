r"""Which posterior family on a sphere? Heat kernel, von Mises(-Fisher), Power Spherical on S^d.

The same data and networks with each posterior family of a latent sphere:

* :math:`S^1`, the sinusoids :math:`X_{0.1}` (Sec. 5.1): ``Circle(family="heat")`` (the wrapped
  normal) and ``Circle(family="von-mises")``; recovery: circular correlation of the encoded
  angle with the true phase (:func:`~manifold_vae.evaluation.phase_recovery`).
* :math:`S^2`, the light source seen by sensors (the ``sphere`` experiment's data):
  ``Sphere(family=...)`` with ``"heat"``, ``"vmf"``, ``"power-spherical"``; recovery: mean angle
  between the encoded and the true direction after the best orthogonal alignment
  (:func:`~manifold_vae.analysis.procrustes_alignment`).
* :math:`S^9`, scikit-learn's 8x8 digits (:func:`~manifold_vae.datasets.digits`, Gaussian
  decoder with :math:`\sigma_X = 0.1` on the grey levels): ``Hypersphere(9, family=...)``
  with the same three families (the heat kernel's time is at least :math:`T_9 = 0.308`
  there, so it cannot concentrate); the known factor is the class label: recovery is the
  accuracy of a 5-nearest-neighbour classifier of the held-out posterior locations against
  the training ones.

Per model, on held-out data: the importance-weighted estimate :math:`\hat L_K` of
:math:`\log p(x)` (:meth:`~manifold_vae.vae.VAE.marginal_log_likelihood`), the ELBO and its
exact KL (:func:`~manifold_vae.evaluation.thesis_metrics`), the median posterior spread, the
recovery, and the wall time per training step; a model *fails* when training stopped on a
non-finite loss, a metric is not finite, or the posterior collapsed to the prior (held-out KL
below :data:`COLLAPSE_KL` nats). Each model is trained alone by
:func:`~manifold_vae.training.fit` (only the circle's heat kernel has a Gaussian-noise
``reparameterize``, so the others could not share a stacked ensemble anyway, and one model at a
time gives a fair time per step), with the seed of its grid cell and repetition
(:func:`~manifold_vae.reproduce.common.build_members`). Tables give mean :math:`\pm` standard
error over the repetitions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..analysis import encoded_directions, procrustes_alignment
from ..datasets import digits, sinusoids, spherical_sensors
from ..evaluation import phase_recovery, thesis_metrics
from ..likelihoods import Gaussian, Likelihood
from ..manifolds import Circle, Hypersphere, LatentManifold, Sphere
from ..trainer import TrainConfig
from ..training import fit
from ..vae import VAE
from .budget import Budget
from .common import Member, Report, build_members, markdown_table, member_records, plot_histories
from .experiment import EXPERIMENTS, Experiment

__all__ = ["COLLAPSE_KL", "DEFAULT", "EXPERIMENT", "NAME", "TASKS", "TINY", "posterior_families"]

NAME = "posterior-families"

DEFAULT = Budget(epochs=30, reps=3, n=2000)
TINY = Budget(epochs=1, reps=1, n=64)
HIDDEN, DEPTH, BATCH, LR, LR_FINAL = 64, 2, 128, 3e-3, 3e-4
#: Importance samples per held-out point, and held-out points at most per task.
IMPORTANCE_SAMPLES, HELD_OUT = 200, 400
#: Latent samples per point of the held-out ELBO.
ELBO_SAMPLES = 20
#: A held-out KL below this many nats counts as posterior collapse.
COLLAPSE_KL = 0.1
#: Neighbours of the digits' k-nearest-neighbour classifier.
NEIGHBOURS = 5


@dataclass(frozen=True)
class Split:
    """A task's data: training points, held-out points and the held-out known factor."""

    train: Tensor
    test: Tensor
    factor: Tensor
    #: The training points' known factor (the digits' labels, for the nearest neighbours).
    train_factor: Tensor | None = None


@dataclass(frozen=True)
class Task:
    """One latent sphere and its data, networks and measure of recovery.

    Attributes
    ----------
    name : str
        Grid label, e.g. ``"S^2 sensors"``.
    families : tuple of str
        The posterior families compared (``family=`` of the manifold).
    latent : callable
        ``latent(family) -> LatentManifold``.
    likelihood : callable
        ``likelihood() -> Likelihood``, the decoder family.
    data : callable
        ``data(budget) -> Split``.
    recovery : callable
        ``recovery(vae, split) -> float``.
    recovery_label : str
        What ``recovery`` measures, for the table.
    """

    name: str
    families: tuple[str, ...]
    latent: Callable[[str], LatentManifold]
    likelihood: Callable[[], Likelihood]
    data: Callable[[Budget], Split]
    recovery: Callable[[VAE, Split], float]
    recovery_label: str


def _held_out(budget: Budget) -> int:
    return min(HELD_OUT, budget.n)


def _sinusoid_split(budget: Budget) -> Split:
    train = sinusoids(budget.n, noise=0.1, seed=0)
    test = sinusoids(_held_out(budget), noise=0.1, seed=1)
    return Split(train.data, test.data, test.latent)


def _phase(vae: VAE, split: Split) -> float:
    return phase_recovery(vae, split.test, split.factor)[0].item()


SENSORS, CONCENTRATION, NOISE = 30, 3.0, 0.05
#: Decoder scale on the digits' grey levels (a Bernoulli decoder lets every family collapse).
DIGIT_SIGMA = 0.1


def _sensor_split(budget: Budget) -> Split:
    train = spherical_sensors(budget.n, SENSORS, CONCENTRATION, NOISE, seed=0)
    test = spherical_sensors(_held_out(budget), SENSORS, CONCENTRATION, NOISE, seed=1)
    return Split(train.data, test.data, test.latent.double())


def _direction_angle(vae: VAE, split: Split) -> float:
    directions, _ = encoded_directions(vae, split.test)
    return math.degrees(procrustes_alignment(directions, split.factor)[1].mean().item())


def _digit_split(budget: Budget) -> Split:
    images, labels = digits()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    test, train = order[: _held_out(budget)], order[HELD_OUT:][: budget.n]
    return Split(images[train], images[test], labels[test], labels[train])


def _neighbour_accuracy(vae: VAE, split: Split) -> float:
    """Accuracy of the majority label of the k nearest training codes (chordal distance)."""
    vae.eval()
    with torch.no_grad():
        known, query = vae.embedded_location(split.train), vae.embedded_location(split.test)
    k = min(NEIGHBOURS, len(known))
    nearest = torch.cdist(query, known).topk(k, largest=False).indices
    votes = torch.nn.functional.one_hot(split.train_factor[nearest], 10).sum(1)
    return (votes.argmax(-1) == split.factor).double().mean().item()


#: The three latent spheres of the comparison.
TASKS: tuple[Task, ...] = (
    Task(
        "S^1 sinusoids",
        ("heat", "von-mises"),
        lambda family: Circle(family=family),
        lambda: Gaussian(0.1),
        _sinusoid_split,
        _phase,
        "phase correlation",
    ),
    Task(
        "S^2 sensors",
        ("heat", "vmf", "power-spherical"),
        lambda family: Sphere(family=family),
        lambda: Gaussian(NOISE),
        _sensor_split,
        _direction_angle,
        "mean angle (deg)",
    ),
    Task(
        "S^9 digits",
        ("heat", "vmf", "power-spherical"),
        lambda family: Hypersphere(9, family=family),
        lambda: Gaussian(DIGIT_SIGMA),
        _digit_split,
        _neighbour_accuracy,
        "5-NN accuracy",
    ),
)


def _task(name: str) -> Task:
    return next(t for t in TASKS if t.name == name)


def _train(members: Sequence[Member], budget: Budget, progress: bool) -> None:
    """Fit every member alone (its own seed); store the history and the time per step."""
    config = TrainConfig(
        epochs=budget.epochs, batch_size=BATCH, lr=LR, lr_final=LR_FINAL, progress=progress
    )
    for m in members:
        start = time.perf_counter()
        m.history = fit(m.vae, m.data, seed=m.seed, config=config)
        steps = budget.epochs * math.ceil(len(m.data) / BATCH)
        m.metrics["ms_per_step"] = 1e3 * (time.perf_counter() - start) / steps


def _measure(m: Member, split: Split, task: Task) -> None:
    """Held-out log-likelihood, ELBO, KL, spread, recovery and failure of a trained member."""
    vae = m.vae.eval()
    with torch.random.fork_rng():
        torch.manual_seed(m.seed)
        estimate = vae.marginal_log_likelihood(
            split.test, num_samples=IMPORTANCE_SAMPLES, batch_size=100
        )
        with torch.no_grad():
            spread = vae.latent.posterior_spread(vae.encode(split.test))[..., 0].median()
    metrics = thesis_metrics(vae, split.test, num_samples=ELBO_SAMPLES, seed=m.seed)
    values = {
        "iwae": estimate.value.mean().item(),
        "iwae_mc_se": estimate.standard_error.mean().item(),
        "ess_fraction": estimate.effective_sample_size.mean().item() / IMPORTANCE_SAMPLES,
        "elbo": -metrics["neg_elbo"],
        "kl": metrics["kl"],
        "spread": spread.item(),
        "recovery": task.recovery(vae, split),
    }
    stopped = m.history.stopped if m.history is not None else None
    nonfinite = [k for k, v in values.items() if not math.isfinite(v)]
    failure = (
        f"stopped: {stopped}"
        if stopped is not None
        else f"non-finite {', '.join(nonfinite)}"
        if nonfinite
        else "collapse"
        if values["kl"] < COLLAPSE_KL
        else None
    )
    m.metrics.update(values, failure=failure)


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (``nan`` error for one value) of the finite values."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    n = len(finite)
    mean = sum(finite) / n
    if n == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in finite) / (n - 1)
    return mean, math.sqrt(var / n)


#: The columns of the table: metric key, header, digits.
COLUMNS = (
    ("iwae", "log p(x) (IWAE)", 2),
    ("elbo", "ELBO", 2),
    ("kl", "KL", 2),
    ("spread", "median spread", 3),
    ("recovery", "recovery", 3),
    ("ms_per_step", "ms / step", 2),
)


def summary(members: Sequence[Member]) -> dict[str, dict[str, Any]]:
    """Per ``task/family``: mean and standard error of every column, and the failures."""
    cells: dict[str, list[Member]] = {}
    for m in members:
        cells.setdefault(f"{m.cell['task']}/{m.cell['family']}", []).append(m)
    out = {}
    for key, group in cells.items():
        entry: dict[str, Any] = {"reps": len(group)}
        for column, _, _ in COLUMNS:
            mean, se = _mean_se([m.metrics[column] for m in group])
            entry[column] = {"mean": mean, "se": se}
        entry["failures"] = [m.metrics["failure"] for m in group if m.metrics["failure"]]
        out[key] = entry
    return out


def _cell(entry: Mapping[str, float], digits_: int) -> str:
    if math.isnan(entry["mean"]):
        return "n/a"
    if math.isnan(entry["se"]):
        return f"{entry['mean']:.{digits_}f}"
    return f"{entry['mean']:.{digits_}f} ± {entry['se']:.{digits_}f}"


def _table(summ: Mapping[str, Mapping[str, Any]]) -> str:
    header = ["task / family", "reps", *(h for _, h, _ in COLUMNS), "failures"]
    rows = []
    for key, entry in summ.items():
        task = _task(key.split("/")[0])
        cells = [_cell(entry[c], d) for c, _, d in COLUMNS]
        cells[-2] += f" ({task.recovery_label})"
        rows.append((key, str(entry["reps"]), *cells, str(len(entry["failures"]))))
    return markdown_table(header, rows)


def _figure(summ: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    from ..plots import new_figure, save_figure

    figure = new_figure(4.0 * len(TASKS), 3.8)
    for i, task in enumerate(TASKS):
        ax = figure.add_subplot(1, len(TASKS), i + 1)
        for j, family in enumerate(task.families):
            entry = summ.get(f"{task.name}/{family}")
            if entry is None:
                continue
            for offset, key, marker in ((-0.1, "iwae", "o"), (0.1, "elbo", "s")):
                se = entry[key]["se"]
                ax.errorbar(
                    j + offset,
                    entry[key]["mean"],
                    yerr=0.0 if math.isnan(se) else se,
                    fmt=marker,
                    color=f"C{j}",
                    capsize=3,
                    label=key.upper() if j == 0 else None,
                )
        ax.set_xticks(range(len(task.families)), task.families)
        ax.set_title(task.name, fontsize=10)
        ax.set_ylabel("held-out nats per point")
        ax.legend(fontsize=7)
    figure.suptitle("held-out log p(x) (IWAE, o) and ELBO (s): mean ± standard error")
    figure.tight_layout()
    return save_figure(figure, path)


def posterior_families(out: Path, budget: Budget = DEFAULT, progress: bool = True) -> Report:
    """Train every posterior family on S^1, S^2 and S^9 and compare them on held-out data.

    Parameters
    ----------
    out : Path
        Output folder of the figures.
    budget : Budget
        ``epochs``, ``reps`` (seeds per family) and ``n`` (training points of the random
        datasets, at most ``n`` of the digits' 1397; the held-out sets have ``min(400, n)``
        points).
    progress : bool
        Progress bars.
    """
    splits = {task.name: task.data(budget) for task in TASKS}
    cells = [{"task": t.name, "family": f} for t in TASKS for f in t.families]

    def make(cell: Mapping[str, Any]) -> tuple[VAE, Tensor]:
        task = _task(cell["task"])
        train = splits[task.name].train
        latent = task.latent(cell["family"])
        vae = VAE(latent, train.shape[1:], task.likelihood(), hidden=HIDDEN, depth=DEPTH)
        return vae, train

    members = build_members(cells, budget.reps, make)
    _train(members, budget, progress)
    for m in members:
        _measure(m, splits[m.cell["task"]], _task(m.cell["task"]))
    summ = summary(members)
    figures = [
        _figure(summ, out / "likelihoods.png"),
        plot_histories(
            members, out / "training.png", label=lambda m: f"{m.cell['task']}/{m.cell['family']}"
        ),
    ]
    body = f"""
Data: {
        ", ".join(
            f"{t.name} ({len(splits[t.name].train)} training, "
            f"{len(splits[t.name].test)} held-out points)"
            for t in TASKS
        )
    }.
Every model: encoder and decoder with {DEPTH} hidden layers of {HIDDEN} units, {budget.epochs}
epochs of Adam (lr {LR:g} decaying to {LR_FINAL:g}, batch {BATCH}), trained alone by `fit`
with the seed of its cell and repetition; {budget.reps} repetitions per family. Decoders:
Gaussian with the true noise (sinusoids sigma_X = 0.1, sensors {NOISE:g}) and with
sigma_X = {DIGIT_SIGMA:g} on the digits' grey levels in [0, 1] (with a Bernoulli decoder every
family collapsed to the prior there in a first run: held-out KL 0.00).

Held out: `log p(x) (IWAE)` is the importance-weighted estimate with K = {IMPORTANCE_SAMPLES}
(a lower bound in expectation); `ELBO` with the exact KL and {ELBO_SAMPLES} latent samples;
`median spread` the posterior's standard deviation per tangent direction; `recovery` the known
factor's recovery; `ms / step` the wall time per training step. Mean ± standard error over the
repetitions. A failure is a stopped run (non-finite loss), a non-finite metric, or a held-out
KL below {COLLAPSE_KL:g} nats (collapse). On S^9 the heat kernel's time is at least
T_9 = 0.308 (it cannot concentrate: `docs/manifolds.md`).

{_table(summ)}
"""
    data = {"summary": summ, "members": member_records(members)}
    return Report(NAME, "Posterior families on S^1, S^2 and S^9", budget, body, data, figures)


EXPERIMENT = EXPERIMENTS.register(
    Experiment(
        NAME,
        "posterior families (heat, von Mises-Fisher, Power Spherical) on S^1, S^2, S^9",
        posterior_families,
        DEFAULT,
        TINY,
    )
)
