"""The configuration of ``manifold-vae sweep``: a TOML file, validated before anything runs.

A sweep trains one VAE per trial, as ``manifold-vae train`` would, with options taken from
three tables of the file::

    [sweep]                    # how to search (all optional)
    search = "random"          # "grid" (every combination of the lists) or "random"
    num_samples = 8            # random: the number of trials
    seed = 0                   # random: seed of the draws (the trials are the same every time)
    validation = 0.2           # fraction of the data held out for the validation ELBO
    scheduler = "asha"         # "asha" (early stopping on the validation ELBO) or "none"
    grace_period = 2           # ASHA: epochs every trial runs
    reduction_factor = 2       # ASHA: 1/reduction_factor of the trials go on at each rung
    max_concurrent = 2         # trials running at once (default: as many as fit)
    cpus_per_trial = 1

    [train]                    # fixed options of every trial
    epochs = 20
    n = 500

    [search]                   # searched options: a list, or (random) a distribution
    latent = ["circle", "euclidean:2"]
    sigma_x = { loguniform = [0.03, 0.3] }
    hidden = { randint = [4, 32] }      # integers low..high, both included

The options (:data:`OPTIONS`) are those of ``manifold-vae train`` plus ``beta`` (the KL
weight) and ``data_seed`` (the seed of the drawn dataset, shared by all trials so that they
fit the same data); a grid search takes lists only. Every trial's options are drawn and checked
when the file is read (:func:`load_sweep`), so a bad value fails with a ``ValueError`` naming
its key before anything is scheduled.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DISTRIBUTIONS",
    "OPTIONS",
    "SweepConfig",
    "latent_manifold",
    "load_sweep",
    "parse_sweep",
]


def _integer(value: Any, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"must be an integer >= {low}, got {value!r}")
    return value


def _number(value: Any, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    if (positive and value <= 0) or value < 0:
        raise ValueError(f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def latent_manifold(text: str) -> Any:
    """The manifold of ``manifold-vae train --latent TEXT``: ``NAME[:ARG]`` or ``A*B*...``."""
    from ..jobs import parse_latent

    return parse_latent(text)


def _latent(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string such as 'circle' or 'euclidean:2', got {value!r}")
    latent_manifold(value)
    return value


def _likelihood(value: Any) -> str:
    from ..likelihoods import LIKELIHOODS

    if value not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {value!r}; registered: {', '.join(LIKELIHOODS)}")
    return value


def _data(value: Any) -> str:
    if value == "sinusoids":
        return value
    if not isinstance(value, str) or not value.endswith(".npy"):
        raise ValueError(f"must be 'sinusoids' or a .npy file, got {value!r}")
    if not Path(value).is_file():
        raise ValueError(f"data file {value} does not exist")
    return value


#: The options of a trial: their check and default (the defaults of ``manifold-vae train``;
#: ``hidden = 0`` means the default width, a third of the data dimension).
OPTIONS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "latent": (_latent, "circle"),
    "data": (_data, "sinusoids"),
    "n": (lambda v: _integer(v, 2), 1000),
    "noise": (lambda v: _number(v, positive=False), 0.1),
    "data_seed": (_integer, 0),
    "likelihood": (_likelihood, "gaussian"),
    "sigma_x": (_number, 0.1),
    "beta": (lambda v: _number(v, positive=False), 1.0),
    "epochs": (lambda v: _integer(v, 1), 50),
    "batch_size": (lambda v: _integer(v, 1), 64),
    "lr": (_number, 3e-3),
    "hidden": (lambda v: _integer(v, 0), 0),
    "depth": (lambda v: _integer(v, 1), 2),
    "seed": (_integer, 0),
}

#: Distributions of a random search: ``{NAME = [low, high]}``.
DISTRIBUTIONS = ("uniform", "loguniform", "randint")

#: The ``[sweep]`` settings: check and default.
_SETTINGS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "search": (lambda v: _choice(v, ("grid", "random")), "grid"),
    "num_samples": (lambda v: _integer(v, 1), None),
    "seed": (_integer, 0),
    "validation": (lambda v: _fraction(v), 0.2),
    "scheduler": (lambda v: _choice(v, ("asha", "none")), "asha"),
    "grace_period": (lambda v: _integer(v, 1), 1),
    "reduction_factor": (lambda v: _integer(v, 2), 2),
    "max_concurrent": (lambda v: _integer(v, 1), None),
    "cpus_per_trial": (lambda v: _integer(v, 1), 1),
    "max_failures": (lambda v: _integer(v, 0), 2),
}


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _fraction(value: Any) -> float:
    if _number(value) >= 1:
        raise ValueError(f"must be a fraction in (0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: its settings and every trial's options.

    Attributes
    ----------
    settings : dict
        The ``[sweep]`` table with its defaults filled in.
    fixed : dict
        The ``[train]`` table.
    space : dict
        The ``[search]`` table.
    trials : list of dict
        ``{"key", "options"}`` per trial, in order: ``key`` is ``NNN-HASH`` (index and a hash
        of the options), the trial's folder name; ``options`` holds every option of
        :data:`OPTIONS`.
    """

    settings: dict[str, Any]
    fixed: dict[str, Any]
    space: dict[str, Any]
    trials: list[dict[str, Any]]

    @property
    def searched(self) -> list[str]:
        """The names of the searched options, in the file's order."""
        return list(self.space)

    def describe(self) -> dict[str, Any]:
        """Everything that defines the sweep, as plain JSON values (kept in ``sweep.json``)."""
        return {
            "settings": self.settings,
            "fixed": self.fixed,
            "space": self.space,
            "trials": self.trials,
        }


def _checked(table: str, key: str, value: Any, check: Callable[[Any], Any]) -> Any:
    try:
        return check(value)
    except ValueError as error:
        raise ValueError(f"sweep config {table}.{key}: {error}") from None


def _check_table(name: str, table: Any, known: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ValueError(f"sweep config [{name}] must be a table, got {table!r}")
    for key in table:
        if key not in known:
            raise ValueError(
                f"sweep config {name}.{key}: unknown option; known: {', '.join(known)}"
            )
    return dict(table)


def _axis(key: str, value: Any, search: str) -> Any:
    """A ``[search]`` entry: a non-empty list of valid values, or a distribution (random)."""
    check = OPTIONS[key][0]
    if isinstance(value, list):
        if not value:
            raise ValueError(f"sweep config search.{key}: the list of values is empty")
        for i, item in enumerate(value):
            _checked("search", f"{key}[{i}]", item, check)
        return value
    if isinstance(value, dict):
        if search != "random":
            raise ValueError(
                f"sweep config search.{key}: a distribution needs search = 'random' (a grid "
                "takes lists of values)"
            )
        if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            raise ValueError(
                f"sweep config search.{key}: a distribution is one of "
                f"{{{' | '.join(f'{d} = [low, high]' for d in DISTRIBUTIONS)}}}, got {value!r}"
            )
        ((kind, bounds),) = value.items()
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise ValueError(f"sweep config search.{key}.{kind}: must be [low, high]")
        for bound in bounds:
            _checked("search", f"{key}.{kind}", bound, check)
            if kind == "randint":
                _checked("search", f"{key}.{kind}", bound, _integer)
            elif kind == "loguniform":
                _checked("search", f"{key}.{kind}", bound, _number)
        if not bounds[0] < bounds[1]:
            raise ValueError(f"sweep config search.{key}.{kind}: need low < high, got {bounds}")
        return value
    raise ValueError(f"sweep config search.{key}: must be a list of values or a distribution")


def _draw(spec: Any, rng: random.Random) -> Any:
    if isinstance(spec, list):
        return spec[rng.randrange(len(spec))]
    ((kind, (low, high)),) = spec.items()
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "loguniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randint(low, high)


def _trial_options(fixed: Mapping[str, Any], space: Mapping[str, Any], settings: Mapping) -> list:
    if settings["search"] == "grid":
        if settings["num_samples"] is not None:
            raise ValueError(
                "sweep config sweep.num_samples: a grid runs each combination once (vary "
                "'seed' in [search] for repetitions)"
            )
        combos = itertools.product(*space.values())
        drawn = [dict(zip(space, combo, strict=True)) for combo in combos]
    else:
        rng = random.Random(settings["seed"])
        drawn = [
            {key: _draw(spec, rng) for key, spec in space.items()}
            for _ in range(settings["num_samples"] or 1)
        ]
    defaults = {key: default for key, (_, default) in OPTIONS.items()}
    return [{**defaults, **fixed, **values} for values in drawn]


def _check_trial(index: int, options: Mapping[str, Any]) -> None:
    """What needs several options at once: the likelihood's scale, the training options."""
    from ..jobs import make_likelihood
    from ..trainer import TrainConfig

    where = f"sweep config, trial {index} ({json.dumps(dict(options))})"
    try:
        make_likelihood(options["likelihood"], options["sigma_x"])
    except ValueError as error:
        raise ValueError(f"{where}: likelihood/sigma_x: {error}") from None
    try:
        TrainConfig(
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            lr=options["lr"],
            beta=options["beta"],
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def parse_sweep(document: Mapping[str, Any]) -> SweepConfig:
    """A :class:`SweepConfig` from a parsed TOML document; ``ValueError`` naming a bad key."""
    if not isinstance(document, Mapping):
        raise ValueError(f"a sweep config must be a table, got {type(document).__name__}")
    for table in document:
        if table not in ("sweep", "train", "search"):
            raise ValueError(
                f"sweep config [{table}]: unknown table; the tables are [sweep], [train], [search]"
            )
    settings_in = _check_table("sweep", document.get("sweep", {}), _SETTINGS)
    settings = {
        key: _checked("sweep", key, settings_in[key], check) if key in settings_in else default
        for key, (check, default) in _SETTINGS.items()
    }
    fixed = _check_table("train", document.get("train", {}), OPTIONS)
    for key, value in fixed.items():
        _checked("train", key, value, OPTIONS[key][0])
    space = _check_table("search", document.get("search", {}), OPTIONS)
    for key in space:
        if key in fixed:
            raise ValueError(f"sweep config search.{key}: also fixed in [train]; keep one")
        space[key] = _axis(key, space[key], settings["search"])
    options = _trial_options(fixed, space, settings)
    for index, trial in enumerate(options):
        for key in space:  # drawn values: check them as the lists' values are
            _checked("search", key, trial[key], OPTIONS[key][0])
        _check_trial(index, trial)
    trials = [{"key": f"{i:03d}-{_digest(o)}", "options": o} for i, o in enumerate(options)]
    return SweepConfig(settings, fixed, space, trials)


def _digest(options: Mapping[str, Any]) -> str:
    text = json.dumps(dict(options), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate the TOML file ``path`` (:func:`parse_sweep`)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as error:
            raise ValueError("reading a sweep config needs Python >= 3.11 or tomli") from error
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep config {path} does not exist")
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"sweep config {path} is not valid TOML: {error}") from None
    return parse_sweep(document)
