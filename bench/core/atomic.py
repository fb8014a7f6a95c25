"""Write-then-rename, so a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from clusterbench.core.faults import faults_named


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb"):
    """Yield an open temp file beside ``path``; it replaces ``path`` only if the block succeeds.
    A full disk or a read-only folder is a :class:`StoreFault` naming ``path``, and the temp
    file is removed (where the file system still allows it)."""
    path = Path(path)
    with faults_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with faults_named(path):
            with os.fdopen(fd, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a file system turned read-only keeps it: never read, never renamed
            os.unlink(tmp)
        raise


def write_json(path, obj) -> None:
    with atomic_file(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
