"""Pictures of one cell's clusters, as PNG artifacts of its MLflow run: the gallery, the
contingency matrix, the 2-D map and the cluster sizes (one module each). ``log_cell_pictures``
is the one entry point the runner calls."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from . import contingency, embedding_map, gallery, sizes
from .common import clusters_of

ARTIFACT_DIR = "pictures"
RECENT_BYTES = 48 << 20  # the latest pictures kept in memory for the suite's report.html (no re-reading)
_RECENT: dict[tuple[str, str], bytes] = {}
FILES = {"gallery": "gallery.png", "contingency": "contingency.png", "map": "embedding_map.png", "sizes": "sizes.png"}


def draw_all(data, space: np.ndarray, labels: np.ndarray, out: Path, seed: int = 0, title: str = "") -> tuple[list[Path], list[str]]:
    """Every picture that fits the data into ``out``; returns the files and notes (one line each)."""
    from concurrent.futures import ThreadPoolExecutor

    labels = np.asarray(labels)
    truth = None if data.labels is None else np.asarray(data.labels)
    clusters = clusters_of(labels, truth)
    files, notes = [], []
    # the 2-D layout (t-SNE/UMAP: compiled code that releases the GIL) runs on the other core
    # while the gallery, contingency matrix and sizes are drawn
    with ThreadPoolExecutor(1, thread_name_prefix="clusterbench-layout") as pool:
        layout = pool.submit(embedding_map.layout, space, seed)
        if gallery.has_images(data):
            path, note = gallery.draw(data, space, labels, clusters, out / FILES["gallery"], seed=seed, title=title)
            files.append(path)
            if note:
                notes.append(f"gallery: {note}")
        else:
            notes.append("no gallery: the dataset has no images (precomputed features)")
        if truth is not None:
            path, csv = contingency.draw(truth, labels, data.class_names, out / FILES["contingency"], title=title)
            (out / "contingency.csv").write_text(csv)
            files += [path, out / "contingency.csv"]
        else:
            notes.append("no contingency matrix: the dataset has no labels")
        sizes_png = sizes.draw(clusters, len(labels), out / FILES["sizes"], title=title)
        layout.result()
    files.append(embedding_map.draw(space, labels, truth, data.class_names, out / FILES["map"], seed=seed, title=title))
    files.append(sizes_png)
    return files, notes


def log_cell_pictures(tracker, run_id: str, data, space: np.ndarray, labels: np.ndarray, seed: int = 0,
                      title: str = "", log=None) -> list[str]:
    """Draw and log the pictures under ``pictures/`` of the run; returns the notes. A failure is
    tagged on the run and logged: the cell's scores stand, the pictures are extra."""
    from clusterbench.core.errors import one_line_reason

    try:
        with tempfile.TemporaryDirectory(prefix="clusterbench-pictures-") as tmp:
            files, notes = draw_all(data, np.asarray(space), labels, Path(tmp), seed=seed, title=title)
            if notes:
                (Path(tmp) / "notes.txt").write_text("\n".join(notes) + "\n")
                files.append(Path(tmp) / "notes.txt")
            for path in files:
                tracker.log_file(run_id, path, ARTIFACT_DIR)
                if path.suffix == ".png":
                    _remember(run_id, f"{ARTIFACT_DIR}/{path.name}", path.read_bytes())
        return notes
    except Exception as exc:  # noqa: BLE001
        reason = one_line_reason(exc)
        tracker.set_tags(run_id, {"clusterbench.pictures_error": reason})
        if log:
            log(f"pictures of run {run_id[:8]}: failed: {reason}")
        return [f"failed: {reason}"]


def _remember(run_id: str, name: str, png: bytes) -> None:
    _RECENT[(run_id, name)] = png
    while sum(map(len, _RECENT.values())) > RECENT_BYTES:
        del _RECENT[next(iter(_RECENT))]


def recent(run_id: str, name: str) -> bytes | None:
    """A picture this process drew and logged lately, or None (then read it from the store)."""
    return _RECENT.get((run_id, name))
