"""One registry type for everything that is looked up by name: manifolds, likelihoods, reductor
map families and experiments.

A :class:`Registry` maps names to entries (usually classes with a class attribute ``name``).
Entries are added with :meth:`Registry.register`, which also works as a class decorator, so a
user's manifold, likelihood or map family is registered from outside the package exactly as the
built-in ones are::

    from manifold_vae.likelihoods import LIKELIHOODS, Likelihood

    @LIKELIHOODS.register
    class StudentT(Likelihood):
        name = "student-t"
        ...

Checkpoints, the command line and every other look-up then find it by name; the command line
takes its choices from :meth:`Registry.names`, so no name is written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to entries of one kind, filled by :meth:`register`.

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``"likelihood"``, ``"manifold"``, ...).
    check : callable, optional
        Called with each entry before it is registered; raises ``ValueError`` (or
        ``TypeError``) for an entry that is not of this registry's kind.
    """

    def __init__(self, kind: str, check: Callable[[T], None] | None = None) -> None:
        self.kind = kind
        self._check = check
        self._entries: dict[str, T] = {}

    @overload
    def register(self, entry: T, *, name: str | None = None, replace: bool = False) -> T: ...

    @overload
    def register(
        self, entry: None = None, *, name: str | None = None, replace: bool = False
    ) -> Callable[[T], T]: ...

    def register(
        self, entry: T | None = None, *, name: str | None = None, replace: bool = False
    ) -> T | Callable[[T], T]:
        """Add ``entry`` under ``name`` (default: its attribute ``name``); returns ``entry``.

        Usable as ``@registry.register`` or ``@registry.register(name="x")``.

        Raises
        ------
        ValueError
            If the name is missing or empty, or already taken by another entry and
            ``replace`` is false; or if the registry's check refuses the entry.
        """
        if entry is None:
            return lambda e: self.register(e, name=name, replace=replace)
        key = name if name is not None else getattr(entry, "name", None)
        if not isinstance(key, str) or not key:
            what = getattr(entry, "__name__", f"this {self.kind}")
            raise ValueError(
                f"{what} needs a non-empty class attribute 'name' (or register(..., name=...)), "
                f"got {key!r}"
            )
        if self._check is not None:
            self._check(entry)
        if key in self._entries and self._entries[key] is not entry and not replace:
            raise ValueError(
                f"a {self.kind} named {key!r} is already registered ({self._entries[key]!r:.80}); "
                "pass replace=True to replace it"
            )
        self._entries[key] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name`` (``ValueError`` if there is none)."""
        entry = self[name]
        del self._entries[name]
        return entry

    def __getitem__(self, name: str) -> T:
        """The entry registered as ``name``; ``ValueError`` naming the known ones otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or 'none'}"
            ) from None

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        return sorted(self._entries.items())

    def as_dict(self) -> dict[str, T]:
        """A copy of the mapping from names to entries."""
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
