"""Exact heat-kernel and uniform distributions on the circle, tori and the spheres, and the von
Mises-Fisher and Power Spherical families on S^d, for torch and Pyro.

This package depends on torch and Pyro only (never on ``manifold_vae``). Importing it registers
the exact KL divergences with ``torch.distributions.kl_divergence`` and changes no global
setting.
"""

from . import angles, constraints, kl
from .circle import CircleHeatKernel, CircleUniform
from .hypersphere import HypersphereHeatKernel, HypersphereUniform
from .power_spherical import PowerSpherical
from .sphere import SphereHeatKernel, SphereUniform
from .torus import TorusHeatKernel, TorusUniform
from .vmf import VonMisesFisher

__all__ = [
    "CircleHeatKernel",
    "CircleUniform",
    "HypersphereHeatKernel",
    "HypersphereUniform",
    "PowerSpherical",
    "SphereHeatKernel",
    "SphereUniform",
    "TorusHeatKernel",
    "TorusUniform",
    "VonMisesFisher",
    "angles",
    "constraints",
    "kl",
]
