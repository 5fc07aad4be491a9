"""Checkpoints: one file with a VAE's weights and a config to rebuild it, written atomically.

A checkpoint is a dictionary of plain values and tensors saved by :func:`torch.save`: the
format and versions, the specs of the latent manifold and the likelihood (names looked up in
:data:`~manifold_vae.manifolds.MANIFOLDS` and :data:`~manifold_vae.likelihoods.LIKELIHOODS`),
the data shape, the sizes of the default networks, the dtype and the state dict. It is read
back with ``torch.load(..., weights_only=True)``, which refuses every pickled object that is
not a tensor or a plain container, so loading never runs code: a crafted file raises
``ValueError``. Custom networks are not stored as code: their weights are in the state dict,
and :func:`load_vae` needs the modules passed (``VAE.load(path, encoder=..., decoder=...)``).

This module knows the VAE only through the class passed to :func:`load_vae` and the
attributes :func:`save_vae` reads, so that :mod:`manifold_vae.vae` imports it and not the
other way round.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .likelihoods import LIKELIHOODS, likelihood_from_spec
from .manifolds import manifold_from_spec

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "NETWORKS",
    "atomic_save",
    "load_vae",
    "read_header",
    "save_vae",
]

#: Identifies our checkpoint files.
FORMAT = "manifold-vae/vae"
#: 2: custom networks are described by their class name, never stored as pickled modules (1).
FORMAT_VERSION = 2
#: The networks of a VAE that may be custom (passed to its constructor and to :func:`load_vae`).
NETWORKS = ("encoder", "decoder")

M = TypeVar("M", bound=nn.Module)


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


def _network_class(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_vae(vae: Any, path: str | os.PathLike) -> None:
    """Write ``vae`` (a :class:`~manifold_vae.vae.VAE`; see :meth:`~manifold_vae.vae.VAE.save`).

    A custom network is recorded by its class name (for messages only) and its weights; the
    module itself is not stored.
    """
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
        **{
            name: _network_class(getattr(vae, name)) if name in vae.custom_networks else None
            for name in NETWORKS
        },
    }
    atomic_save(header, path)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a checkpoint, read without unpickling code (``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If the file is corrupt, holds pickled objects other than tensors and plain
        containers, is not a manifold-vae checkpoint, or is of a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        header = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or foreign pickle, or pickled code
        raise ValueError(f"{path} is not a readable manifold-vae checkpoint: {error}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a manifold-vae checkpoint (no '{FORMAT}' header)")
    version = header.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {version!r}, newer than this package's "
            f"{FORMAT_VERSION} (written by manifold-vae {header.get('package_version')})"
        )
    return header


def _networks(path: Path, header: dict[str, Any], passed: dict[str, Any]) -> dict[str, nn.Module]:
    """The networks to build the model with: those passed, checked against the header."""
    for name, module in passed.items():
        if module is not None and not isinstance(module, nn.Module):
            raise ValueError(f"{name} must be an nn.Module, got {type(module).__name__}")
    missing = [name for name in NETWORKS if header.get(name) is not None and passed[name] is None]
    if missing and any(isinstance(header[name], bytes) for name in missing):
        raise ValueError(
            f"{path} stores its custom {' and '.join(missing)} as pickled code (checkpoint "
            f"format {header.get('format_version')}), which loading never unpickles: build the "
            f"networks and pass them, as in VAE.load(path, "
            f"{', '.join(f'{name}=...' for name in missing)}); their weights are in the file"
        )
    if missing:
        described = ", ".join(f"{name} ({header[name]})" for name in missing)
        raise ValueError(
            f"{path} was saved with a custom {described}: pass a module of the same "
            f"architecture, as in VAE.load(path, {', '.join(f'{n}=...' for n in missing)})"
        )
    return {name: module for name, module in passed.items() if module is not None}


def _dtype(header: dict[str, Any]) -> torch.dtype:
    dtype = getattr(torch, str(header["dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {header['dtype']!r}")
    return dtype


def _check_likelihood(path: Path, spec: Any) -> None:
    name = spec.get("name") if isinstance(spec, dict) else None
    if isinstance(name, str) and name not in LIKELIHOODS:
        raise ValueError(
            f"{path} was saved with the likelihood {name!r}, which is not registered "
            f"(registered: {', '.join(LIKELIHOODS.names())}): register its class with "
            "manifold_vae.likelihoods.LIKELIHOODS.register before loading"
        )


def load_vae(
    path: str | os.PathLike,
    cls: type[M],
    map_location: str | torch.device | None = None,
    *,
    encoder: nn.Module | None = None,
    decoder: nn.Module | None = None,
) -> M:
    """Rebuild a model of class ``cls`` from :func:`save_vae`'s file (:meth:`VAE.load
    <manifold_vae.vae.VAE.load>` documents the arguments and errors).

    ``cls`` (:class:`~manifold_vae.vae.VAE` or a subclass) is called as ``cls(latent,
    data_shape, likelihood, hidden=..., depth=..., activation=..., encoder=..., decoder=...)``,
    with the custom networks passed, which must match the custom networks of the file.
    """
    path = Path(path)
    header = read_header(path)
    networks = _networks(path, header, {"encoder": encoder, "decoder": decoder})
    _check_likelihood(path, header.get("likelihood"))
    try:
        vae = cls(
            manifold_from_spec(header["manifold"]),
            tuple(header["data_shape"]),
            likelihood_from_spec(header["likelihood"]),
            hidden=header["hidden"],
            depth=header["depth"],
            activation=header["activation"],
            **networks,
        )
        vae.to(_dtype(header))
    except (KeyError, TypeError, RuntimeError, AttributeError, ValueError) as error:
        raise ValueError(f"{path} is a damaged manifold-vae checkpoint: {error}") from error
    try:
        vae.load_state_dict(header["state_dict"])
    except (KeyError, TypeError, RuntimeError, AttributeError, ValueError) as error:
        fit = f" or does not fit the {' and '.join(networks)} passed" if networks else ""
        raise ValueError(f"{path} is a damaged manifold-vae checkpoint{fit}: {error}") from error
    if map_location is not None:
        vae.to(map_location)
    return vae
