"""Davies-Bouldin (1979) index of the cell's clustering at each K; the smallest wins."""

from __future__ import annotations

from sklearn.metrics import davies_bouldin_score

from .base import K_ESTIMATORS, KEstimatorBase


@K_ESTIMATORS.register("davies-bouldin")
class DaviesBouldin(KEstimatorBase):
    """mean worst-case cluster similarity; min wins"""

    direction = "minimize"

    def __init__(self):
        pass

    def score(self, X, labels, k, fit, seed) -> dict:
        keep = labels >= 0
        return {"value": float(davies_bouldin_score(X[keep], labels[keep]))}
