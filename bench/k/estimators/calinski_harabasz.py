"""Calinski-Harabasz (1974) variance ratio of the cell's clustering at each K; the largest wins."""

from __future__ import annotations

from sklearn.metrics import calinski_harabasz_score

from .base import K_ESTIMATORS, KEstimatorBase


@K_ESTIMATORS.register("calinski-harabasz")
class CalinskiHarabasz(KEstimatorBase):
    """between/within dispersion ratio; max wins"""

    direction = "maximize"

    def __init__(self):
        pass

    def score(self, X, labels, k, fit, seed) -> dict:
        keep = labels >= 0
        return {"value": float(calinski_harabasz_score(X[keep], labels[keep]))}
