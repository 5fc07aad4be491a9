"""Checkpoints: one file with a VAE's weights and a config to rebuild it, written atomically.

A checkpoint is a dictionary of plain values and tensors saved by :func:`torch.save`: the
format and versions, the specs of the latent manifold and the likelihood (names looked up in
:data:`~manifold_vae.manifolds.MANIFOLDS` and :data:`~manifold_vae.likelihoods.LIKELIHOODS`),
the data shape, the sizes of the default networks, the dtype, the state dict and (format 3)
the SHA-256 ``digest`` of all of it (:func:`payload_digest`). It is read back with
``torch.load(..., weights_only=True)``, which refuses every pickled object that is not a
tensor or a plain container, so loading never runs code: a crafted file raises
``ValueError``. Custom networks are not stored as code: their weights are in the state dict,
and :func:`load_vae` needs the modules passed (``VAE.load(path, encoder=..., decoder=...)``).

Integrity. ``torch.load`` checks neither the zip archive's CRC-32 of each record nor anything
else about the tensor bytes, so a flipped byte inside a weight used to load silently. Reading
now (1) checks that the file is a zip archive and every record's CRC-32
(:meth:`zipfile.ZipFile.testzip`), (2) unpickles it with ``weights_only=True``, (3) checks the
format, version and keys, and (4) recomputes the SHA-256 digest of the payload and compares it
with the stored one. Files of format 2 (written before digests) have no digest: they load
after the CRC check, which catches damage to the bytes but not a consistent rewrite. Every
failure is one ``ValueError`` that says what is wrong with the file (it never suggests
``weights_only=False``; ``torch``'s own advice to do so is dropped from the message).

This module knows the VAE only through the class passed to :func:`load_vae` and the
attributes :func:`save_vae` reads, so that :mod:`manifold_vae.vae` imports it and not the
other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .files import atomic_write_with
from .likelihoods import LIKELIHOODS, likelihood_from_spec
from .manifolds import manifold_from_spec

__all__ = [
    "DIGEST_SINCE",
    "FORMAT",
    "FORMAT_VERSION",
    "NETWORKS",
    "REQUIRED_KEYS",
    "TENSOR_ENTRIES",
    "atomic_save",
    "load_vae",
    "payload_digest",
    "read_header",
    "read_training",
    "save_vae",
]

#: Identifies our checkpoint files.
FORMAT = "manifold-vae/vae"
#: 3: a SHA-256 ``digest`` of the payload is stored and verified. 2: custom networks are
#: described by their class name, never stored as pickled modules (1). Older formats load.
FORMAT_VERSION = 3
#: The first format whose files must carry a ``digest``.
DIGEST_SINCE = 3
#: The keys every checkpoint holds (besides ``digest`` from format 3 on).
REQUIRED_KEYS = (
    "format",
    "format_version",
    "manifold",
    "likelihood",
    "data_shape",
    "hidden",
    "depth",
    "activation",
    "dtype",
    "state_dict",
)
#: Entries of tensors (digested by their bytes); the other entries are JSON-able values.
TENSOR_ENTRIES = ("state_dict", "training_tensors")
#: The networks of a VAE that may be custom (passed to its constructor and to :func:`load_vae`).
NETWORKS = ("encoder", "decoder")

M = TypeVar("M", bound=nn.Module)


def _package_version() -> str:
    from . import __version__

    return __version__


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``
    (:func:`manifold_vae.files.atomic_write_with`; its folder is created).

    A crash mid-write leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, lambda f: torch.save(obj, f))


def payload_digest(header: dict[str, Any]) -> str:
    """The SHA-256 hex digest of a checkpoint's payload: everything but ``digest`` itself.

    The config (every entry but ``state_dict`` and ``digest``) enters as canonical JSON (sorted
    keys); then each state-dict entry in key order: its name, dtype and shape, then the raw
    bytes of its values (C order). Equal payloads give equal digests whatever the pickle.

    Raises
    ------
    ValueError
        If the config is not JSON-able or the state dict is not a dict of tensors.
    """
    config = {k: v for k, v in header.items() if k not in (*TENSOR_ENTRIES, "digest")}
    state = header.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"the state_dict entry is a {type(state).__name__}, not a dict")
    digest = hashlib.sha256()
    try:
        digest.update(json.dumps(config, sort_keys=True, allow_nan=False).encode())
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"the checkpoint's config is not plain JSON-able values: {error}"
        ) from None
    _digest_tensors(digest, "state_dict", state, "")
    if "training_tensors" in header:  # only in checkpoints that can resume training
        digest.update(b"\ntraining_tensors")
        _digest_tensors(digest, "training_tensors", header["training_tensors"], "")
    return digest.hexdigest()


def _digest_tensors(digest: Any, entry: str, tensors: Any, prefix: str) -> None:
    """Feed each tensor of the dict ``tensors`` (name, dtype, shape, bytes) to ``digest``."""
    if not isinstance(tensors, dict):
        raise ValueError(f"the {entry} entry is a {type(tensors).__name__}, not a dict")
    for name in sorted(tensors):
        tensor = tensors[name]
        if not torch.is_tensor(tensor):
            raise ValueError(f"{entry} entry {name!r} is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"\n{prefix}{name}\n{tensor.dtype}\n{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def _network_class(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def save_vae(
    vae: Any,
    path: str | os.PathLike,
    training: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = None,
) -> None:
    """Write ``vae`` (a :class:`~manifold_vae.vae.VAE`; see :meth:`~manifold_vae.vae.VAE.save`).

    A custom network is recorded by its class name (for messages only) and its weights; the
    module itself is not stored. ``training``, the state that resumes a training run (plain
    JSON-able values and named tensors, :class:`manifold_vae.trainer.TrainingState`), is
    stored beside the model (entries ``training`` and ``training_tensors``) and covered by the
    digest.
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
    if training is not None:
        header["training"], tensors = training
        header["training_tensors"] = {k: v.detach().cpu() for k, v in tensors.items()}
    header["digest"] = payload_digest(header)
    atomic_save(header, path)


def read_training(
    path: str | os.PathLike,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """The training state stored in a checkpoint by :func:`save_vae` (verified like the rest of
    the file), or ``None`` when the file holds a model only."""
    header = read_header(path)
    if "training" not in header:
        return None
    tensors = header.get("training_tensors")
    if not isinstance(header["training"], dict) or not isinstance(tensors, dict):
        raise ValueError(f"{path} is a damaged manifold-vae checkpoint: bad training state")
    return header["training"], tensors


def _check_archive(path: Path) -> None:
    """``ValueError`` unless ``path`` is a zip archive whose records all pass their CRC-32."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise ValueError(
            f"{path} is not a readable manifold-vae checkpoint: it is not a complete zip "
            f"archive as torch.save writes them (truncated, empty or another kind of file: "
            f"{error})"
        ) from None
    except (RuntimeError, ValueError, NotImplementedError) as error:  # unreadable records
        raise ValueError(
            f"{path} is not a readable manifold-vae checkpoint: its zip archive is damaged "
            f"({error})"
        ) from None
    if bad is not None:
        raise ValueError(
            f"{path} is a damaged manifold-vae checkpoint: the CRC-32 of its record {bad!r} "
            "does not match its bytes (the file changed after it was written)"
        )


def _load_error(error: BaseException) -> str:
    """What ``torch.load`` says went wrong, without its advice to load unsafely."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].strip().splitlines()[0]
        return (
            f"it holds a pickled object other than tensors and plain containers ({reason}), "
            "and loading never unpickles code"
        )
    lines = [line for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return f"{type(error).__name__}: {lines[0] if lines else 'unreadable pickle'}"


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a checkpoint, verified, read without unpickling code.

    The checks (module docstring): the zip archive and its CRC-32s, ``torch.load`` with
    ``weights_only=True``, the format, version and keys, and the SHA-256 digest of the
    payload (format 3; older files have none).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        One per failure, saying what is wrong: not a zip archive (truncated, empty, foreign),
        a record whose CRC-32 fails, pickled objects other than tensors and plain containers,
        not a manifold-vae checkpoint, a newer format, missing keys, or a payload that does
        not match its digest.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_archive(path)
    try:
        header = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # foreign pickle, pickled code, unreadable record
        raise ValueError(
            f"{path} is not a readable manifold-vae checkpoint: {_load_error(error)}"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a manifold-vae checkpoint (no '{FORMAT}' header)")
    version = header.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {version!r}, newer than this package's "
            f"{FORMAT_VERSION} (written by manifold-vae {header.get('package_version')})"
        )
    _check_keys(path, header, version)
    return header


def _check_keys(path: Path, header: dict[str, Any], version: int) -> None:
    """Missing keys and (from format 3) the digest: ``ValueError`` naming what is wrong."""
    required = [*REQUIRED_KEYS, *(["digest"] if version >= DIGEST_SINCE else [])]
    missing = [key for key in required if key not in header]
    if missing:
        raise ValueError(
            f"{path} is a damaged manifold-vae checkpoint: it lacks the keys {missing} "
            f"(format {version})"
        )
    if "digest" not in header:
        return
    try:
        actual = payload_digest(header)
    except ValueError as error:
        raise ValueError(f"{path} is a damaged manifold-vae checkpoint: {error}") from None
    if header["digest"] != actual:
        raise ValueError(
            f"{path} is a damaged manifold-vae checkpoint: its payload does not match the "
            f"SHA-256 digest stored when it was written (stored {str(header['digest'])[:16]}..., "
            f"computed {actual[:16]}...): the weights or config were changed afterwards"
        )


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
        with torch.random.fork_rng(devices=[]):  # building draws weights: leave the RNG be
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
    return vae.eval()  # for use; fit puts it back in training mode
