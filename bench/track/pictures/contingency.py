"""The contingency matrix clusters x classes, rows in Hungarian order (each class's best-matched
cluster on the diagonal), and the many-to-one view (each cluster counted as its majority class),
which is what overclustering should be judged by."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import NOISE, class_name, save

ANNOTATE_MAX = 20 * 12  # numbers in the cells up to this many cells (those under 1 % of the row left out)


def table(truth: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts clusters x classes, cluster ids, class ids), both id lists sorted ascending; noise
    (-1) is a row like the others. The counts are sklearn's ``contingency_matrix`` transposed."""
    from sklearn.metrics.cluster import contingency_matrix

    counts = contingency_matrix(truth, labels).T
    return counts, np.unique(labels), np.unique(truth)


def hungarian_order(counts: np.ndarray, cluster_ids: np.ndarray) -> np.ndarray:
    """Row order: each class's matched cluster in class order (``linear_sum_assignment`` on the
    counts), then the unmatched clusters grouped by their majority class; noise last."""
    from scipy.optimize import linear_sum_assignment

    real = np.flatnonzero(cluster_ids != NOISE)
    noise = np.flatnonzero(cluster_ids == NOISE)
    if not len(real):
        return noise
    rows, cols = linear_sum_assignment(-counts[real])
    matched = [int(real[r]) for r, _ in sorted(zip(rows, cols, strict=True), key=lambda rc: rc[1])]
    taken = set(matched)
    rest = sorted((int(r) for r in real if int(r) not in taken), key=lambda r: (counts[r].argmax(), -counts[r].max()))
    return np.array(matched + rest + noise.tolist(), dtype=int)


def many_to_one(counts: np.ndarray, cluster_ids: np.ndarray) -> np.ndarray:
    """classes x classes: true class (rows) against the majority class of each point's cluster
    (columns); noise points are left out."""
    n_classes = counts.shape[1]
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    for r, cid in enumerate(cluster_ids):
        if cid != NOISE and counts[r].sum():
            out[:, counts[r].argmax()] += counts[r]
    return out


def csv_text(counts: np.ndarray, cluster_ids: np.ndarray, class_ids: np.ndarray, order: np.ndarray,
             names: list[str] | None) -> str:
    head = "cluster," + ",".join(class_name(int(c), names).replace(",", " ") for c in class_ids)
    lines = [head] + [f"{'noise' if cluster_ids[r] == NOISE else int(cluster_ids[r])}," + ",".join(map(str, counts[r]))
                      for r in order]
    return "\n".join(lines) + "\n"


def _heatmap(ax, counts: np.ndarray, row_labels: list[str], col_labels: list[str], title: str,
             numbers: bool = True) -> None:
    rows = counts.sum(axis=1)
    norm = counts / np.maximum(rows[:, None], 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=90 if max(map(len, col_labels), default=0) > 2 else 0,
                  fontsize=7)
    if len(row_labels) <= 60:
        ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    else:
        ax.set_yticks([])
    if counts.size <= ANNOTATE_MAX:
        for (r, c), v in np.ndenumerate(counts):
            if v and numbers and v >= 0.01 * rows[r]:
                ax.text(c, r, str(v), ha="center", va="center", fontsize=6, color="white" if norm[r, c] > 0.5 else "black")


def draw(truth: np.ndarray, labels: np.ndarray, names: list[str] | None, path: Path, title: str = "") -> tuple[Path, str]:
    """The two-panel PNG; returns it and the ordered matrix as CSV text."""
    from matplotlib.figure import Figure

    counts, cluster_ids, class_ids = table(truth, labels)
    order = hungarian_order(counts, cluster_ids)
    cols = [class_name(int(c), names) for c in class_ids]
    rows = [("noise" if cluster_ids[r] == NOISE else f"c{cluster_ids[r]}") + f" ({counts[r].sum()})" for r in order]
    height = max(3.2, min(14, 0.22 * len(rows) + 1.4))
    fig = Figure(figsize=(11, height))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    _heatmap(left, counts[order], rows, cols, "clusters x classes, Hungarian order (colour: share of row)")
    m2o = many_to_one(counts, cluster_ids)
    acc = np.trace(m2o) / max(m2o.sum(), 1)
    _heatmap(right, m2o, cols, cols, f"many-to-one (accuracy {acc:.3f})", numbers=False)
    left.set_xlabel("true class", fontsize=8)
    right.set_xlabel("cluster's majority class", fontsize=8)
    right.set_ylabel("true class", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=min(0.3, 0.75 / height), top=1 - 0.7 / height, wspace=0.25)
    save(fig, path)
    return Path(path), csv_text(counts, cluster_ids, class_ids, order, names)
