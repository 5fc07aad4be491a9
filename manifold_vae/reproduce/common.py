"""Shared machinery of the experiments: grids of models, ensemble training, reports."""

from __future__ import annotations

import copy
import json
import math
import platform
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..ensemble import ensemble_key, fit_ensemble
from ..evaluation import (
    encoding_nonuniformity,
    factor_correlations,
    format_mean_std,
    recovered_angles,
    summarize,
    thesis_metrics,
    winding_number,
)
from ..trainer import History, TrainConfig
from ..vae import VAE
from .budget import Budget

__all__ = [
    "JSON_DIGITS",
    "RESTART_SEED",
    "EnsembleGroup",
    "GroupTrainer",
    "Member",
    "Report",
    "build_members",
    "by_cell",
    "cell_key",
    "cell_value",
    "check_positive_int",
    "convergence",
    "environment",
    "evaluate",
    "group_runs",
    "group_trainer",
    "health_columns",
    "json_text",
    "markdown_table",
    "member_records",
    "plot_histories",
    "train_groups_locally",
    "train_members",
]


@dataclass
class Member:
    """One model of a grid: its grid cell, the model, its training data and seed."""

    #: Grid cell, e.g. ``{"noise": 0.1, "sigma_x": 0.01}`` (without the repetition).
    cell: dict[str, Any]
    rep: int
    vae: VAE
    data: Tensor
    seed: int
    history: History | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Further initialisations ``(model, seed)`` of this member (restarts); after
    #: :func:`train_members` the member holds the candidate with the best training loss.
    candidates: list[tuple[VAE, int]] = field(default_factory=list)
    #: After training with restarts: ``{"chosen", "seeds", "final_loss"}`` of the candidates.
    restarts: dict[str, Any] | None = None


#: Seed offset of restart ``j`` of a member: seed ``seed + RESTART_SEED * j``.
RESTART_SEED = 100_000


def check_positive_int(name: str, value: Any) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _made(make: Callable, cell: Mapping[str, Any], seed: int, dtype: torch.dtype):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vae, data = make(cell)
    return vae.to(dtype), data.to(dtype)


def build_members(
    cells: Sequence[Mapping[str, Any]],
    reps: int,
    make: Callable[[Mapping[str, Any]], tuple[VAE, Tensor]],
    dtype: torch.dtype = torch.float32,
    restarts: int = 1,
) -> list[Member]:
    """One member per (cell, repetition); network weights seeded by the member's seed.

    ``make(cell)`` returns the untrained model and its training data. The seed of cell ``i``,
    repetition ``r`` is ``1000 * r + i`` (data order, latent noise and initial weights).
    With ``restarts = k > 1`` each member also gets ``k - 1`` further initialisations, seeded
    ``seed + 100000 j`` (:data:`RESTART_SEED`), all trained by :func:`train_members`, which
    keeps the one with the lowest final training loss (the negative ELBO: an unsupervised
    choice that never looks at the true latent values).
    """
    check_positive_int("restarts", restarts)
    members = []
    for rep in range(reps):
        for i, cell in enumerate(cells):
            seed = 1000 * rep + i
            vae, data = _made(make, cell, seed, dtype)
            member = Member(dict(cell), rep, vae, data, seed)
            for j in range(1, restarts):
                extra = seed + RESTART_SEED * j
                member.candidates.append((_made(make, cell, extra, dtype)[0], extra))
            members.append(member)
    return members


def _final_loss(history: History) -> tuple[bool, float]:
    """Sort key of a trained candidate: finished runs first, then by last epoch's loss."""
    loss = history.loss[-1] if history.loss else math.inf
    return (history.stopped is not None, loss if math.isfinite(loss) else math.inf)


def _starts(member: Member) -> list[tuple[VAE, int]]:
    """The member's initialisations: its own model and seed, then its restart candidates."""
    return [(member.vae, member.seed), *member.candidates]


@dataclass
class EnsembleGroup:
    """One unit of a grid's training: the models that one :func:`fit_ensemble` call trains.

    Its result depends on nothing but its own contents: each member's data order and latent
    noise come from its own ``seed`` (see :func:`build_members`), never from the order in
    which groups are trained or from where (:func:`group_trainer`).

    Attributes
    ----------
    vaes : list of VAE
        The members (one model shape), trained in place.
    data : list of Tensor, shape=[N, *data_shape] each
        Each member's training data (one size ``N``).
    seeds : list of int
        Each member's seed.
    config : TrainConfig
        The shared training options.
    device : str, optional
        Where to train.
    """

    vaes: list[VAE]
    data: list[Tensor]
    seeds: list[int]
    config: TrainConfig
    device: str | None = None

    def train(self) -> list[History]:
        """Train the members in place (:func:`fit_ensemble`); one history per member."""
        return fit_ensemble(
            self.vaes, self.data, seeds=self.seeds, device=self.device, config=self.config
        )


#: How a grid's ensemble groups are trained: ``trainer(groups)`` trains every group in place
#: and returns its histories, one list per group in the order given.
GroupTrainer = Callable[[Sequence[EnsembleGroup]], list[list[History]]]


def train_groups_locally(groups: Sequence[EnsembleGroup]) -> list[list[History]]:
    """The default :data:`GroupTrainer`: one group after another, in this process."""
    return [group.train() for group in groups]


_GROUP_TRAINER: ContextVar[GroupTrainer] = ContextVar("group_trainer", default=train_groups_locally)


@contextmanager
def group_trainer(trainer: GroupTrainer | None) -> Iterator[None]:
    """Within the block, :func:`train_members` trains its ensemble groups with ``trainer``.

    ``None`` keeps the current one (by default :func:`train_groups_locally`); e.g.
    :class:`manifold_vae.distributed.RayGroupTrainer` runs each group as a Ray task. The
    setting is a context variable: it does not leak out of the block (or into other threads).
    """
    if trainer is None:
        yield
        return
    if not callable(trainer):
        raise ValueError(f"trainer must be callable, got {trainer!r}")
    token = _GROUP_TRAINER.set(trainer)
    try:
        yield
    finally:
        _GROUP_TRAINER.reset(token)


def _fit_runs(
    runs: Sequence[tuple[Tensor, VAE, int]], config: TrainConfig, device: str | None
) -> list[History]:
    """Train ``(data, model, seed)`` runs in place, one ensemble per model shape and data size.

    The groups go to the current :data:`GroupTrainer` (:func:`group_trainer`).
    """
    rows_of: dict[tuple, list[int]] = {}
    for i, (data, vae, _) in enumerate(runs):
        rows_of.setdefault((ensemble_key(vae), len(data)), []).append(i)
    groups = [
        EnsembleGroup(
            [runs[i][1] for i in rows],
            [runs[i][0] for i in rows],
            [runs[i][2] for i in rows],
            config,
            device,
        )
        for rows in rows_of.values()
    ]
    trained = _GROUP_TRAINER.get()(groups)
    if len(trained) != len(groups):
        raise ValueError(f"the group trainer returned {len(trained)} results for {len(groups)}")
    histories: list[History | None] = [None] * len(runs)
    for rows, group_histories in zip(rows_of.values(), trained, strict=True):
        for i, history in zip(rows, group_histories, strict=True):
            runs[i][1].cpu()
            histories[i] = history
    return histories  # type: ignore[return-value]


def _choose(member: Member, histories: Sequence[History], screen_epochs: int | None) -> int:
    """Index of the best start by :func:`_final_loss`; records the choice in ``restarts``."""
    best = min(range(len(histories)), key=lambda j: _final_loss(histories[j]))
    member.restarts = {
        "chosen": best,
        "seeds": [seed for _, seed in _starts(member)],
        "final_loss": [h.loss[-1] if h.loss else math.nan for h in histories],
        "screen_epochs": screen_epochs,
    }
    return best


def train_members(
    members: Sequence[Member],
    config: TrainConfig,
    screen_epochs: int | None = None,
    device: str | None = None,
) -> float:
    """Train all members, one ensemble per model shape; returns the wall time.

    Members with the same latent, data shape and size, likelihood family and network shapes
    (possibly different data and decoder scales) share one
    :func:`~manifold_vae.ensemble.fit_ensemble` call; each is trained exactly as
    :func:`~manifold_vae.training.fit` would train it alone with the options ``config``
    (a :class:`~manifold_vae.trainer.TrainConfig`: epochs, step-size schedule, KL weight,
    input noise, decoder-scale warm-up, ...), on ``device``.

    Restarts. A member with restart candidates (``build_members(..., restarts=k)``) keeps the
    start of lowest final training loss (negative ELBO). With ``screen_epochs = None`` all
    ``k`` starts are trained for ``config.epochs`` and the best is kept; with
    ``screen_epochs = S`` copies of the ``k`` starts are first trained for ``S`` epochs at
    constant ``lr`` (the screen; the warm-up applies as in the full run), and only the best
    start is then trained for ``config.epochs``: ``k S + epochs`` epochs of work instead of
    ``k epochs``, for failures that show early (a torn torus does). Either way the kept model
    is exactly what ``fit`` makes of its start.
    """
    if screen_epochs is not None:
        check_positive_int("screen_epochs", screen_epochs)
    start = time.perf_counter()
    if screen_epochs is not None:
        screened = [m for m in members if m.candidates]
        runs = [(m.data, copy.deepcopy(vae), seed) for m in screened for vae, seed in _starts(m)]
        screen = replace(config, epochs=screen_epochs, lr_final=None)
        histories = iter(_fit_runs(runs, screen, device))
        for m in screened:
            starts = _starts(m)
            m.vae, m.seed = starts[_choose(m, [next(histories) for _ in starts], screen_epochs)]
            m.candidates = []
    runs = [(m.data, vae, seed) for m in members for vae, seed in _starts(m)]
    histories = iter(_fit_runs(runs, config, device))
    for m in members:
        starts = _starts(m)
        trained = [next(histories) for _ in starts]
        best = _choose(m, trained, None) if len(starts) > 1 else 0
        (m.vae, m.seed), m.history = starts[best], trained[best]
        m.candidates = []
    return time.perf_counter() - start


def convergence(history: History, fraction: float = 0.2) -> float:
    """Relative change of the epoch-mean training loss over the last ``fraction`` of epochs.

    ``|L(E) - L((1 - fraction) E)| / max(1, |L(E)|)`` with ``L(e)`` the mean of the loss over
    the 5% of epochs ending at ``e`` (smoothing the minibatch noise); ``nan`` with fewer than
    10 epochs.
    """
    loss = history.loss
    if len(loss) < 10:
        return math.nan
    width = max(1, len(loss) // 20)
    end = sum(loss[-width:]) / width
    cut = len(loss) - round(fraction * len(loss))
    before = sum(loss[cut - width : cut]) / width
    return abs(end - before) / max(1.0, abs(end))


def evaluate(member: Member, vis_data: Tensor, vis_latent: Tensor, loop: bool = True) -> None:
    """Fill ``member.metrics``: thesis metrics (L = 100) and the recovered structure on X_Vis.

    ``phase_correlation``: per true factor, the absolute circular correlation with its
    assigned recovered angle (factors may be swapped or reflected); ``winding``: winding
    number of the encoded loop of ``vis_data`` (when ``loop`` and the data is one loop).
    """
    vae = member.vae.eval()
    vis_data = vis_data.to(next(vae.parameters()).dtype)
    metrics: dict[str, Any] = thesis_metrics(vae, vis_data, num_samples=100, seed=0)
    recovered = recovered_angles(vae, vis_data)
    metrics["phase_correlation"] = factor_correlations(vis_latent, recovered).tolist()
    if loop and vis_latent.shape[-1] == 1:
        metrics["winding"] = int(winding_number(recovered[:, 0]))
        metrics["nonuniformity"] = encoding_nonuniformity(recovered[:, 0])
    history = member.history
    if history is not None:
        metrics["convergence"] = convergence(history)
        metrics["stopped"] = history.stopped
        metrics["final_loss"] = history.loss[-1] if history.loss else math.nan
    if member.restarts is not None:
        metrics["restarts"] = member.restarts
    member.metrics = metrics


def cell_key(cell: Mapping[str, Any]) -> tuple:
    """Hashable key of a grid cell (order of the entries does not matter)."""
    return tuple(sorted(cell.items()))


def by_cell(members: Iterable[Member]) -> dict[tuple, list[Member]]:
    """The members of each grid cell (its repetitions), keyed by :func:`cell_key`."""
    cells: dict[tuple, list[Member]] = {}
    for m in members:
        cells.setdefault(cell_key(m.cell), []).append(m)
    return cells


def group_runs(members: Iterable[Member]) -> dict[tuple, dict[str, Any]]:
    """Per grid cell: the cell, the number of repetitions and :func:`summarize` of scalars."""
    out = {}
    for key, group in by_cell(members).items():
        runs = []
        for m in group:
            row = {k: float(v) for k, v in m.metrics.items() if isinstance(v, (int, float))}
            for i, c in enumerate(m.metrics.get("phase_correlation", [])):
                row[f"phase_correlation_{i}"] = float(c)
            runs.append(row)
        out[key] = {"cell": dict(group[0].cell), "reps": len(group), "summary": summarize(runs)}
    return out


def health_columns(group: Sequence[Member]) -> tuple[str, str]:
    """Report columns of a cell's runs: the largest loss drift and how many runs stopped."""
    drift = max(m.metrics["convergence"] for m in group)
    stopped = sum(m.metrics["stopped"] is not None for m in group)
    return ("n/a" if math.isnan(drift) else f"{drift:.1e}", str(stopped))


def cell_value(
    summary: Mapping[str, Any], key: str, digits: int = 2, scientific_below: float = 1.0
) -> str:
    """``mean ± std`` of ``key`` in a :func:`summarize` result, as in the thesis tables.

    Means of magnitude below ``scientific_below`` get a shared exponent, as the thesis prints
    them (``(4.22 ± 0.34) × 10^-2``).
    """
    entry = summary.get(key)
    if entry is None or math.isnan(entry["mean"]):
        return "n/a"
    return format_mean_std(entry["mean"], entry["std"], digits=digits, small=scientific_below)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub markdown table (first column left-aligned, the others right-aligned)."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_histories(members: Sequence[Member], path: Path, label: Callable[[Member], str]) -> Path:
    """Training loss per epoch of every member (log-scaled epochs), one line per member."""
    from ..plots import new_figure, save_figure

    figure = new_figure(7.5, 4.5)
    ax = figure.add_subplot(1, 1, 1)
    colours: dict[str, str] = {}  # one colour per label, the legend entry on its first line
    for m in members:
        if m.history is None or not m.history.loss:
            continue
        name = label(m)
        first = name not in colours
        colour = colours.setdefault(name, f"C{len(colours) % 10}")
        ax.plot(
            range(1, len(m.history.loss) + 1),
            m.history.loss,
            color=colour,
            alpha=0.7,
            lw=1,
            label=name if first else None,
        )
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=10.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean negative ELBO)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("training curves (one line per model)")
    figure.tight_layout()
    return save_figure(figure, path)


def environment() -> str:
    """The software and machine of a run, for the report: torch, threads, Python, CPU."""
    threads = torch.get_num_threads()
    return (
        f"torch {torch.__version__}, {threads} thread{'s' if threads > 1 else ''}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )


@dataclass
class Report:
    """An experiment's output: markdown, JSON of every number, figures."""

    name: str
    title: str
    budget: Budget
    body: str
    data: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self, out: Path, command: str, env: str) -> str:
        """The text of ``report.md``: title, the command and environment, body, figures.

        Parameters
        ----------
        out : Path
            The output folder (figure links are relative to it).
        command : str
            The command line that made the report.
        env : str
            The software and machine (:func:`environment`).
        """
        figures = "\n".join(f"![{p.stem}]({p.relative_to(out)})" for p in self.figures)
        text = (
            f"# {self.title}\n\n"
            f"Made by `{command}` (budget `{self.budget.describe()}`) in "
            f"{self.seconds:.0f} s on {env}.\n\n{self.body.strip()}\n"
        )
        if figures:
            text += f"\n## Figures\n\n{figures}\n"
        return text

    def write(self, out: Path, command: str) -> tuple[Path, Path]:
        """Write ``report.md`` and ``results.json`` into ``out``; figures are already there."""
        out.mkdir(parents=True, exist_ok=True)
        env = environment()
        text = self.markdown(out, command, env)
        md = out / "report.md"
        md.write_text(text)
        payload = {
            "experiment": self.name,
            "command": command,
            "budget": self.budget.__dict__,
            "seconds": self.seconds,
            "environment": env,
            **self.data,
        }
        js = out / "results.json"
        js.write_text(json_text(payload))
        return md, js


#: Significant digits of the numbers in ``results.json`` (far below any difference a report
#: discusses; it keeps the files of large grids, with every training history, small).
JSON_DIGITS = 7


def _rounded(value: Any) -> Any:
    """``value`` with tensors as lists and finite floats to :data:`JSON_DIGITS` digits."""
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, float):
        return float(f"{value:.{JSON_DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


#: A JSON array of plain values (numbers, booleans, null: no strings, arrays or objects).
_FLAT_ARRAY = re.compile(r"\[([^\[\]{}\"]*)\]")


def json_text(payload: Mapping[str, Any]) -> str:
    """The text of ``results.json``: indented JSON, numbers rounded (:func:`_rounded`).

    Arrays of plain numbers (training histories, coefficients) are written on one line.
    """
    text = json.dumps(_rounded(payload), indent=1, default=_jsonable, allow_nan=True)
    return _FLAT_ARRAY.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def member_records(members: Iterable[Member]) -> list[dict[str, Any]]:
    """Every member's cell, repetition, seed, metrics and full loss history, for the JSON."""
    return [
        {
            "cell": m.cell,
            "rep": m.rep,
            "seed": m.seed,
            "metrics": m.metrics,
            "history": m.history.as_dict() if m.history is not None else None,
        }
        for m in members
    ]
