"""Running the toolkit's work on a Ray cluster: experiment grids and hyperparameter sweeps.

Ray is an optional dependency (``pip install -e .[ray]``); importing this package does not
import it. :class:`RayGroupTrainer` trains an experiment's ensemble groups as Ray tasks
(``manifold-vae reproduce NAME --ray``); :func:`~.sweep.run_sweep` runs a Ray Tune search over
the options of ``manifold-vae train`` (``manifold-vae sweep``). See docs/sweeps.md.
"""

from __future__ import annotations

from .ray_grid import RayGroupTrainer, ray_session, require_ray

__all__ = ["RayGroupTrainer", "ray_session", "require_ray"]
