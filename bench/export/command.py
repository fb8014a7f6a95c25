"""``clusterbench export``: check the output folder, read the cell from MLflow, write the
cluster folders and the browser page."""

from __future__ import annotations

from pathlib import Path

from clusterbench.core.errors import UserError

from .browser import render_page
from .folders import clusters_of, prepare_out, write_folders


def check_out(out: Path) -> None:
    """One line unless ``out`` is, or can be made, a writable folder: tried by making a scratch
    folder in it, or in its nearest existing parent (permission bits alone miss read-only file
    systems, and say nothing for root)."""
    import tempfile

    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"--out {out}: {probe} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=probe, prefix=".clusterbench-probe-").cleanup()
    except OSError as e:
        raise UserError(f"--out {out}: cannot write in {probe} ({e.strerror or e})") from None


def export(tracking_uri: str, out: str | Path, experiment: str | None = None, cell: str | None = None,
           copy: bool = False, log=print) -> Path:
    """Write the clusters of one cell under ``out``; returns the browser page."""
    from clusterbench.track.export import fetch_cell, store_exists

    out = Path(out).expanduser().absolute()
    check_out(out)
    if not store_exists(tracking_uri):
        raise UserError(f"no results store at {tracking_uri.removeprefix('sqlite:///')}; run a suite first, "
                        "or name the results folder with --results")
    found = fetch_cell(tracking_uri, experiment, cell)
    if not found.rows or "cluster" not in found.rows[0]:
        raise UserError(f"cell {found.key}: its assignments.csv holds no clusters")
    root = found.params.get("data.root")
    clusters = clusters_of(found.rows, root)
    prepare_out(out)
    counts = write_folders(clusters, out, copy=copy)
    note = None
    if counts["listed"]:
        note = (f"{counts['listed']} item(s) have no file of their own under {root or 'the dataset root'}: "
                "each cluster's members.csv lists them")
    page = out / "index.html"
    page.write_text(render_page(found, clusters, out, copy, note), encoding="utf-8")
    what = f"{counts['files']} file(s) {'copied' if copy else 'linked'}" + (
        f", {counts['listed']} listed in members.csv" if counts["listed"] else "")
    log(f"export: {found.key} ({found.chosen_by}; {found.experiment}): {len(clusters)} cluster folder(s), {what}; "
        f"browse {page}")
    return page
