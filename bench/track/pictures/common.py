"""What the pictures share: cluster summaries (sizes, majority label, purity), colours, saving."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOISE = -1
DPI = 72


@dataclass
class Cluster:
    id: int  # -1: noise
    members: np.ndarray  # indices
    majority: int | None = None  # most frequent true label
    purity: float | None = None  # share of the majority label

    @property
    def size(self) -> int:
        return len(self.members)


def clusters_of(labels: np.ndarray, truth: np.ndarray | None) -> list[Cluster]:
    """Every cluster, largest first; noise (-1) last."""
    labels = np.asarray(labels)
    out = []
    for cid in np.unique(labels):
        members = np.flatnonzero(labels == cid)
        c = Cluster(int(cid), members)
        if truth is not None and len(members):
            values, counts = np.unique(truth[members], return_counts=True)
            c.majority, c.purity = int(values[counts.argmax()]), float(counts.max() / len(members))
        out.append(c)
    return sorted(out, key=lambda c: (c.id == NOISE, -c.size, c.id))


def class_name(label: int | None, names: list[str] | None) -> str:
    if label is None:
        return "-"
    if names is not None and 0 <= label < len(names):
        return str(names[label])
    return str(label)


def colours(n: int) -> np.ndarray:
    """``n`` distinct RGBA colours (tab10/tab20 while they last, then an evenly spaced ramp)."""
    from matplotlib import colormaps

    if n <= 10:
        return colormaps["tab10"](np.arange(n))
    if n <= 20:
        return colormaps["tab20"](np.arange(n))
    return colormaps["turbo"](np.linspace(0.03, 0.97, n))


def save(fig, path: Path) -> Path:
    """The figure as PNG (light compression: drawing time matters more than bytes here)."""
    fig.savefig(path, format="png", dpi=DPI, pil_kwargs={"compress_level": 3})
    return Path(path)
