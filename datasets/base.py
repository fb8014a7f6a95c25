"""What every dataset returns, and the helpers they share (limit, fingerprint)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from clusterbench.core.contracts import Dataset
from clusterbench.core.errors import DataError, UserError
from clusterbench.core.registry import Registry

DATASETS = Registry("dataset", group="clusterbench.datasets", contract=Dataset)

# The per-item column saying where each item came from, so results trace back to the user's
# files: a path relative to the dataset root (``cats/a.png``), a video and time
# (``clips/a.mp4@12.40s``), a feature row (``emb.npy#17``) or a built-in set's name and position
# (``digits#17``, ``fashion-mnist/test#17``).
SOURCE_COLUMN = "source"


@dataclass
class ImageData:
    """Images as uint8 HWC arrays (one stacked array, a list when sizes differ, or a sequence
    that decodes each image when it is read).

    ``labels`` are integer class ids (or None when unlabeled); ``fingerprint`` identifies the
    exact content read plus the selection (split/limit/seed), so caches can key on it.
    ``items`` is optional per-item metadata: column name -> one value per image (a frame's
    video and timestamp, ...). The column :data:`~clusterbench.core.contracts.GROUP_COLUMN`
    names the group an item was cut from; clusters are then also scored against the groups.
    :data:`SOURCE_COLUMN` says where each item came from; a dataset that does not fill it gets
    ``<name>#<position>`` (the position in this load).
    """

    images: np.ndarray | list
    labels: np.ndarray | None
    class_names: list[str] | None
    fingerprint: str
    name: str = ""
    info: dict = field(default_factory=dict)
    items: dict[str, np.ndarray] = field(default_factory=dict)
    # A mirrored image shows the same class, so horizontal flips are a valid augmentation
    # (False for digits: a mirrored 2 or 7 is another shape).
    mirror_invariant: bool = True

    has_images: ClassVar[bool] = True

    def __post_init__(self):
        if SOURCE_COLUMN not in self.items:
            self.items[SOURCE_COLUMN] = indexed_sources(self.name or "item", len(self))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def n_classes(self) -> int | None:
        if self.labels is None:
            return None
        return int(len(np.unique(self.labels)))

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 HWC with 1 or 3 channels."""
        img = self.images[i]
        return img if img.ndim == 3 else img[:, :, None]


@dataclass
class FeatureData(ImageData):
    """Precomputed features instead of images: ``features`` is (N, D), memory-mapped where the
    file allows; ``images`` is None, and what needs pixels (galleries, explanations) is skipped."""

    features: np.ndarray | None = None
    has_images: ClassVar[bool] = False

    def __len__(self) -> int:
        return len(self.features)

    def image(self, i: int) -> np.ndarray:
        raise UserError(f"dataset {self.name}: holds precomputed features, not images")


def indexed_sources(prefix: str, n: int, start: int = 0) -> np.ndarray:
    """``prefix#i`` for i in ``start..start+n``: the source of items with no file of their own."""
    return np.array([f"{prefix}#{i}" for i in range(start, start + n)], dtype=object)


def relative_sources(root: str, paths) -> np.ndarray:
    """Each path relative to ``root``, with ``/`` separators on every platform."""
    return np.array([os.path.relpath(p, root).replace(os.sep, "/") for p in paths], dtype=object)


def content_hash(*parts) -> str:
    """sha256 over arrays/bytes/strings, in order."""
    h = hashlib.sha256()
    for part in parts:
        if part is None:
            h.update(b"<none>")
        elif isinstance(part, np.ndarray):
            h.update(str((part.dtype.str, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(str(part).encode())
    return h.hexdigest()[:16]


def select_subset(n: int, labels: np.ndarray | None, limit: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` items; stratified by label when labels exist. Sorted."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 1:
        raise DataError(f"limit={limit}: must be a positive number of images")
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size=limit, replace=False))
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(labels, return_counts=True)
    if limit < len(classes) or counts.min() < 2:
        # Too small to keep every class: fall back to a plain random sample.
        return np.sort(rng.choice(n, size=limit, replace=False))
    idx, _ = train_test_split(np.arange(n), train_size=limit, stratify=labels, random_state=seed)
    return np.sort(idx)


def finish(name: str, images, labels, class_names, source_hash: str, limit, seed, items: dict | None = None,
           mirror_invariant: bool = True, **selection) -> ImageData:
    """Apply ``limit``/``seed`` (to the per-item metadata ``items`` too) and build the
    fingerprint from content + selection."""
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    idx = select_subset(len(images), labels, limit, seed)
    images = [images[i] for i in idx] if isinstance(images, list) else images[idx]  # arrays and lazy sequences
    if labels is not None:
        labels = labels[idx]
    items = {key: np.asarray(column)[idx] for key, column in (items or {}).items()}
    sel = ",".join(f"{k}={v}" for k, v in sorted(selection.items()))
    fingerprint = content_hash(name, source_hash, sel, f"limit={limit}", f"seed={seed}" if limit else "")
    return ImageData(images, labels, class_names, fingerprint, name=name, info={"n": len(images), **selection},
                     items=items, mirror_invariant=mirror_invariant)
