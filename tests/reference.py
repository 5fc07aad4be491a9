"""Compatibility shim: the mpmath references now live in :mod:`distributions.reference`."""

from distributions.reference import (
    DPS,
    circle_density,
    circle_kl,
    circle_kl_to_uniform,
    circle_log_density,
    mp,
)

__all__ = [
    "DPS",
    "circle_density",
    "circle_kl",
    "circle_kl_to_uniform",
    "circle_log_density",
    "mp",
]
