"""Before a run's first cell: every folder and store it will write can be written, so a
read-only cache or a full disk is one line (exit status 2) before any embedding is computed and
thrown away, not a failure of every cell."""

from __future__ import annotations

import tempfile
from pathlib import Path

from clusterbench.core.writable import check_sqlite, probe_file, probe_folder
from clusterbench.k.study import default_storage_url, journal_path, sqlite_path
from clusterbench.track.tracking import check_store, store_file

# what a run writes under its results folder, and what for (a line names it when refused)
FOLDERS = (("", "the results"), ("cache/embeddings", "the embedding cache"),
           ("cache/reduced", "the reduced-embedding cache"), ("cache/work", "the methods' work folders"),
           ("locks", "the cells' locks"))


def preflight_run(results_dir: Path, tracking_uri: str | None, optuna_storage: str | None,
                  outputs: dict[str, str | None] | None = None) -> None:
    """Raise :class:`~clusterbench.core.faults.StoreFault` (exit status 2) for the first folder,
    store or output file (``outputs``: flag -> path, e.g. ``--json``) that cannot be written."""
    results_dir = Path(results_dir).absolute()
    for sub, what in FOLDERS:
        probe_folder(results_dir / sub, what)
    probe_folder(tempfile.gettempdir(), "temporary files (artifacts on their way into MLflow)")
    uri = tracking_uri or f"sqlite:///{results_dir / 'mlflow.db'}"
    if store_file(uri) is not None:  # a local store keeps new experiments' artifacts in the results folder
        probe_folder(results_dir / "mlartifacts", "MLflow's artifacts (pictures, assignments, explain panels)")
    check_store(uri, write=True)
    url = optuna_storage or default_storage_url(results_dir)
    if sqlite_path(url) is not None:
        check_sqlite(sqlite_path(url).absolute(), "the Optuna store (K studies)", write=True)
    elif journal_path(url) is not None:
        probe_file(journal_path(url).absolute(), "the Optuna journal (K studies)")
    for flag, path in (outputs or {}).items():
        if path:
            probe_file(path, f"{flag} {path}")
