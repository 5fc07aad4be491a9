r"""Circular pixel shifts of a grey image (thesis Sec. 10.1).

For a grey image :math:`I \in [0, 1]^{H \times W}` (0-based indices here), the shift by
:math:`s` pixels is

.. math:: f_{ij}(s) = I_{i,\,(j + s) \bmod W}, \qquad s = 0..W-1,

and the dataset is the :math:`W` shifted images with latent angle :math:`2\pi s / W` (wrapped to
:math:`[-\pi, \pi)`). The thesis writes the same set with 1-based indices,
:math:`f_{ij}(s) = I_{i, [(j+s) \bmod W] + 1}` for :math:`s \in [W]`.

The default image is the photograph ``grace_hopper.jpg`` shipped in matplotlib's sample data
(no download), converted to grey and resized with Pillow.
"""

from __future__ import annotations

import importlib.util
import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distributions.angles import wrap_angle

from ..manifolds import Circle
from .generative import GenerativeModel, LatentDataset

__all__ = ["check_size", "default_image_path", "load_grey_image", "pixel_shift", "shift_mean"]

#: ITU-R BT.601 luma weights (those of Pillow's ``convert("L")``).
_LUMA = np.array([0.299, 0.587, 0.114])

ImageLike = str | os.PathLike | np.ndarray | Tensor


def default_image_path() -> Path:
    """The path of matplotlib's sample photograph ``grace_hopper.jpg`` (nothing is imported)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
            if path.is_file():
                return path
    raise ValueError(
        "image=None needs matplotlib's sample image mpl-data/sample_data/grace_hopper.jpg, which "
        "was not found; pass an image path or array instead"
    )


def check_size(size: int | None) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 2):
        raise ValueError(f"size must be an integer >= 2 or None (keep the size), got {size!r}")


def _grey_from_array(array: Any, what: str = "image") -> np.ndarray:
    """Float64 ``(H, W)`` in [0, 1] from an array ``(H, W)`` or ``(H, W, 3|4)``."""
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            f"{what} must have shape (H, W) or (H, W, 3|4) (grey, RGB or RGBA), "
            f"got shape {array.shape}"
        )
    if min(array.shape[:2]) < 1:
        raise ValueError(f"{what} must not be empty, got shape {array.shape}")
    if array.dtype == np.uint8:
        values = array.astype(np.float64) / 255.0
    elif np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer):
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        low, high = values.min(), values.max()
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"{what} values must lie in [0, 1] (or be uint8 in [0, 255]), got range "
                f"[{low:g}, {high:g}]"
            )
    else:
        raise ValueError(f"{what} must hold real numbers, got dtype {array.dtype}")
    if values.ndim == 3:  # luminance of RGB; an alpha channel is ignored
        values = values[..., :3] @ _LUMA
    return np.clip(values, 0.0, 1.0)


def _resize(grey: np.ndarray, size: int | None) -> np.ndarray:
    """Resize ``(H, W)`` to ``(size, size)`` with Pillow's antialiased bilinear filter."""
    if size is None or grey.shape == (size, size):
        return grey
    from PIL import Image

    resized = Image.fromarray(grey.astype(np.float32)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)


def load_grey_image(image: ImageLike | None = None, size: int | None = 64) -> np.ndarray:
    r"""A grey image as float64 ``(H, W)`` in :math:`[0, 1]`.

    Parameters
    ----------
    image : path, array, tensor or None
        ``None``: matplotlib's ``grace_hopper.jpg``. A path: anything Pillow opens. An array or
        tensor of shape ``(H, W)`` or ``(H, W, 3|4)``, values in :math:`[0, 1]` or ``uint8`` in
        :math:`[0, 255]`. Colour becomes luminance :math:`0.299 R + 0.587 G + 0.114 B`; alpha
        is ignored.
    size : int or None
        Resize to ``size x size`` (Pillow, antialiased bilinear; the aspect ratio is not kept);
        ``None`` keeps the size.
    """
    check_size(size)
    if image is None:
        image = default_image_path()
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError

        path = Path(image)
        try:
            with Image.open(path) as opened:
                if opened.mode in ("L", "LA"):
                    array = np.asarray(opened.getchannel(0))
                else:
                    array = np.asarray(opened.convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise ValueError(f"image: cannot read {str(path)!r} as an image: {error}") from error
        grey = _grey_from_array(array, f"image {path.name}")
    else:
        grey = _grey_from_array(image)
    return _resize(grey, size)


def shift_mean(coords: Tensor, image: Tensor) -> Tensor:
    r"""The image shifted by the angle ``coords``: ``(..., 1)`` to ``(..., H, W)``.

    The angle :math:`\theta` is the shift :math:`s = \theta W / 2\pi` pixels. For multiples of
    :math:`2\pi / W` (integer :math:`s`, up to a rounding tolerance of a few ulp) the result is
    exactly :math:`I_{i, (j + s) \bmod W}`; between them it interpolates linearly between the
    two neighbouring integer shifts, :math:`(1 - \lambda) F(\lfloor s \rfloor) + \lambda
    F(\lfloor s \rfloor + 1)` with :math:`\lambda = s - \lfloor s \rfloor` (an interpolation,
    not a sub-pixel resampling of the photograph).

    Parameters
    ----------
    coords : Tensor, shape=[..., 1]
        Shift angles.
    image : Tensor, shape=[H, W]
        The unshifted image :math:`I`.
    """
    if not isinstance(coords, Tensor) or coords.ndim < 1 or coords.shape[-1] != 1:
        raise ValueError("coords must be a tensor of shape (..., 1)")
    width = image.shape[-1]
    img = image.to(dtype=coords.dtype, device=coords.device)
    s = coords[..., 0] * (width / (2.0 * math.pi))
    nearest = torch.round(s)
    tol = 64.0 * torch.finfo(coords.dtype).eps * max(width, 1)
    s = torch.where((s - nearest).abs() <= tol, nearest, s)
    floor = torch.floor(s)
    frac = (s - floor)[..., None, None]
    columns = torch.arange(width, device=coords.device)
    idx = (floor.long()[..., None] + columns) % width  # (..., W)
    left = img.T[idx].transpose(-1, -2)  # (..., H, W)
    right = img.T[(idx + 1) % width].transpose(-1, -2)
    return torch.where(frac == 0, left, (1.0 - frac) * left + frac * right)


def pixel_shift(
    image: ImageLike | None = None, size: int | None = 64, dtype: torch.dtype = torch.float32
) -> LatentDataset:
    r"""The pixel-shift dataset (Eq. 10.1): all :math:`W` circular shifts of a grey image.

    Parameters
    ----------
    image : path, array, tensor or None
        See :func:`load_grey_image` (default: matplotlib's photograph ``grace_hopper.jpg``).
    size : int or None
        Side of the square image (thesis: 64); ``None`` keeps the image's size.
    dtype : torch.dtype
        Of the returned tensors.

    Returns
    -------
    LatentDataset
        ``data`` ``(W, H, W)`` with ``data[s, i, j] = I[i, (j + s) % W]``, ``latent`` ``(W, 1)``
        the angles :math:`2\pi s / W` wrapped to :math:`[-\pi, \pi)`, and the model: latent
        ``Circle()``, mean :func:`shift_mean`, noise 0.
    """
    grey = torch.as_tensor(load_grey_image(image, size))  # float64 (H, W)
    height, width = grey.shape
    if width < 2:
        raise ValueError(f"image must be at least 2 pixels wide, got shape {tuple(grey.shape)}")
    shifts = torch.arange(width, dtype=torch.float64)
    angles = wrap_angle(2.0 * math.pi * shifts / width).unsqueeze(-1)
    data = torch.stack([torch.roll(grey, -s, dims=1) for s in range(width)])
    name = f"pixel shift ({height}x{width})"
    model = GenerativeModel(Circle(), partial(shift_mean, image=grey), 0.0, (height, width), name)
    return LatentDataset(data.to(dtype), angles.to(dtype), name, model)
