"""All ordered pairs of a set of generative models reduced to one another: the Delta table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from ..latent_model import LatentVariableModel
from ..manifolds import LatentManifold
from .fitting import Fit, fit_reductor
from .maps import default_families, map_family

__all__ = ["DEFAULT_FAMILIES", "Reduction", "ReductionTable", "reduction_table"]

#: The built-in families tried for every pair by default, in the order of their
#: ``default_rank`` (linear, projected-linear, isometry, chart, mlp). Computed once from the
#: families' declarations; :func:`reduction_table` without ``families`` asks
#: :func:`~manifold_vae.reductors.default_families` at call time instead, so that it also
#: tries a registered user family that declares a ``default_rank``.
DEFAULT_FAMILIES: tuple[str, ...] = default_families()


@dataclass
class Reduction:
    """One fitted map: source and target names, and the :class:`~manifold_vae.reductors.Fit`."""

    source: str
    target: str
    fit: Fit

    @property
    def value(self) -> float:
        """Delta of the fitted map."""
        return float(self.fit.delta.value)

    @property
    def stderr(self) -> float:
        """Its Monte Carlo standard error."""
        return float(self.fit.delta.stderr)


@dataclass
class ReductionTable:
    """Every ordered pair's fitted maps, one per family that fits the pair.

    Attributes
    ----------
    names : list of str
        The models, in table order.
    fits : dict
        ``(source, target) -> [Reduction, ...]``, one per fitted family.
    skipped : dict
        ``(source, target) -> {family: reason}`` for families that do not fit the pair.
    """

    names: list[str]
    fits: dict[tuple[str, str], list[Reduction]] = field(default_factory=dict)
    skipped: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def best(self, source: str, target: str) -> Reduction:
        """The fitted map with the lowest Delta from ``source`` into ``target``."""
        if (source, target) not in self.fits or not self.fits[(source, target)]:
            raise ValueError(f"no fitted map from {source!r} into {target!r}")
        return min(self.fits[(source, target)], key=lambda r: r.value)

    def markdown(self, digits: int = 2) -> str:
        """The matrix of the best Delta ± standard error per pair (rows: source Z1)."""
        header = "| Z1 \\ Z2 | " + " | ".join(self.names) + " |"
        lines = [header, "|---|" + "---:|" * len(self.names)]
        for s in self.names:
            cells = []
            for t in self.names:
                if s == t:
                    cells.append("N/A")
                    continue
                b = self.best(s, t)
                cells.append(f"{b.value:.{digits}f} ± {b.stderr:.{digits}f} ({b.fit.family})")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Every pair's per-family Delta, standard error and restart Deltas (JSON-able)."""
        return {
            f"{s} -> {t}": {
                "best": self.best(s, t).fit.family,
                "families": {
                    r.fit.family: {
                        "delta": r.value,
                        "stderr": r.stderr,
                        "restarts": r.fit.restarts.tolist(),
                        "chosen": r.fit.index,
                        "drift": r.fit.drift(),
                    }
                    for r in reductions
                },
                "skipped": self.skipped.get((s, t), {}),
            }
            for (s, t), reductions in self.fits.items()
        }


def _unfit(family: str, source: LatentManifold, target: LatentManifold) -> str:
    """Why ``family`` is not fitted for the pair (empty when it is): its refusal or
    redundancy. ``ValueError`` if the family is not registered."""
    cls = map_family(family)
    return cls.refusal(source, target) or cls.redundancy(source, target)


def reduction_table(
    models: Mapping[str, LatentVariableModel],
    families: Sequence[str] | Mapping[tuple[str, str], Sequence[str]] | None = None,
    progress: bool = True,
    **fit_options: Any,
) -> ReductionTable:
    """Fit reductors between all ordered pairs of ``models`` and keep each family's best.

    Parameters
    ----------
    models : mapping of str to LatentVariableModel
        The generative models by name (trained VAEs, known generating processes).
    families : sequence of str, or mapping, optional
        Registered map families to try for every pair (those that refuse a pair, or would
        repeat another family on it, are recorded in ``skipped``), or per ordered pair
        ``(source, target)``: the families to try for it. Default:
        :func:`~manifold_vae.reductors.default_families`.
    progress : bool
        A progress bar over the fits.
    fit_options
        Keyword arguments of :func:`~manifold_vae.reductors.fit_reductor` (``restarts``,
        ``steps``, ``num_samples``, ``eval_samples``, ``seed``).

    Returns
    -------
    ReductionTable

    Raises
    ------
    ValueError
        If fewer than two models are given, a family is unknown, or no family fits a pair.
    """
    names = list(models)
    if len(names) < 2:
        raise ValueError(f"models must hold at least two generative models, got {names}")
    pairs = [(s, t) for s in names for t in names if s != t]
    if families is None:
        families = default_families()
    per_pair = {
        p: list(families.get(p, ())) if isinstance(families, Mapping) else list(families)
        for p in pairs
    }
    table = ReductionTable(names)
    jobs = []
    for s, t in pairs:
        table.fits[(s, t)] = []
        for family in per_pair[(s, t)]:
            reason = _unfit(family, models[s].latent, models[t].latent)
            if reason:
                table.skipped.setdefault((s, t), {})[family] = reason
                continue
            jobs.append((s, t, family))
        if not any(j[:2] == (s, t) for j in jobs):
            raise ValueError(f"none of the families {per_pair[(s, t)]} fits {s!r} -> {t!r}")
    for s, t, family in tqdm(jobs, desc="reductors", disable=not progress):
        fit = fit_reductor(models[s], models[t], family, progress=progress, **fit_options)
        table.fits[(s, t)].append(Reduction(s, t, fit))
    return table
