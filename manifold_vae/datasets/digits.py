"""scikit-learn's bundled 8x8 handwritten digits, as grey levels in [0, 1] with their labels."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["digits"]


def _bundled_csv() -> Path | None:
    """scikit-learn's ``datasets/data/digits.csv.gz``, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def _rows(path: Path) -> Tensor:
    with gzip.open(path, "rt") as f:
        rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
    return torch.tensor(rows, dtype=torch.float64)


def digits(dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    r"""The 1797 8x8 digits of :func:`sklearn.datasets.load_digits` (no download).

    The images have grey levels :math:`0..16`; they are returned divided by 16, flattened, in
    scikit-learn's order. There is no known hyperspherical factor; the known factor is the
    class label (0-9). The file that scikit-learn bundles is read directly (importing
    scikit-learn takes seconds); :func:`~sklearn.datasets.load_digits` is the fallback.

    Parameters
    ----------
    dtype : torch.dtype
        Of the returned images.

    Returns
    -------
    images : Tensor, shape=[1797, 64]
        Grey levels in :math:`[0, 1]`.
    labels : Tensor, shape=[1797]
        The digit of each image (int64).

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    """
    path = _bundled_csv()
    if path is not None:
        table = _rows(path)
        images, labels = table[:, :-1], table[:, -1]
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError as error:  # pragma: no cover - scikit-learn comes with geomstats
            raise ImportError("digits() needs scikit-learn: pip install scikit-learn") from error
        bunch = load_digits()
        images = torch.as_tensor(bunch.data, dtype=torch.float64)
        labels = torch.as_tensor(bunch.target, dtype=torch.float64)
    return (images / 16.0).to(dtype), labels.to(torch.int64)
