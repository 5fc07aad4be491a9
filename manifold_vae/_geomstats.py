"""Import geomstats with its pytorch backend without changing the caller's global settings."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch

__all__ = ["BACKEND", "load_geomstats"]

#: The geomstats backend this package needs.
BACKEND = "pytorch"
_ENV = "GEOMSTATS_BACKEND"


def _imported_backend() -> str | None:
    """The backend of an already imported geomstats, or ``None`` if it is not imported."""
    backend = sys.modules.get("geomstats._backend")
    return None if backend is None else getattr(backend, "BACKEND_NAME", None)


@contextmanager
def _restoring_global_state() -> Iterator[None]:
    """Restore torch's default dtype, ``os.environ`` and the root logger on exit."""
    dtype = torch.get_default_dtype()
    environ = dict(os.environ)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        for key, value in environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        root.setLevel(level)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)


@functools.cache
def load_geomstats() -> ModuleType:
    """Import geomstats with the pytorch backend and return the ``geomstats`` module.

    geomstats 2.8 chooses its backend from the ``GEOMSTATS_BACKEND`` environment variable when
    it is first imported (for the whole process), and the import changes global settings: it
    sets torch's default dtype to float64, configures the root logger (``logging.basicConfig``,
    level INFO), and (through joblib) adds ``KMP_INIT_AT_FORK`` to ``os.environ``. This
    function sets ``GEOMSTATS_BACKEND=pytorch`` during the import only if it is unset, and
    restores torch's default dtype, ``os.environ`` and the root logger afterwards. What it
    leaves is the importer geomstats registers in ``sys.meta_path`` for ``geomstats.backend``
    and the warning filters that scipy and numpy add when they are imported.

    The result is cached: later calls return the same module at no cost.

    Returns
    -------
    ModuleType
        ``geomstats``; its backend is ``geomstats.backend`` (``sys.modules`` holds it).

    Raises
    ------
    RuntimeError
        If geomstats was already imported with another backend, or ``GEOMSTATS_BACKEND`` names
        another backend.
    """
    imported = _imported_backend()
    if imported is not None and imported != BACKEND:
        raise RuntimeError(
            f"geomstats was already imported with the {imported!r} backend, but manifold_vae "
            f"needs {BACKEND!r}: set {_ENV}={BACKEND} before importing geomstats (the backend "
            "is chosen once per process, at the first import)"
        )
    requested = os.environ.get(_ENV)
    if imported is None and requested not in (None, BACKEND):
        raise RuntimeError(
            f"{_ENV}={requested!r}, but manifold_vae needs the {BACKEND!r} backend of "
            f"geomstats: set {_ENV}={BACKEND} or leave it unset"
        )
    with _restoring_global_state():
        os.environ.setdefault(_ENV, BACKEND)
        import geomstats
        import geomstats.backend  # creates the backend module
    return geomstats
