"""Agglomerative (hierarchical) clustering, exact up to a size, micro-clusters above it.

The exact algorithm holds an N x N distance structure (44k points ~ 7 GB), so above
``max_points`` the points are first summarised by k-means micro-clusters and the hierarchy is
built on their centres; every point then takes its micro-cluster's label.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np

from clusterbench.core.errors import UserError
from clusterbench.core.params import Interval, K, PositiveInt, Seed

from .base import CLUSTERERS, ClustererBase, ClusterResult, Param, check_features, check_k

LINKAGES = ("ward", "average", "complete", "single")
CUTS_AT_ONCE = 64  # a K sweep's cuts made in one walk of the tree (the sweep's default range is 2..50)


def available_memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def exact_memory_bytes(n: int) -> int:
    """Condensed float64 distances plus the linkage's working copy."""
    return 2 * 8 * n * (n - 1) // 2


@CLUSTERERS.register("agglomerative")
class Agglomerative(ClustererBase):
    tune_keys = {"linkages": "agglomerative: linkages to try, joined by '+' (default all four)"}

    @classmethod
    def search_space(cls, n, dim, tune) -> list[Param]:
        """The linkage (besides K), narrowed by ``linkages=ward+average``."""
        value = tune.get("linkages")
        if value is None:
            return [Param.categorical("linkage", LINKAGES)]
        items = value if isinstance(value, list | tuple) else str(value).split("+")
        links = tuple(dict.fromkeys(str(v).strip().lower() for v in items if str(v).strip()))
        bad = [v for v in links if v not in LINKAGES]
        if bad or not links:
            raise UserError(f"tune linkages: {bad or 'empty'} unknown; valid: {', '.join(LINKAGES)}")
        return [Param.categorical("linkage", links)]

    def __init__(self, k: K = None, linkage: Literal["ward", "average", "complete", "single"] = "ward",
                 max_points: PositiveInt = 20000, n_micro: Annotated[int, Interval(2, None)] = 2000, seed: Seed = 0):
        self.k = k
        self.linkage = linkage
        self.max_points = max_points
        self.n_micro = n_micro
        self.seed = seed

    def plan(self, n: int, dim: int) -> str | None:
        if n <= self.max_points:
            return None
        return (f"agglomerative: {n:,} points > max_points={self.max_points:,} (exact needs "
                f"~{exact_memory_bytes(n) / 2**30:,.0f} GiB): {self.linkage} linkage on {min(self.n_micro, n):,} "
                "k-means micro-clusters, each point taking its micro-cluster's label")

    def fit(self, X, context=None) -> ClusterResult:
        X = check_features(X, self.k, "agglomerative")
        if self.linkage not in LINKAGES:
            raise UserError(f"agglomerative: linkage={self.linkage!r}: expected one of {', '.join(LINKAGES)}")
        start = time.perf_counter()
        if len(X) <= self.max_points:
            labels, method = self._exact(X), "exact"
        else:
            labels, method = self._micro(X), f"microclusters:{min(self.n_micro, len(X))}"
        return ClusterResult(labels, info={"method": method, "seconds": time.perf_counter() - start})

    def sweep(self, X) -> Callable[[int], np.ndarray]:
        """Labels at any K from one tree: scipy's linkage built once (on the micro-cluster centres
        above ``max_points``), cut at each K asked for. ``cut_tree`` gives exactly K clusters, the
        partition a fit at that K gives (``fcluster``'s maxclust can stop short on tied heights)."""
        from scipy.cluster.hierarchy import cut_tree, linkage

        X = check_features(X, None, "agglomerative")
        micro = None
        if len(X) > self.max_points:
            micro, X = self._micro_centres(X)
        self._check_memory(len(X))
        tree = linkage(X, method=self.linkage)
        cuts: dict[int, np.ndarray] = {}

        def at(k: int) -> np.ndarray:
            check_k(k, len(X), "agglomerative")
            if int(k) == len(X):  # every point its own cluster (scipy's cut_tree gives one cluster there)
                cuts[int(k)] = np.arange(len(X), dtype=np.int64)
            if int(k) not in cuts:  # one walk of the tree cuts it at many K (one K a walk costs as much)
                ks = list(range(2, min(len(X) - 1, max(CUTS_AT_ONCE, 2 * int(k))) + 1))
                cuts.update(zip(ks, cut_tree(tree, n_clusters=ks).T.astype(np.int64), strict=True))
            labels = cuts[int(k)]
            return labels if micro is None else labels[micro]

        return at

    def _check_memory(self, n: int) -> None:
        need, have = exact_memory_bytes(n), available_memory_bytes()
        if need > have:
            raise UserError(
                f"agglomerative: exact clustering of {n} points needs ~{need / 2**30:.1f} GiB, "
                f"{have / 2**30:.1f} GiB available; lower max_points (micro-clusters) or subsample with limit="
            )

    def _exact(self, X: np.ndarray) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering

        self._check_memory(len(X))
        return AgglomerativeClustering(self.k, linkage=self.linkage).fit_predict(X).astype(np.int64)

    def _micro(self, X: np.ndarray) -> np.ndarray:
        check_k(self.k, min(self.n_micro, len(X)), "agglomerative (micro-clusters)")
        micro, centres = self._micro_centres(X)
        return self._exact(centres)[micro]

    def _micro_centres(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(each point's micro-cluster, the micro-cluster centres): k-means summarising ``X``."""
        from .kmeans import faiss_kmeans

        micro, centres, _ = faiss_kmeans(X, min(self.n_micro, len(X)), n_init=1, max_iter=20, seed=self.seed,
                                         init="random", spherical=False, use_gpu=False)
        return micro, np.ascontiguousarray(centres, dtype=np.float32)
