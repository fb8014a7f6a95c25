"""Precomputed features (CLIP or DINOv2 exports, ...): ``features:path=X.npy[,labels=y.npy][,names=names.txt]``.

The matrix is memory-mapped (see :mod:`.matrix_files`), never copied wholesale into RAM; it
is clustered with the ``identity`` embedder. Labels: a 1-D ``.npy`` (integers or strings) or a
text file with one label per line; an ``.npz`` or ``.parquet`` may carry them itself (a
``labels`` array or column). ``names``: one name per row (a text file, or a ``names``/``path``/...
array or text column of the .npz/.parquet itself), kept beside each assignment. Every row's
``source`` is ``FILE#ROW``, with its name after it where there are names: ``emb.npy#17 (cat.jpg)``.

:meth:`Features.check` looks at the files before anything runs, so a matrix that is not 2-D,
rows with NaN, or labels of the wrong length are refused in one line with exit status 2.
"""

from __future__ import annotations

import os
from typing import Annotated

import numpy as np

from clusterbench.core.errors import DataError
from clusterbench.core.hashing import file_sha256
from clusterbench.core.params import ExistingFile, Limit, Seed

from . import matrix_files as mf
from .base import DATASETS, SOURCE_COLUMN, FeatureData, content_hash, select_subset


def _read_lines(path: str) -> np.ndarray:
    with open(path, encoding="utf-8") as f:
        return np.array([line.rstrip("\n\r") for line in f if line.strip()], dtype=object)


def row_sources(file: str, rows: np.ndarray, names: np.ndarray | None) -> np.ndarray:
    """``FILE#ROW`` per row (the row in the file, before any limit), ``FILE#ROW (NAME)`` with names."""
    if names is None:
        return np.array([f"{file}#{r}" for r in rows], dtype=object)
    return np.array([f"{file}#{r} ({n})" for r, n in zip(rows, names, strict=True)], dtype=object)


@DATASETS.register("features")
class Features:
    provides = "features"

    def __init__(self, path: Annotated[str, ExistingFile()], labels: Annotated[str, ExistingFile()] | None = None,
                 names: Annotated[str, ExistingFile()] | None = None, key: str | None = None,
                 limit: Limit = None, seed: Seed = 0):
        self.path = path
        self.labels = labels
        self.names = names
        self.key = key
        self.limit = limit
        self.seed = seed

    # -- reading ---------------------------------------------------------------------------------
    def _matrix(self) -> tuple[np.ndarray, str]:
        matrix, how = mf.open_matrix(self.path, self.key)
        if matrix.ndim != 2:
            raise DataError(f"features: {self.path} holds an array of shape {tuple(matrix.shape)}; "
                            "it must be 2-D (one row per item)")
        if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
            raise DataError(f"features: {self.path} holds {matrix.dtype} values, not numbers")
        if matrix.shape[0] == 0 or matrix.shape[1] == 0:
            raise DataError(f"features: {self.path} has shape {tuple(matrix.shape)}: no rows or no columns")
        return matrix, how

    def _raw_labels(self) -> tuple[np.ndarray | None, str | None]:
        if self.labels is not None:
            if mf.suffix(self.labels) == ".npy":
                values = np.load(self.labels, allow_pickle=False)
                if values.ndim != 1:
                    raise DataError(f"features: labels {self.labels} has shape {values.shape}; it must be 1-D")
                return values, self.labels
            return _read_lines(self.labels), self.labels
        if mf.suffix(self.path) == ".npz" and "labels" in mf.npz_member_names(self.path):
            with np.load(self.path, allow_pickle=False) as z:
                return z["labels"], f"{self.path}[labels]"
        if mf.suffix(self.path) == ".parquet":
            values = mf.parquet_labels(self.path)
            return values, (f"{self.path} (label column)" if values is not None else None)
        return None, None

    def _names(self) -> np.ndarray | None:
        return mf.stored_names(self.path) if self.names is None else _read_lines(self.names)

    def check(self) -> None:
        """The files' shape, values and lengths, before anything runs (one line each)."""
        matrix, _ = self._matrix()
        n = len(matrix)
        count, first = mf.bad_rows(matrix)
        if count:
            raise DataError(f"features: {self.path} has {count} row(s) with NaN or infinite values "
                            f"(first: row {first}); drop or impute them")
        labels, source = self._raw_labels()
        if labels is not None and len(labels) != n:
            raise DataError(f"features: labels {source} has {len(labels)} values for the {n} rows of {self.path}")
        names = self._names()
        if names is not None and len(names) != n:
            raise DataError(f"features: names {self.names or self.path} has {len(names)} names for the {n} rows "
                            f"of {self.path}")

    def load(self) -> FeatureData:
        self.check()
        matrix, how = self._matrix()
        raw, _ = self._raw_labels()
        labels, class_names = None, None
        if raw is not None:
            class_names, labels = np.unique(raw.astype(str) if raw.dtype.kind in "OUS" else raw, return_inverse=True)
            class_names = [str(c) for c in class_names]
        names = self._names()
        idx = select_subset(len(matrix), labels, self.limit, self.seed)
        sources = row_sources(os.path.basename(self.path), idx, None if names is None else names[idx])
        if len(idx) < len(matrix):  # a subset is small by construction: those rows are read into RAM
            matrix, labels = np.asarray(matrix[idx]), None if labels is None else labels[idx]
            names = None if names is None else names[idx]
        if matrix.dtype != np.float32:
            how += f"; {matrix.dtype} converted to float32 in RAM"
            matrix = np.asarray(matrix, dtype=np.float32)
        source = file_sha256(self.path) + (file_sha256(self.labels) if self.labels else "")
        fingerprint = content_hash("features", source, self.key, f"limit={self.limit}",
                                   f"seed={self.seed}" if self.limit else "")
        items = {SOURCE_COLUMN: sources, **({} if names is None else {"name": names.astype(str)})}
        info = {"n": len(matrix), "root": self.path, "dim": int(matrix.shape[1]), "opened": how}
        return FeatureData(None, None if labels is None else labels.astype(np.int64), class_names, fingerprint,
                           name="features", info=info, items=items, features=matrix)
