"""Faults of the disk and of the stores (MLflow's and Optuna's sqlite files, the caches) as one
line naming the file and the cause, instead of a library's traceback or its bare message
("19200 requested and 13280 written" names neither the disk nor the file).

A fault found before anything ran exits with status 2; found mid-run, with status 1: the cells
finished before it are kept, and a rerun once the fault is removed resumes after them.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from clusterbench.core.errors import UserError

FULL_BELOW_BYTES = 1 << 20  # a folder with less free space than this cannot take a run's writes


class StoreFault(UserError):
    """A disk or store that cannot be used: full, read-only, not writable, damaged or locked."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def disk_state(path: str | os.PathLike) -> str | None:
    """"read-only" or "full" for the file system holding ``path`` (its nearest existing folder),
    or None when neither (or when it cannot be asked)."""
    here = Path(path)
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        stat = os.statvfs(here)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return "read-only"
    return "full" if stat.f_bavail * stat.f_frsize < FULL_BELOW_BYTES else None


def _by_disk(state: str | None, path) -> str | None:
    if state == "full":
        return f"the disk holding {path} is full"
    if state == "read-only":
        return f"{path} is on a read-only file system"
    return None


_ERRNO = {
    errno.ENOSPC: "the disk holding {path} is full",
    errno.EDQUOT: "the disk quota of the owner of {path} is used up",
    errno.EROFS: "{path} is on a read-only file system",
    errno.EACCES: "{path} cannot be read or written by this user (permission denied)",
    errno.EPERM: "{path} cannot be read or written by this user (operation not permitted)",
    errno.EISDIR: "{path} is a folder where a file was expected",
    errno.ENOTDIR: "{path} is a file where a folder was expected",
}

_DAMAGED = ("file is not a database", "database disk image is malformed", "file is encrypted or is not a database",
            "malformed database schema", "database corruption")


def _sqlite_line(message: str, path) -> str | None:
    """What sqlite's message means for the store file ``path``."""
    text = " ".join(message.split())
    low = text.lower()
    if any(word in low for word in _DAMAGED):
        return f"{path} is damaged: sqlite says {text}; move it aside to start a new store"
    if "database is locked" in low or "database table is locked" in low:
        return (f"{path} stays locked by another process (sqlite says {text}); stop that process, "
                "or wait for it, then rerun")
    if "readonly database" in low or "read-only" in low:
        return _by_disk(disk_state(path), path) or f"{path} is read-only (sqlite says {text})"
    if "database or disk is full" in low:
        return f"the disk holding {path} is full"
    if "unable to open database file" in low or "disk i/o error" in low:
        return _by_disk(disk_state(path), path) or (
            f"{path} cannot be used (sqlite says {text}): its folder is missing, unreadable or not writable")
    return None


def _chain(exc: BaseException):
    """The exception, its causes and contexts, and a wrapped driver error (SQLAlchemy's ``orig``)."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = vars(current).get("orig")  # SQLAlchemy's DBAPIError wraps the driver's error
        todo += [current.__cause__, current.__context__, orig if isinstance(orig, BaseException) else None]


def fault_line(exc: BaseException, path: str | os.PathLike | None = None) -> str | None:
    """One line for a disk or store fault anywhere in ``exc``'s chain, naming ``path`` (a store
    file, or the file being written) where the error itself names none; None for other errors."""
    import sqlite3

    for err in _chain(exc):
        if isinstance(err, StoreFault):
            return str(err)
        if isinstance(err, sqlite3.Error) or type(err).__module__.startswith("sqlalchemy"):
            line = _sqlite_line(str(err), path or "the store")
            if line:
                return line
        if isinstance(err, OSError):
            where = err.filename or path
            if err.errno in _ERRNO and where is not None:
                return _ERRNO[err.errno].format(path=where)
            if err.errno is None and where is not None:  # numpy's short write: "N requested and M written"
                line = _by_disk(disk_state(where), where)
                if line:
                    return line
    return None


def as_fault(exc: BaseException, path=None, status: int = 1) -> StoreFault | None:
    line = fault_line(exc, path)
    if line is None:
        return None
    return StoreFault(line, status)


@contextlib.contextmanager
def faults_named(path: str | os.PathLike | None, status: int = 1):
    """Inside, a disk or store fault becomes a :class:`StoreFault` naming ``path``; other errors pass."""
    try:
        yield
    except StoreFault:
        raise
    except Exception as exc:
        fault = as_fault(exc, path, status)
        if fault is None:
            raise
        raise fault from exc
