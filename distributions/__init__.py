"""Exact heat-kernel and uniform distributions on the circle, tori and the sphere, for torch and
Pyro.

This package depends on torch and Pyro only (never on ``manifold_vae``). Importing it registers
the exact KL divergences with ``torch.distributions.kl_divergence`` and changes no global
setting.
"""

from . import angles, constraints, kl
from .circle import CircleHeatKernel, CircleUniform
from .sphere import SphereHeatKernel, SphereUniform
from .torus import TorusHeatKernel, TorusUniform

__all__ = [
    "CircleHeatKernel",
    "CircleUniform",
    "SphereHeatKernel",
    "SphereUniform",
    "TorusHeatKernel",
    "TorusUniform",
    "angles",
    "constraints",
    "kl",
]
