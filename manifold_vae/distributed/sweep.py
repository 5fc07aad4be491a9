"""``manifold-vae sweep``: a Ray Tune search over the options of ``manifold-vae train``.

Each trial trains one VAE with :func:`~manifold_vae.training.fit` on the data minus a held-out
validation split (drawn once, from ``data_seed``: the same split in every trial). After every
epoch an :class:`~manifold_vae.trainer.EpochCallback` computes the held-out negative ELBO
(mean over the validation points, one latent sample each, fixed noise seed), saves the model
(:meth:`~manifold_vae.vae.VAE.save`, ``trials/KEY/model.pt``), writes the trial's record
(``trials/KEY/record.json``: options, curves, status) and reports the metric to Tune, whose
ASHA scheduler stops the trials that fall behind at its rungs.

The folder ``--out`` holds ``sweep.json`` (the validated config and every trial's options),
one folder per trial and, at the end, ``results.csv``, ``results.md`` and ``curves.png``
(validation curves of the best trials). The records are the sweep's memory: ``--resume``
re-runs only the trials not recorded as ``finished`` (all epochs) or ``stopped`` (by ASHA),
so a sweep whose driver was killed continues where it was. On a cluster of several machines
``--out`` must be a folder every machine sees at the same path (a shared filesystem), as Ray
Tune's own storage needs.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..trainer import EpochCallback
from .ray_grid import ray_session, require_ray
from .sweep_config import SweepConfig, latent_manifold

__all__ = ["METRIC", "SweepResult", "best_value", "run_sweep"]

#: The metric ASHA minimises and the table sorts by.
METRIC = "val_neg_elbo"
#: Statuses of a trial that ``--resume`` does not run again.
DONE = ("finished", "stopped")


def _write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, allow_nan=True))
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


class _ValidationReport(EpochCallback):
    r"""After each epoch: held-out negative ELBO, checkpoint, record, ``tune.report``.

    The metric is :math:`\frac1V \sum_{v} \big(-\log p(x_v \mid z_v) + \mathrm{KL}(q(z
    \mid x_v) \,\|\, p(z))\big)` over the ``V`` validation points, one sample
    :math:`z_v \sim q(z \mid x_v)` each, drawn with a fixed seed (KL weight 1, whatever the
    trial's ``beta``).
    """

    def __init__(
        self, vae: Any, validation: torch.Tensor, folder: Path, record: dict, epochs: int
    ) -> None:
        self.vae, self.validation, self.folder, self.record = vae, validation, folder, record
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, backends: Sequence[Any]) -> None:
        from ray import tune

        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)  # the same noise at every epoch and in every trial
            value = -self.vae.elbo(self.validation).elbo.mean().item()
        value = value if math.isfinite(value) else math.inf
        train_loss = backends[0].histories[0].loss[-1]
        self.vae.save(self.folder / "model.pt")
        self.record["val_neg_elbo"].append(value)
        self.record["train_loss"].append(train_loss)
        if epoch + 1 == self.epochs:  # recorded before Tune can end the trial at its report
            self.record["status"] = "finished"
        _write_json(self.folder / "record.json", self.record)
        tune.report({METRIC: value, "train_loss": train_loss, "epoch": epoch + 1})


def _trial(config: dict[str, Any]) -> None:
    """One trial (the Tune trainable): train, validate each epoch, keep the record."""
    from ..jobs import load_data, make_likelihood
    from ..training import fit
    from ..vae import VAE

    params = config["trial"]
    torch.set_num_threads(params["threads"])
    options = params["options"]
    folder = Path(params["out"]) / "trials" / params["key"]
    folder.mkdir(parents=True, exist_ok=True)
    data = load_data(
        options["data"], n=options["n"], noise=options["noise"], seed=options["data_seed"]
    ).data
    generator = torch.Generator().manual_seed(options["data_seed"])
    order = torch.randperm(len(data), generator=generator)
    held = max(1, round(params["validation"] * len(data)))
    validation, training = data[order[:held]], data[order[held:]]
    with torch.random.fork_rng():
        torch.manual_seed(options["seed"])  # network initialisation, as manifold-vae train
        vae = VAE(
            latent_manifold(options["latent"]),
            tuple(data.shape[1:]),
            make_likelihood(options["likelihood"], options["sigma_x"]),
            hidden=options["hidden"] or None,
            depth=options["depth"],
        )
    record = {
        "key": params["key"],
        "options": options,
        "status": "running",
        "stopped": None,
        "val_neg_elbo": [],
        "train_loss": [],
    }
    history = fit(
        vae,
        training,
        epochs=options["epochs"],
        batch_size=options["batch_size"],
        lr=options["lr"],
        beta=options["beta"],
        seed=options["seed"],
        progress=False,
        callbacks=[_ValidationReport(vae, validation, folder, record, options["epochs"])],
    )
    if not (folder / "model.pt").exists():  # no good epoch: keep the initial model
        vae.save(folder / "model.pt")
    record.update(status="finished", stopped=history.stopped)
    _write_json(folder / "record.json", record)


@dataclass
class SweepResult:
    """What :func:`run_sweep` did and wrote.

    Attributes
    ----------
    records : list of dict
        Every trial's record (``key``, ``options``, ``status``, curves), in the config's order.
    ran : list of str
        The keys of the trials this call ran (the others were done before: ``--resume``).
    table_csv, table_md, plot : Path
        The results table and the plot of the best trials' validation curves.
    """

    records: list[dict[str, Any]]
    ran: list[str]
    table_csv: Path
    table_md: Path
    plot: Path | None

    def best(self) -> dict[str, Any]:
        """The record of the trial with the lowest held-out negative ELBO."""
        return min(self.records, key=best_value)


def best_value(record: dict[str, Any]) -> float:
    """A trial's lowest finite held-out negative ELBO (``inf`` if it has none)."""
    values = [v for v in record.get("val_neg_elbo", []) if math.isfinite(v)]
    return min(values) if values else math.inf


def _prepare(config: SweepConfig, out: Path, resume: bool) -> list[dict[str, Any]]:
    """Check ``out`` against the config; the trials still to run (their folders cleared)."""
    described = json.loads(json.dumps(config.describe()))
    stored = _read_json(out / "sweep.json")
    if stored is not None and not resume:
        raise ValueError(
            f"--out {out} already holds a sweep: pass --resume to continue it, or a new folder"
        )
    if stored is not None and stored != described:
        raise ValueError(
            f"--resume: the config differs from the sweep in {out} (its sweep.json); resume "
            "with the same config or start a new folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "sweep.json", described)
    todo = []
    for trial in config.trials:
        folder = out / "trials" / trial["key"]
        record = _read_json(folder / "record.json")
        if record is not None and record["status"] in DONE:
            continue
        if folder.exists():
            shutil.rmtree(folder)  # a trial cut short: it starts again from scratch
        todo.append(trial)
    return todo


def _absolute(data: str) -> str:
    """A data file's absolute path (Tune runs each trial in a folder of its own)."""
    return data if data == "sinusoids" else str(Path(data).resolve())


def _tune(
    config: SweepConfig, out: Path, todo: list[dict[str, Any]], max_concurrent: int | None
) -> list[tuple[str, bool]]:
    """Run the trials ``todo`` with Ray Tune; ``(key, ended without error)`` per trial."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    settings = config.settings
    threads = settings["cpus_per_trial"]
    params = [
        {
            "key": t["key"],
            "options": {**t["options"], "data": _absolute(t["options"]["data"])},
            "out": str(out),
            "validation": settings["validation"],
            "threads": threads,
        }
        for t in todo
    ]
    if settings["scheduler"] == "asha":
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            metric=METRIC,
            mode="min",
            max_t=max(t["options"]["epochs"] for t in todo),
            grace_period=settings["grace_period"],
            reduction_factor=settings["reduction_factor"],
        )
    else:
        scheduler = FIFOScheduler()
    sessions = out / "tune"
    name = f"session-{len(list(sessions.glob('session-*'))) if sessions.exists() else 0}"
    tuner = tune.Tuner(
        tune.with_resources(_trial, {"cpu": threads}),
        param_space={"trial": tune.grid_search(params)},
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            max_concurrent_trials=max_concurrent or settings["max_concurrent"],
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(sessions),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=settings["max_failures"]),
        ),
    )
    results = tuner.fit()
    return [(r.config["trial"]["key"], r.error is None) for r in results]


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    address: str | None = None,
    max_concurrent: int | None = None,
    resume: bool = False,
    top: int = 5,
) -> SweepResult:
    """Run the sweep ``config`` into the folder ``out`` on Ray (:func:`ray_session`).

    Parameters
    ----------
    config : SweepConfig
        From :func:`~.sweep_config.load_sweep` (validated: nothing is scheduled for a bad one).
    out : path
        The sweep's folder (see the module docstring).
    address : str, optional
        A Ray cluster to join; by default a local Ray instance is started.
    max_concurrent : int, optional
        Trials running at once (default: the config's ``max_concurrent``, else as many as the
        cluster's CPUs fit).
    resume : bool
        Continue the sweep in ``out``: run only the trials not yet finished or stopped.
    top : int
        How many of the best trials the plot shows.

    Returns
    -------
    SweepResult
    """
    from ..reproduce.common import check_positive_int

    if max_concurrent is not None:
        check_positive_int("max_concurrent", max_concurrent)
    require_ray()
    out = Path(out).resolve()
    todo = _prepare(config, out, resume)
    outcomes: list[tuple[str, bool]] = []
    if todo:
        with ray_session(address):
            outcomes = _tune(config, out, todo, max_concurrent)
    for key, ok in outcomes:  # a trial ASHA ended early left its record "running"
        path = out / "trials" / key / "record.json"
        record = _read_json(path)
        if record is not None and record["status"] == "running":
            record["status"] = "stopped" if ok else "error"
            _write_json(path, record)
    records = []
    for trial in config.trials:
        record = _read_json(out / "trials" / trial["key"] / "record.json")
        records.append(record or {"key": trial["key"], "options": trial["options"]})
        records[-1].setdefault("status", "not run")
    table_csv, table_md = _write_tables(config, records, out)
    plot = _plot_best(records, out / "curves.png", top)
    return SweepResult(records, [t["key"] for t in todo], table_csv, table_md, plot)


def _rows(config: SweepConfig, records: list[dict[str, Any]]) -> tuple[list[str], list[list]]:
    header = ["rank", "trial", "status", "epochs", "best val -ELBO", "final val -ELBO",
              "final train loss", *config.searched]  # fmt: skip
    ranked = sorted(records, key=best_value)
    rows = []
    for rank, r in enumerate(ranked, start=1):
        val, loss = r.get("val_neg_elbo", []), r.get("train_loss", [])
        rows.append(
            [
                rank,
                r["key"],
                r["status"] if not r.get("stopped") else f"{r['status']} ({r['stopped']})",
                len(val),
                best_value(r),
                val[-1] if val else math.nan,
                loss[-1] if loss else math.nan,
                *(r["options"][k] for k in config.searched),
            ]
        )
    return header, rows


def _write_tables(
    config: SweepConfig, records: list[dict[str, Any]], out: Path
) -> tuple[Path, Path]:
    """``results.csv`` (full precision) and ``results.md`` (4 significant digits), best first."""
    from ..reproduce.common import markdown_table

    header, rows = _rows(config, records)
    table_csv = out / "results.csv"
    with table_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    shown = [[f"{v:.4g}" if isinstance(v, float) else v for v in row] for row in rows]
    table_md = out / "results.md"
    table_md.write_text(
        f"# Sweep results\n\n{len(records)} trials, sorted by the best held-out negative ELBO "
        f"(search: {config.settings['search']}, scheduler: {config.settings['scheduler']}).\n\n"
        f"{markdown_table(header, shown)}\n"
    )
    return table_csv, table_md


def _plot_best(records: list[dict[str, Any]], path: Path, top: int) -> Path | None:
    """Held-out negative ELBO per epoch of the ``top`` best trials."""
    from ..plots import new_figure, save_figure

    best = [r for r in sorted(records, key=best_value)[:top] if r.get("val_neg_elbo")]
    if not best:
        return None
    figure = new_figure(7.0, 4.0)
    ax = figure.add_subplot(1, 1, 1)
    for r in best:
        values = r["val_neg_elbo"]
        ax.plot(range(1, len(values) + 1), values, marker=".", label=r["key"])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out negative ELBO")
    ax.set_yscale("symlog", linthresh=10.0)
    ax.legend(fontsize=7)
    ax.set_title(f"the {len(best)} best trials")
    figure.tight_layout()
    return save_figure(figure, path)
