"""How much work an experiment does: epochs, repetitions, datapoints."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

__all__ = ["Budget", "parse_budget"]


@dataclass(frozen=True)
class Budget:
    """Training budget of an experiment.

    ``epochs`` passes over the data per model, ``reps`` repetitions per grid cell (different
    seeds), ``n`` training datapoints for datasets drawn at random (ignored by fixed datasets),
    ``restarts`` random initialisations per model of which the best by training loss is kept
    (see :func:`~manifold_vae.reproduce.common.train_members`; ignored by experiments that
    train without restarts).
    """

    epochs: int
    reps: int
    n: int
    restarts: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"budget {f.name} must be a positive integer, got {value!r}")

    def describe(self) -> str:
        """``epochs=E,reps=R,n=N``: the form :func:`parse_budget` reads."""
        return ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


def parse_budget(text: str | None, default: Budget, tiny: Budget) -> Budget:
    """Read ``--budget``: ``default``, ``tiny``, or ``key=value`` pairs overriding the default.

    Parameters
    ----------
    text : str or None
        ``None`` or ``"default"`` gives ``default``; ``"tiny"`` gives ``tiny`` (seconds, for
        tests); ``"epochs=50,reps=2"`` changes those fields of ``default``.
    default, tiny : Budget
        The experiment's two presets.
    """
    if text is None or text.strip() in ("", "default"):
        return default
    if text.strip() == "tiny":
        return tiny
    names = {f.name for f in fields(Budget)}
    changes: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in names:
            raise ValueError(
                f"budget must be 'default', 'tiny' or key=value pairs with keys {sorted(names)},"
                f" got {text!r}"
            )
        try:
            changes[key] = int(value)
        except ValueError as error:
            raise ValueError(f"budget {key} must be an integer, got {value!r}") from error
    return replace(default, **changes)
