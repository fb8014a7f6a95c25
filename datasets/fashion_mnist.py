"""Fashion-MNIST: 70,000 28x28 grayscale images of 10 clothing classes (60k train + 10k test).

Read straight from the four IDX files (gzipped or not); the Debian package
``dataset-fashion-mnist`` installs them in ``/usr/share/datasets/fashion-mnist``. Without
``root=`` they are looked for in ``$CLUSTERBENCH_DATA``, the system directory and the download
cache, then downloaded; with ``root=`` there only (a file missing or damaged there fails the
dataset, naming the file).
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import Annotated, Literal

import numpy as np

from clusterbench.core.errors import DataError
from clusterbench.core.params import ExistingDir, Limit, Seed

from . import net
from .base import DATASETS, SOURCE_COLUMN, content_hash, finish, indexed_sources

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
SUBDIR = "fashion-mnist"
# Where torchvision.datasets.FashionMNIST(root=data_home()) puts the files it downloads.
TORCHVISION_SUBDIR = os.path.join("FashionMNIST", "raw")
DOWNLOAD_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # torchvision's mirror
SPLITS = ("train", "test", "all")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
INSTALL_HINT = f"apt-get install dataset-fashion-mnist, or set root= / ${net.DATA_ENV}"

# IDX type byte -> numpy dtype (big-endian, as the format stores them).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) into an array; ``DataError`` if it is malformed."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: unreadable IDX file ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: corrupt IDX file (header cut short)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: corrupt IDX file ({len(raw) - header} data bytes, shape {shape} needs {expected})"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="), copy=False)
    )


def find_file(directory: str, stem: str) -> str | None:
    """``stem.gz`` or ``stem`` in ``directory``, whichever exists (gzipped preferred)."""
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def candidate_dirs(root: str | None) -> list[tuple[str, str]]:
    """(description, directory) in search order; ``$CLUSTERBENCH_DATA`` is read at call time."""
    dirs = []
    if root is not None:
        dirs.append(("root=", os.path.abspath(os.path.expanduser(root))))
    env = os.environ.get(net.DATA_ENV)
    if env:
        dirs.append((f"${net.DATA_ENV}", os.path.join(os.path.abspath(os.path.expanduser(env)), SUBDIR)))
    dirs.append(("system", SYSTEM_DIR))
    dirs.append(("download cache", os.path.join(net.data_home(), TORCHVISION_SUBDIR)))
    return dirs


def locate(directory: str, split: str) -> dict[str, tuple[str, str]] | None:
    """Part -> (images path, labels path) for ``split`` when all its files are in ``directory``."""
    parts = ("train", "test") if split == "all" else (split,)
    found = {}
    for part in parts:
        images, labels = (find_file(directory, stem) for stem in FILES[part])
        if images is None or labels is None:
            return None
        found[part] = (images, labels)
    return found


def locate_in_root(directory: str, split: str) -> dict[str, tuple[str, str]]:
    """Like :func:`locate` for a root= the user named, which is used alone: a missing file is
    kept as ``directory/stem`` so that reading it fails naming it."""
    parts = ("train", "test") if split == "all" else (split,)
    return {part: tuple(find_file(directory, stem) or os.path.join(directory, stem) for stem in FILES[part])
            for part in parts}


def read_named(path: str) -> np.ndarray:
    """:func:`read_idx`, naming the file (with or without .gz) when it is not there."""
    if not os.path.isfile(path):
        directory, stem = os.path.split(path)
        raise DataError(f"fashion-mnist: {stem} (or {stem}.gz) not found in root={directory}; "
                        "a root= given is the only place looked in")
    return read_idx(path)


def download(dest: str) -> str:
    """Fetch the files with torchvision into ``dest``; return why it failed, or '' on success."""
    host = net.host_of(DOWNLOAD_URL)[0]
    # Checked before importing torchvision, so an offline machine fails in seconds.
    if not net.reachable(DOWNLOAD_URL):
        return f"download from {host} failed: host unreachable (offline?)"
    try:
        from torchvision.datasets import FashionMNIST
    except ImportError:
        return "download needs torchvision, which is not installed"
    try:
        FashionMNIST(root=dest, train=True, download=True)
    except Exception as e:
        return f"download from {host} failed: {' '.join(str(e).split()) or type(e).__name__}"
    return ""


@DATASETS.register("fashion-mnist")
class FashionMNIST:
    def __init__(self, split: Literal["train", "test", "all"] = "all", root: Annotated[str, ExistingDir()] | None = None,
                 limit: Limit = None, seed: Seed = 0):
        self.split = split
        self.root = root
        self.limit = limit
        self.seed = seed

    def load(self):
        if self.split not in SPLITS:
            raise DataError(f"fashion-mnist: unknown split {self.split!r}; valid: {', '.join(SPLITS)}")
        found, directory = self._find()
        images, labels, sources = [], [], []
        for part in ("train", "test"):
            if part in found:
                img_path, lab_path = found[part]
                part_images, part_labels = read_named(img_path), read_named(lab_path)
                _check_pair(img_path, part_images, lab_path, part_labels)
                images.append(part_images)
                labels.append(part_labels)
                sources.append(indexed_sources(f"fashion-mnist/{part}", len(part_images)))
        images = images[0] if len(images) == 1 else np.concatenate(images)
        labels = labels[0] if len(labels) == 1 else np.concatenate(labels)
        data = finish(
            "fashion-mnist",
            images,
            labels,
            list(CLASS_NAMES),
            content_hash(images, labels),
            self.limit,
            self.seed,
            items={SOURCE_COLUMN: np.concatenate(sources)},
            split=self.split,
        )
        data.info["root"] = directory
        return data

    def _find(self) -> tuple[dict, str]:
        if self.root is not None:
            # The user's root= is authoritative: a file missing or damaged there fails naming it,
            # never falls back to another copy ($CLUSTERBENCH_DATA, the system one, a download).
            directory = os.path.abspath(os.path.expanduser(str(self.root)))
            if not os.path.isdir(directory):
                raise DataError(f"fashion-mnist: root={directory} is not a directory")
            return locate_in_root(directory, self.split), directory
        looked = []
        for what, directory in candidate_dirs(self.root):
            found = locate(directory, self.split)
            if found:
                return found, directory
            looked.append(f"{directory} ({what})")
        dest = net.data_home()
        failure = download(dest)
        if not failure:
            found = locate(os.path.join(dest, TORCHVISION_SUBDIR), self.split)
            if found:
                return found, os.path.join(dest, TORCHVISION_SUBDIR)
            failure = "download finished but the files are not where expected"
        raise DataError(
            f"Fashion-MNIST not found; looked in {', '.join(looked)}; {failure}; to fix: {INSTALL_HINT}"
        )


def _check_pair(img_path: str, images: np.ndarray, lab_path: str, labels: np.ndarray) -> None:
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{img_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{lab_path}: {labels.shape[0] if labels.ndim else 0} labels for {len(images)} images in {img_path}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise DataError(f"{lab_path}: labels outside 0..{len(CLASS_NAMES) - 1}")
