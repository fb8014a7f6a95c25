"""A 2-D map of the embedding: points coloured by cluster, and beside it by true label. UMAP when
umap-learn is installed, else t-SNE (sklearn); above ``MAX_POINTS`` a random subsample, stated
in the figure. The layout depends only on the features, so cells sharing them share one layout
(kept for the process, keyed by the features' content)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from .common import NOISE, class_name, colours, save

MAX_POINTS = 500  # t-SNE/UMAP cost grows with N: enough points to see the structure, kept fast
MIN_NEIGHBOUR_POINTS = 5  # fewer points: PCA (t-SNE and UMAP need a few neighbours per point)
PRE_PCA = 50  # wider features are reduced to at most this many components before t-SNE/UMAP
_LAYOUTS: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}


def method() -> str:
    """UMAP when umap-learn is installed and already loaded in this process (a UMAP reducer ran);
    else t-SNE: UMAP's first call in a process compiles with numba for 10-30 s, more than a
    whole small suite, while t-SNE of ``MAX_POINTS`` points takes well under a second."""
    return "UMAP" if "umap" in sys.modules and importlib.util.find_spec("umap") is not None else "t-SNE"


def layout(space: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(indices shown, their 2-D coordinates, how they were made)."""
    space = np.ascontiguousarray(space, dtype=np.float32)
    key = hashlib.blake2b(space.tobytes(), digest_size=16).hexdigest() + f"{space.shape}|{seed}"
    if key in _LAYOUTS:
        return _LAYOUTS[key]
    n = len(space)
    idx = np.arange(n)
    if n > MAX_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))
    X = space[idx]
    how = method()
    if len(X) < MIN_NEIGHBOUR_POINTS:
        how = "PCA"
    if X.shape[1] > PRE_PCA and how != "PCA":
        from sklearn.decomposition import PCA

        # PCA has at most min(N, D) components: 12 points of 1000 features give 12, not 50
        X = PCA(min(PRE_PCA, *X.shape), random_state=seed).fit_transform(X)
    if how == "UMAP":
        import umap

        xy = umap.UMAP(n_components=2, n_neighbors=min(15, len(X) - 1), random_state=seed).fit_transform(X)
    elif how == "t-SNE":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        # one thread: t-SNE's OpenMP threads spin-wait, and on a busy 2-core machine that turned
        # 0.8 s into 12 s (measured); alone it is barely slower
        with threadpool_limits(1):
            xy = TSNE(2, init="pca", perplexity=min(30.0, (len(X) - 1) / 3), max_iter=300,
                      random_state=seed).fit_transform(X)
    else:
        from sklearn.decomposition import PCA

        xy = PCA(min(2, *X.shape), random_state=seed).fit_transform(X)
        if xy.shape[1] < 2:  # one feature, or two points: the second axis is flat
            xy = np.column_stack([xy[:, 0], np.zeros(len(xy))])
    how += f" of {len(idx):,} of {n:,} points (random subsample, for speed)" if len(idx) < n else f" of {n:,} points"
    if len(_LAYOUTS) > 8:
        _LAYOUTS.clear()
    _LAYOUTS[key] = (idx, np.asarray(xy, dtype=np.float32), how)
    return _LAYOUTS[key]


make_layout = layout  # ``draw`` takes a ``layout`` argument of the same name


def _scatter(ax, xy: np.ndarray, values: np.ndarray, names, title: str) -> None:
    """One scatter call (noise grey, drawn first); the legend from proxy handles."""
    from matplotlib.lines import Line2D

    ids = [v for v in np.unique(values) if v != NOISE]
    palette = colours(len(ids))
    lookup = {v: i for i, v in enumerate(ids)}
    order = np.argsort(values != NOISE, kind="stable")  # noise underneath
    rgba = np.array([palette[lookup[v]] if v != NOISE else (0.73, 0.73, 0.73, 1.0) for v in values[order]])
    ax.scatter(xy[order, 0], xy[order, 1], s=4, c=rgba, linewidths=0)
    if len(ids) <= 20:
        handles = [Line2D([], [], ls="", marker="o", ms=4, color=palette[i], label=names(v)) for i, v in enumerate(ids)]
        if (values == NOISE).any():
            handles.append(Line2D([], [], ls="", marker="o", ms=4, color="#bbbbbb", label="noise"))
        ax.legend(handles=handles, fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def draw(space: np.ndarray, labels: np.ndarray, truth: np.ndarray | None, class_names, path: Path,
         seed: int = 0, title: str = "", layout: tuple | None = None) -> Path:
    """The map PNG; ``layout``: what :func:`layout` returned for ``space`` (computed here if None)."""
    from matplotlib.figure import Figure

    idx, xy, how = layout if layout is not None else make_layout(space, seed)
    panels = 2 if truth is not None else 1
    fig = Figure(figsize=(6.2 * panels, 5))
    axes = np.atleast_1d(fig.subplots(1, panels))
    _scatter(axes[0], xy, np.asarray(labels)[idx], lambda v: f"c{v}", "coloured by cluster")
    if truth is not None:
        _scatter(axes[1], xy, np.asarray(truth)[idx], lambda v: class_name(int(v), class_names), "coloured by true label")
    fig.suptitle((title + "\n" if title else "") + how, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98 - 0.1 / panels, top=0.86, bottom=0.03, wspace=0.3)
    return save(fig, path)
