"""ImageNet VID (ILSVRC2015): frames of video snippets, labelled from their box annotations.

The layout is the one the ILSVRC2015 VID archive unpacks to::

    ROOT/Data/VID/<split>/.../<snippet>/<frame>.JPEG
    ROOT/Annotations/VID/<split>/.../<snippet>/<frame>.xml

``root=`` defaults to ``$CLUSTERBENCH_DATA/ILSVRC2015``. A frame's label is the class of its
**largest box** (area in pixels; the first such object on ties); a frame whose annotation has
no object of the 30 VID classes, or no annotation file, is dropped (counted in the run's
``data.dropped_*`` params). Classes are named from the fixed ILSVRC2015 VID wnid table; the
class ids follow that table's order, restricted to the classes present. Frames are taken every
``every``-th frame of each snippet (in frame order), then at most ``max_per_snippet`` evenly
spaced ones of those kept; each keeps its snippet (``video``) and frame number as per-item
metadata. A malformed annotation or unreadable JPEG is skipped with a warning (``strict=true``:
an error).
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from typing import Annotated, Literal

import numpy as np

from clusterbench.core.contracts import GROUP_COLUMN
from clusterbench.core.errors import DataError, DataWarning
from clusterbench.core.params import ExistingDir, Interval, Limit, PositiveInt, Seed

from . import net
from .base import DATASETS, SOURCE_COLUMN, finish, relative_sources, select_subset
from .folder import FolderImages, read_files

SUBDIR = "ILSVRC2015"
# The 30 ILSVRC2015 VID classes, in the devkit's order (map_vid.txt).
VID_CLASSES = {
    "n02691156": "airplane", "n02419796": "antelope", "n02131653": "bear", "n02834778": "bicycle",
    "n01503061": "bird", "n02924116": "bus", "n02958343": "car", "n02402425": "cattle",
    "n02084071": "dog", "n02121808": "domestic_cat", "n02503517": "elephant", "n02118333": "fox",
    "n02510455": "giant_panda", "n02342885": "hamster", "n02374451": "horse", "n02129165": "lion",
    "n01674464": "lizard", "n02484322": "monkey", "n03790512": "motorcycle", "n02324045": "rabbit",
    "n02509815": "red_panda", "n02411705": "sheep", "n01726692": "snake", "n02355227": "squirrel",
    "n02129604": "tiger", "n04468005": "train", "n01662784": "turtle", "n04530566": "watercraft",
    "n02062744": "whale", "n02391049": "zebra",
}
WNIDS = list(VID_CLASSES)


def largest_object(xml_path: str) -> str | None:
    """The wnid of the largest box among the VID-class objects of one annotation; None when it
    has none. ``DataError`` naming the file when it is not a readable annotation."""
    try:
        tree = ET.parse(xml_path)
    except (ET.ParseError, OSError) as e:
        raise DataError(f"{xml_path}: unreadable annotation ({' '.join(str(e).split())[:200]})") from None
    best, best_area = None, -1.0
    for obj in tree.getroot().iter("object"):
        wnid = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if wnid not in VID_CLASSES or box is None:
            continue
        try:
            x0, x1, y0, y1 = (float(box.findtext(k)) for k in ("xmin", "xmax", "ymin", "ymax"))
        except (TypeError, ValueError):
            raise DataError(f"{xml_path}: a box without numeric xmin/xmax/ymin/ymax") from None
        area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
        if area > best_area:
            best, best_area = wnid, area
    return best


def snippets(data_dir: str) -> dict[str, list[str]]:
    """Snippet path (relative to the split folder) -> its JPEG frame names in order."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(data_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        frames = sorted(f for f in filenames if f.lower().endswith((".jpeg", ".jpg")) and not f.startswith("."))
        if frames:
            found[os.path.relpath(dirpath, data_dir)] = frames
    return found


def spaced(n: int, at_most: int | None) -> np.ndarray:
    """``at_most`` evenly spaced indices of ``range(n)`` (all of them when fewer)."""
    if at_most is None or n <= at_most:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, at_most)).astype(int))


@DATASETS.register("imagenet-vid")
class ImageNetVID:
    def __init__(self, root: Annotated[str, ExistingDir()] | None = None, split: Literal["train", "val"] = "val",
                 every: PositiveInt = 1, max_per_snippet: PositiveInt | None = None, limit: Limit = None,
                 seed: Seed = 0, strict: bool = False, keep_decoded_mb: Annotated[int, Interval(0, None)] = 2048):
        self.root = root
        self.split = split
        self.every = every
        self.max_per_snippet = max_per_snippet
        self.limit = limit
        self.seed = seed
        self.strict = strict
        self.keep_decoded_mb = keep_decoded_mb

    def _root(self) -> str:
        if self.root is not None:
            return os.path.abspath(os.path.expanduser(str(self.root)))
        env = os.environ.get(net.DATA_ENV)
        if not env:
            raise DataError(f"imagenet-vid: give root= (the folder holding Data/VID and Annotations/VID), "
                            f"or set ${net.DATA_ENV} to a folder holding {SUBDIR}/")
        return os.path.join(os.path.abspath(os.path.expanduser(env)), SUBDIR)

    def load(self):
        root = self._root()
        data_dir = os.path.join(root, "Data", "VID", self.split)
        ann_dir = os.path.join(root, "Annotations", "VID", self.split)
        for what, path in (("frames", data_dir), ("annotations", ann_dir)):
            if not os.path.isdir(path):
                raise DataError(f"imagenet-vid: {root} has no {os.path.relpath(path, root)}/ ({what} of split "
                                f"{self.split!r}; expected the ILSVRC2015 VID layout Data/VID/<split>/... and "
                                f"Annotations/VID/<split>/...)")
        found = snippets(data_dir)
        if not found:
            raise DataError(f"imagenet-vid: no JPEG frames under {data_dir}")
        files, wnids, videos, numbers, skipped = [], [], [], [], []
        no_annotation = no_object = 0
        for snippet, frames in found.items():
            kept = []
            for name in frames[:: self.every]:
                stem = os.path.splitext(name)[0]
                xml_path = os.path.join(ann_dir, snippet, stem + ".xml")
                if not os.path.isfile(xml_path):
                    no_annotation += 1
                    continue
                try:
                    wnid = largest_object(xml_path)
                except DataError as error:
                    if self.strict:
                        raise
                    warnings.warn(f"skipping frame with {error}", DataWarning, stacklevel=2)
                    skipped.append(str(error))
                    continue
                if wnid is None:
                    no_object += 1
                    continue
                kept.append((name, stem, wnid))
            for j in spaced(len(kept), self.max_per_snippet):
                name, stem, wnid = kept[j]
                files.append(os.path.join(data_dir, snippet, name))
                wnids.append(wnid)
                videos.append(snippet)
                numbers.append(int(stem) if stem.isdigit() else len(numbers))
        if not files:
            raise DataError(f"imagenet-vid: no frame under {data_dir} has an annotated object of the 30 VID classes "
                            f"({no_annotation} without annotation, {no_object} without objects)")
        present = [w for w in WNIDS if w in set(wnids)]
        index = {w: i for i, w in enumerate(present)}
        labels = np.asarray([index[w] for w in wnids])
        # select before decoding (limit= reads only what it keeps)
        chosen = select_subset(len(files), labels, self.limit, self.seed)
        files = [files[i] for i in chosen]
        labels, videos, numbers = labels[chosen], [videos[i] for i in chosen], [numbers[i] for i in chosen]
        images, kept_idx, unreadable, source_hash = read_files(root, files, self.strict, self.keep_decoded_mb)
        if not kept_idx:
            raise DataError(f"imagenet-vid: none of the {len(files)} selected frame(s) could be read "
                            f"(first: {unreadable[0]})")
        if images is None:
            images = FolderImages([files[i] for i in kept_idx])
        elif len({img.shape for img in images}) == 1:
            images = np.stack(images)
        items = {GROUP_COLUMN: np.asarray([videos[i] for i in kept_idx], dtype=object),
                 "frame": np.asarray([numbers[i] for i in kept_idx], dtype=np.int64),
                 SOURCE_COLUMN: relative_sources(root, [files[i] for i in kept_idx])}
        data = finish("imagenet-vid", images, labels[kept_idx], [VID_CLASSES[w] for w in present], source_hash,
                      None, self.seed, items=items, split=self.split, every=self.every,
                      max_per_snippet=self.max_per_snippet or "none")
        data.info.update(root=root, skipped=skipped + unreadable, dropped_no_annotation=no_annotation,
                         dropped_no_object=no_object, n_snippets=len(set(items[GROUP_COLUMN])),
                         wnids=",".join(present), **({"limit": self.limit} if self.limit else {}))
        return data
