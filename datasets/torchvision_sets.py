"""CIFAR-10, CIFAR-100, STL-10 and MNIST through ``torchvision.datasets``.

Files are looked for under ``root`` (default: ``$CLUSTERBENCH_DATA`` or
``~/.cache/clusterbench/data``) and downloaded there when missing and the host answers.
Images come back as uint8 arrays: (N, H, W, 3) for colour sets, (N, 28, 28) for MNIST.
"""

from __future__ import annotations

import os
from typing import Annotated

import numpy as np

from clusterbench.core.errors import DataError
from clusterbench.core.params import ChoiceOf, Limit, Seed

from . import net
from .base import DATASETS, SOURCE_COLUMN, content_hash, finish, indexed_sources


class TorchvisionSet:
    """Shared loading; subclasses name the torchvision class and how a split maps onto it."""

    name = ""
    tv_class = ""
    # Our split -> the torchvision parts concatenated for it, in order.
    splits: dict[str, tuple[str, ...]] = {"train": ("train",), "test": ("test",), "all": ("train", "test")}
    mirror_invariant = True  # see ImageData.mirror_invariant

    # root= need not exist yet: the files are downloaded there when missing.
    def __init__(self, split: Annotated[str, ChoiceOf("splits")] = "all", root: str | None = None, limit: Limit = None,
                 seed: Seed = 0):
        self.split = split
        self.root = root
        self.limit = limit
        self.seed = seed

    def load(self):
        if self.split not in self.splits:
            raise DataError(f"{self.name}: unknown split {self.split!r}; valid: {', '.join(self.splits)}")
        root = os.path.abspath(os.path.expanduser(self.root)) if self.root is not None else net.data_home()
        parts = [self._open(root, part) for part in self.splits[self.split]]
        arrays = [self.arrays(ds, part) for ds, part in zip(parts, self.splits[self.split], strict=True)]
        images = np.concatenate([a[0] for a in arrays]) if len(arrays) > 1 else arrays[0][0]
        labelled = all(a[1] is not None for a in arrays)
        labels = np.concatenate([a[1] for a in arrays]) if labelled else None
        names = self.class_names(parts[0]) if labelled else None
        sources = np.concatenate([indexed_sources(f"{self.name}/{part}", len(a[0]))
                                  for a, part in zip(arrays, self.splits[self.split], strict=True)])
        data = finish(
            self.name,
            images,
            labels,
            names,
            content_hash(images, labels),
            self.limit,
            self.seed,
            items={SOURCE_COLUMN: sources},
            mirror_invariant=self.mirror_invariant,
            split=self.split,
        )
        data.info["root"] = root
        return data

    def _open(self, root: str, part: str):
        """The torchvision dataset for ``part``: from disk, else downloaded, else ``DataError``."""
        cls = self._tv_class()
        try:
            return self.construct(cls, root, part, download=False)
        except RuntimeError:
            pass  # torchvision's "Dataset not found or corrupted"
        url = self.download_url(cls)
        host = net.host_of(url)[0]
        where = f"{self.name} ({part}) not found under {root}"
        hint = f"put the files there or set root= / ${net.DATA_ENV}"
        if not net.reachable(url):
            raise DataError(
                f"{where} and the download from {host} failed: host unreachable (offline?); {hint}"
            )
        try:
            return self.construct(cls, root, part, download=True)
        except Exception as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise DataError(f"{where} and the download from {host} failed: {reason}; {hint}") from None

    def _tv_class(self):
        try:
            import torchvision.datasets
        except ImportError:
            raise DataError(f"{self.name} needs torchvision, which is not installed") from None
        return getattr(torchvision.datasets, self.tv_class)

    # Hooks for the subclasses.
    def construct(self, cls, root: str, part: str, download: bool):
        return cls(root=root, train=part == "train", download=download)

    def download_url(self, cls) -> str:
        return cls.url

    def arrays(self, ds, part: str) -> tuple[np.ndarray, np.ndarray | None]:
        return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)

    def class_names(self, ds) -> list[str]:
        return [str(c) for c in ds.classes]


@DATASETS.register("cifar10")
class CIFAR10(TorchvisionSet):
    """CIFAR-10: 60k 32x32 colour images, 10 classes (torchvision download)."""

    name = "cifar10"
    tv_class = "CIFAR10"


@DATASETS.register("cifar100")
class CIFAR100(TorchvisionSet):
    """CIFAR-100: 60k 32x32 colour images, 100 classes (torchvision download)."""

    name = "cifar100"
    tv_class = "CIFAR100"


@DATASETS.register("mnist")
class MNIST(TorchvisionSet):
    """MNIST: 70k 28x28 handwritten digits (torchvision download)."""

    name = "mnist"
    tv_class = "MNIST"
    mirror_invariant = False  # mirrored digits are other shapes

    def download_url(self, cls) -> str:
        return cls.mirrors[0]

    def arrays(self, ds, part: str):
        return ds.data.numpy().astype(np.uint8, copy=False), ds.targets.numpy().astype(np.int64)

    def class_names(self, ds) -> list[str]:
        return [str(i) for i in range(10)]  # torchvision's are "0 - zero", ...


@DATASETS.register("stl10")
class STL10(TorchvisionSet):
    """STL-10: 96x96 colour images, 10 classes plus 100k unlabeled (torchvision download)."""

    name = "stl10"
    tv_class = "STL10"
    splits = {"train": ("train",), "test": ("test",), "unlabeled": ("unlabeled",), "all": ("train", "test")}

    def construct(self, cls, root: str, part: str, download: bool):
        return cls(root=root, split=part, download=download)

    def arrays(self, ds, part: str):
        images = np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 2, 3, 1))  # CHW -> HWC
        labels = None if part == "unlabeled" else np.asarray(ds.labels, dtype=np.int64)
        return images, labels
