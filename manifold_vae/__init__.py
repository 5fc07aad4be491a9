"""Variational autoencoders whose latent spaces are manifolds, on exact heat-kernel distributions.

Importing this package is cheap and changes no global state: it imports neither geomstats nor
matplotlib. Import the submodules you need (``manifold_vae.manifolds``, ``manifold_vae.vae``,
...); geomstats is loaded on first use through :func:`manifold_vae._geomstats.load_geomstats`,
which restores every global setting that importing geomstats changes. The exact distributions
live in the standalone package ``distributions``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["VAE", "History", "__version__", "fit", "fit_ensemble", "seeded"]

#: Public names loaded on first access (``manifold_vae.VAE``), so that importing the package
#: stays cheap: name -> submodule.
_LAZY = {
    "VAE": "vae",
    "fit": "training",
    "History": "training",
    "fit_ensemble": "ensemble",
    "seeded": "vae",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    __version__: str = version("manifold-vae")
except PackageNotFoundError:  # not installed (e.g. run from a source tree on sys.path)
    __version__ = "0.0.0"
