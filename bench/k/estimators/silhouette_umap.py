"""Silhouette in a UMAP space (Lowe et al. 2024): the cell's clustering at each K is scored by its
silhouette in a UMAP embedding of the features (``n_neighbors`` 30, ``min_dist`` 0, ``dims`` 10, as
they recommend: a space where clusters are compact, so silhouette stops preferring small K). The
embedding is computed once per cell (seeded), not per K, in at most the features' dimensions; the
largest silhouette wins."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import numpy as np

from clusterbench.core.params import Interval, Seed
from clusterbench.scoring import metrics as M

from .base import K_ESTIMATORS, KEstimatorBase

_SPACES: dict[tuple, np.ndarray] = {}


def _fingerprint(X: np.ndarray) -> str:
    step = max(1, len(X) // 2000)
    return hashlib.sha1(np.ascontiguousarray(X[::step]).tobytes()).hexdigest()


@K_ESTIMATORS.register("silhouette-umap")
class SilhouetteUMAP(KEstimatorBase):
    """silhouette of the clustering in a UMAP space (n_neighbors 30, min_dist 0); max wins"""

    direction = "maximize"

    def __init__(self, dims: Annotated[int, Interval(2, 100)] = 10, neighbors: Annotated[int, Interval(2, None)] = 30,
                 min_dist: Annotated[float, Interval(0, 1)] = 0.0, metric: Literal["euclidean", "cosine"] = "euclidean",
                 sample: Annotated[int, Interval(10, None)] = 2000, seed: Seed | None = None):
        self.dims, self.neighbors, self.min_dist, self.metric = dims, neighbors, min_dist, metric
        self.sample, self.seed = sample, seed

    def space(self, X: np.ndarray, seed: int) -> np.ndarray:
        seed = seed if self.seed is None else self.seed
        dims = min(self.dims, X.shape[1])  # never more than the features have
        key = (X.shape, _fingerprint(X), dims, self.neighbors, self.min_dist, self.metric, seed)
        if key not in _SPACES:
            from clusterbench.core.reduce import umap_embed

            _SPACES.clear()  # one cell's space at a time
            _SPACES[key] = umap_embed(X, dims, self.neighbors, self.min_dist, self.metric, seed)
        return _SPACES[key]

    def score(self, X, labels, k, fit, seed) -> dict:
        Y, keep = self.space(X, seed), labels >= 0
        return {"value": M.internal_metrics(Y[keep], labels[keep], sample_size=self.sample, seed=seed)["silhouette"]}
