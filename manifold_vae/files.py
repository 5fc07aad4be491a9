"""Files that are never half-written: atomic replacement, strict JSON, append-only logs.

Every file a run writes goes through here (or through :func:`atomic_write_with` for a writer
such as ``torch.save``). A write goes to a temporary file ``.NAME.XXXX.tmp`` in the target's
folder, is flushed to disk, and is renamed over the target: a reader sees the old file or the
new one, never a mix. A process killed mid-write (even by SIGKILL) leaves the temporary file
behind; :func:`remove_temporaries` removes such leftovers when the next run starts.

JSON is strict (RFC 8259): ``NaN`` and infinities, which Python's ``json`` writes as the
non-standard ``NaN``/``Infinity`` tokens that other readers reject, are written as ``null``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMPORARY_GLOB",
    "append_jsonl",
    "atomic_write",
    "atomic_write_with",
    "remove_temporaries",
    "strict_json",
    "to_strict",
    "write_json",
]

#: The names of temporary files: ``.{target name}.{random}.tmp`` in the target's folder.
TEMPORARY_GLOB = ".*.tmp"


def atomic_write_with(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The file is flushed and synced before the rename; on any error (including
    ``KeyboardInterrupt``) the temporary file is removed and the previous ``path``, if any, is
    left as it was.

    Parameters
    ----------
    path : path-like
        The target; its folder must exist.
    write : callable
        Writes the whole content to the binary file it is given.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically (:func:`atomic_write_with`)."""
    raw = data.encode() if isinstance(data, str) else data
    return atomic_write_with(path, lambda f: f.write(raw))


def to_strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (recursively through mappings,
    lists and tuples); everything else unchanged."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: to_strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_strict(item) for item in value]
    return value


def strict_json(value: Any, indent: int | None = 2) -> str:
    """Standard JSON for ``value``: non-finite numbers become ``null`` (:func:`to_strict`).

    Raises
    ------
    TypeError
        If ``value`` holds something JSON cannot represent (as :func:`json.dumps`).
    """
    return json.dumps(to_strict(value), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` as strict JSON (:func:`strict_json`) to ``path``, atomically."""
    return atomic_write(path, strict_json(value) + "\n")


def append_jsonl(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one line of strict JSON to ``path`` and sync it to disk.

    A line is written with one ``write`` call on a file opened for appending, so a crash leaves
    at most a truncated last line, which readers of the log skip.
    """
    line = strict_json(record, indent=None) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def remove_temporaries(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in ``folder``.

    Parameters
    ----------
    folder : path-like
        The folder to clean (not recursive).
    names : iterable of str, optional
        Only temporaries of these target names (default: every ``.*.tmp`` file).

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    wanted = None if names is None else tuple(f".{name}." for name in names)
    removed = []
    for tmp in sorted(folder.glob(TEMPORARY_GLOB)):
        if tmp.is_file() and (wanted is None or tmp.name.startswith(wanted)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
