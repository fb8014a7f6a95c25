"""A results folder that can be moved, copied or restored from a CI cache.

MLflow stores artifact locations as absolute ``file://`` URIs: after the folder moves, new runs
would write into the old path (silently recreated) and old pictures would not be found. On
opening a sqlite store we point every experiment and run whose artifacts lie in some other
folder's ``mlartifacts/`` at this folder's ``mlartifacts/``. MLflow has no call that changes an
experiment's artifact location or a run's artifact URI, so this is two SQL updates on its own
tables (``experiments.artifact_location``, ``runs.artifact_uri``). The Optuna store and the
embedding cache need nothing: their paths are derived from the results folder on every run.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

ARTIFACTS = "mlartifacts"


def _path(uri: str) -> Path | None:
    parts = urlsplit(uri)
    if parts.scheme not in ("file", "") or not parts.path.startswith("/"):
        return None
    return Path(unquote(parts.path))


def _old_root(location: str) -> str | None:
    """The ``.../mlartifacts`` prefix of a file URI (None for other stores or layouts)."""
    path = _path(location)
    if path is None or ARTIFACTS not in path.parts:
        return None
    index = len(path.parts) - 1 - path.parts[::-1].index(ARTIFACTS)
    return Path(*path.parts[: index + 1]).as_uri()


def relocate_store(tracking_uri: str, artifact_root: Path) -> int:
    """Point the sqlite store's artifact locations that lie outside ``artifact_root`` into it;
    the number of experiments changed (0 for other stores, or a store already in place)."""
    if not tracking_uri.startswith("sqlite:///"):
        return 0
    db = Path(tracking_uri[len("sqlite:///"):].split("?", 1)[0])
    if not db.is_file() or db.resolve().parent != Path(artifact_root).resolve().parent:
        return 0  # only a results folder's own store (mlflow.db beside mlartifacts/) moves with it
    new_root = Path(artifact_root).resolve().as_uri()
    with sqlite3.connect(db, timeout=60) as con:
        try:
            rows = con.execute("SELECT experiment_id, artifact_location FROM experiments").fetchall()
        except sqlite3.OperationalError:  # a store MLflow has not created its tables in yet
            return 0
        moved = 0
        for experiment_id, location in rows:
            old_root = _old_root(location or "")
            if old_root is None or old_root == new_root:
                continue
            con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                        (new_root + location[len(old_root):], experiment_id))
            con.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                        "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                        (new_root, len(old_root) + 1, experiment_id, len(old_root), old_root))
            moved += 1
    return moved
