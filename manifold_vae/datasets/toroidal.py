r"""The toroidal benchmark of the thesis (Sec. 11.1): images with two circular phases.

.. math::

    f_{ij}(\varphi^{(1)}, \varphi^{(2)}) = \sin\Big(\frac{2\pi i}{D} + \varphi^{(1)}\Big)
        + \sin\Big(\frac{4\pi j}{D} + \varphi^{(2)}\Big), \qquad i, j = 1..D,

:math:`x = F(\varphi) + \sigma\varepsilon` with :math:`\varphi` uniform on the torus
:math:`[-\pi, \pi)^2` (density :math:`1/4\pi^2`, Eq. 11.2).

Layout. The printed Eq. 11.1 uses the row index :math:`i` in both sines, but the text describes
"two discrete sine functions defined over a discrete meshgrid of :math:`[0,1] \times [0,1]`"
with angular frequencies :math:`2\pi` and :math:`4\pi`. The default ``layout="meshgrid"``
follows the text: the first sine varies down the rows (index :math:`i`), the second along the
columns (index :math:`j`). ``layout="printed"`` is the literal Eq. 11.1, both sines in :math:`i`
(every image is then constant along its rows).

Latent space: the phase torus ``FlatTorus(2)`` (two unit circles); the data carry no radii.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from ..manifolds import FlatTorus
from .generative import GenerativeModel, LatentDataset, check_n, check_noise

__all__ = ["toroidal", "toroidal_grid", "toroidal_mean", "toroidal_model"]

_LAYOUTS = ("meshgrid", "printed")


def _check(dim: int, layout: str) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 5:
        raise ValueError(
            f"dim must be an integer >= 5 (the second sine has 2 periods per image, which fewer "
            f"samples alias), got {dim!r}"
        )
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")


def toroidal_mean(phases: Tensor, dim: int = 25, layout: str = "meshgrid") -> Tensor:
    r"""The noiseless image :math:`F(\varphi^{(1)}, \varphi^{(2)})` (Eq. 11.1).

    Parameters
    ----------
    phases : Tensor, shape=[..., 2]
        :math:`(\varphi^{(1)}, \varphi^{(2)})`.
    dim : int
        :math:`D`, the image side (thesis: 25), at least 5.
    layout : {"meshgrid", "printed"}
        ``"meshgrid"``: :math:`\sin(2\pi i/D + \varphi^{(1)}) + \sin(4\pi j/D + \varphi^{(2)})`;
        ``"printed"``: :math:`\sin(2\pi i/D + \varphi^{(1)}) + \sin(4\pi i/D + \varphi^{(2)})`.

    Returns
    -------
    Tensor, shape=[..., D, D]
        Indexed ``[..., i - 1, j - 1]``.
    """
    _check(dim, layout)
    if not isinstance(phases, Tensor) or phases.ndim < 1 or phases.shape[-1] != 2:
        shape = tuple(phases.shape) if isinstance(phases, Tensor) else type(phases).__name__
        raise ValueError(f"phases must be a tensor of shape (..., 2), got {shape}")
    k = torch.arange(1, dim + 1, dtype=phases.dtype, device=phases.device)
    p1 = phases[..., 0, None, None]
    p2 = phases[..., 1, None, None]
    rows = torch.sin(2.0 * math.pi * k[:, None] / dim + p1)  # (..., D, 1)
    if layout == "meshgrid":
        second = torch.sin(4.0 * math.pi * k[None, :] / dim + p2)  # (..., 1, D)
    else:
        second = torch.sin(4.0 * math.pi * k[:, None] / dim + p2)  # (..., D, 1)
    return (rows + second).expand(*phases.shape[:-1], dim, dim).contiguous()


def toroidal_model(dim: int = 25, noise: float = 0.0, layout: str = "meshgrid") -> GenerativeModel:
    r"""The generative model of Sec. 11.1 on ``FlatTorus(2)``, data shape ``(D, D)``.

    :math:`p(x, \varphi) = \frac{1}{4\pi^2 (\sigma\sqrt{2\pi})^{D^2}}
    \exp(-\lVert x - F(\varphi)\rVert^2 / 2\sigma^2)` with respect to
    :math:`\mathcal L^{D \times D} \otimes \mathcal L^2`.
    """
    _check(dim, layout)
    check_noise(noise)
    name = f"T_{noise:g} (D={dim}, {layout})"
    return GenerativeModel(
        FlatTorus(2), partial(toroidal_mean, dim=dim, layout=layout), noise, (dim, dim), name
    )


def toroidal(
    n: int = 2500,
    dim: int = 25,
    noise: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    layout: str = "meshgrid",
) -> LatentDataset:
    r"""``n`` images with phases uniform on the torus, plus Gaussian noise :math:`\sigma`.

    Parameters
    ----------
    n : int
        Number of images.
    dim : int
        :math:`D` (thesis: 25).
    noise : float
        :math:`\sigma \ge 0` (the thesis trains on the noiseless grid).
    seed : int
        Seed of the private generator (phases first, then noise).
    dtype : torch.dtype
        Of the returned tensors.
    layout : {"meshgrid", "printed"}
        See the module docstring.

    Returns
    -------
    LatentDataset
        ``data`` ``(n, D, D)``, ``latent`` ``(n, 2)`` in :math:`[-\pi, \pi)`, the model.
    """
    check_n(n)
    return toroidal_model(dim, noise, layout).sample(n, seed=seed, dtype=dtype)


def toroidal_grid(
    n_per_axis: int = 50,
    dim: int = 25,
    dtype: torch.dtype = torch.float32,
    layout: str = "meshgrid",
) -> LatentDataset:
    r"""The thesis's :math:`X_{Vis}` (Eqs. 11.3-11.4): noiseless images on a regular phase grid.

    Phases :math:`\{-\pi + 2\pi i / n\}_{i=0}^{n-1}` on both axes, :math:`n^2` images, the first
    phase varying slowest (row ``a * n + b`` has phases ``(grid[a], grid[b])``).

    Eq. 11.3 as printed has two slips: its indices run over :math:`0..50` (51 points, the
    first and last the same angle) and its second axis divides by 100, covering only half the
    circle. The text trains on :math:`2500 = 50 \times 50` images; this is the grid built here
    with the default ``n_per_axis=50``.

    Returns
    -------
    LatentDataset
        ``data`` ``(n^2, D, D)``, ``latent`` ``(n^2, 2)``, model with noise 0.
    """
    if isinstance(n_per_axis, bool) or not isinstance(n_per_axis, int) or n_per_axis < 1:
        raise ValueError(f"n_per_axis must be a positive integer, got {n_per_axis!r}")
    model = toroidal_model(dim, 0.0, layout)
    axis = -math.pi + 2.0 * math.pi * torch.arange(n_per_axis, dtype=torch.float64) / n_per_axis
    first, second = torch.meshgrid(axis, axis, indexing="ij")
    phases = torch.stack([first, second], dim=-1).reshape(-1, 2)
    name = f"T_Vis (D={dim}, {n_per_axis}x{n_per_axis} phases, {layout})"
    return LatentDataset(model.mean(phases).to(dtype), phases.to(dtype), name, model)
