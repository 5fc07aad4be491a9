"""Command-line jobs: train one VAE and write its checkpoint, metrics and latent plot; the demo."""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .datasets import LatentDataset, sinusoids
from .evaluation import has_recovered_angles, phase_recovery
from .files import atomic_write, write_json
from .likelihoods import LIKELIHOODS, Gaussian, Likelihood
from .manifolds import MANIFOLDS, Circle, Euclidean, LatentManifold, Product
from .plots import plot_latent
from .runs import RunFolder
from .trainer import (
    EpochCallback,
    History,
    MetricsLog,
    TensorBoardLog,
    TrainingState,
    Validation,
    check_device,
    read_training_state,
)
from .training import fit
from .vae import VAE

__all__ = [
    "SEED_LIMIT",
    "TrainResult",
    "available_bytes",
    "check_memory",
    "check_seed",
    "load_data",
    "make_likelihood",
    "parse_latent",
    "resume_job",
    "run_demo",
    "split_held_out",
    "train_job",
    "training_bytes",
]


#: Seeds are integers in [0, SEED_LIMIT) (torch's generators take 64-bit seeds).
SEED_LIMIT = 2**63


def check_seed(seed: Any) -> int:
    """``seed`` if it is an integer in ``[0, 2^63)``, else ``ValueError``."""
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not (0 <= seed < SEED_LIMIT)
    ):
        raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    return int(seed)


def training_bytes(
    latent: LatentManifold,
    data_shape: tuple[int, ...],
    likelihood: Likelihood,
    hidden: int | None = None,
    depth: int = 2,
) -> int:
    """Bytes that training the default networks needs for its parameters: float32 weights,
    gradients and Adam's two moments, four copies of every parameter.

    The networks are built on torch's ``meta`` device (shapes only, nothing allocated), so the
    count is exact and costs no memory whatever the size.
    """
    with torch.device("meta"):
        vae = VAE(latent, data_shape, likelihood, hidden=hidden, depth=depth)
    return 4 * 4 * sum(p.numel() for p in vae.parameters())


def available_bytes(device: torch.device) -> int | None:
    """Physical memory of ``device`` (CUDA: the GPU's total; CPU: the machine's RAM on POSIX),
    or ``None`` when it cannot be read."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[1]
    if device.type == "cpu" and hasattr(os, "sysconf"):
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    return None


def check_memory(needed: int, device: torch.device) -> None:
    """``ValueError`` naming both numbers when ``needed`` bytes exceed ``device``'s memory."""
    total = available_bytes(device)
    if total is not None and needed > total:
        raise ValueError(
            f"training these networks needs about {needed / 2**30:,.1f} GiB for weights, "
            f"gradients and optimiser state, more than the {total / 2**30:,.1f} GiB of "
            f"{device.type} memory; use smaller data or --hidden"
        )


def parse_latent(text: str) -> LatentManifold:
    """A manifold from ``NAME``, ``NAME:ARG`` or either with ``@FAMILY``: ``euclidean:2``,
    ``circle``, ``flat-torus:3``, ``clifford-torus``, ``hypersphere:9@vmf``,
    ``circle@von-mises``, or any registered manifold; ``ARG`` is an integer passed as the
    class's first constructor argument, ``FAMILY`` its posterior family (``family=``; see
    docs/manifolds.md). ``A*B*...`` is the product of such manifolds."""
    parts = text.split("*")
    if len(parts) > 1:
        return Product(*map(parse_latent, parts))
    text, _, family = text.partition("@")
    if family:
        latent = parse_latent(text)
        try:
            return type(latent)(**{**latent.spec()["kwargs"], "family": family})
        except TypeError as error:
            raise ValueError(f"latent {text!r} has no choice of posterior family") from error
    name, _, arg = text.partition(":")
    if name not in MANIFOLDS:
        raise ValueError(f"unknown latent {name!r}; choose from {list(MANIFOLDS.names())}")
    cls = MANIFOLDS[name]
    if not arg:
        try:
            return cls()
        except TypeError as error:
            raise ValueError(
                f"latent {name!r} cannot be built from a name alone ({error}); build it in "
                "Python (see docs/manifolds.md)"
            ) from error
    try:
        value = int(arg)
    except ValueError as error:
        raise ValueError(f"latent argument must be an integer, got {arg!r}") from error
    try:
        return cls(value)
    except TypeError as error:
        raise ValueError(f"latent {name!r} takes no argument, got {arg!r}") from error


def make_likelihood(name: str, sigma_x: float = 1.0) -> Likelihood:
    """The likelihood registered as ``name`` in :data:`~manifold_vae.likelihoods.LIKELIHOODS`,
    built from the command line's ``--sigma-x`` by its
    :meth:`~manifold_vae.likelihoods.Likelihood.from_options` (``gaussian``: fixed
    :math:`\\sigma_X`; ``gaussian-learned``: its initial value; ``bernoulli``: ignored).

    Raises
    ------
    ValueError
        If no likelihood is registered as ``name`` (naming the registered ones), or
        ``sigma_x`` does not suit it.
    """
    return LIKELIHOODS[name].from_options(sigma_x=sigma_x)


def load_data(source: str, n: int = 1000, noise: float = 0.1, seed: int = 0) -> LatentDataset:
    """Built-in ``sinusoids`` (thesis Sec. 5.1) or a ``.npy`` file of shape ``(N, ...)``."""
    if source == "sinusoids":
        seed = check_seed(seed)
        return sinusoids(n=n, noise=noise, seed=seed)
    path = Path(source)
    if path.suffix != ".npy":
        raise ValueError(f"data must be 'sinusoids' or a .npy file, got {source!r}")
    if path.is_dir():
        raise ValueError(f"data {path} is a folder, not a .npy file")
    if not path.is_file():
        raise ValueError(f"data file {path} does not exist")
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as error:  # unreadable file
        raise ValueError(f"cannot read {path} as a .npy array: {error}") from error
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(
            f"{path} must hold a non-empty array of shape (N, ...), got shape {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        kind = "complex numbers" if array.dtype.kind == "c" else f"values of type {array.dtype}"
        raise ValueError(f"{path} holds {kind}; the data must be real numbers")
    data = torch.from_numpy(np.array(array, dtype=np.float32))  # a writable copy
    return LatentDataset(data, torch.empty(len(data), 0), path.name)


@dataclass
class TrainResult:
    """What :func:`train_job` produced (``stopped``: why training ended early, else ``None``)."""

    vae: VAE
    metrics: dict[str, Any]
    checkpoint: Path
    metrics_path: Path
    plot_path: Path
    stopped: str | None = None


def split_held_out(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices ``(train, held_out)`` of a random split of ``n`` datapoints, reproducible by seed.

    ``round(fraction * n)`` datapoints (at least one when ``fraction > 0``) are held out; with
    ``fraction == 0`` the training indices are ``0 .. n-1`` in order.

    Raises
    ------
    ValueError
        If ``fraction`` is not in ``[0, 1)`` or leaves no datapoint to train on.
    """
    if not (isinstance(fraction, (int, float)) and 0.0 <= fraction < 1.0):
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction!r}")
    if fraction == 0:  # the data as given, in its order
        return torch.arange(n), torch.arange(0)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held = max(1, round(fraction * n))
    if held >= n:
        raise ValueError(
            f"val_fraction={fraction} holds out {held} of {n} datapoints, leaving none to train on"
        )
    return order[held:], order[:held]


def train_job(
    latent: LatentManifold,
    dataset: LatentDataset,
    likelihood: Likelihood,
    out: str | Path,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: str | None = None,
    hidden: int | None = None,
    depth: int = 2,
    progress: bool = True,
    *,
    overwrite: bool = False,
    val_fraction: float = 0.0,
    patience: int | None = None,
    data_source: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a VAE in the run folder ``out``: ``model.pt``, ``metrics.json``, ``metrics.jsonl``,
    ``latent.png`` and ``run.json``.

    The folder is a :class:`~manifold_vae.runs.RunFolder`: locked while the run writes, refused
    if it already holds a run unless ``overwrite`` (then the earlier run's files are removed
    first), every file written atomically. ``val_fraction`` holds out that share of the data
    (:func:`split_held_out`) for the held-out loss logged after every epoch, and ``patience``
    stops training when it has not improved for that many epochs
    (:class:`~manifold_vae.trainer.Validation`). Training that diverges keeps its last good
    epoch (the initial model when the first epoch diverges) and says so in ``stopped``. Every
    epoch's checkpoint holds the training state, so an interrupted run continues with
    :func:`resume_job` when ``data_source`` (the arguments of :func:`load_data`) says where
    its data comes from. With the ``tensorboard`` package installed, the per-epoch scalars
    also go to ``tensorboard/``.

    The metrics hold the training history, the final ELBO terms on the training data (and the
    held-out loss), the wall time and, when the dataset has true angles and the latent declares
    angle coordinates or is a vector space of dimension >= 2
    (:func:`~manifold_vae.evaluation.has_recovered_angles`; not the sphere),
    ``phase_correlation``: the absolute circular correlation of each true angle with the
    recovered one (see :func:`manifold_vae.evaluation.phase_recovery`).

    Raises
    ------
    ValueError
        For an unusable folder, an earlier run without ``overwrite``, or bad options, before any
        training.
    """
    if patience is not None and not val_fraction:
        raise ValueError("patience needs a held-out split: set val_fraction > 0")
    seed = check_seed(seed)
    target = check_device(device) if device is not None else torch.device("cpu")
    shape = tuple(dataset.data.shape[1:])
    check_memory(training_bytes(latent, shape, likelihood, hidden, depth), target)
    split_held_out(len(dataset.data), val_fraction, seed)  # checks val_fraction
    config = {
        "latent": latent.spec(),
        "likelihood": likelihood.spec(),
        "dataset": dataset.name,
        "data_source": data_source,
        "n": len(dataset.data),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "device": device,
        "hidden": hidden,
        "depth": depth,
        "val_fraction": val_fraction,
        "patience": patience,
    }
    with RunFolder(out, overwrite=overwrite) as run:
        run.write_record(config)
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # network initialisation
            vae = VAE(latent, shape, likelihood, hidden=hidden, depth=depth)
        return _train_in(run, vae, dataset, config, progress)


def resume_job(out: str | Path, progress: bool = True) -> TrainResult:
    """Continue the run in the folder ``out`` (written by :func:`train_job`) to its last epoch.

    Everything comes from the folder: the options from ``run.json``, the model and its
    training state (optimiser, random streams, history) from ``model.pt``, the data from the
    source recorded in ``run.json`` (built-in sinusoids or a ``.npy`` file, read again). The
    final model is the one the uninterrupted run gives, bit for bit (on the same device);
    ``metrics.jsonl`` continues (lines of epochs after the checkpoint's are dropped first).

    Raises
    ------
    ValueError
        If the folder holds no run to resume (no checkpoint, no training state, no
        ``run.json`` or no recorded data source), the run has already finished, or the folder
        is locked by another run.
    """
    with RunFolder(out, resume=True) as run:
        try:
            record = json.loads(run.record.read_text())
            config = record["config"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"--resume {run.path}: no readable run.json ({error})") from None
        source = config.get("data_source")
        if not source:
            raise ValueError(
                f"--resume {run.path}: the run's data source is not recorded (it was not started "
                "by manifold-vae train); resume it with fit(..., resume=read_training_state(path))"
            )
        state = read_training_state(run.checkpoint)
        if state is None:
            raise ValueError(f"--resume {run.path}: model.pt holds no training state")
        if state.epoch >= config["epochs"]:
            raise ValueError(
                f"--resume {run.path}: the run has finished ({state.epoch} of {config['epochs']} "
                "epochs)"
            )
        _drop_log_lines_after(run.metrics_log, state.epoch)
        dataset = load_data(**source)
        vae = VAE.load(run.checkpoint)
        return _train_in(run, vae, dataset, config, progress, state)


def _drop_log_lines_after(log: Path, epoch: int) -> None:
    """Keep the lines of ``log`` (``metrics.jsonl``) of epochs up to ``epoch``."""
    if not log.exists():
        return
    kept = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line)["epoch"] <= epoch:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    atomic_write(log, "".join(kept))


def _train_in(
    run: RunFolder,
    vae: VAE,
    dataset: LatentDataset,
    config: dict[str, Any],
    progress: bool,
    state: TrainingState | None = None,
) -> TrainResult:
    """Train ``vae`` as ``config`` says in ``run``'s folder (continuing ``state``); write the
    metrics and the plot."""
    train_index, held_index = split_held_out(
        len(dataset.data), config["val_fraction"], config["seed"]
    )
    data, held_out = dataset.data[train_index], dataset.data[held_index]
    validation = None
    if len(held_out):
        validation = Validation(held_out, patience=config["patience"], seed=config["seed"])
    callbacks: list[EpochCallback] = [MetricsLog(run.metrics_log, validation)]
    if validation is not None:
        callbacks.insert(0, validation)
    if _has_tensorboard():
        callbacks.append(TensorBoardLog(run.path / "tensorboard", validation))
    start = time.perf_counter()
    history = fit(
        vae,
        data,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        lr=config["lr"],
        seed=config["seed"],
        device=config["device"],
        progress=progress,
        checkpoint=run.checkpoint,
        callbacks=callbacks,
        resume=state,
    )
    seconds = time.perf_counter() - start
    if not run.checkpoint.exists():  # no good epoch: keep the initial model
        vae.save(run.checkpoint)
    vae.cpu()
    colour = dataset.latent[train_index] if dataset.latent.numel() else None
    metrics = _metrics(vae, data, colour, history, seconds, config)
    if validation is not None:
        metrics["held_out"] = {"n": len(held_out), "loss": validation.losses.get((0, 0), [])}
    write_json(run.metrics, metrics)
    title = f"{vae.latent!r} on {dataset.name}"
    plot_path = plot_latent(vae, data, run.plot, colour=colour, title=title)
    return TrainResult(vae, metrics, run.checkpoint, run.metrics, plot_path, history.stopped)


def _has_tensorboard() -> bool:
    """Whether TensorBoard logs can be written (the ``tensorboard`` package is installed)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _metrics(
    vae: VAE,
    data: Tensor,
    colour: Tensor | None,
    history: History,
    seconds: float,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The final metrics of :func:`train_job` (``colour``: the true latent of ``data``)."""
    metrics: dict[str, Any] = {
        "latent": config["latent"],
        "likelihood": config["likelihood"],
        "dataset": config["dataset"],
        "n": len(data),
        "epochs": len(history.loss),
        "seed": config["seed"],
        "seconds": seconds,
        "stopped": history.stopped,
        "history": history.as_dict(),
    }
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(config["seed"])
        terms = vae.elbo(data, num_samples=10)
    metrics["final"] = {
        "elbo": terms.elbo.mean().item(),
        "reconstruction": terms.reconstruction.mean().item(),
        "kl": terms.kl.mean().item(),
    }
    if colour is not None and has_recovered_angles(vae.latent):
        metrics["phase_correlation"] = phase_recovery(vae, data, colour).tolist()
    return metrics


#: Hidden units of the demo's networks. The thesis's floor(D/3) = 8 units reach a circular
#: correlation of only 0.96-0.998 in a few dozen epochs (it trained for 1e5); 64 reach >= 0.99.
DEMO_HIDDEN = 64


def run_demo(out: str | Path, epochs: int = 40, n: int = 1000, progress: bool = True) -> dict:
    """``make demo``: the distribution tour, then a circle VAE and an R^2 VAE on sinusoids.

    Both VAEs are trained on the same ``n`` noisy sinusoids (thesis Sec. 5.1, noise 0.1,
    :math:`\\sigma_X = 0.1`, two hidden layers of :data:`DEMO_HIDDEN` units); each writes its
    checkpoint, metrics and latent plot into a subfolder,
    and a summary table of both is printed and written to ``summary.md``.
    """
    from .tour import run_tour

    out = Path(out)
    tour = run_tour(out / "distributions")
    dataset = sinusoids(n=n, noise=0.1, seed=0)
    rows = []
    for name, latent in (
        ("circle", Circle()),
        ("euclidean-2", Euclidean(2)),
    ):
        result = train_job(
            latent,
            dataset,
            Gaussian(0.1),
            out / name,
            epochs=epochs,
            hidden=DEMO_HIDDEN,
            progress=progress,
            overwrite=True,  # the demo's own folders: a re-run replaces them
        )
        m = result.metrics
        rows.append(
            (
                name,
                m["final"]["elbo"],
                m["final"]["kl"],
                m.get("phase_correlation", [math.nan])[0],
                m["seconds"],
            )
        )
    lines = [
        f"# Demo: VAEs on {dataset.name}, sigma_X = 0.1, {epochs} epochs, "
        f"2 x {DEMO_HIDDEN} hidden units, lr 3e-3, batch 64, seed 0",
        "",
        "| latent | ELBO per datapoint | KL | abs. circular correlation, true phase | seconds |",
        "|---|---:|---:|---:|---:|",
        *[f"| {r[0]} | {r[1]:.2f} | {r[2]:.3f} | {r[3]:.4f} | {r[4]:.1f} |" for r in rows],
    ]
    summary = "\n".join(lines) + "\n"
    atomic_write(out / "summary.md", summary)
    return {"tour": tour, "summary": summary, "rows": rows}
