"""HDBSCAN (the ``hdbscan`` package): finds the number of clusters itself; noise is -1.

Above ``max_dim`` dimensions its tree algorithms degrade to brute force, so wider inputs are
first reduced with PCA (recorded in the result's ``info``). Above ``max_points`` it is fitted on
a random sample of that many points and the others are assigned with the package's
``approximate_predict`` (said up front by :meth:`HDBSCAN.plan`).
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import numpy as np

from clusterbench.core.errors import UserError
from clusterbench.core.params import Interval, PositiveInt, Seed

from .base import CLUSTERERS, ClustererBase, ClusterResult, Param, check_features


def _tune_int(tune, key: str, default: int | None, minimum: int) -> int | None:
    value = tune.get(key)
    if value is None:
        return default
    try:
        number = int(value)
        if isinstance(value, bool) or number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"tune {key}={value!r}: expected an integer") from None
    if number < minimum:
        raise UserError(f"tune {key}={number}: must be at least {minimum}")
    return number


@CLUSTERERS.register("hdbscan")
class HDBSCAN(ClustererBase):
    tune_keys = {
        "min_cluster_size_min": "hdbscan: smallest min_cluster_size tried (default 5)",
        "min_cluster_size_max": "hdbscan: largest min_cluster_size tried (default max(10, N/10) capped at 500)",
        "min_samples_max": "hdbscan: largest min_samples tried (default 50)",
    }

    @classmethod
    def search_space(cls, n, dim, tune) -> list[Param]:
        """It finds K itself: ``min_cluster_size`` and ``min_samples`` instead, both log-scaled."""
        low = _tune_int(tune, "min_cluster_size_min", 5, 2)
        high = min(_tune_int(tune, "min_cluster_size_max", None, 2) or max(10, min(500, n // 10)), n)
        if high <= low:
            raise UserError(f"k=auto: hdbscan min_cluster_size range {low}..{high} is empty for {n} points")
        samples = max(2, min(_tune_int(tune, "min_samples_max", 50, 1), n - 1))
        return [Param.integer("min_cluster_size", low, high, log=True), Param.integer("min_samples", 1, samples, log=True)]

    def __init__(self, min_cluster_size: Annotated[int, Interval(2, None)] = 10, min_samples: PositiveInt | None = None,
                 max_dim: PositiveInt | None = 50, cluster_selection_method: Literal["eom", "leaf"] = "eom",
                 max_points: Annotated[int, Interval(100, None)] = 100_000, seed: Seed = 0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.max_dim = max_dim
        self.max_points = max_points
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
            from clusterbench.core.reduce import Reducer

            X = Reducer(pca=self.max_dim, seed=self.seed).fit_transform(X)
            reduced_to = self.max_dim
        sampled = len(X) > self.max_points
        model = hdbscan.HDBSCAN(
            min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
            cluster_selection_method=self.cluster_selection_method, core_dist_n_jobs=1, prediction_data=sampled,
        )
        if sampled:
            idx = np.sort(np.random.default_rng(self.seed).choice(len(X), self.max_points, replace=False))
            model.fit(X[idx].astype(np.float64))
            labels = np.empty(len(X), dtype=np.int64)
            for s in range(0, len(X), 100_000):  # bounded memory for the query's neighbour arrays
                labels[s:s + 100_000], _ = hdbscan.approximate_predict(model, X[s:s + 100_000].astype(np.float64))
            labels[idx] = model.labels_
        else:
            labels = model.fit_predict(X.astype(np.float64)).astype(np.int64)
        found = int(labels.max() + 1) if len(labels) else 0
        return ClusterResult(labels, info={
            "n_clusters_found": found,
            "noise_fraction": float(np.mean(labels < 0)),
            "reduced_to": reduced_to,
            "method": f"sample:{self.max_points}+approximate_predict" if sampled else "exact",
            "seconds": time.perf_counter() - start,
        })

    def plan(self, n: int, dim: int) -> str | None:
        if n <= self.max_points:
            return None
        return (f"hdbscan: {n:,} points > max_points={self.max_points:,}: fitted on a random sample of "
                f"{self.max_points:,}, the other points assigned with hdbscan.approximate_predict")
