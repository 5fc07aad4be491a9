"""Checkpoints: one file with a VAE's weights and all needed to rebuild it, written atomically."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .likelihoods import likelihood_from_spec
from .manifolds import manifold_from_spec

__all__ = ["FORMAT", "atomic_save", "load_vae", "save_vae"]

#: Identifies our checkpoint files.
FORMAT = "manifold-vae/vae"
FORMAT_VERSION = 1


def _package_version() -> str:
    from . import __version__

    return __version__


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A crash mid-write leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _module_bytes(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    return buffer.getvalue()


def save_vae(vae, path: str | os.PathLike) -> None:
    """Write ``vae`` (see :meth:`manifold_vae.VAE.save`)."""
    header: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "manifold": vae.latent.spec(),
        "likelihood": vae.likelihood.spec(),
        "data_shape": list(vae.data_shape),
        "hidden": vae.hidden,
        "depth": vae.depth,
        "activation": vae.activation,
        "dtype": str(next(vae.parameters()).dtype).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in vae.state_dict().items()},
        # Custom networks are stored as pickled modules: their classes must be importable.
        "encoder": _module_bytes(vae.encoder) if vae.custom_networks else None,
        "decoder": _module_bytes(vae.decoder) if vae.custom_networks else None,
    }
    atomic_save(header, path)


def load_vae(path: str | os.PathLike, map_location: str | torch.device | None = None):
    """Rebuild a VAE from :func:`save_vae`'s file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is corrupt, not a manifold-vae checkpoint, or of a newer format.
    """
    from .vae import VAE

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        header = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or foreign pickle
        raise ValueError(f"{path} is not a readable manifold-vae checkpoint: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a manifold-vae checkpoint (no '{FORMAT}' header)")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {header['format_version']}, newer than this "
            f"package's {FORMAT_VERSION} (written by manifold-vae {header.get('package_version')})"
        )
    try:
        networks = {}
        for name in ("encoder", "decoder"):
            if header.get(name) is not None:
                networks[name] = torch.load(
                    io.BytesIO(header[name]), map_location="cpu", weights_only=False
                )
        vae = VAE(
            manifold_from_spec(header["manifold"]),
            tuple(header["data_shape"]),
            likelihood_from_spec(header["likelihood"]),
            hidden=header["hidden"],
            depth=header["depth"],
            activation=header["activation"],
            **networks,
        )
        vae.to(getattr(torch, header["dtype"]))
        vae.load_state_dict(header["state_dict"])
    except (KeyError, TypeError, RuntimeError, AttributeError, ValueError) as error:
        raise ValueError(f"{path} is a damaged manifold-vae checkpoint: {error}") from error
    if map_location is not None:
        vae.to(map_location)
    return vae
