"""``index.html`` of an export: every cluster with its size and thumbnails named by file (each
linking to the file in the cluster's folder), and the cell's pictures inline; one offline file
(template ``browser.html.j2``)."""

from __future__ import annotations

import base64
from pathlib import Path

from .folders import Cluster
from .thumbnails import data_uri, dataset_images, from_file

MAX_THUMBS = 60  # per cluster on the page; the folder and the list below them hold every member
PICTURE_ORDER = ("gallery.png", "embedding_map.png", "sizes.png", "contingency.png")


def thumbnails(clusters: list[Cluster], spec: str | None, n: int) -> tuple[dict[int, str | None], str | None]:
    """index -> thumbnail data URI for the members shown, and a note when some could not be made."""
    shown = [m for c in clusters for m in c.members[:MAX_THUMBS]]
    image, why = (None, None)
    if any(m.file is None for m in shown):
        image, why = dataset_images(spec, n)
    out = {}
    for m in shown:
        if m.file is not None:
            out[m.index] = from_file(m.file)
        elif image is not None:
            out[m.index] = data_uri(image(m.index))
        else:
            out[m.index] = None
    return out, (f"no thumbnails for items without a file: {why}" if why else None)


def render_page(cell, clusters: list[Cluster], out: Path, copy: bool, note: str | None) -> str:
    from clusterbench.pages import render

    n = sum(c.size for c in clusters)
    thumbs, thumb_note = thumbnails(clusters, cell.params.get("dataset"), n)
    figures = sorted(cell.pictures.items(), key=lambda kv: (PICTURE_ORDER + (kv[0],)).index(kv[0]))
    view = [{"id": c.id, "folder": c.folder, "size": c.size, "share": c.size / max(n, 1),
             "more": max(0, c.size - MAX_THUMBS),
             "members": [{"source": m.source, "href": m.placed, "thumb": thumbs.get(m.index)}
                         for m in c.members[:MAX_THUMBS]],
             "all": [m.source for m in c.members]} for c in clusters]
    notes = [x for x in (note, thumb_note) if x]
    return render("browser.html.j2", title=f"clusters of {cell.key}", cell=cell, clusters=view, n=n,
                  how="copies of" if copy else "links to", figures=[(name, _png_uri(png)) for name, png in figures],
                  notes=notes, out=str(out), listed=any(m.file is None for c in clusters for m in c.members))


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
