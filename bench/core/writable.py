"""Checks before anything runs: a folder a command will write into (probed by creating and
removing a file, the only test that sees a read-only mount, a full disk or, for root, an
immutable folder alike) and a sqlite store file it will read or write (sound, readable, not
held locked by another process)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import quote

from clusterbench.core.faults import StoreFault, disk_state, fault_line

SQLITE_HEADER = b"SQLite format 3\x00"
# How long a store held locked by another process is waited for before the run is refused: a
# running clusterbench holds the lock for one short write at a time.
STORE_WAIT_S = float(os.environ.get("CLUSTERBENCH_STORE_WAIT_S", "30"))


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def probe_folder(path: str | os.PathLike, what: str | None, status: int = 2) -> Path:
    """Raise :class:`StoreFault` unless ``path`` (a folder, made later if missing) can be written:
    a file is created and removed in it, or in its nearest existing parent. Nothing is left."""
    path = Path(path).expanduser().absolute()
    here = _nearest_existing(path)
    needed = f"(needed for {what}{'' if here == path else f', {path}'})" if what else ""
    if not here.is_dir():
        raise StoreFault(f"{here} is a file where a folder is needed {needed}".rstrip(), status)
    try:
        fd, probe = tempfile.mkstemp(dir=here, prefix=".clusterbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        bare = OSError(exc.errno, exc.strerror)  # named by the folder, not by the probe's own name
        raise StoreFault(f"{fault_line(bare, here) or f'{here}: {exc.strerror}'} {needed}".rstrip(), status) from None
    if disk_state(here) == "full":
        raise StoreFault(f"the disk holding {here} is full {needed}".rstrip(), status)
    return path


def probe_file(path: str | os.PathLike, what: str | None, status: int = 2) -> Path:
    """A file to be written (replaced whole): its folder can be written and it is not a folder."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise StoreFault(f"{path} is a folder where a file is needed{f' (for {what})' if what else ''}", status)
    probe_folder(path.parent, what, status)
    return path


def check_sqlite(path: str | os.PathLike, what: str, write: bool, wait_s: float | None = None,
                 status: int = 2) -> None:
    """A sqlite store that exists is a readable, sound database that is not held locked past
    ``wait_s``; to be written, the file and its folder (journal files) can be written."""
    path = Path(path)
    if not path.exists():
        if write:
            probe_folder(path.parent, what, status)
        return
    if path.is_dir():
        raise StoreFault(f"{path} is a folder, not {what}", status)
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
        if write:
            open(path, "r+b").close()  # sqlite itself would quietly open a read-only file read-only
    except OSError as exc:
        raise StoreFault(fault_line(exc, path) or f"{path}: {exc.strerror}", status) from None
    if head and head != SQLITE_HEADER:
        raise StoreFault(f"{path} is damaged: sqlite says file is not a database; move it aside to start a new "
                         "store", status)
    if write:
        probe_folder(path.parent, what, status)
    _ask_sqlite(path, what, write, STORE_WAIT_S if wait_s is None else wait_s, status)


def _ask_sqlite(path: Path, what: str, write: bool, wait_s: float, status: int) -> None:
    uri = f"file:{quote(str(path.absolute()))}?mode={'rw' if write else 'ro'}"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=wait_s, isolation_level=None)
        try:
            found = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
            if found != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({found})")
            if write:  # the write lock itself: held by another process past wait_s is a lock that stays
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        line = fault_line(exc, path) or f"{path} cannot be used as {what}: sqlite says {exc}"
        if "locked" in line:
            line = line.replace("stays locked", f"stays locked ({wait_s:g} s waited)")
        raise StoreFault(line, status) from None

