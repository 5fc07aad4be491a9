"""Cached mpmath reference values for the accuracy parts of the distribution benchmarks.

The references of :mod:`distributions.reference` need mpmath (``pip install
'manifold-vae[dev]'``); without it the accuracy parts are skipped with :data:`MPMATH_MISSING`.
"""

from __future__ import annotations

import functools

__all__ = ["MPMATH_MISSING", "reference_value"]

#: The reason recorded (and printed) when the accuracy part is skipped for want of mpmath.
MPMATH_MISSING = "mpmath is not installed (pip install 'manifold-vae[dev]'): accuracy skipped"


@functools.cache
def reference_value(name: str, *args: float) -> float:
    """``distributions.reference.<name>(*args)`` as a float, computed once per arguments.

    Parameters
    ----------
    name : str
        A function of :mod:`distributions.reference`, e.g. ``"circle_kl"``.
    *args : float
        Its arguments.
    """
    from distributions import reference

    return float(getattr(reference, name)(*args))
