"""HDBSCAN (the ``hdbscan`` package): finds the number of clusters itself; noise is -1.

Above ``max_dim`` dimensions its tree algorithms degrade to brute force, so wider inputs are
first reduced with PCA (recorded in the result's ``info``).
"""

from __future__ import annotations

import time

import numpy as np

from clusterbench.core.errors import UserError

from .base import CLUSTERERS, ClustererBase, ClusterResult, check_features


@CLUSTERERS.register("hdbscan")
class HDBSCAN(ClustererBase):
    def __init__(self, min_cluster_size: int = 10, min_samples: int | None = None, max_dim: int | None = 50,
                 cluster_selection_method: str = "eom", seed: int = 0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.max_dim = max_dim
        self.cluster_selection_method = cluster_selection_method
        self.seed = seed

    def fit(self, X, context=None) -> ClusterResult:
        import hdbscan

        X = check_features(X, None, "hdbscan")
        if self.min_cluster_size < 2 or self.min_cluster_size > len(X):
            raise UserError(f"hdbscan: min_cluster_size={self.min_cluster_size} must be in [2, N={len(X)}]")
        start = time.perf_counter()
        reduced_to = None
        if self.max_dim and X.shape[1] > self.max_dim and len(X) > self.max_dim:
            from clusterbench.scoring.reduce import Reducer

            X = Reducer(pca=self.max_dim, seed=self.seed).fit_transform(X)
            reduced_to = self.max_dim
        model = hdbscan.HDBSCAN(
            min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
            cluster_selection_method=self.cluster_selection_method, core_dist_n_jobs=1,
        )
        labels = model.fit_predict(X.astype(np.float64)).astype(np.int64)
        found = int(labels.max() + 1) if len(labels) else 0
        return ClusterResult(labels, info={
            "n_clusters_found": found,
            "noise_fraction": float(np.mean(labels < 0)),
            "reduced_to": reduced_to,
            "seconds": time.perf_counter() - start,
        })
