"""Pictures of one cell's clusters, as PNG artifacts of its MLflow run: the gallery, the
contingency matrix, the 2-D map and the cluster sizes (one module each). ``log_cell_pictures``
is the one entry point the runner calls."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clusterbench.core.errors import one_line_reason

from . import contingency, embedding_map, gallery, sizes
from .common import clusters_of

ARTIFACT_DIR = "pictures"
RECENT_BYTES = 48 << 20  # the latest pictures kept in memory for the suite's report.html (no re-reading)
_RECENT: dict[tuple[str, str], bytes] = {}
FILES = {"gallery": "gallery.png", "contingency": "contingency.png", "map": "embedding_map.png", "sizes": "sizes.png"}
FAILED_TAG = "clusterbench.pictures_failed"  # one "picture: reason" line per picture that failed
LEGACY_FAILED_TAG = "clusterbench.pictures_error"  # runs logged before pictures failed one by one
FAILED_FILE = "failed.json"


@dataclass
class Drawn:
    """What :func:`draw_all` made: the files, notes (one line each) and the pictures that failed
    (picture -> one-line reason)."""

    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def attempt(self, picture: str, draw) -> None:
        """``draw()`` (returning the files it wrote); a failure is recorded and the next picture
        is still drawn: one picture never takes the others with it."""
        try:
            self.files += draw()
        except Exception as exc:  # noqa: BLE001 - any failure stays inside its picture
            self.failed[picture] = one_line_reason(exc)
            self.notes.append(f"{picture} failed: {self.failed[picture]}")


def draw_all(data, space: np.ndarray, labels: np.ndarray, out: Path, seed: int = 0, title: str = "") -> Drawn:
    """Every picture that fits the data into ``out``, each on its own (see :class:`Drawn`)."""
    from concurrent.futures import ThreadPoolExecutor

    labels = np.asarray(labels)
    space = np.asarray(space)
    truth = None if data.labels is None else np.asarray(data.labels)
    clusters = clusters_of(labels, truth)
    drawn = Drawn()
    # the 2-D layout (t-SNE/UMAP: compiled code that releases the GIL) runs on the other core
    # while the gallery, contingency matrix and sizes are drawn
    with ThreadPoolExecutor(1, thread_name_prefix="clusterbench-layout") as pool:
        layout = pool.submit(embedding_map.layout, space, seed)
        if gallery.has_images(data):
            def draw_gallery():
                path, note = gallery.draw(data, space, labels, clusters, out / FILES["gallery"], seed=seed, title=title)
                drawn.notes += [f"gallery: {note}"] if note else []
                return [path]

            drawn.attempt("gallery", draw_gallery)
        else:
            drawn.notes.append("no gallery: the dataset has no images (precomputed features)")
        if truth is not None:
            def draw_contingency():
                path, csv = contingency.draw(truth, labels, data.class_names, out / FILES["contingency"], title=title)
                (out / "contingency.csv").write_text(csv)
                return [path, out / "contingency.csv"]

            drawn.attempt("contingency", draw_contingency)
        else:
            drawn.notes.append("no contingency matrix: the dataset has no labels")
        drawn.attempt("sizes", lambda: [sizes.draw(clusters, len(labels), out / FILES["sizes"], title=title)])
        drawn.attempt("map", lambda: [embedding_map.draw(space, labels, truth, data.class_names, out / FILES["map"],
                                                         seed=seed, title=title, layout=layout.result())])
    return drawn


def log_cell_pictures(tracker, run_id: str, data, space: np.ndarray, labels: np.ndarray, seed: int = 0,
                      title: str = "", log=None) -> list[str]:
    """Draw and log the pictures under ``pictures/`` of the run; returns the notes. A picture that
    fails is named with its reason in the tag :data:`FAILED_TAG` and in ``pictures/failed.json``;
    the others are logged all the same, and the cell's scores stand."""
    try:
        with tempfile.TemporaryDirectory(prefix="clusterbench-pictures-") as tmp:
            drawn = draw_all(data, np.asarray(space), labels, Path(tmp), seed=seed, title=title)
            files = list(drawn.files)
            if drawn.notes:
                (Path(tmp) / "notes.txt").write_text("\n".join(drawn.notes) + "\n")
                files.append(Path(tmp) / "notes.txt")
            if drawn.failed:
                (Path(tmp) / FAILED_FILE).write_text(json.dumps(drawn.failed, indent=1) + "\n")
                files.append(Path(tmp) / FAILED_FILE)
                tracker.set_tags(run_id, {FAILED_TAG: failed_text(drawn.failed)})
                if log:
                    log(f"pictures of run {run_id[:8]}: {failed_text(drawn.failed)}")
            for path in files:
                tracker.log_file(run_id, path, ARTIFACT_DIR)
                if path.suffix == ".png":
                    _remember(run_id, f"{ARTIFACT_DIR}/{path.name}", path.read_bytes())
        return drawn.notes
    except Exception as exc:  # noqa: BLE001 - logging them failed (the store): the scores stand
        reason = one_line_reason(exc)
        tracker.set_tags(run_id, {FAILED_TAG: f"all: {reason}"})
        if log:
            log(f"pictures of run {run_id[:8]}: failed: {reason}")
        return [f"failed: {reason}"]


def failed_text(failed: dict[str, str]) -> str:
    """``{picture: reason}`` as the tag's text: one ``picture: reason`` per line."""
    return "\n".join(f"{name}: {why}" for name, why in failed.items())


def failure_note(tags: dict) -> str | None:
    """What a page says about a run's missing pictures, from its tags: which failed and why, or
    None when none failed (then they were turned off, or the run predates them)."""
    text = tags.get(FAILED_TAG) or tags.get(LEGACY_FAILED_TAG)
    if not text:
        return None
    return "pictures that failed: " + "; ".join(text.splitlines())


def failed_file_note(raw: bytes | None) -> str | None:
    """The same note from a run's ``pictures/failed.json`` (its bytes; None when the run has none),
    for pages that fetch artifacts rather than tags."""
    if not raw:
        return None
    try:
        failed = json.loads(raw)
    except ValueError:
        return None
    return failure_note({FAILED_TAG: failed_text(failed)}) if isinstance(failed, dict) and failed else None


def failed_rows(runs) -> list[list[str]]:
    """``[cell key, picture, why]`` for each picture that failed in these MLflow runs (their tags)."""
    from clusterbench.track.tracking import CELL_KEY_TAG

    rows = []
    for run in runs:
        tags = run.data.tags
        text = tags.get(FAILED_TAG) or (f"all: {tags[LEGACY_FAILED_TAG]}" if tags.get(LEGACY_FAILED_TAG) else "")
        for line in text.splitlines():
            picture, _, why = line.partition(": ")
            rows.append([tags.get(CELL_KEY_TAG, run.info.run_id), picture, why])
    return rows


def _remember(run_id: str, name: str, png: bytes) -> None:
    _RECENT[(run_id, name)] = png
    while sum(map(len, _RECENT.values())) > RECENT_BYTES:
        del _RECENT[next(iter(_RECENT))]


def recent(run_id: str, name: str) -> bytes | None:
    """A picture this process drew and logged lately, or None (then read it from the store)."""
    return _RECENT.get((run_id, name))
