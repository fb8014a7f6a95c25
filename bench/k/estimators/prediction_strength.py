"""Prediction strength (Tibshirani & Walther 2005).

Each repeat splits the points at random into halves, clusters both with the cell's clusterer at K
and assigns the test half to the training half's nearest cluster mean. For each test cluster
A_j (n_j >= 2), the fraction of its pairs that the training clustering puts together; the strength
is the smallest fraction over j, averaged over ``repeats`` splits (seeded by the cell). Rule: the
largest K whose strength is at least ``threshold`` (0.8, as the paper suggests); when no K of the
sweep reaches it, the K of the largest strength.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from clusterbench.core.params import Interval

from .base import K_ESTIMATORS, KEstimatorBase, best_of


def strength(test_labels: np.ndarray, predicted: np.ndarray) -> float:
    """min over test clusters j of the fraction of pairs in A_j that ``predicted`` co-assigns."""
    fractions = []
    for j in np.unique(test_labels[test_labels >= 0]):
        members = predicted[test_labels == j]
        n = len(members)
        if n < 2:
            continue
        counts = np.unique(members, return_counts=True)[1].astype(np.float64)
        fractions.append(float((counts * (counts - 1)).sum() / (n * (n - 1))))
    return min(fractions) if fractions else 0.0


def nearest_mean(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray) -> np.ndarray:
    ids = np.unique(train_labels[train_labels >= 0])
    means = np.stack([train[train_labels == c].mean(axis=0) for c in ids])
    d = (test**2).sum(1)[:, None] - 2 * test @ means.T + (means**2).sum(1)[None, :]
    return ids[np.argmin(d, axis=1)]


@K_ESTIMATORS.register("prediction-strength")
class PredictionStrength(KEstimatorBase):
    """prediction strength of random half splits; largest K with strength >= 0.8"""

    direction = "maximize"

    def __init__(self, repeats: Annotated[int, Interval(1, None)] = 3, threshold: Annotated[float, Interval(0, 1)] = 0.8):
        self.repeats, self.threshold = repeats, threshold

    def score(self, X, labels, k, fit, seed) -> dict:
        values = []
        for r in range(self.repeats):
            order = np.random.default_rng(seed * 1000 + r).permutation(len(X))
            train, test = X[order[: len(X) // 2]], X[order[len(X) // 2:]]
            if min(len(train), len(test)) <= k:
                return {"value": float("nan")}
            train_labels, test_labels = np.asarray(fit(train, k, seed + r)), np.asarray(fit(test, k, seed + r))
            values.append(strength(test_labels, nearest_mean(train, train_labels, test)))
        return {"value": float(np.mean(values)), "sd": float(np.std(values))}

    def choose(self, curve) -> int:
        strong = [k for k in curve if curve[k]["value"] >= self.threshold]
        return max(strong) if strong else best_of(curve, "maximize")
