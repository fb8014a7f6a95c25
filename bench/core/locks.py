"""Advisory file locks under ``<results>/locks``, so several processes sharing a results
directory never run the same cell at once nor create one store together. A lock dies with its
process, so a killed worker frees what it held."""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = True):
    """Hold an flock on ``path``: yield True once held, or (``wait=False``) False at once when
    another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def cell_lock(results_dir: Path, cell_key: str):
    """Yields True when this process holds the cell's lock, False when another process does."""
    name = hashlib.sha256(cell_key.encode()).hexdigest()[:24]
    return file_lock(Path(results_dir) / "locks" / f"{name}.lock", wait=False)


@contextmanager
def exclusive(results_dir: Path, name: str):
    """Block until this process holds the named lock (e.g. while a new sqlite store is created:
    two processes creating its tables at once would both fail)."""
    with file_lock(Path(results_dir) / "locks" / f"{name}.lock"):
        yield


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
