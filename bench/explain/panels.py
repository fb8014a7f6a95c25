"""What ``explain`` writes: a PNG per image (input | CAM | guided backprop, captioned with its
file), a grid of them all, and ``index.html``, a self-contained page (the template
``explain.html.j2``: images as base64 data URIs, no external resources) that reads on a
phone-width screen and names each image's source file beside its index."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .cam import Explained

COLUMNS = ("input", "CAM", "guided backprop")


def caption(item: Explained) -> str:
    text = f"#{item.index}{f' {item.source}' if item.source else ''}  {item.top1} ({item.prob:.2f})"
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


def _data_uri(img: np.ndarray) -> str:
    from PIL import Image

    from clusterbench.pages import png_data_uri as data_uri

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=True)
    return data_uri(buf.getvalue())


def index_html(items: list[Explained], title: str, note: str = "", method: str = "Grad-CAM") -> str:
    """The self-contained page: one row per image (index and source file, top-1 and its
    probability, the top-k, the three images as data URIs)."""
    from clusterbench.pages import render

    columns = ("input", method, "guided backprop")
    rows = [{"index": item.index, "source": item.source, "top1": item.top1, "prob": item.prob, "label": item.label,
             "top": item.top, "images": [(col, _data_uri(img)) for col, img in
                                         zip(columns, _images(item, mark=True), strict=True)]}
            for item in items]
    return render("explain.html.j2", title=title, note=note, method=method, rows=rows)
