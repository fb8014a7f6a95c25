"""What ``explain`` writes: a PNG per image (input | CAM | guided backprop, captioned), a grid of
them all, and ``index.html``, a self-contained page (images as base64 data URIs, no external
resources) that reads on a phone-width screen."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from .cam import Explained

COLUMNS = ("input", "CAM", "guided backprop")


def caption(item: Explained) -> str:
    text = f"#{item.index}  {item.top1} ({item.prob:.2f})"
    return f"{text}  [label: {item.label}]" if item.label is not None else text


def _images(item: Explained, mark: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return item.view_uint8(), item.overlay(mark=mark), item.guided


def _draw_row(axes, item: Explained, titles: bool) -> None:
    for ax, img, title in zip(axes, _images(item), COLUMNS, strict=True):
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles:
            ax.set_title(title, fontsize=10)
    x, y = item.peak
    h, w = item.cam.shape
    axes[1].plot([x * w - 0.5], [y * h - 0.5], marker="+", color="white", markersize=12, mew=2)


def panel_png(item: Explained, path: Path, method: str = "Grad-CAM") -> Path:
    """One image: input | CAM (its peak marked) | guided backprop, captioned with index, top-1 class and probability."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5), dpi=100)
    axes = fig.subplots(1, 3)
    _draw_row(axes, item, titles=True)
    axes[1].set_title(method, fontsize=10)
    fig.suptitle(caption(item), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Path(path)


def grid_figure(items: list[Explained], method: str = "Grad-CAM"):
    """Every image as one row of a matplotlib Figure (for an MLflow run)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.7 * max(1, len(items))), dpi=80)
    axes = np.atleast_2d(fig.subplots(max(1, len(items)), 3, squeeze=False))
    for r, item in enumerate(items):
        _draw_row(axes[r], item, titles=r == 0)
        axes[r][0].set_ylabel(caption(item).split("  [")[0], fontsize=8)
    if items:
        axes[0][1].set_title(method, fontsize=10)
    fig.tight_layout()
    return fig


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a data URI: an image inside the page, no file or server beside it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _data_uri(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=True)
    return png_data_uri(buf.getvalue())


def page(title: str, body: str, style: str = "") -> str:
    """A self-contained HTML page (no external scripts, fonts or images) that reads on a phone."""
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}{style}</style></head><body>{body}</body></html>\n"
    )


_STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0.8em;color:#222;background:#fff}
h1{font-size:1.2em}p.note{color:#555;font-size:0.9em;max-width:60em}
table{border-collapse:collapse;width:100%;max-width:1100px}
th,td{border-bottom:1px solid #ddd;padding:6px;text-align:left;vertical-align:top}
th{background:#f4f4f4;font-size:0.9em}
td.img{width:22%}td.img img{width:100%;max-width:224px;height:auto;image-rendering:auto;display:block}
ol{margin:0.2em 0 0 1.2em;padding:0;font-size:0.85em;color:#444}
.prob{font-variant-numeric:tabular-nums}
@media (max-width:640px){
  table,thead,tbody,tr,td{display:block;width:100%}
  thead{display:none}
  tr{border:1px solid #ddd;border-radius:6px;margin:0 0 12px 0;padding:6px;box-sizing:border-box}
  td{border:none;padding:3px}
  td.img{display:inline-block;width:32%;box-sizing:border-box;vertical-align:top}
  td.img::before{content:attr(data-col);display:block;font-size:0.75em;color:#666}
}
"""


def index_html(items: list[Explained], title: str, note: str = "", method: str = "Grad-CAM") -> str:
    """The self-contained page: one row per image (index, top-1 and its probability, the top-k,
    the three images as data URIs)."""
    rows = []
    for item in items:
        topk = "".join(f"<li>{html.escape(name)} <span class=prob>{p:.3f}</span></li>" for name, p in item.top)
        label = f"<br>label: {html.escape(str(item.label))}" if item.label is not None else ""
        cells = "".join(
            f'<td class=img data-col="{html.escape(col)}"><img alt="{html.escape(col)} of image {item.index}" '
            f'src="{_data_uri(img)}"></td>'
            for col, img in zip(("input", method, "guided backprop"), _images(item, mark=True), strict=True)
        )
        rows.append(
            f"<tr><td><b>#{item.index}</b><br>{html.escape(item.top1)} <span class=prob>{item.prob:.3f}</span>"
            f"{label}<ol>{topk}</ol></td>{cells}</tr>"
        )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("image, top-1, top-k", "input", method, "guided backprop"))
    return page(title, f"<h1>{html.escape(title)}</h1>"
                + (f"<p class=note>{html.escape(note)}</p>" if note else "")
                + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
