"""Run folders: one run per folder, under a lock, never mixed with an earlier run's files.

A :class:`RunFolder` is what ``manifold-vae train --out DIR`` writes into. Opening it

1. checks that ``DIR`` is (or can be made) a writable folder, before any training, turning the
   operating system's error into one ``ValueError`` that names the folder;
2. takes an exclusive lock (``DIR/.lock``, an advisory ``flock`` held until the run ends), so a
   second run on the same folder is refused at once with the first run's process id;
3. removes temporary files that an interrupted atomic write left behind (even ``kill -9``
   during a save leaves at most such a file: :mod:`manifold_vae.files`);
4. refuses a folder that already holds a run (any of :data:`RUN_FILES`) unless ``overwrite``
   (its files are removed first, so nothing of the old run can be mistaken for the new one) or
   ``resume`` (the run continues from its checkpoint).

The lock file stays in the folder after the run (removing it would let two later runs lock two
different files of the same name).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from .files import remove_temporaries, write_json

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_NAME", "RUN_FILES", "RunFolder"]

#: The files of a run; a folder holding any of them holds a run.
RUN_FILES = (
    "model.pt",
    "metrics.json",
    "metrics.jsonl",
    "latent.png",
    "run.json",
    "tensorboard",
)
#: The lock file's name inside a run folder.
LOCK_NAME = ".lock"


class RunFolder:
    """The output folder of one run (see the module docstring); a context manager.

    Parameters
    ----------
    path : path-like
        The folder (created with its parents if missing).
    overwrite : bool
        Replace a run already in the folder (its files are deleted when the folder is opened).
    resume : bool
        Continue the run in the folder (its checkpoint must exist).
    argument : str
        How error messages name the folder (the command-line option, by default ``--out``).

    Examples
    --------
    >>> with RunFolder("runs/circle") as run:  # doctest: +SKIP
    ...     vae.save(run.checkpoint)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        resume: bool = False,
        argument: str = "--out",
    ) -> None:
        if overwrite and resume:
            raise ValueError("overwrite and resume exclude each other: choose one")
        self.path = Path(path)
        self.overwrite, self.resume, self.argument = overwrite, resume, argument
        self._fd: int | None = None

    # -- files of the run ----------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        """``model.pt``: the last good checkpoint."""
        return self.path / "model.pt"

    @property
    def metrics(self) -> Path:
        """``metrics.json``: the final metrics."""
        return self.path / "metrics.json"

    @property
    def metrics_log(self) -> Path:
        """``metrics.jsonl``: one line per epoch, appended as the run goes."""
        return self.path / "metrics.jsonl"

    @property
    def plot(self) -> Path:
        """``latent.png``: the latent plot."""
        return self.path / "latent.png"

    @property
    def record(self) -> Path:
        """``run.json``: the full configuration, versions and seed."""
        return self.path / "run.json"

    # -- opening and closing ---------------------------------------------------------------------
    def open(self) -> RunFolder:
        """Check, create, lock and clean the folder; refuse an earlier run (module docstring).

        Raises
        ------
        ValueError
            If the folder cannot be created or written, is locked by another run, holds a run
            without ``overwrite``/``resume``, or holds no checkpoint with ``resume``.
        """
        where = f"{self.argument} {self.path}"
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{where}: exists and is not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ValueError(f"{where}: cannot write there ({_reason(error)})") from error
        try:
            _lock(fd)
        except OSError as error:
            owner = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(
                f"{where}: another run (process {owner}) is writing into this folder; wait for "
                "it to finish or choose another folder"
            ) from error
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._prepare(where)
        except BaseException:
            self.close()
            raise
        return self

    def _prepare(self, where: str) -> None:
        try:
            remove_temporaries(self.path)
            probe = self.path / ".write-test.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise ValueError(f"{where}: cannot write there ({_reason(error)})") from error
        present = [name for name in RUN_FILES if (self.path / name).exists()]
        if self.resume:
            if not self.checkpoint.exists():
                raise ValueError(f"{where}: there is no checkpoint (model.pt) to resume from")
            return
        if present and not self.overwrite:
            raise ValueError(
                f"{where}: already holds a run ({', '.join(present)}); pass --overwrite to "
                "replace it or --resume to continue it, or choose another folder"
            )
        for name in present:
            path = self.path / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> RunFolder:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the run's record --------------------------------------------------------------------------
    def write_record(self, config: dict[str, Any]) -> Path:
        """Write ``run.json``: ``config`` plus the versions of Python, torch, Pyro and the package.

        Returns
        -------
        Path
            The record's path.
        """
        import pyro
        import torch

        from . import __version__

        record = {
            "config": config,
            "versions": {
                "manifold_vae": __version__,
                "torch": torch.__version__,
                "pyro": pyro.__version__,
                "python": platform.python_version(),
            },
            "command": sys.argv,
        }
        return write_json(self.record, record)


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _lock(fd: int) -> None:
    """An exclusive, non-blocking lock on the open file ``fd`` (``OSError`` when held)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
