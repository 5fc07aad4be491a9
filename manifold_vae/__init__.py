"""Variational autoencoders whose latent spaces are manifolds, on exact heat-kernel distributions.

Importing this package is cheap and changes no global state: it imports neither geomstats nor
matplotlib. Import the submodules you need (``manifold_vae.manifolds``, ``manifold_vae.vae``,
...); geomstats is loaded on first use through :func:`manifold_vae._geomstats.load_geomstats`,
which restores every global setting that importing geomstats changes. The exact distributions
live in the standalone package ``distributions``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("manifold-vae")
except PackageNotFoundError:  # not installed (e.g. run from a source tree on sys.path)
    __version__ = "0.0.0"
