"""Images from a directory, in the ImageFolder layout.

``root/<class>/.../*.png`` gives labelled images (classes are the sorted sub-folder names);
images directly in ``root`` with no class sub-folders give an unlabelled set. Every image keeps
its own size; files that cannot be decoded are skipped with a warning, or are an error with
``strict=true``. Decoded images stay in memory up to ``keep_decoded_mb`` (2 GiB); a larger
folder is checked once at load (JPEG at 1/8 scale) and decoded again whenever it is read.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Annotated

import numpy as np

from clusterbench.core.errors import DataError, DataWarning
from clusterbench.core.params import ExistingDir, Interval, Limit, Seed

from .base import DATASETS, SOURCE_COLUMN, finish, relative_sources, select_subset
from .images import IMAGE_EXTENSIONS, decode_bytes, decode_image, is_image_file


def list_images(directory: str, accept=is_image_file) -> list[str]:
    """Image files (``accept(name)``) under ``directory`` (recursive, hidden entries skipped), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".") and accept(f)
        )
    return found


def scan(root: str, accept=is_image_file, noun: str = "image") -> tuple[list[str], list[int] | None, list[str] | None]:
    """(files, class ids, class names) for ``root``; ids and names are None when unlabelled.
    ``accept(name)`` says which files count (images by default; ``noun`` names them in warnings)."""
    subdirs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    classes = {name: list_images(os.path.join(root, name), accept) for name in subdirs}
    classes = {name: files for name, files in classes.items() if files}
    top = [
        os.path.join(root, e.name)
        for e in sorted(os.scandir(root), key=lambda e: e.name)
        if e.is_file() and not e.name.startswith(".") and accept(e.name)
    ]
    if not classes:
        return top, None, None
    if top:
        warnings.warn(
            f"{root}: ignoring {len(top)} {noun}(s) directly in the folder because it has class sub-folders",
            DataWarning,
            stacklevel=3,
        )
    names = list(classes)
    files = [f for name in names for f in classes[name]]
    ids = [i for i, name in enumerate(names) for _ in classes[name]]
    return files, ids, names


class FolderImages:
    """Images decoded from their files each time they are read: a folder too large to hold
    decoded in memory costs one decode per use instead. Indexing with an array gives a subset."""

    def __init__(self, paths: list[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if isinstance(i, int | np.integer):
            return decode_image(self.paths[i])
        return FolderImages([self.paths[j] for j in np.arange(len(self.paths))[i]])


@DATASETS.register("folder")
class Folder:
    def __init__(self, root: Annotated[str, ExistingDir()], limit: Limit = None, seed: Seed = 0, strict: bool = False,
                 keep_decoded_mb: Annotated[int, Interval(0, None)] = 2048):
        self.root = root
        self.limit = limit
        self.seed = seed
        self.strict = strict
        self.keep_decoded_mb = keep_decoded_mb

    def load(self):
        root = os.path.abspath(os.path.expanduser(str(self.root)))
        if not os.path.exists(root):
            raise DataError(f"folder: {root} does not exist")
        if not os.path.isdir(root):
            raise DataError(f"folder: {root} is not a directory")
        if self.keep_decoded_mb < 0:
            raise DataError(f"folder: keep_decoded_mb={self.keep_decoded_mb} must be >= 0")
        files, ids, names = scan(root)
        if not files:
            raise DataError(
                f"folder: no images found in {root} (looked for {' '.join(IMAGE_EXTENSIONS)}, any case)"
            )
        # Select first (labels come from the folder names), so limit= reads only what it keeps.
        chosen = select_subset(len(files), None if ids is None else np.asarray(ids), self.limit, self.seed)
        files = [files[i] for i in chosen]
        ids = None if ids is None else [ids[i] for i in chosen]
        images, kept, skipped, source_hash = self._read(root, files)
        if not kept:
            raise DataError(
                f"folder: none of the {len(files)} image(s) in {root} could be read (first: {skipped[0]})"
            )
        labels = None if ids is None else [ids[i] for i in kept]
        lazy = images is None
        if lazy:
            images = FolderImages([files[i] for i in kept])
        elif len({img.shape for img in images}) == 1:
            images = np.stack(images)
        # the content hash covers exactly the files selected, so limit/seed need no extra key
        sources = relative_sources(root, [files[i] for i in kept])
        data = finish("folder", images, labels, names, source_hash, None, self.seed, items={SOURCE_COLUMN: sources})
        data.info.update(root=root, skipped=skipped, decoded_in_memory=not lazy,
                         **({"limit": self.limit} if self.limit else {}))
        return data

    def _read(self, root: str, files: list[str]):
        return read_files(root, files, self.strict, self.keep_decoded_mb)


def read_files(root: str, files: list[str], strict: bool, keep_decoded_mb: int):
    """Decode every file, keeping the images while they fit in ``keep_decoded_mb``; past that,
    ``images`` is None and the rest are only checked. An unreadable file is skipped with a
    warning (``strict``: raised). The hash covers each relative path and its bytes, readable or
    not. Returns (images or None, indices kept, reasons skipped, hash)."""
    digest = hashlib.sha256()
    images, kept, skipped, held = [], [], [], 0
    for i, path in enumerate(files):
        raw, image, error = load_file(path, reduced=images is None)
        digest.update(os.path.relpath(path, root).encode("utf-8", "surrogateescape") + b"\0")
        digest.update(hashlib.sha256(raw).digest())
        if error is None:
            kept.append(i)
            if images is not None:
                held += image.nbytes
                if held > keep_decoded_mb * 2**20:
                    images = None  # too large to hold: drop what was kept, only check the rest
                else:
                    images.append(image)
            continue
        if strict:
            raise error
        warnings.warn(f"skipping unreadable image {error}", DataWarning, stacklevel=4)
        skipped.append(str(error))
    return images, kept, skipped, digest.hexdigest()[:16]


def load_file(path: str, reduced: bool = False) -> tuple[bytes, np.ndarray | None, DataError | None]:
    """(bytes, image, None) or (bytes read so far, None, the reason it can't be used)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return b"", None, DataError(f"{path}: cannot read file ({e.strerror or e})")
    try:
        return raw, decode_bytes(raw, path, reduced=reduced), None
    except DataError as e:
        return raw, None, e
