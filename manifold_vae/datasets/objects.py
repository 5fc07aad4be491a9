r"""Objects observed from multiple angles (thesis Sec. 10.2).

* :func:`coil20`: one object of COIL-20's processed images, loaded from a local copy (72 grey
  128x128 photographs, 5 degrees apart; the dataset is not downloaded here).
* :func:`rotating_object`: a built-in stand-in needing no download, a small ray-traced toy
  figure with no rotational symmetry turning about the vertical axis.

In both, image :math:`k` shows the object turned by :math:`\theta_k` and the latent value is
:math:`\theta_k` wrapped to :math:`[-\pi, \pi)`.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from distributions.angles import wrap_angle

from ..manifolds import Circle
from .generative import GenerativeModel, LatentDataset
from .pixel_shift import check_size, load_grey_image

__all__ = ["COIL20_URL", "coil20", "render_object", "rotating_object"]

#: Where COIL-20 can be downloaded ("processed images", coil-20-proc.zip).
COIL20_URL = "https://www.cs.columbia.edu/CAVE/software/softlib/coil-20.php"
_COIL_VIEWS = 72


def coil20(
    folder: str | os.PathLike,
    object_id: int = 1,
    size: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> LatentDataset:
    r"""One object of COIL-20 (processed): 72 views, 5 degrees apart.

    Parameters
    ----------
    folder : path
        A folder holding ``obj{object_id}__{k}.png``, :math:`k = 0..71`, directly or in its
        subfolder ``coil-20-proc`` (the layout of the unzipped ``coil-20-proc.zip`` from
        :data:`COIL20_URL`).
    object_id : int
        Which of the 20 objects, 1..20.
    size : int or None
        Resize every view to ``size x size`` (default: keep 128 x 128).
    dtype : torch.dtype
        Of the returned tensors.

    Returns
    -------
    LatentDataset
        ``data`` ``(72, H, W)`` in :math:`[0, 1]`, ordered by :math:`k`; ``latent`` ``(72, 1)``
        the turntable angles :math:`5k` degrees in radians, wrapped to :math:`[-\pi, \pi)`;
        ``model`` ``None`` (the imaging process is unknown).
    """
    if isinstance(object_id, bool) or not isinstance(object_id, int) or not 1 <= object_id <= 20:
        raise ValueError(f"object_id must be an integer in 1..20, got {object_id!r}")
    check_size(size)
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(
            f"folder {str(root)!r} does not exist or is not a folder; download COIL-20's "
            f"processed images (coil-20-proc.zip) from {COIL20_URL} and unzip them there"
        )
    names = [f"obj{object_id}__{k}.png" for k in range(_COIL_VIEWS)]
    candidates = [root, root / "coil-20-proc"]
    # The folder holding most of the object's files (a partial copy reports what is missing).
    found = [sum((c / name).is_file() for name in names) for c in candidates]
    base = candidates[int(np.argmax(found))]
    missing = [name for name in names if not (base / name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ValueError(
            f"folder {str(root)!r}: {len(missing)} of the {_COIL_VIEWS} views of object "
            f"{object_id} are missing in {str(base)!r} ({shown}); download COIL-20's processed "
            f"images (coil-20-proc.zip) from {COIL20_URL}"
        )
    views = [load_grey_image(base / name, size) for name in names]
    shapes = {v.shape for v in views}
    if len(shapes) != 1:
        raise ValueError(
            f"folder {str(base)!r}: the views of object {object_id} differ in shape "
            f"{sorted(shapes)}; pass size= to resize them"
        )
    data = torch.as_tensor(np.stack(views))
    angles = wrap_angle(torch.arange(_COIL_VIEWS, dtype=torch.float64) * (5.0 * math.pi / 180.0))
    name = f"COIL-20 object {object_id}"
    return LatentDataset(data.to(dtype), angles.unsqueeze(-1).to(dtype), name)


# --- a built-in rotating object -----------------------------------------------------------------

# The toy figure in its own frame (y up, the rotation axis is the y axis, the camera looks down
# -z): (kind, centre, semi-axes or half-sizes, albedo). Parts stick out in different directions
# with different sizes and brightness, so no rotation about y other than the identity maps the
# figure onto itself.
_PARTS: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float], float], ...] = (
    ("ellipsoid", (0.0, -0.1, 0.0), (0.33, 0.5, 0.24), 0.8),  # body
    ("ellipsoid", (0.05, 0.55, 0.05), (0.22, 0.22, 0.22), 0.95),  # head
    ("ellipsoid", (0.1, 0.55, 0.3), (0.06, 0.06, 0.16), 0.7),  # nose, pointing +z
    ("box", (0.52, 0.05, 0.0), (0.26, 0.07, 0.07), 0.6),  # arm, pointing +x
    ("box", (-0.12, 0.0, -0.33), (0.2, 0.25, 0.11), 0.45),  # backpack, -z
    ("ellipsoid", (0.22, -0.72, 0.2), (0.14, 0.1, 0.24), 0.55),  # one foot
)
_AMBIENT = 0.25
_LIGHT = np.array([-0.4, 0.5, 1.0]) / np.linalg.norm([-0.4, 0.5, 1.0])  # camera frame


def _hit_ellipsoid(o, d, centre, axes):
    """Ray parameter (inf on a miss) and outward normal of an axis-aligned ellipsoid."""
    c, a = np.asarray(centre), np.asarray(axes)
    q, e = (o - c) / a, d / a
    qa = np.einsum("...i,...i->...", e, e)
    qb = 2.0 * np.einsum("...i,...i->...", q, e)
    qc = np.einsum("...i,...i->...", q, q) - 1.0
    disc = qb * qb - 4.0 * qa * qc
    hit = disc >= 0.0
    t = np.where(hit, (-qb - np.sqrt(np.where(hit, disc, 0.0))) / (2.0 * qa), np.inf)
    t = np.where(t > 0.0, t, np.inf)
    finite = np.where(np.isfinite(t), t, 0.0)
    return t, (o + finite[..., None] * d - c) / a**2


def _hit_box(o, d, centre, half):
    """Ray parameter (inf on a miss) and outward normal of an axis-aligned box (slab test)."""
    c, h = np.asarray(centre), np.asarray(half)
    safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
    t1, t2 = (c - h - o) / safe, (c + h - o) / safe
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = near.max(-1), far.min(-1)
    hit = (t_far >= t_near) & (t_near > 0.0)
    t = np.where(hit, t_near, np.inf)
    axis = near.argmax(-1)
    normal = np.zeros_like(o)
    sign = -np.sign(np.take_along_axis(safe, axis[..., None], -1))
    np.put_along_axis(normal, axis[..., None], sign, -1)
    return t, normal


def render_object(angles: np.ndarray, size: int = 64) -> np.ndarray:
    r"""Render the toy figure turned by ``angles`` about the vertical axis.

    Orthographic camera looking down :math:`-z` at the square :math:`[-1, 1]^2` (one ray per
    pixel centre, image row 0 at the top), black background. The figure turned by
    :math:`\theta` is :math:`R_y(\theta)` applied to its parts, so rays are traced in the
    figure's frame after :math:`R_y(\theta)^\top`. Shading: albedo
    :math:`\times\,(a + (1 - a)\max(0, n \cdot l))` with ambient :math:`a = 0.25` and a fixed
    light :math:`l` in the camera frame (upper left, in front).

    Parameters
    ----------
    angles : array, shape=[...]
        Rotation angles :math:`\theta` (radians, counter-clockwise seen from above).
    size : int
        Image side.

    Returns
    -------
    ndarray, shape=[..., size, size]
        Float64 grey values in :math:`[0, 1]`.
    """
    angles = np.asarray(angles, dtype=np.float64)
    batch = angles.shape
    theta = angles.reshape(-1, 1)  # (A, 1)
    u = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(-u, u, indexing="ij")  # (size, size), y up
    x, y = x.reshape(1, -1), y.reshape(1, -1)  # (1, P)
    cos, sin = np.cos(theta), np.sin(theta)
    z0 = 10.0
    # R_y(theta)^T applied to the ray origin (x, y, z0) and to the direction (0, 0, -1).
    origin = np.stack(np.broadcast_arrays(cos * x - sin * z0, y, sin * x + cos * z0), -1)
    direction = np.stack(np.broadcast_arrays(sin, 0.0 * theta, -cos), -1)  # (A, 1, 3)
    direction = np.broadcast_to(direction, origin.shape)
    light = np.stack(
        np.broadcast_arrays(
            cos * _LIGHT[0] - sin * _LIGHT[2],
            _LIGHT[1] + 0.0 * theta,
            sin * _LIGHT[0] + cos * _LIGHT[2],
        ),
        -1,
    )  # (A, 1, 3)
    best = np.full(origin.shape[:-1], np.inf)
    image = np.zeros(origin.shape[:-1])
    for kind, centre, extent, albedo in _PARTS:
        hit = _hit_ellipsoid if kind == "ellipsoid" else _hit_box
        t, normal = hit(origin, direction, centre, extent)
        closer = t < best
        if not closer.any():
            continue
        norm = np.linalg.norm(normal, axis=-1)
        lambert = np.einsum("...i,...i->...", normal, light) / np.where(norm > 0, norm, 1.0)
        shade = albedo * (_AMBIENT + (1.0 - _AMBIENT) * np.clip(lambert, 0.0, None))
        image = np.where(closer, shade, image)
        best = np.where(closer, t, best)
    return np.clip(image, 0.0, 1.0).reshape(*batch, size, size)


def _object_mean(coords: Tensor, size: int) -> Tensor:
    """The model's mean: angles ``(..., 1)`` to rendered images ``(..., size, size)``."""
    if not isinstance(coords, Tensor) or coords.ndim < 1 or coords.shape[-1] != 1:
        raise ValueError("coords must be a tensor of shape (..., 1)")
    images = render_object(coords[..., 0].detach().cpu().double().numpy(), size)
    return torch.as_tensor(images, dtype=coords.dtype, device=coords.device)


def rotating_object(
    n_angles: int = 72, size: int = 64, dtype: torch.dtype = torch.float32
) -> LatentDataset:
    r"""A toy figure turning about the vertical axis: a COIL-like dataset with no download.

    Image :math:`k` shows the figure of :func:`render_object` turned by
    :math:`\theta_k = 2\pi k / n`, :math:`k = 0..n-1` (the default :math:`n = 72` matches
    COIL-20's 5 degree steps).

    Parameters
    ----------
    n_angles : int
        Number of views :math:`n`.
    size : int
        Image side (COIL-20: 128; default 64).
    dtype : torch.dtype
        Of the returned tensors.

    Returns
    -------
    LatentDataset
        ``data`` ``(n, size, size)`` in :math:`[0, 1]`, ``latent`` ``(n, 1)`` the wrapped
        angles, ``model``: latent ``Circle()``, the renderer as mean (any angle), noise 0.
    """
    if isinstance(n_angles, bool) or not isinstance(n_angles, int) or n_angles < 1:
        raise ValueError(f"n_angles must be a positive integer, got {n_angles!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    theta = 2.0 * math.pi * torch.arange(n_angles, dtype=torch.float64) / n_angles
    data = torch.as_tensor(render_object(theta.numpy(), size))
    name = f"rotating object ({n_angles} views, {size}x{size})"
    model = GenerativeModel(Circle(), partial(_object_mean, size=size), 0.0, (size, size), name)
    return LatentDataset(data.to(dtype), wrap_angle(theta).unsqueeze(-1).to(dtype), name, model)
